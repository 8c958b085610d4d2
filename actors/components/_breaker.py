"""The dataset sink's side of circuit breakers (node-spec 2.8; storage side: :mod:`storage._staging`).

``circuit_breaker_threshold_factor`` and/or ``circuit_breaker_threshold_count`` arm the breaker at the start
of every run on a populated sink dataset, with the limit max(factor x distinct ids incl. deleted, count).
Each function here is what one :class:`~actors.DatasetWrite` of the sink applies, in the dataset's writer:
when the run's breaker is armed, batches, deletion tracking and the state are staged, and the end of a
successful run (:func:`finish`, or a state written by itself, which is what ends an incremental run)
commits the staging with the run's offset. A sink without thresholds never arms: its writes take the plain
path (one look at the dataset's breaker per write), but a tripped dataset still refuses its runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import storage
from storage import _staging

__all__ = ["BreakerConfig"]


@dataclass(frozen=True)
class BreakerConfig:
    """The thresholds of a dataset sink (both None: no breaker)."""

    factor: float | None = None
    count: int | None = None

    @property
    def configured(self) -> bool:
        return self.factor is not None or self.count is not None

    def limit(self, dataset: storage.Dataset) -> int:
        """max(factor x distinct ids (deleted ones included), count)."""
        distinct = dataset.counts()["total"]
        by_factor = math.floor(self.factor * distinct) if self.factor is not None else 0
        return max(by_factor, self.count if self.count is not None else 0)

    def begin(self, dataset: storage.Dataset, key: str) -> None:
        """Start of a run: refuse it if tripped, clear what an unfinished run left, arm when the dataset is
        populated."""
        if self.configured and dataset.populated:
            dataset.arm_breaker(key, self.limit(dataset))
        elif dataset.breaker is not None:
            _staging.settle(dataset)


def refuse_if_tripped(dataset: storage.Dataset) -> None:
    _staging.refuse_if_tripped(dataset)


def write(dataset: storage.Dataset, batch: list[dict[str, Any]], key: str, state: dict[str, Any],
          full_run: Any | None) -> int:
    """A batch: staged when the run is armed, else written; returns the changes."""
    if dataset.breaker is None:
        return dataset.write(batch, offset_key=key, offset=state, full_run=full_run).appended
    refuse_if_tripped(dataset)
    if _staging.staging_for(dataset, key) is None:  # armed by another writer's run
        return dataset.write(batch, offset_key=key, offset=state, full_run=full_run).appended
    return dataset.stage(batch, offset_key=key, offset=state, full_run=full_run)


def end_full_run(dataset: storage.Dataset, run: Any, key: str, state: dict[str, Any], if_empty: str,
                 mark: bool) -> int:
    """Deletion tracking: staged and counted when armed; returns the number of deletes."""
    if _staging.staging_for(dataset, key) is not None:
        return dataset.stage_deletes(run, offset_key=key, offset=state, if_empty=if_empty, mark_deletion_tracked=mark)
    return dataset.end_full_run(run, if_empty=if_empty, mark_deletion_tracked=mark, offset_key=key, offset=state)


def save_state(dataset: storage.Dataset, key: str, state: dict[str, Any]) -> None:
    """The pipe state alone: while the run's staging is open, the staging is committed with it (it ends an
    incremental run; after a run that failed, its staged batches are committed as a plain run's are)."""
    if _staging.staging_for(dataset, key) is not None:
        dataset.commit_staged(state)
    else:
        dataset.write([], offset_key=key, offset=state)


def finish(dataset: storage.Dataset, key: str) -> None:
    """A successful run's end: commit what it staged (with its staged offset)."""
    if _staging.staging_for(dataset, key) is not None:
        dataset.commit_staged()
