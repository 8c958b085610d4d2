"""Dependency tracking (node-spec 11): which source entities to reprocess after changes in hopped-to datasets.

A pipe with a ``dataset`` source keeps one tracking offset per dataset its DTL hops into. Each run reads the
entries of those datasets after their offsets and inverts the pipe's join plan on every changed version and
on the version it replaced (the secondary indexes answer each step), which gives the source entities whose
hops reached the change. Their latest versions go through the pipe again; change tracking drops output
that did not change.

:class:`TrackingLimits` bounds the work (``dependency_tracking`` in the node metadata, a pipe's own
``dependency_tracking`` over it): past the warning thresholds a run says so in its events, past the error
thresholds it fails with its tracking offsets where they were (a rescan, or higher limits, is the way on).
The entity thresholds count the affected source entities; the byte thresholds their stored size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import storage

from .components import ConfigError

if TYPE_CHECKING:
    from ._engine import PipeRunner

__all__ = ["TrackingLimitError", "TrackingLimits", "affected_ids", "latest_versions"]


class TrackingLimitError(Exception):
    """Dependency tracking passed an error threshold (the engine fails the run with it)."""


@dataclass(frozen=True)
class TrackingLimits:
    """The warning and error thresholds of dependency tracking (node-spec 3.6, 4.1)."""

    dependency_warning_threshold: int = 10_000
    dependency_error_threshold: int = 50_000
    dependency_warning_threshold_total_bytes: int = 32 * 1024 * 1024
    dependency_error_threshold_total_bytes: int = 128 * 1024 * 1024

    @classmethod
    def of(cls, pipe_id: str, pipe: Mapping[str, Any], metadata: Mapping[str, Any]) -> TrackingLimits:
        """The node metadata's ``dependency_tracking`` with the pipe's own settings over it; a value that
        is not an integer >= 1 is a ConfigError naming where it came from."""
        values: dict[str, int] = {}
        for where, settings in (("node metadata", metadata.get("dependency_tracking")),
                                (f"pipe {pipe_id}", pipe.get("dependency_tracking"))):
            if settings is None:
                continue
            if not isinstance(settings, Mapping):
                raise ConfigError("must be an object", where=f"{where}: dependency_tracking")
            for spec in fields(cls):
                value = settings.get(spec.name)
                if spec.name not in settings:
                    continue
                if type(value) is not int or value < 1:
                    raise ConfigError(f"must be an integer >= 1, not {value!r}",
                                      where=f"{where}: dependency_tracking.{spec.name}")
                values[spec.name] = value
        return cls(**values)


class _Budget:
    """Counts what a run's dependency tracking holds against the limits; warns once per threshold."""

    def __init__(self, limits: TrackingLimits, warn: Callable[[str], None]) -> None:
        self.limits = limits
        self.warn = warn
        self.warned: set[str] = set()

    def check(self, measure: str, value: int, warning: int, error: int, what: str) -> None:
        if value > error:
            raise TrackingLimitError(
                f"dependency tracking: {what} passed dependency_error_threshold{measure} ({error:,}); the "
                f"tracking offsets stay where they were: rescan the pipe, or raise the threshold")
        if value > warning and measure not in self.warned:
            self.warned.add(measure)
            self.warn(f"dependency tracking: {what} passed dependency_warning_threshold{measure} ({warning:,})")

    def entities(self, count: int, dataset: str) -> None:
        limits = self.limits
        self.check("", count, limits.dependency_warning_threshold, limits.dependency_error_threshold,
                   f"the source entities affected by changes in '{dataset}'")

    def size(self, total: int) -> None:
        limits = self.limits
        self.check("_total_bytes", total, limits.dependency_warning_threshold_total_bytes,
                   limits.dependency_error_threshold_total_bytes,
                   "the stored size of the affected source entities")


def affected_ids(runner: PipeRunner, tracking: dict[str, int], limits: TrackingLimits,
                 warn: Callable[[str], None]) -> tuple[dict[str, int], dict[str, None]]:
    """New tracking offsets, and the source ids whose hops reach entities changed after the old ones.

    A dataset without a tracking offset gets its end (a first run already saw it as it is)."""
    source_name = runner.source.dataset_source
    assert source_name is not None
    budget = _Budget(limits, warn)
    affected: dict[str, None] = {}
    lookup = runner.datasets.lookup
    for name in runner.tracked_datasets:
        since = tracking.get(name)
        if since is None:
            tracking[name] = runner._end_of(name)
            continue
        dataset = runner.datasets.get(name)
        if dataset is None:
            continue
        for seq, stored in dataset.iter_stored(since, history=True, deleted=True):
            changed = storage.loads(stored)
            for version in (changed, _version(dataset, changed.get("_previous"))):
                if version is None:
                    continue
                typed = storage.decode(version)
                for plan in runner.plans:
                    for entity_id in plan.dependents(name, typed, lookup, source_name):
                        if entity_id not in affected:
                            affected[entity_id] = None
                            budget.entities(len(affected), name)
            tracking[name] = seq
    return tracking, affected


def latest_versions(source: storage.Dataset | None, ids: Iterator[str] | dict[str, None], limits: TrackingLimits,
                    warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """The latest version of each id in the source dataset (ids it does not hold are skipped), within the
    byte thresholds."""
    if source is None:
        return
    budget = _Budget(limits, warn)
    total = 0
    for entity_id in ids:
        stored = source.get_stored(entity_id)
        if stored is not None:
            total += len(stored)
            budget.size(total)
            yield storage.loads(stored)


def _version(dataset: storage.Dataset, offset: Any) -> dict[str, Any] | None:
    if not isinstance(offset, int):
        return None
    for seq, stored in dataset.iter_stored(offset - 1, limit=1):
        return storage.loads(stored) if seq == offset else None
    return None
