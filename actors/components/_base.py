"""Extension points of a pipe: one small base class each for sources, transforms and sinks.

Components are synchronous and work on batches of wire-form entities; the engine calls them from a
worker thread. Each component type is one module that registers its class under a name together with a
JSON Schema that validates (and documents) its config; see :mod:`actors.components._registry`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import storage

from .._datasets import Datasets, DatasetWrite

__all__ = ["BuildContext", "Sink", "Source", "Transform", "state_write"]


@dataclass
class BuildContext:
    """What a component may use when it is built for a pipe."""

    pipe_id: str
    pipe: dict[str, Any]
    datasets: Datasets
    metadata: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)  # for DTL "$SECRET(name)" crypto keys
    where: str = ""  # the component's place in the pipe config, e.g. "transform[0]"


class Source:
    """Yields batches of wire-form entities.

    ``supports_since``/``is_chronological``/``is_since_comparable`` decide the continuation strategy
    (node-spec 4.3); a source that supports since sets ``_updated`` on every entity it yields.
    """

    supports_since = False
    is_chronological = False
    is_since_comparable = True
    datasets: tuple[str, ...] = ()  # the datasets it reads (dependencies, signalling)

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.config = config
        self.context = context

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        raise NotImplementedError  # pragma: no cover - abstract

    def end_offset(self) -> Any | None:
        """The offset after the last entity (for ``set-last-seen-to-end``); None when unsupported."""
        return None

    def is_populated(self) -> bool:
        """Whether the source's content reflects one complete read of its producer (node-spec 2.5)."""
        return True

    @property
    def dataset_source(self) -> str | None:
        """The dataset read when this is a plain dataset source (the only kind with dependency tracking)."""
        return None


class Transform:
    """Maps a batch of wire-form entities to a batch (it may drop, change or add entities)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.config = config
        self.context = context

    def transform(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def join_plan(self) -> Any | None:
        """The DTL join plan, for transforms that hop (dependency tracking)."""
        return None


class Sink:
    """Delivers batches. Every write returns a :class:`~actors.DatasetWrite` that commits the pipe's state
    (offsets) together with the batch's data in one LevelDB batch; the pipe's runner has it applied by the
    dataset's single writer. A sink that talks to another system does that I/O inside :meth:`write` (then
    ``blocking`` is true and the pipeline calls it in a worker thread) and returns the state commit."""

    dataset: str | None = None  # the dataset it writes entities to, if any
    blocking = False

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.config = config
        self.context = context

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        """Deliver a batch; the returned write commits it with ``state`` and returns the number of changes."""
        raise NotImplementedError  # pragma: no cover - abstract

    def begin_full_run(self) -> DatasetWrite | None:
        """The write that starts a full run (its result is passed to :meth:`end_full_run`), if any."""
        return None

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> DatasetWrite:
        """Finish a successful full run (deletion tracking); the write returns the number of deletes."""
        return self.save_state(state)

    def load_state(self) -> dict[str, Any]:
        """The pipe state committed with the last batch: ``{"offset": ..., "tracking": {...}}``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        """The write that commits ``state`` alone (returns 0)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def finish(self, *, populated: bool) -> DatasetWrite | None:
        """The write to make after a successful run, if any."""
        return None


def state_write(name: str, key: str, state: dict[str, Any]) -> DatasetWrite:
    """The write that commits a pipe's ``state`` under ``key`` in dataset ``name`` (no data; returns 0)."""

    def save(dataset: storage.Dataset) -> int:
        dataset.write([], offset_key=key, offset=state)
        return 0

    return DatasetWrite(name, save)
