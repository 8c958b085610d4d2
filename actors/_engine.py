"""The pipe engine: one pipe's source -> transforms -> sink, run synchronously in a worker thread.

A run reads the source after the pipe's offset in batches, maps each batch through the transforms and
writes it to the sink, which commits the pipe's state (source offset and dependency-tracking offsets) in
the same LevelDB batch as the data. Then comes the dependency-tracking phase: changes in hopped-to
datasets since their tracking offsets are traced back through the DTL join plan (secondary indexes on the
new and the previous version of each changed entity) to the source entities that must be reprocessed, so
the cost is proportional to the change. A full run ends with deletion tracking in the sink.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import storage
from dtl import DTLRuntimeError

from ._datasets import Datasets
from .components import BuildContext, ConfigError, Sink, Source, Transform, lookup

__all__ = ["PipeRunError", "PipeRunner", "RunResult", "build_runner", "effective_config", "validate_pipe"]

DEFAULT_BATCH_SIZE = 100
_RESERVED_IDS = {"run-all-pipes", "stop-run-all-pipes", "get-run-all-pipes-log", "get-pipe-runner-status",
                 "delete-all-sink-datasets"}


@dataclass
class RunResult:
    """What one run did."""

    sync_type: str
    processed: int = 0
    changes: int = 0
    deleted: int = 0
    source_time: float = 0.0
    transform_time: float = 0.0
    sink_time: float = 0.0
    offset: Any = None
    stopped: bool = False
    dependencies: int = 0  # source entities reprocessed by dependency tracking


class PipeRunError(Exception):
    """A run failed; the pipe's offset stays at the last committed batch."""

    def __init__(self, message: str, *, entity: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.entity = entity


def effective_config(config: dict[str, Any]) -> dict[str, Any]:
    """The pipe config with defaults: the sink (a dataset named after the pipe), transforms as a list."""
    pipe_id = config.get("_id")
    effective = dict(config)
    effective.setdefault("source", {"type": "dataset", "dataset": pipe_id})
    sink = effective.get("sink")
    if sink is None:
        effective["sink"] = {"type": "dataset", "dataset": pipe_id}
    elif isinstance(sink, dict) and sink.get("type") == "dataset" and "dataset" not in sink:
        effective["sink"] = {**sink, "dataset": pipe_id}
    transform = effective.get("transform")
    effective["transform"] = [] if transform is None else transform if isinstance(transform, list) else [transform]
    effective.setdefault("batch_size", DEFAULT_BATCH_SIZE)
    effective.setdefault("pump", {})
    return effective


def _check_pipe(config: Any) -> str:
    if not isinstance(config, dict):
        raise ConfigError("a pipe must be a JSON object")
    pipe_id = config.get("_id")
    if not isinstance(pipe_id, str) or not pipe_id or "/" in pipe_id:
        raise ConfigError("a pipe needs an '_id': a non-empty string without '/'", where="pipe")
    if pipe_id in _RESERVED_IDS:
        raise ConfigError(f"'{pipe_id}' is a reserved name", where=f"pipe {pipe_id}: _id")
    if config.get("type") != "pipe":
        raise ConfigError("'type' must be \"pipe\"", where=f"pipe {pipe_id}: type")
    batch_size = config.get("batch_size", DEFAULT_BATCH_SIZE)
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigError("must be an integer >= 1", where=f"pipe {pipe_id}: batch_size")
    if not isinstance(config.get("pump", {}), dict):
        raise ConfigError("must be an object", where=f"pipe {pipe_id}: pump")
    return pipe_id


class PipeRunner:
    """One pipe, compiled: call :meth:`run` from a worker thread (one run at a time per pipe)."""

    def __init__(self, config: dict[str, Any], datasets: Datasets, metadata: dict[str, Any] | None = None) -> None:
        pipe_id = _check_pipe(config)
        self.pipe_id = pipe_id
        self.original = config
        self.config = effective = effective_config(config)
        self.datasets = datasets
        context = BuildContext(pipe_id, effective, datasets, metadata or {})

        def build(kind: str, component: Any, where: str) -> Any:
            spec = lookup(kind, component, f"pipe {pipe_id}: {where}")
            return spec.factory(component, dataclasses.replace(context, where=where))

        self.source: Source = build("source", effective["source"], "source")
        self.transforms: list[Transform] = [
            build("transform", t, f"transform[{i}]") for i, t in enumerate(effective["transform"])
        ]
        self.sink: Sink = build("sink", effective["sink"], "sink")
        self.source_config = _chosen(self.source).config
        self.batch_size: int = _chosen(self.sink).config.get("batch_size") or effective["batch_size"]
        self.plans = [t.join_plan for t in self.transforms if t.join_plan is not None]
        tracked: set[str] = set()
        if self.source.dataset_source is not None:
            for plan in self.plans:
                tracked |= plan.datasets
        self.tracked_datasets: list[str] = sorted(tracked)

    # -- what the node needs to know ---------------------------------------------------------------------

    @property
    def sink_dataset(self) -> str | None:
        return self.sink.dataset

    @property
    def source_datasets(self) -> list[str]:
        return list(self.source.datasets)

    @property
    def if_source_empty(self) -> str:
        return self.source_config.get("if_source_empty", "accept")

    # -- offsets ---------------------------------------------------------------------------------------------

    def get_offset(self) -> Any:
        """The pipe's source offset (None when unset: the next run is a full run)."""
        return self.sink.load_state().get("offset")

    def set_offset(self, value: Any) -> None:
        """Set the offset; None or "" resets it (the next run is a full run)."""
        state = self.sink.load_state()
        state["offset"] = None if value == "" else value
        if state["offset"] is None:
            state.pop("tracking", None)
        self.sink.save_state(state)

    def set_offset_to_end(self) -> None:
        self.set_offset(self.source.end_offset())

    def queues(self) -> dict[str, Any]:
        """Pending work: source entities after the offset and changes after each tracking offset."""
        state = self.sink.load_state()
        source: Any = 0
        name = self.source.dataset_source
        if name is not None:
            end = self.source.end_offset()
            offset = state.get("offset")
            source = 0 if end is None else end - (offset if isinstance(offset, int) else -1)
        dependencies = {}
        for dataset_name in self.tracked_datasets:
            dataset = self.datasets.get(dataset_name)
            since = state.get("tracking", {}).get(dataset_name)
            if dataset is not None and since is not None:
                dependencies[dataset_name] = max(0, dataset.next_offset - 1 - since)
        return {"source": source, "dependencies": dependencies}

    # -- running -----------------------------------------------------------------------------------------------

    def run(self, *, kind: str = "auto", should_stop: Callable[[], bool] = lambda: False) -> RunResult:
        """Run the pipe once: ``auto`` (incremental when possible) or ``full``."""
        state = self.sink.load_state()
        offset = state.get("offset")
        full = kind in ("full", "rescan") or offset is None or not self.source.supports_since
        result = RunResult("full" if full else "incremental", offset=offset)
        tracking: dict[str, int] = dict(state.get("tracking") or {})
        if full:
            tracking = {name: self._end_of(name) for name in self.tracked_datasets}
            offset = None
        since = offset if offset is not None else self.source_config.get("initial_since_value")
        chronological = self.source.supports_since and self.source.is_chronological
        full_run = self.sink.begin_full_run() if full else None
        seen = 0
        batches = self.source.read(since, self.batch_size)
        while True:
            if should_stop():
                result.stopped = True
                return result
            started = time.perf_counter()
            try:
                batch = next(batches, None)
            except Exception as exc:  # a source that cannot read fails the run, offset unchanged
                raise PipeRunError(f"reading the source failed: {exc}") from exc
            result.source_time += time.perf_counter() - started
            if batch is None:
                break
            seen += len(batch)
            if chronological and batch:
                offset = batch[-1].get("_updated", offset)
            self._process(batch, result, {"offset": offset if self.source.supports_since else None,
                                          "tracking": tracking}, full_run)
        result.processed = seen
        result.offset = offset
        state = {"offset": offset if self.source.supports_since else None, "tracking": tracking}
        if self.tracked_datasets and not full:
            tracking = self._track_dependencies(state, result, should_stop)
            state["tracking"] = tracking
            if result.stopped:
                return result
        if full_run is not None:
            started = time.perf_counter()
            try:
                result.deleted = self.sink.end_full_run(full_run, state=state, if_empty=self.if_source_empty)
            except storage.EmptySourceError:
                raise PipeRunError("the source was empty and the pipe is set to fail on an empty source "
                                   "(if_source_empty: fail): nothing was deleted") from None
            result.changes += result.deleted
            result.sink_time += time.perf_counter() - started
        elif state != self.sink.load_state():
            self.sink.save_state(state)
        self.sink.finish(populated=self.source.is_populated())
        return result

    def _process(self, batch: list[dict[str, Any]], result: RunResult, state: dict[str, Any],
                 full_run: Any) -> None:
        started = time.perf_counter()
        out = self._transform(batch)
        middle = time.perf_counter()
        result.transform_time += middle - started
        try:
            result.changes += self.sink.write(out, state=state, full_run=full_run)
        except storage.EntityError as exc:
            raise PipeRunError(f"writing to the sink failed: {exc}") from exc
        result.sink_time += time.perf_counter() - middle

    def _transform(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = batch
        for transform in self.transforms:
            try:
                out = transform.transform(out)
            except DTLRuntimeError as exc:
                entity = next((e for e in batch if e.get("_id") == exc.entity_id), None)
                raise PipeRunError(f"transform failed: {exc}", entity=entity) from exc
        return out

    def _end_of(self, name: str) -> int:
        dataset = self.datasets.get(name)
        return -1 if dataset is None else dataset.next_offset - 1

    # -- dependency tracking -----------------------------------------------------------------------------

    def _track_dependencies(self, state: dict[str, Any], result: RunResult,
                            should_stop: Callable[[], bool]) -> dict[str, int]:
        """Reprocess the latest source versions affected by changes in hopped-to datasets."""
        source_name = self.source.dataset_source
        assert source_name is not None
        tracking = dict(state["tracking"])
        affected: dict[str, None] = {}
        lookup_ = self.datasets.lookup
        for name in self.tracked_datasets:
            since = tracking.get(name)
            if since is None:
                tracking[name] = self._end_of(name)
                continue
            dataset = self.datasets.get(name)
            if dataset is None:
                continue
            for seq, stored in dataset.iter_stored(since, history=True, deleted=True):
                changed = storage.loads(stored)
                for version in (changed, self._version(dataset, changed.get("_previous"))):
                    if version is None:
                        continue
                    typed = storage.decode(version)
                    for plan in self.plans:
                        for entity_id in plan.dependents(name, typed, lookup_, source_name):
                            affected[entity_id] = None
                tracking[name] = seq
        if not affected:
            return tracking
        source = self.datasets.get(source_name)
        batch: list[dict[str, Any]] = []
        new_state = {"offset": state["offset"], "tracking": tracking}
        for entity in self._latest(source, affected):
            batch.append(entity)
            if len(batch) >= self.batch_size:
                if should_stop():
                    result.stopped = True
                    return state["tracking"]
                self._process(batch, result, {"offset": state["offset"], "tracking": state["tracking"]}, None)
                result.dependencies += len(batch)
                batch = []
        self._process(batch, result, new_state, None)
        result.dependencies += len(batch)
        return tracking

    @staticmethod
    def _version(dataset: storage.Dataset, offset: Any) -> dict[str, Any] | None:
        if not isinstance(offset, int):
            return None
        for seq, stored in dataset.iter_stored(offset - 1, limit=1):
            return storage.loads(stored) if seq == offset else None
        return None

    @staticmethod
    def _latest(source: storage.Dataset | None, ids: dict[str, None]) -> Iterator[dict[str, Any]]:
        if source is None:
            return
        for entity_id in ids:
            entity = source.get(entity_id)
            if entity is not None:
                yield entity

    # -- dry runs ------------------------------------------------------------------------------------------------

    def preview(self, stage: str = "sink", since: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
        """What the pipe would emit at ``stage`` (source, before-transforms, after-transforms, sink),
        without writing anything."""
        if stage not in ("source", "before-transforms", "after-transforms", "sink"):
            raise ValueError(f"unknown stage {stage!r}")
        out: list[dict[str, Any]] = []
        for batch in self.source.read(since, self.batch_size):
            if stage not in ("source", "before-transforms"):
                batch = self._transform(batch)
            out.extend(batch)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out


def _chosen(component: Any) -> Any:
    """The component a ``conditional`` wrapper chose (the component itself otherwise)."""
    while "chosen" in vars(component):
        component = component.chosen
    return component


def build_runner(config: dict[str, Any], datasets: Datasets, metadata: dict[str, Any] | None = None) -> PipeRunner:
    """Compile a pipe config; raises :class:`ConfigError` naming the pipe and the path."""
    return PipeRunner(config, datasets, metadata)


def validate_pipe(config: Any, datasets: Datasets) -> list[str]:
    """The config errors of a pipe (empty when it is valid)."""
    try:
        build_runner(config, datasets)
    except ConfigError as exc:
        return [str(exc)]
    return []
