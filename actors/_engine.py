"""The pipe engine: one pipe's source -> transforms -> sink, as a sans-IO core of run steps.

:class:`PipeRunner` is a compiled pipe. :meth:`PipeRunner.begin` returns a :class:`PipeRun`, whose steps a
driver calls: the source stage iterates :meth:`PipeRun.batches` (blocking reads), the transform stage maps
each :class:`Work` with :meth:`PipeRun.transform`, and the sink stage has the :class:`~actors.DatasetWrite`
of :meth:`PipeRun.write` applied by the sink dataset's single writer; each write commits the batch's data
and the pipe state it carries (source offset, dependency-tracking offsets) in one LevelDB batch. The run
never applies a write itself: :meth:`PipeRunner.run` drives it synchronously under dataset locks (tests,
tools), and :func:`actors.run_pipeline` drives it as Trio tasks joined by bounded channels, writing through
the dataset actors (the node's pump).

After the source's batches comes the dependency-tracking phase: changes in hopped-to datasets since their
tracking offsets are traced back through the DTL join plan (secondary indexes on the new and the previous
version of each changed entity) to the source entities to reprocess, so the cost is proportional to the
change (``actors._tracking``, which also holds the phase to its thresholds). A full run ends with deletion
tracking in the sink.

Run kinds (node-spec 4.2): ``auto`` (incremental when there is an offset and the source supports since,
else full), ``full``, ``rescan`` (a full re-read: a full run, flagged as a rescan) and ``partial`` (the offset moved
back by ``partial_rescan_delta``, no deletion tracking). Continuation (4.3): a chronological source commits
its offset with every batch; a source that supports since, is not chronological but has comparable
``_updated`` values commits the largest ``_updated`` seen (the ``max`` strategy) only at the end of a
successful run; any other source has no offset and every run is full. A source's flags come from its type
and, where the type allows, its config.

A run of a pipe whose source requires populated input (``require_populated_input``, node-spec 2.5) while an
input dataset is not populated is skipped: it writes nothing and says why in :attr:`RunResult.skipped`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import storage
from dtl import DTLRuntimeError

from ._datasets import Datasets, DatasetWrite
from ._namespacing import Namespacing, namespaced_identifiers
from ._reprocessing import config_digest, out_of_sync, policy, sync_record
from ._retention import compaction_settings, log_retention_hours
from ._schedule import ScheduleError, check_rescans, schedule_for
from ._tracking import TrackingLimitError, TrackingLimits, affected_ids, latest_versions
from ._write_errors import WriteAbort, WriteErrors, WritePolicy, is_unreachable, pending_errors
from .components import BuildContext, ConfigError, Sink, Source, Transform, global_defaults, lookup

__all__ = ["RUN_KINDS", "PipeRun", "PipeRunError", "PipeRunner", "RunResult", "Work", "build_runner",
           "effective_config", "validate_pipe"]

DEFAULT_BATCH_SIZE = 100
RUN_KINDS = ("auto", "full", "rescan", "partial")
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
    batches: int = 0
    rescan: bool = False  # a full re-read asked for as a rescan
    skipped: str | None = None  # why the run did nothing (its input is not populated)
    warnings: list[str] = field(default_factory=list)  # e.g. dependency tracking past a warning threshold
    retried: int = 0  # entities of earlier write errors sent again (an external sink's retry pass)
    write_errors: int = 0  # entities the sink failed to take in this run (logged as write-error)
    dead: int = 0  # entities given up on in this run (dead letters)
    retry_entities_exist: bool = False  # retryable write errors wait for a later run


@dataclass
class Work:
    """One batch on its way from source to sink, with the pipe state its write commits."""

    entities: list[dict[str, Any]]
    state: dict[str, Any]
    dependencies: bool = False  # reprocessed by dependency tracking
    size: int = field(default=0)  # source entities in the batch
    retry: bool = False  # entities of earlier write errors, as they were sent: not transformed again

    def __post_init__(self) -> None:
        self.size = self.size or len(self.entities)


class PipeRunError(Exception):
    """A run failed; the pipe's offset stays at the last committed batch. ``read_error``: reading the source
    failed (the pump logs a ``read-error``)."""

    def __init__(self, message: str, *, entity: dict[str, Any] | None = None, read_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.entity = entity
        self.read_error = read_error


def effective_config(config: dict[str, Any]) -> dict[str, Any]:
    """The pipe config with defaults: the sink (a dataset named after the pipe; a sink without ``type`` is a
    dataset sink), transforms as a list."""
    pipe_id = config.get("_id")
    effective = dict(config)
    effective.setdefault("source", {"type": "dataset", "dataset": pipe_id})
    sink = effective.get("sink")
    if sink is None:
        effective["sink"] = {"type": "dataset", "dataset": pipe_id}
    else:
        if isinstance(sink, dict) and "type" not in sink:  # a sink without a type is a dataset sink
            sink = effective["sink"] = {"type": "dataset", **sink}
        if isinstance(sink, dict) and sink.get("type") == "dataset" and "dataset" not in sink:
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
    if not isinstance(config.get("permissions") or [], list):
        raise ConfigError("must be a list of access entries", where=f"pipe {pipe_id}: permissions")
    for index, entry in enumerate(config.get("permissions") or []):
        if not (isinstance(entry, list) and len(entry) == 3 and entry[0] in ("allow", "deny")
                and all(isinstance(part, list) and all(isinstance(x, str) for x in part) for part in entry[1:])):
            raise ConfigError('must be ["allow"|"deny", [principals...], [permissions...]]',
                              where=f"pipe {pipe_id}: permissions[{index}]")
    return pipe_id


class PipeRunner:
    """One pipe, compiled: call :meth:`run` from a worker thread (one run at a time per pipe)."""

    def __init__(self, config: dict[str, Any], datasets: Datasets, metadata: dict[str, Any] | None = None,
                 secrets: dict[str, Any] | None = None, systems: Mapping[str, Any] | None = None) -> None:
        pipe_id = _check_pipe(config)
        self.pipe_id = pipe_id
        self.original = config
        self.config = effective = effective_config(config)
        try:  # a schedule that can never run is a config error, not a pipe silently never scheduled
            schedule_for(effective)
            check_rescans(effective.get("pump") or {})
        except ScheduleError as exc:
            raise ConfigError(str(exc), where=f"pipe {pipe_id}: pump") from None
        self.datasets = datasets
        self.metadata: dict[str, Any] = metadata or {}
        built = effective  # what components see: namespaced_identifiers inherited from the node metadata
        if "namespaced_identifiers" not in effective and namespaced_identifiers(effective, self.metadata):
            built = {**effective, "namespaced_identifiers": True}
        context = BuildContext(pipe_id, built, datasets, self.metadata, secrets or {}, systems=systems or {})

        def build(kind: str, component: Any, where: str) -> Any:
            spec = lookup(kind, component, f"pipe {pipe_id}: {where}")
            return spec.factory(component, dataclasses.replace(context, where=where))

        self.source: Source = build("source", effective["source"], "source")
        self.transforms: list[Transform] = [
            build("transform", t, f"transform[{i}]") for i, t in enumerate(effective["transform"])
        ]
        self.sink: Sink = build("sink", effective["sink"], "sink")
        self.config = effective = _resolved(effective, self.source, self.transforms, self.sink)
        self.source_config = _chosen(self.source).config
        self.namespacing = Namespacing.of(built, self.metadata, source=_chosen(self.source), sink=_chosen(self.sink))
        self.batch_size: int = _chosen(self.sink).config.get("batch_size") or effective["batch_size"]
        self.plans = [t.join_plan for t in self.transforms if t.join_plan is not None]
        tracked: set[str] = set()
        if self.source.dataset_source is not None:
            for plan in self.plans:
                tracked |= plan.datasets
        self.tracked_datasets: list[str] = sorted(tracked)
        self.tracking_limits = TrackingLimits.of(pipe_id, effective, self.metadata)
        self.reprocessing_policy, self.rescan_when_config_changes = policy(effective, self.metadata, pipe_id)
        self._config_digest = config_digest(effective)  # the config of a runner never changes
        self.log_retention_hours = log_retention_hours(effective, self.metadata, pipe_id)
        compaction_settings(effective, self.metadata, pipe_id)  # checked here; the node's compaction reads it
        self.execution_dataset = f"system:pump_execution:{pipe_id}"
        self.write_policy = WritePolicy.of(pipe_id, effective.get("pump") or {})

    # -- what the node needs to know ---------------------------------------------------------------------

    @property
    def sink_dataset(self) -> str | None:
        return self.sink.dataset

    @property
    def source_datasets(self) -> list[str]:
        return list(self.source.datasets)

    @cached_property
    def input_datasets(self) -> frozenset[str]:
        """Every dataset the pipe reads: its source's and its transforms' (hops, apply-hops, lookups)."""
        return frozenset(self.source.datasets).union(self.tracked_datasets,
                                                      *(t.datasets_read for t in self.transforms))

    @property
    def if_source_empty(self) -> str:
        return self.source_config.get("if_source_empty", "accept")

    @cached_property
    def signalling(self) -> bool:
        """Whether a commit to a dataset the pipe reads (or hops into) wakes it (node-spec 5.2): the source's
        ``supports_signalling`` if set; else, for a dataset-to-dataset pipe without an explicit
        ``schedule_interval`` or ``cron_expression``, ``global_defaults.use_signalling_internally`` (true)."""
        explicit = self.source_config.get("supports_signalling")
        if explicit is not None:
            return bool(explicit)
        if not self.source_datasets or self.sink_dataset is None:
            return False
        pump = self.config.get("pump") or {}
        if pump.get("schedule_interval") is not None or pump.get("cron_expression") is not None:
            return False
        return global_defaults(self.metadata).get("use_signalling_internally") is not False

    def source_end(self) -> int | None:
        """The end offset of a dataset source (a run's progress is its position against it), else None."""
        return self.source.end_offset() if self.source.dataset_source is not None else None

    def sink_populated(self) -> bool:
        """Whether the sink dataset is populated (true for a sink without a dataset)."""
        name = self.sink_dataset
        if name is None:
            return True
        dataset = self.datasets.get(name)
        return dataset is not None and dataset.populated

    def load_writes(self) -> list[DatasetWrite]:
        """The writes to apply when the pipe is loaded or configured: the sink's (``set_initial_offset:
        onload``), and the dead-letter dataset asserted (created, populated) when the pump names one."""
        writes = [write for write in (self.sink.on_load(),) if write is not None]
        if self.write_policy.dead_letter_dataset is not None:
            writes.append(DatasetWrite(self.write_policy.dead_letter_dataset, _assert_populated))
        return writes

    # -- offsets ---------------------------------------------------------------------------------------------

    def get_offset(self) -> Any:
        """The pipe's source offset (None when unset: the next run is a full run)."""
        return self.sink.load_state().get("offset")

    def offset_write(self, value: Any) -> DatasetWrite:
        """The write that sets the offset; None or "" resets it (the next run is a full run)."""
        state = self.sink.load_state()
        state["offset"] = None if value == "" else value
        if state["offset"] is None:
            state.pop("tracking", None)
        return self.sink.save_state(state)

    def end_offset_write(self) -> DatasetWrite:
        """The write that moves the offset to the end of the source (``set-last-seen-to-end``)."""
        end = self.source.end_offset()
        if end is None:
            raise PipeRunError(f"the source of pipe '{self.pipe_id}' has no end offset")
        return self.offset_write(end)

    # -- automatic reprocessing (node-spec 4.8) -----------------------------------------------------------------

    def sync_record(self) -> dict[str, Any]:
        """The pipe's config digest and the generation of every dataset it reads (None: missing)."""
        generations: dict[str, str | None] = {}
        for name in sorted({*self.source_datasets, *self.tracked_datasets}):
            dataset = self.datasets.get(name)
            generations[name] = None if dataset is None else dataset.generation
        return sync_record(self._config_digest, generations)

    def out_of_sync(self, recorded: dict[str, Any] | None, now: dict[str, Any]) -> list[dict[str, Any]]:
        """Why the pipe is out of sync with its inputs since the ``recorded`` sync record (see
        :mod:`actors._reprocessing`); empty when it is in sync."""
        truncated = None
        name = self.source.dataset_source
        offset = self.get_offset()
        if name is not None and type(offset) is int and self.datasets.get(name) is not None \
                and offset > self._end_of(name):
            truncated = name
        return out_of_sync(recorded, now, config_changes=self.rescan_when_config_changes, truncated=truncated)

    def tracking_offsets(self) -> dict[str, int]:
        """The dependency-tracking offsets, per hopped-to dataset (empty before the first run)."""
        return dict(self.sink.load_state().get("tracking") or {})

    def tracking_write(self, to: str) -> DatasetWrite:
        """The write that moves every tracking offset to the ``end`` of its dataset (``reset-tracking``:
        later changes only) or to the ``start`` (``set-tracking-to-start``: every entry is a change)."""
        if not self.tracked_datasets:
            raise PipeRunError(f"pipe '{self.pipe_id}' tracks no dependencies (no hops from a dataset source)")
        state = self.sink.load_state()
        state["tracking"] = {name: self._end_of(name) if to == "end" else -1 for name in self.tracked_datasets}
        return self.sink.save_state(state)

    def set_offset(self, value: Any) -> None:
        self.datasets.apply(self.offset_write(value))

    def set_offset_to_end(self) -> None:
        self.datasets.apply(self.end_offset_write())

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

    def begin(self, kind: str = "auto") -> PipeRun:
        """A run of the pipe, as steps for a driver (see :class:`PipeRun`)."""
        return PipeRun(self, kind)

    def run(self, *, kind: str = "auto", should_stop: Callable[[], bool] = lambda: False) -> RunResult:
        """Run the pipe once, synchronously, each write applied under its dataset's lock (tests and tools;
        the node's pump drives runs with :func:`actors.run_pipeline`)."""
        run = self.begin(kind)
        apply = self.datasets.apply
        first = run.start()
        run.started(apply(first) if first is not None else None)
        for work in run.batches(should_stop):
            work = run.transform(work)
            started = time.perf_counter()
            try:
                write = run.write(work)
            finally:
                for error_write in run.take_error_writes():
                    apply(error_write)
            apply(write)
            run.result.sink_time += time.perf_counter() - started
        for write in run.end():
            apply(write)
        return run.result

    @property
    def pumped(self) -> bool:
        """Whether the pump runs the pipe: not one whose source receives pushed entities, nor a publisher
        (its sink serves its output to whoever asks, node-spec 8.0)."""
        return not self.source.receives and self.sink.publishes is None

    def publish(self, since: Any = None, limit: int | None = None,
                bound: Mapping[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """The pipe's output for a publisher request (node-spec 8.3): the source read after ``since``
        through the transforms with ``_B`` bound to ``bound``, in batches, at most ``limit`` entities.
        An output entity without ``_updated`` gets its source entity's (same ``_id``), else the newest of
        its source batch, so a client can hand the last one back as ``since``. Filtered entities are left out."""
        left = limit
        for batch in self.source.read(since, self.batch_size):
            if left is not None and left <= 0:
                return
            out = self._transform(batch, bound=bound)
            if out is not batch:  # filtered entities are not published (they mean deletes to a dataset only)
                out = [e for e in out if e.get("_filtered") is not True]
                _stamp_updated(out, batch)
            if left is not None:
                out = out[:left]
                left -= len(out)
            if out:
                yield out

    def transform_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch through the pipe's transforms (pushed entities on their way to the sink)."""
        return self._transform(batch)

    def _transform(self, batch: list[dict[str, Any]],
                   bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out = self.namespacing.before(batch)
        for transform in self.transforms:
            try:
                out = transform.transform(out, bound=bound)
            except DTLRuntimeError as exc:
                entity = next((e for e in batch if e.get("_id") == exc.entity_id), None)
                raise PipeRunError(f"transform failed: {exc}", entity=entity) from exc
        return self.namespacing.after(out)

    def _end_of(self, name: str) -> int:
        dataset = self.datasets.get(name)
        return -1 if dataset is None else dataset.next_offset - 1

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
            if stage == "sink":
                batch = self._as_sink_takes(batch)
            out.extend(batch)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def _as_sink_takes(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Filtered entities as the sink takes them (client-spec 11.2): a delete for a dataset sink, nothing for
        any other sink."""
        if self.sink_dataset is not None:
            return [{**e, "_deleted": True} if e.get("_filtered") is True else e for e in batch]
        return [e for e in batch if e.get("_filtered") is not True]


class PipeRun:
    """One run of a pipe as steps a driver calls in order, in its stages' threads (sans-IO: every write
    is returned as a :class:`~actors.DatasetWrite` for the driver to have applied):

    1. :meth:`start` (apply it, pass the result to :meth:`started`);
    2. :meth:`batches`, :meth:`transform` and :meth:`write` for each :class:`Work`, in order;
    3. :meth:`end`, whose writes are applied one by one, in order.

    A failure raises :class:`PipeRunError`; what was committed before it stays, with its offsets. A skipped
    run (:attr:`skipped`: its input is not populated) has no start write, no batches and no end writes.
    """

    def __init__(self, runner: PipeRunner, kind: str = "auto") -> None:
        if kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {kind!r} (known: {', '.join(RUN_KINDS)})")
        self.runner = runner
        source, sink = runner.source, runner.sink
        self.loaded_state = state = sink.load_state()
        offset = state.get("offset")
        self.strategy = source.continuation  # node-spec 4.3
        self.keeps_offset = self.strategy != "none"
        self.chronological = self.strategy == "chronological"
        self.full = kind in ("full", "rescan") or offset is None or not self.keeps_offset
        # a rescan is a full run (there are no background rescans)
        sync_type = "full" if self.full else "partial" if kind == "partial" else "incremental"
        self.result = RunResult(sync_type, offset=offset, rescan=kind == "rescan")
        self.tracking: dict[str, int] = dict(state.get("tracking") or {})
        if self.full:
            self.tracking = {name: runner._end_of(name) for name in runner.tracked_datasets}
            offset = None
        elif sync_type == "partial":
            offset = _rewind(offset, runner.config.get("pump", {}).get("partial_rescan_delta"))
        self.start_offset = offset
        self.position: Any = offset  # the offset of the last batch read (progress: a chronological source)
        self.since: Any = None
        if source.supports_since:
            self.since = offset if offset is not None else runner.source_config.get("initial_since_value")
        self.full_run: Any = None
        self.final_state: dict[str, Any] | None = None
        self.skipped = self.result.skipped = _unpopulated_input(source)
        self.errors: WriteErrors | None = None  # an external sink's write errors (actors._write_errors)
        if sink.blocking and not self.skipping:
            log = runner.datasets.get(runner.execution_dataset)
            self.errors = WriteErrors(runner.write_policy, runner.execution_dataset, pending_errors(log))

    @property
    def skipping(self) -> bool:
        """Whether the run does nothing (its input is not populated: see :attr:`RunResult.skipped`)."""
        return self.skipped is not None

    # -- 1. start ----------------------------------------------------------------------------------------------

    def start(self) -> DatasetWrite | None:
        """The write that opens the run in the sink, if any: a full run's start (deletion tracking), then
        ``set_initial_offset: initially``; it returns what the full run's start returned."""
        if self.skipping:
            return None
        sink = self.runner.sink
        return _chain(sink.begin_full_run() if self.full else None, sink.begin_run())

    def started(self, full_run: Any) -> None:
        self.full_run = full_run

    # -- 2. batches --------------------------------------------------------------------------------------------

    def batches(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Work]:
        """The source's batches after the offset, then those of dependency tracking (blocking reads).

        ``should_stop`` is polled between batches; a stopped run yields no more and ends nothing.
        """
        runner, result = self.runner, self.result
        if self.skipping:
            return
        offset = self.start_offset
        newest = offset  # the max strategy: the largest _updated seen
        retry = self.errors.to_retry() if self.errors is not None and not self.full else []
        for start in range(0, len(retry), runner.batch_size):
            result.retried += len(retry[start:start + runner.batch_size])
            yield Work(retry[start:start + runner.batch_size], dict(self.loaded_state), retry=True)
        reader = runner.source.read(self.since, runner.batch_size)
        while True:
            if should_stop():
                result.stopped = True
                return
            started = time.perf_counter()
            try:
                batch = next(reader, None)
            except Exception as exc:  # a source that cannot read fails the run, offset unchanged
                raise PipeRunError(f"reading the source failed: {exc}", read_error=True) from exc
            result.source_time += time.perf_counter() - started
            if batch is None:
                break
            result.processed += len(batch)
            if self.chronological:
                if batch:
                    offset = self.position = batch[-1].get("_updated", offset)
            elif self.keeps_offset:
                newest = _newest(batch, newest)
            yield Work(batch, self._state(offset))
        if self.strategy == "max":
            offset = newest
        result.offset = offset
        state = self._state(offset)
        if runner.tracked_datasets and not self.full:
            yield from self._dependencies(state, should_stop)
            if result.stopped:
                return
        self.final_state = state

    def _state(self, offset: Any) -> dict[str, Any]:
        return {"offset": offset if self.keeps_offset else None, "tracking": dict(self.tracking)}

    def _dependencies(self, state: dict[str, Any], should_stop: Callable[[], bool]) -> Iterator[Work]:
        """Reprocess the latest source versions affected by changes in hopped-to datasets (section 11);
        the last batch commits the new tracking offsets (``state`` is updated in place)."""
        runner, result = self.runner, self.result
        limits, warn = runner.tracking_limits, result.warnings.append
        started = time.perf_counter()
        try:
            tracking, affected = affected_ids(runner, dict(state["tracking"]), limits, warn)
        except TrackingLimitError as exc:
            raise PipeRunError(str(exc)) from None
        result.source_time += time.perf_counter() - started
        if not affected:
            state["tracking"] = tracking
            return
        source = runner.datasets.get(runner.source.dataset_source or "")
        try:
            yield from self._reprocess(latest_versions(source, affected, limits, warn), state, tracking,
                                       should_stop)
        except TrackingLimitError as exc:
            raise PipeRunError(str(exc)) from None

    def _reprocess(self, entities: Iterator[dict[str, Any]], state: dict[str, Any], tracking: dict[str, int],
                   should_stop: Callable[[], bool]) -> Iterator[Work]:
        runner, result = self.runner, self.result
        batch: list[dict[str, Any]] = []
        for entity in entities:
            batch.append(entity)
            if len(batch) >= runner.batch_size:
                if should_stop():
                    result.stopped = True
                    return
                result.dependencies += len(batch)
                yield Work(batch, dict(state), dependencies=True)  # old tracking offsets until the last
                batch = []
        state["tracking"] = tracking
        result.dependencies += len(batch)
        yield Work(batch, dict(state), dependencies=True)

    def transform(self, work: Work) -> Work:
        """Map a batch through the pipe's transforms."""
        if work.retry:
            return work
        started = time.perf_counter()
        work.entities = self.runner._transform(work.entities)
        self.result.transform_time += time.perf_counter() - started
        return work

    def write(self, work: Work) -> DatasetWrite:
        """The sink's write of a transformed batch (with its state); applying it counts its changes.

        For an external sink, entities it fails to take are write errors (``actors._write_errors``): the
        writes they owe come from :meth:`take_error_writes`, to apply before this one; a failure the run
        does not tolerate raises :class:`PipeRunError` (take the error writes then too)."""
        write = self._deliver(work) if self.errors is not None else \
            self.runner.sink.write(work.entities, state=work.state, full_run=self.full_run)
        result = self.result

        def apply(dataset: storage.Dataset) -> int:
            try:
                changes = write.apply(dataset)
            except storage.EntityError as exc:
                raise PipeRunError(f"writing to the sink failed: {exc}") from exc
            result.changes += changes
            result.batches += 1
            return changes

        return dataclasses.replace(write, apply=apply)

    def _deliver(self, work: Work) -> DatasetWrite:
        """An external sink's write of a batch: whole, else (when that fails) one entity at a time; the
        write returns the number of entities delivered."""
        sink, errors, policy = self.runner.sink, self.errors, self.runner.write_policy
        assert errors is not None
        entities = work.entities
        delivered = 0
        try:
            if work.retry:
                delivered = self._send_alone(work)
            else:
                try:
                    write = sink.write(entities, state=work.state, full_run=self.full_run)
                except Exception as exc:
                    if policy.fallback and len(entities) > 1 and not is_unreachable(exc):
                        delivered = self._send_alone(work)
                    else:
                        for entity in entities:
                            errors.failed_entity(entity, exc, retry=False)
                else:
                    errors.delivered(entities)
                    return write
        except WriteAbort as abort:
            self._count_errors()
            raise PipeRunError(abort.message, entity=abort.entity) from abort.error
        self._count_errors()
        state = sink.save_state(work.state)

        def apply(dataset: storage.Dataset) -> int:
            state.apply(dataset)
            return delivered

        return DatasetWrite(state.dataset, apply)

    def _send_alone(self, work: Work) -> int:
        """Send the batch's entities one at a time; returns how many were delivered."""
        sink, errors = self.runner.sink, self.errors
        assert errors is not None
        delivered = 0
        for entity in work.entities:
            try:
                sink.write([entity], state=work.state, full_run=self.full_run)  # the state commits once, after
            except Exception as exc:
                errors.failed_entity(entity, exc, retry=work.retry)
            else:
                errors.delivered([entity])
                delivered += 1
        return delivered

    def _count_errors(self) -> None:
        errors, result = self.errors, self.result
        assert errors is not None
        result.write_errors, result.dead = errors.failed, errors.dead
        result.retry_entities_exist = errors.retryable_count > 0

    def take_error_writes(self) -> list[DatasetWrite]:
        """The execution-log and dead-letter writes the run owes so far (apply them before the next write)."""
        return self.errors.take_writes() if self.errors is not None else []

    # -- 3. end ------------------------------------------------------------------------------------------------

    def end(self) -> Iterator[DatasetWrite]:
        """The writes that finish a run whose batches are all committed: deletion tracking after a full
        run (or the final state), then the sink's populated flag. Nothing for a stopped or skipped run."""
        if self.errors is not None:
            self._count_errors()
        if self.result.stopped or self.final_state is None:
            return
        runner, result, state = self.runner, self.result, self.final_state
        if self.full:
            yield self._end_full_run(state)
        elif state != runner.sink.load_state():
            yield runner.sink.save_state(state)
        finish = runner.sink.finish(populated=runner.source.is_populated())
        if finish is not None:
            yield finish
        result.offset = state.get("offset")

    def _end_full_run(self, state: dict[str, Any]) -> DatasetWrite:
        runner, result = self.runner, self.result
        write = runner.sink.end_full_run(self.full_run, state=state, if_empty=runner.if_source_empty)

        def apply(dataset: storage.Dataset) -> int:
            started = time.perf_counter()
            try:
                deleted = int(write.apply(dataset) or 0)
            except storage.EmptySourceError:
                raise PipeRunError("the source was empty and the pipe is set to fail on an empty source "
                                   "(if_source_empty: fail): nothing was deleted") from None
            result.deleted = deleted
            result.changes += deleted
            result.sink_time += time.perf_counter() - started
            return deleted

        return dataclasses.replace(write, apply=apply)


def _unpopulated_input(source: Source) -> str | None:
    """Why a run must be skipped: the unpopulated input datasets of a source that requires populated input."""
    if not source.require_populated_input:
        return None
    names = source.unpopulated()
    if not names:
        return None
    listed = ", ".join(repr(name) for name in names)
    verb = "is" if len(names) == 1 else "are"
    return (f"the run was skipped: input dataset{'s' if len(names) > 1 else ''} {listed} {verb} not populated "
            "(require_populated_input)")


def _assert_populated(dataset: storage.Dataset) -> None:
    if not dataset.populated:
        dataset.set_populated()


def _chain(first: DatasetWrite | None, then: DatasetWrite | None) -> DatasetWrite | None:
    """One write applying ``first`` and then ``then`` (both to the same dataset); it returns what ``first``
    returned (None without it)."""
    if then is None:
        return first
    if first is not None and first.dataset != then.dataset:
        raise ValueError(f"cannot chain writes to {first.dataset!r} and {then.dataset!r}")

    def apply(dataset: storage.Dataset) -> Any:
        value = first.apply(dataset) if first is not None else None
        then.apply(dataset)
        return value

    return DatasetWrite(then.dataset, apply)


def _rewind(offset: Any, delta: Any) -> Any:
    """The offset moved back by ``partial_rescan_delta``: an int by that much, a ``~t`` time by seconds."""
    if not isinstance(delta, int) or isinstance(delta, bool) or delta < 1:
        return offset
    if isinstance(offset, int) and not isinstance(offset, bool):
        return max(-1, offset - delta)
    if isinstance(offset, str) and offset.startswith("~t"):
        moment = storage.decode(offset)
        if isinstance(moment, storage.Datetime):
            return storage.encode(moment - timedelta(seconds=delta))
    return offset


def _newest(batch: list[dict[str, Any]], newest: Any) -> Any:
    """The largest ``_updated`` of a batch and ``newest`` (values that don't compare are skipped)."""
    for entity in batch:
        updated = entity.get("_updated")
        if updated is None:
            continue
        try:
            if newest is None or updated > newest:
                newest = updated
        except TypeError:
            continue
    return newest


def _stamp_updated(out: list[dict[str, Any]], source: list[dict[str, Any]]) -> None:
    """Give each entity in ``out`` lacking ``_updated`` that of the ``source`` entity with its ``_id``, else
    the newest in ``source``."""
    if all("_updated" in e for e in out):
        return
    updated = {e.get("_id"): e["_updated"] for e in source if "_updated" in e}
    newest = _newest(source, None)
    for entity in out:
        if "_updated" not in entity:
            value = updated.get(entity.get("_id"), newest)
            if value is not None:
                entity["_updated"] = value


def _chosen(component: Any) -> Any:
    """The component a ``conditional`` wrapper chose (the component itself otherwise)."""
    while "chosen" in vars(component):
        component = component.chosen
    return component


def _resolved(config: dict[str, Any], source: Source, transforms: list[Transform], sink: Sink) -> dict[str, Any]:
    """The effective config with each ``conditional`` source, transform and sink shown as the alternative it
    chose (node-spec 6.4), so clients see what the pipe really reads and writes."""

    def shown(component: Any, part: Any) -> Any:
        chosen = _chosen(component)
        return part if chosen is component else chosen.config

    resolved = {**config, "source": shown(source, config["source"]), "sink": shown(sink, config["sink"]),
                "transform": [shown(t, part) for t, part in zip(transforms, config["transform"], strict=True)]}
    return effective_config(resolved)


def build_runner(config: dict[str, Any], datasets: Datasets, metadata: dict[str, Any] | None = None,
                 secrets: dict[str, Any] | None = None, systems: Mapping[str, Any] | None = None) -> PipeRunner:
    """Compile a pipe config; raises :class:`ConfigError` naming the pipe and the path. ``secrets`` are the
    values of the secrets its DTL names (``"$SECRET(name)"`` crypto keys); ``systems`` the built
    :class:`~actors.components.System` objects its components name, by id."""
    return PipeRunner(config, datasets, metadata, secrets, systems)


def validate_pipe(config: Any, datasets: Datasets) -> list[str]:
    """The config errors of a pipe (empty when it is valid)."""
    try:
        build_runner(config, datasets)
    except ConfigError as exc:
        return [str(exc)]
    return []
