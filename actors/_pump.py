"""The pump of one pipe: schedule, run state machine and pump operations (node spec 4.4, 5.1-5.4, 5.7, 5.8).

A :class:`PipeActor` runs under the :class:`~actors.Supervisor` (:func:`start_pipe` starts it and returns its
:class:`PipeRef`; the same object is reused on restart and reloads its persisted state). Runs drive the pipe's
:class:`~actors.PipeRunner` through :func:`~actors.run_pipeline` (stages on bounded channels, writes through
the dataset actors), one at a time, each holding a slot of a shared ``trio.CapacityLimiter``; a ``stop``
sets a flag the source stage polls between batches. Every run publishes ``pump-started`` and then
``pump-completed`` or ``pump-failed`` on the :class:`~actors.EventBus`, and (unless it changed nothing)
appends versions to the execution log dataset ``system:pump_execution:<pipe>``. A run skipped because its
input is not populated completes with ``"skipped"`` (why) and counts as a run that changed nothing. The
pump state (enabled, last run, outcome, next run) lives in the node store under kind ``"pump"``.

At node start the pump runs the pipe once with ``run_at_startup``, or with ``run_at_startup_if_not_populated``
(default: the node's global default) when the sink dataset is not populated.

The message protocol. Nothing outside calls the actor: the node and the API hold a :class:`PipeRef` (the
actor's address) and send it frozen dataclasses. Requests, answered through their one-shot reply
(:class:`~actors.Request`): :class:`Operate` (a pump operation, answered with the :class:`PumpStatus` after
it, or its :class:`PumpConflict` / :class:`PumpOperationError`), :class:`RunOnce` (a run now, answered with
its ``pump-completed``/``pump-failed`` event when it ends) and :class:`WaitIdle` (answered once no run or
offset change is in progress). Notices, not answered: :class:`Wake` (a dependency signal), :class:`Stop` (a
run in progress stops after its current batches), :class:`HoldSchedule` (the run-all scheduler holds the
pump's own schedule) and :class:`StopScheduling` (the node is stopping). The actor takes each message in
mailbox order and does its synchronous part at once (checks, claiming the pump: a second start is a 409
whatever came between); the rest (a run, an offset write) goes on in a task of the actor's, so a ``stop``
is never queued behind the run it stops. A request that an actor cannot take within ``STARTUP_WAIT``
(restarting) is withdrawn: a 400, as before. The actor publishes its state as a :class:`PumpStatus`
snapshot on every change (``ref.status``, no round trip); :func:`pump_json` renders it with the runner's
live offset and queues. Measured (``scripts/bench/pump_messages.py``, 2-core VM under load): an ``Operate``
that does nothing but its synchronous part (``stop`` on an idle pump) takes about 50 microseconds through the
mailbox against about 16 called directly, so the round trip costs some 35 microseconds; an operation that
writes the execution log (``disable``, ``enable``) takes about 800.
"""

from __future__ import annotations

import logging
import random
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import trio

import storage

from ._dataset_actor import DatasetWriters
from ._datasets import DatasetWrite
from ._engine import PipeRunError, RunResult
from ._events import EventBus, iso_time
from ._pipeline import Writer, run_pipeline
from ._reprocessing import kept_record, resets
from ._retention import trim_log_write
from ._runtime import ActorRef, ActorUnavailable, Request, Supervisor
from ._schedule import Schedule, ScheduleError, check_rescans, next_cron_time, schedule_for
from ._write_errors import discard_write
from .components import ComponentError, setting

__all__ = ["MODES", "SUPPORTED_OPERATIONS", "HoldSchedule", "Operate", "PipeActor", "PipeRef", "PumpConflict",
           "PumpOperationError", "PumpState", "PumpStatus", "RunOnce", "Runner", "Stop", "StopScheduling",
           "WaitIdle", "Wake", "pump_json", "start_pipe"]

log = logging.getLogger("actors.pump")

MODES = ("scheduled", "manual", "off")
STARTUP_WAIT = 5.0  # seconds a start waits for a pump that is starting up
FIRST_PULL_DELAY = timedelta(seconds=1)  # a pipe pulling from a system that never ran runs this soon
TRIM_EVERY = timedelta(hours=1)  # how often a pump trims its execution log by time (after a logged run)
SUPPORTED_OPERATIONS = ("start", "stop", "enable", "disable", "update-last-seen", "set-last-seen-to-end",
                        "start-rescan", "reset-rescan", "discard-retries", "reset-tracking", "set-tracking-to-start")
_OFFSET_OPERATIONS = ("update-last-seen", "set-last-seen-to-end")
_TRACKING_OPERATIONS = ("reset-tracking", "set-tracking-to-start")  # only pipes that track dependencies
_NEVER = 999999999999999  # notification_granularity default: never force a noop log
PROGRESS_INTERVAL = 1.0  # seconds between the pump-progress events of a run in progress


class PumpConflict(Exception):
    """409: the pump is busy (a run or an offset change is in progress). ``pump`` is the pump JSON."""

    def __init__(self, message: str, pump: dict[str, Any]) -> None:
        super().__init__(message)
        self.pump = pump


class PumpOperationError(Exception):
    """400: the operation is unsupported, blocked or malformed."""


class Runner(Protocol):
    """What the pump, the node and the API need of :class:`~actors.PipeRunner` (its methods are synchronous
    and called from worker threads). :class:`actors.testing.FakeRunner` is the complete double, and
    :func:`actors.testing.check_runner` checks a runner against this protocol."""

    pipe_id: str
    original: dict[str, Any]  # the config as built (the node: is it a user pipe)
    config: dict[str, Any]  # the effective config
    metadata: Any
    source_config: dict[str, Any]
    log_retention_hours: Any
    reprocessing_policy: str
    plans: list[Any]  # the join plans of its DTL transforms (the indexes they use: GET /datasets/{id}/indexes)

    @property
    def pumped(self) -> bool: ...
    @property
    def signalling(self) -> bool: ...
    @property
    def sink_dataset(self) -> str | None: ...
    @property
    def source_datasets(self) -> list[str]: ...
    @property
    def tracked_datasets(self) -> list[str]: ...
    @property
    def input_datasets(self) -> frozenset[str]: ...

    def get_offset(self) -> Any: ...
    def offset_write(self, value: Any) -> DatasetWrite: ...
    def end_offset_write(self) -> DatasetWrite: ...
    def tracking_offsets(self) -> dict[str, int]: ...
    def tracking_write(self, to: str) -> DatasetWrite: ...
    def sink_populated(self) -> bool: ...
    def load_writes(self) -> list[DatasetWrite]: ...
    def sync_record(self) -> dict[str, Any] | None: ...
    def out_of_sync(self, recorded: Any, now: Any) -> list[dict[str, Any]]: ...
    def queues(self) -> dict[str, Any]: ...
    def source_end(self) -> int | None: ...
    def preview(self, stage: str = "sink", since: Any = None, limit: int | None = None) -> list[dict[str, Any]]: ...


# -- the messages (see the module docstring) --------------------------------------------------------------


@dataclass(frozen=True)
class Operate(Request):
    """Run a pump operation (node-spec 5.4); answered with the :class:`PumpStatus` after it."""

    op: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RunOnce(Request):
    """Run the pipe now; answered with the run's ``pump-completed``/``pump-failed`` event when it ends
    (:class:`PumpConflict` if a run or an offset change is in progress)."""

    kind: str = "auto"
    origin: str = "api"
    user: Any = None


@dataclass(frozen=True)
class WaitIdle(Request):
    """Answered (with None) once no run or offset operation is in progress."""


@dataclass(frozen=True)
class Wake:
    """A dependency signal: run soon (after the run in progress, if any)."""


@dataclass(frozen=True)
class Stop:
    """Stop the run in progress after its current batches (nothing if none runs)."""


@dataclass(frozen=True)
class HoldSchedule:
    """Hold (or release) the pump's own schedule: while held, neither its interval or cron schedule nor a
    dependency signal starts a run (signals meanwhile are dropped); :class:`RunOnce` and the operation
    ``start`` still run it. The node's run-all-pipes scheduler holds the pipes it drives."""

    held: bool


@dataclass(frozen=True)
class StopScheduling:
    """The node is stopping: the pump schedules no more runs (a start by hand still works until then)."""


@dataclass(frozen=True)
class PumpStatus:
    """What the pump shows of itself (node-spec 5.8), a snapshot the actor publishes on every change.

    ``run`` is the live counters of the run in progress (its :class:`~actors.RunResult`, read for its
    progress), None between runs; the offset and queues are read from the runner when rendered
    (:func:`pump_json`)."""

    pipe_id: str
    running: bool = False
    busy: str | None = None  # "run", or the operation in progress
    disabled: bool = False
    disabled_comment: str | None = None
    valid: bool = True
    config_errors: tuple[dict[str, Any], ...] = ()
    supported_operations: tuple[str, ...] = ()
    last_run: str | None = None
    last_started: str | None = None
    next_run: str | None = None
    last_message: str = ""
    last_original_error_message: str | None = None
    success: bool | None = None
    sync_type: str | None = None
    processed: int = 0
    run: Any = None
    mode: str = "scheduled"
    schedule: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType(
        {"schedule_interval": None, "cron_expression": None}))
    out_of_sync: tuple[dict[str, Any], ...] = ()
    execution_dataset: str = ""


class Driver(Protocol):
    """Runs a runner once (:func:`~actors.run_pipeline`, or a test double's driver)."""

    async def __call__(self, runner: Any, *, kind: str, writers: Writer, should_stop: Callable[[], bool],
                       on_begin: Callable[[Any], None]) -> RunResult: ...


class DatasetOpener(Protocol):
    def open(self, name: str, create: bool = True) -> Any: ...


class PumpStore(Protocol):
    def get(self, kind: str, name: str, default: Any = None) -> Any: ...
    def put(self, kind: str, name: str, value: Any) -> None: ...


@dataclass
class PumpState:
    """What survives a restart (node store kind ``"pump"``, keyed by pipe id)."""

    disabled: bool = False
    disabled_comment: str | None = None
    last_started: str | None = None
    last_run: str | None = None
    success: bool | None = None
    last_message: str = ""
    last_original_error_message: str | None = None
    sync_type: str | None = None
    processed: int = 0
    changes: int = 0
    next_run: str | None = None  # only for persistent schedules (cron, or intervals over an hour)
    last_logged: str | None = None  # end time of the last run written to the execution log
    scheduled_runs: int = 0  # runs started by the schedule or a signal (rescan_run_count and friends)
    sync_record: dict[str, Any] | None = None  # config digest and input generations at the last good run
    out_of_sync: list[dict[str, Any]] = field(default_factory=list)  # why, until a full run (node-spec 4.8)

    @classmethod
    def from_json(cls, data: Any) -> PumpState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass
class _SyncCheck:
    """What the out-of-sync check before a run found (:meth:`PipeActor._check_sync`)."""

    kind: str
    record: dict[str, Any] | None = None  # the sync record to keep if the run succeeds
    reasons: list[dict[str, Any]] = field(default_factory=list)
    reset: bool = False  # the automatic policy turned the run into a full run


@dataclass
class _Outcome:
    result: RunResult | None
    error: BaseException | None = None
    traceback: str | None = None


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _offset_text(offset: Any) -> str | None:
    """``last-seen`` / ``pipe_offset``: the offset as a string, None when unset."""
    if offset is None:
        return None
    return offset if isinstance(offset, str) else str(offset)


def _parse_offset(text: str) -> Any:
    """A ``last-seen`` form value: canonical integer text becomes an int, anything else stays a string."""
    try:
        number = int(text)
    except ValueError:
        return text
    return number if str(number) == text else text


class PipeActor:
    """The pump of one pipe (see the module docstring): driven through its mailbox, it publishes ``status``."""

    def __init__(
        self,
        runner: Runner,
        *,
        store: PumpStore,
        datasets: DatasetOpener,
        bus: EventBus,
        limiter: trio.CapacityLimiter | None = None,
        clock: Callable[[], datetime] = _wall_clock,
        rng: random.Random | None = None,
        scheduler_enabled: bool = True,
        config_errors: list[dict[str, Any]] | None = None,
        writers: Writer | None = None,
        driver: Driver = run_pipeline,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.runner = runner
        self.progress_interval = progress_interval  # pump-progress every so many seconds (0: none)
        self.pipe_id: str = runner.pipe_id
        self.execution_dataset = f"system:pump_execution:{self.pipe_id}"
        self._store = store
        self._datasets = datasets
        self._writers: Writer = writers if writers is not None else DatasetWriters(datasets)  # type: ignore[arg-type]
        self._driver = driver
        self._bus = bus
        self._limiter = limiter
        self._clock = clock
        self._rng = rng or random.Random()
        self.scheduler_enabled = scheduler_enabled
        self._pump_config: dict[str, Any] = dict(runner.config.get("pump") or {})
        self.config_errors = list(config_errors or [])
        self.schedule: Schedule | None = None
        try:
            self.schedule = schedule_for(runner.config) if runner.pumped else None
            check_rescans(self._pump_config)
        except ScheduleError as exc:
            self.config_errors.append({"elements": "pump", "level": "error", "msg": str(exc)})
        self.mode: str = self._pump_config.get("mode", "scheduled")
        if self.mode not in MODES:
            self.config_errors.append({"elements": "pump.mode", "level": "error",
                                       "msg": f"mode must be one of {', '.join(MODES)}, not {self.mode!r}"})
        self._busy: str | None = None  # "run" or the name of an offset operation in progress
        self._idle = trio.Event()
        self._idle.set()
        self._stop_requested = False
        self._current: dict[str, Any] | None = None  # the run in progress
        self._trimmed: datetime | None = None  # when the execution log was last trimmed
        self._next_run_at: datetime | None = None
        self.state = PumpState.from_json(store.get("pump", self.pipe_id))
        self._next_rescan: datetime | None = None
        self._wake_pending = False
        self._poked = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._started_once = False
        self._startup_pending = False
        self._held = False  # HoldSchedule: the node's test scheduler drives the pipe, its schedule waits
        self._operations: dict[str, Callable[[dict[str, Any]], Awaitable[None] | None]] = {
            "start": self._op_start, "stop": self._op_stop, "enable": self._op_enable, "disable": self._op_disable,
            "update-last-seen": self._op_update_last_seen, "set-last-seen-to-end": self._op_set_last_seen_to_end,
            "start-rescan": self._op_start_rescan, "reset-rescan": self._op_reset_rescan,
            "discard-retries": self._op_discard_retries, "reset-tracking": self._op_reset_tracking,
            "set-tracking-to-start": self._op_set_tracking_to_start}
        assert set(self._operations) == set(SUPPORTED_OPERATIONS)
        self._handlers: dict[type, Callable[[Any], None]] = {
            Operate: self._on_operate, RunOnce: self._on_run_once, WaitIdle: self._on_wait_idle,
            Wake: lambda _message: self._wake(), Stop: lambda _message: self._stop_run(),
            HoldSchedule: self._on_hold, StopScheduling: self._on_stop_scheduling}
        self.status = PumpStatus(self.pipe_id)
        self._changed()

    # -- the actor -----------------------------------------------------------------------------------------

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        """Schedule runs and handle the mailbox's messages (see the module docstring) until cancelled."""
        self.state = PumpState.from_json(self._store.get("pump", self.pipe_id))  # a restart starts afresh
        self._poked = trio.Event()
        self._next_run = None
        self._changed()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._stop_on_cancel)
                if self.scheduler_enabled and self.schedule is not None:
                    nursery.start_soon(self._scheduler)
                if not self._started_once:  # node start, not an actor restart
                    self._started_once = True
                    self._startup_pending = self._startup_configured()
                async for message in mailbox:
                    self._handle(message)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # report the one crash itself, not a group around it
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                raise group.exceptions[0] from None
            raise
        finally:
            self._nursery = None

    def _handle(self, message: Any) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            log.warning("pump %s: ignoring message %r", self.pipe_id, message)
            if isinstance(message, Request):
                message.reply.fail(TypeError(f"the pump of pipe '{self.pipe_id}' takes no {type(message).__name__}"))
            return
        if isinstance(message, Request) and not message.reply.take():
            return  # withdrawn: its asker gave up waiting
        handler(message)

    def _answer(self, request: Request, work: Awaitable[Any] | None, value: Callable[[Any], Any]) -> None:
        """Answer ``request`` with ``value(result)`` of ``work`` (at once without work; else when it is done,
        in a task of the actor's), or with what it raised."""
        if work is None:
            request.reply.send(value(None))
            return
        assert self._nursery is not None
        self._nursery.start_soon(self._answering, request, work, value)

    async def _answering(self, request: Request, work: Awaitable[Any], value: Callable[[Any], Any]) -> None:
        try:
            result = await work
        except Exception as exc:  # the asker's failure (a conflict, a bad parameter, a failed write)
            request.reply.fail(exc)
        except BaseException:
            request.reply.fail(ActorUnavailable(f"the pump of pipe '{self.pipe_id}' has stopped"))
            raise
        else:
            request.reply.send(value(result))

    def _on_operate(self, message: Operate) -> None:
        try:
            work = self._operate(message.op, dict(message.params))
        except Exception as exc:
            message.reply.fail(exc)
            return
        self._answer(message, work, lambda _result: self.status)

    def _on_run_once(self, message: RunOnce) -> None:
        try:
            self._refuse_if_tripped()
            self._claim("run")
        except (PumpConflict, PumpOperationError) as exc:
            message.reply.fail(exc)
            return
        self._answer(message, self._execute(message.kind, origin=message.origin, user=message.user, claimed=True),
                     lambda event: event)

    def _on_wait_idle(self, message: WaitIdle) -> None:
        self._answer(message, self._wait_idle() if self._busy is not None else None, lambda _result: None)

    def _on_hold(self, message: HoldSchedule) -> None:
        self._held = message.held
        self._poke()

    def _on_stop_scheduling(self, message: StopScheduling) -> None:
        self.scheduler_enabled = False
        self._poke()

    def _stop_run(self) -> None:
        if self._busy == "run":
            self._stop_requested = True
            log.info("pump %s: stop requested", self.pipe_id)

    def _changed(self) -> None:
        """Publish the pump's status (after every change of what it shows)."""
        state, current = self.state, self._current
        result = current.get("result") if current else None
        self.status = PumpStatus(
            pipe_id=self.pipe_id, running=self._busy == "run", busy=self._busy, disabled=state.disabled,
            disabled_comment=state.disabled_comment, valid=self.valid, config_errors=tuple(self.config_errors),
            supported_operations=tuple(self._supported_operations()), last_run=state.last_run,
            last_started=current["start_time"] if current else state.last_started,
            next_run=iso_time(self._next_run) if self._next_run and self._schedulable() else None,
            last_message=state.last_message, last_original_error_message=state.last_original_error_message,
            success=state.success, sync_type=current["sync_type"] if current else state.sync_type,
            processed=0 if current else state.processed, run=result, mode=self.mode,
            schedule=MappingProxyType(self.schedule.describe() if self.schedule else
                                      {"schedule_interval": None, "cron_expression": None}),
            out_of_sync=tuple(state.out_of_sync), execution_dataset=self.execution_dataset)

    async def _stop_on_cancel(self) -> None:
        """When the actor is cancelled, ask a run in progress to stop (its thread is waited for)."""
        try:
            await trio.sleep_forever()
        finally:
            if self._busy == "run":
                self._stop_requested = True

    # -- scheduling -------------------------------------------------------------------------------------------

    @property
    def valid(self) -> bool:
        return not any(error.get("level", "error") == "error" for error in self.config_errors)

    def _schedulable(self) -> bool:
        return (self.scheduler_enabled and not self._held and self.mode == "scheduled" and not self.state.disabled
                and self.schedule is not None and self.valid)

    @property
    def _next_run(self) -> datetime | None:
        return self._next_run_at

    @_next_run.setter
    def _next_run(self, moment: datetime | None) -> None:
        self._next_run_at = moment
        self._changed()

    def _poke(self) -> None:
        self._poked.set()
        self._changed()

    async def _wait_poke(self, deadline: datetime | None) -> bool:
        """Wait for a poke or until ``deadline`` (wall clock); True if poked."""
        while True:
            if self._poked.is_set():
                self._poked = trio.Event()
                return True
            if deadline is None:
                await self._poked.wait()
                continue
            delay = (deadline - self._clock()).total_seconds()
            if delay <= 0:
                return False
            with trio.move_on_after(min(delay, 60.0)):  # re-read the wall clock at least every minute
                await self._poked.wait()

    def _first_next_run(self, now: datetime) -> datetime | None:
        assert self.schedule is not None
        computed = self.schedule.next_run(now, self._rng)
        if (computed is not None and self.state.last_run is None and not self.schedule.persistent
                and self._pulls_from_a_system()):  # a new pull pipe fills its dataset now, not an interval later
            return min(computed, now + FIRST_PULL_DELAY)
        if self.schedule.persistent and self.state.next_run:
            stored = datetime.fromisoformat(self.state.next_run.replace("Z", "+00:00"))
            if computed is None or stored <= computed:
                return max(stored, now)  # a start missed while the node was down runs now
        return computed

    def _pulls_from_a_system(self) -> bool:
        source = self.runner.source_config
        return isinstance(source, dict) and isinstance(source.get("system"), str)

    def _set_next_run(self, moment: datetime | None) -> None:
        self._next_run = moment
        persisted = iso_time(moment) if moment is not None and self.schedule and self.schedule.persistent else None
        if persisted != self.state.next_run:
            self.state.next_run = persisted
            self._save()

    async def _scheduler(self) -> None:
        first = True
        while True:
            if self._startup_pending and self._busy is None and not self._held:
                self._startup_pending = False
                if self.mode != "off" and not self.state.disabled and self.valid and await self._startup_run_due():
                    await self._execute("auto", origin="startup")
                continue
            if self._wake_pending and self._busy is None:
                self._wake_pending = False
                if self._schedulable() and not self._tripped():
                    await self._execute(self._scheduled_kind(), origin="signal")
                    self._next_run = None
                continue
            if not self._schedulable():
                self._next_run = None
                await self._wait_poke(None)
                continue
            if self._next_run is None:
                now = self._clock()
                assert self.schedule is not None
                self._set_next_run(self._first_next_run(now) if first else self.schedule.next_run(now, self._rng))
            first = False
            rescan_at = self._rescan_time()
            deadline = self._next_run if rescan_at is None or (self._next_run and self._next_run < rescan_at) \
                else rescan_at
            if await self._wait_poke(deadline):
                continue  # woken: re-evaluate (a signal, enable/disable, a run ended)
            if not self._schedulable():
                continue
            if self._busy is not None:  # a manual run or an offset change is in progress: wait for it
                await self._wait_idle()
            elif self._tripped():  # the schedule waits for a rollback or commit of the circuit breaker
                self._next_run = None
            elif deadline is rescan_at:  # rescan_cron_expression
                self._next_rescan = None
                await self._execute("rescan", origin="scheduler")
            else:
                await self._execute(self._scheduled_kind(), origin="scheduler")
                self._next_run = None

    def _startup_configured(self) -> bool:
        """Whether the pump may run at node start (``run_at_startup`` or ``run_at_startup_if_not_populated``)."""
        return bool(self._pump_config.get("run_at_startup")) or self._startup_if_not_populated()

    def _startup_if_not_populated(self) -> bool:
        metadata = self.runner.metadata or {}
        return setting(self._pump_config, metadata, "run_at_startup_if_not_populated", False) is True

    async def _startup_run_due(self) -> bool:
        """Whether to run at node start: always with ``run_at_startup``, else when the sink is unpopulated."""
        if self._pump_config.get("run_at_startup"):
            return True
        return not await trio.to_thread.run_sync(self.runner.sink_populated)

    def _rescan_time(self) -> datetime | None:
        """When ``rescan_cron_expression`` next asks for a rescan (None without one)."""
        expression = self._pump_config.get("rescan_cron_expression")
        if not isinstance(expression, str):
            return None
        if self._next_rescan is None:
            self._next_rescan = next_cron_time(expression, self._clock())
        return self._next_rescan

    def _scheduled_kind(self) -> str:
        """The kind of the next scheduled run: every ``rescan_run_count``-th a rescan, else every
        ``partial_rescan_run_count``-th a partial rescan (full rescans win), else ``auto``."""
        number = self.state.scheduled_runs + 1
        rescans, partials = (self._pump_config.get(k) for k in ("rescan_run_count", "partial_rescan_run_count"))
        if isinstance(rescans, int) and rescans >= 1 and number % rescans == 0:
            return "rescan"
        if isinstance(partials, int) and partials >= 1 and number % partials == 0:
            return "partial"
        return "auto"

    def _wake(self) -> None:
        """A dependency signal: run soon (after the run in progress, if any)."""
        self._wake_pending = True
        self._poke()

    # -- runs ---------------------------------------------------------------------------------------------------

    def _claim(self, what: str) -> None:
        if self._busy is not None:
            doing = "running" if self._busy == "run" else f"busy ({self._busy})"
            raise PumpConflict(f"The pump of pipe '{self.pipe_id}' is already {doing}",
                               pump_json(self.status, self.runner))
        self._busy = what
        self._idle = trio.Event()
        self._changed()

    def _release(self) -> None:
        self._busy = None
        self._current = None
        self._idle.set()
        self._poke()

    async def _wait_idle(self) -> None:
        """Return once no run or offset operation is in progress."""
        while self._busy is not None:
            await self._idle.wait()

    async def _execute(self, kind: str, *, origin: str, user: Any = None, claimed: bool = False) -> dict[str, Any]:
        if not claimed:
            self._claim("run")
        try:
            self._stop_requested = False
            started = self._start_of_run()
            sync = await self._check_sync(kind)
            kind = sync.kind
            predicted = self._predicted_sync_type(kind)
            self._current = {"start_time": iso_time(started), "sync_type": predicted, "origin": origin,
                             "rescan": kind == "rescan"}
            self.state.last_started = iso_time(started)
            self._changed()
            self._publish({"type": "pump-started", "pipe": self.pipe_id, "run": iso_time(started),
                           "time": iso_time(started), "start_time": iso_time(started), "sync_type": predicted,
                           "origin": origin, "rescan": kind == "rescan"})
            outcome = await self._run(kind)
            ended = max(self._clock(), started)  # (a start just after the last one's may be ahead of the clock)
            with trio.CancelScope(shield=True):  # the log and state of a finished run are always written
                return await self._finish(outcome, started, ended, predicted, origin, user, sync)
        finally:
            self._release()

    def _start_of_run(self) -> datetime:
        """Now, or just after the last run's start when the clock has not passed it: a run's ``start_time``
        is its id (the ``run`` of its events and log lines), so each run of the pipe has its own."""
        now, last = self._clock(), self.state.last_started
        if last is None or iso_time(now) > last:
            return now
        try:
            after = datetime.strptime(last, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(microseconds=1)
        except ValueError:  # not a start time of ours
            return now
        return after.replace(tzinfo=UTC).astimezone(now.tzinfo) if now.tzinfo is not None else after

    async def _check_sync(self, kind: str) -> _SyncCheck:
        """Automatic reprocessing (node-spec 4.8): compare the pipe with its last good run; with the
        ``automatic`` policy an out-of-sync pipe runs full (a reset)."""
        runner = self.runner

        def check() -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
            now = runner.sync_record()
            return now, runner.out_of_sync(self.state.sync_record, now) if now is not None else []

        try:
            now, reasons = await trio.to_thread.run_sync(check)
        except Exception:  # the run itself will say what is wrong with the pipe's inputs
            log.exception("pump %s: the out-of-sync check failed", self.pipe_id)
            return _SyncCheck(kind)
        reset = runner.reprocessing_policy == "automatic" and resets(reasons) and kind not in ("full", "rescan")
        if reasons:
            log.info("pump %s: out of sync (%s)%s", self.pipe_id, "; ".join(r["reason"] for r in reasons),
                     ": resetting the pipe, a full run" if reset else "")
        return _SyncCheck("full" if reset else kind, now, reasons, reset)

    def _record_sync(self, sync: _SyncCheck, result: RunResult | None, failed: bool) -> None:
        """Remember why the pipe is out of sync (a failed run too); after a good run, its sync record; a
        good full run brings the pipe back in sync."""
        state = self.state
        for reason in sync.reasons:
            if reason not in state.out_of_sync:
                state.out_of_sync.append(reason)
        if failed or result is None or result.skipped is not None or sync.record is None:
            return
        state.sync_record = kept_record(state.sync_record, sync.record)
        if result.sync_type == "full":
            state.out_of_sync = []

    def _run_began(self, run: Any) -> None:
        if self._current is not None:
            self._current["result"] = run.result  # the progress of the run in progress
            self._current["run"] = run
            self._changed()

    def _predicted_sync_type(self, kind: str) -> str:
        if kind in ("full", "rescan"):
            return "full"
        try:
            offset = self.runner.get_offset()
        except Exception:
            offset = "unknown"
        if offset is None:
            return "full"
        return "partial" if kind == "partial" else "incremental"

    async def _run(self, kind: str) -> _Outcome:
        limiter = self._limiter or trio.to_thread.current_default_thread_limiter()
        try:
            async with limiter:  # one slot of the node's run limiter for the whole run
                return _Outcome(await self._drive(kind))
        except Exception as exc:  # a failing pipe fails its run, never the actor
            return _Outcome(None, exc, traceback.format_exc())

    async def _drive(self, kind: str) -> RunResult:
        """The driver's run, with a task beside it (in the actor's nursery) publishing ``pump-progress``:
        nothing on the per-entity path, it looks at the run's counters every ``progress_interval`` seconds."""
        reporter = self._start_progress()
        try:
            return await self._driver(self.runner, kind=kind, writers=self._writers,
                                      should_stop=lambda: self._stop_requested, on_begin=self._run_began)
        finally:
            if reporter is not None:
                reporter.cancel()

    def _start_progress(self) -> trio.CancelScope | None:
        """Start the progress task of a run (not for a run outside the actor's ``run``, nor with an interval
        of 0); returns the scope that ends it."""
        if self._nursery is None or not self.progress_interval or self.progress_interval <= 0:
            return None
        scope = trio.CancelScope()
        self._nursery.start_soon(self._report_progress, scope, trio.current_time())
        return scope

    async def _report_progress(self, scope: trio.CancelScope, started: float) -> None:
        with scope:
            while True:
                await trio.sleep(self.progress_interval)
                try:
                    event = self._progress_event(trio.current_time() - started)
                except Exception:  # progress is a courtesy: it never fails a run
                    continue
                if event is not None:
                    self._publish(event)

    def _progress_event(self, elapsed: float) -> dict[str, Any] | None:
        """``pump-progress`` of the run in progress: entities read (source and dependency tracking) and
        written (changes) so far, the read rate since the start, and an ETA of the source's reading when the
        source knows its end (a dataset source: its last offset against the run's position), else None."""
        current = self._current
        result = current.get("result") if current else None
        if current is None or result is None:
            return None
        read = result.processed + result.dependencies
        return {"type": "pump-progress", "pipe": self.pipe_id, "run": current["start_time"], "read": read,
                "written": result.changes, "rate": read / elapsed if elapsed > 0 else 0.0,
                "elapsed_seconds": elapsed, "eta_seconds": self._eta(current.get("run"), elapsed)}

    def _eta(self, run: Any, elapsed: float) -> float | None:
        position = run.position if run is not None else None
        if type(position) is not int:
            return None
        end = self.runner.source_end()
        if type(end) is not int:
            return None
        if position >= end:
            return 0.0
        start = run.start_offset if type(run.start_offset) is int else -1
        done = position - start
        return (end - position) * elapsed / done if done > 0 and elapsed > 0 else None

    async def _finish(self, outcome: _Outcome, started: datetime, ended: datetime, predicted: str,
                      origin: str, user: Any, sync: _SyncCheck) -> dict[str, Any]:
        result = outcome.result
        sync_type = result.sync_type if result is not None else predicted
        times = {"start_time": iso_time(started), "end_time": iso_time(ended),
                 "total_time": (ended - started).total_seconds()}
        metrics = _metrics(result)
        common = {"pipe": self.pipe_id, "run": times["start_time"], "sync_type": sync_type, **times,
                  "entities_succeeded": result.processed - result.write_errors if result is not None else 0,
                  "entities_failed": result.write_errors if result is not None else 0,
                  "retry_entities_exist": result.retry_entities_exist if result is not None else False,
                  "next_interval": self.schedule.interval if self.schedule else None,
                  "metrics": metrics}
        failed = outcome.error is not None or (result is not None and result.stopped)
        event: dict[str, Any]
        if not failed:
            assert result is not None
            event = {"type": "pump-completed", **common, "processed": result.processed, "changes": result.changes,
                     "deleted": result.deleted}
            message, original = "Completed", None
            if result.skipped is not None:
                event["skipped"] = message = result.skipped
            if result.warnings:
                event["warnings"] = list(result.warnings)
                for warning in result.warnings:
                    log.warning("pump %s: %s", self.pipe_id, warning)
        else:
            reason, original, entity = _failure(outcome)
            event = {"type": "pump-failed", **common, "reason_why_stopped": reason,
                     "original_error_message": original, "traceback": outcome.traceback,
                     "original_traceback": outcome.traceback, "exception_entity": entity}
            if result is not None:
                event.update(processed=result.processed, changes=result.changes, deleted=result.deleted)
            message = reason
        if sync.reasons:
            event["out_of_sync"] = sync.reasons
            event["reset"] = sync.reset
        if result is not None:  # seconds spent in each stage (the feed's pump-completed/pump-failed)
            event["timings"] = {"source": result.source_time, "transform": result.transform_time,
                                "sink": result.sink_time}
        if failed:
            event["error"] = original or reason
            event["entity_id"] = _entity_id(outcome.error, entity)
        if result is not None and (result.write_errors or result.retried):
            event["write_errors"] = {"failed": result.write_errors, "dead": result.dead, "retried": result.retried}
        event["time"] = times["end_time"]
        read_errors = _read_errors(outcome.error, times["end_time"], outcome.traceback)
        metrics["entities.read_errors_last_run"] = len(read_errors)
        if failed or read_errors or self._should_log(result, ended):
            started_entity = {"_id": "pump-started", "event_type": "pump-started", "pipe": self.pipe_id,
                              "start_time": times["start_time"], "sync_type": sync_type,
                              "pump_definition": f"pump:{self.pipe_id}", "origin": origin}
            terminal = {k: v for k, v in event.items() if k not in ("type", "time", "run", "processed", "changes",
                                                                       "deleted", "timings", "error", "entity_id")}
            terminal.update(_id=event["type"], event_type=event["type"])
            if user is not None:
                started_entity["user"] = terminal["user"] = user
            try:
                await self._writers.apply(DatasetWrite(self.execution_dataset,
                                                       lambda dataset: _append_run_log(dataset, started_entity,
                                                                                       terminal, read_errors)))
            except Exception as exc:  # (a full disk): the run's outcome is still reported below
                log.error("pump %s: writing the execution log failed: %s", self.pipe_id, exc)
            else:
                self.state.last_logged = times["end_time"]
                await self._trim_log(ended)
        state = self.state
        state.last_run, state.success, state.sync_type = times["end_time"], not failed, sync_type
        state.last_message, state.last_original_error_message = message, original
        state.processed = result.processed if result is not None else 0
        state.changes = result.changes if result is not None else 0
        if origin in ("scheduler", "signal") and (result is None or result.skipped is None):
            state.scheduled_runs += 1  # a skipped run does not use up a rescan_run_count turn
        self._record_sync(sync, result, failed)
        self._save()
        self._publish(event)
        if failed:
            log.warning("pump %s: run failed: %s", self.pipe_id, message)
        return event

    async def _trim_log(self, now: datetime) -> None:
        """Trim the execution log by time (:mod:`actors._retention`), at most once per ``TRIM_EVERY``."""
        hours = self.runner.log_retention_hours
        if self._trimmed is not None and now - self._trimmed < TRIM_EVERY:
            return
        self._trimmed = now
        cutoff = now - timedelta(hours=hours)
        try:
            removed = await self._writers.apply(trim_log_write(self.execution_dataset,
                                                               int(cutoff.timestamp() * 1e6)))
        except Exception:  # housekeeping: it never fails a run (the next trim tries again)
            log.exception("pump %s: trimming the execution log failed", self.pipe_id)
            return
        if removed:
            log.info("pump %s: trimmed %d execution-log entries older than %d hours", self.pipe_id, removed, hours)

    def _should_log(self, result: RunResult | None, ended: datetime) -> bool:
        """Noop suppression (5.7): a run that changed nothing (or was skipped) is logged only when configured
        to be."""
        pump = self._pump_config
        assert result is not None
        changes_only = pump.get("log_events_noop_runs_changes_only", True)
        noop = result.skipped is not None or (result.changes == 0 if changes_only else result.processed == 0)
        if not noop or result.write_errors or result.retried or pump.get("log_events_noop_runs", False):
            return True
        granularity = pump.get("notification_granularity", _NEVER)
        if self.state.last_logged is None or granularity >= _NEVER:
            return False
        last = datetime.fromisoformat(self.state.last_logged.replace("Z", "+00:00"))
        return (ended - last).total_seconds() >= granularity

    # -- the execution log and the node store -----------------------------------------------------------------

    def _save(self) -> None:
        try:
            self._store.put("pump", self.pipe_id, asdict(self.state))
        except storage.StorageError as exc:  # (a full disk): the state in memory is served, saved next time
            log.error("pump %s: saving the pump state failed: %s", self.pipe_id, exc)
        self._changed()

    def _publish(self, event: dict[str, Any]) -> None:
        if "time" not in event:
            event["time"] = iso_time(self._clock())
        self._bus.publish(event)

    async def _log_event(self, event: dict[str, Any]) -> None:
        """Publish a non-run event and append it to the execution log (fixed ``_id`` = event type)."""
        self._publish(event)
        entity = {k: v for k, v in event.items() if k not in ("type", "time")}
        entity.update(_id=event["type"], event_type=event["type"], event_time=event["time"])
        await self._writers.apply(DatasetWrite(self.execution_dataset, lambda dataset: dataset.write([entity])))

    # -- operations (the API) -------------------------------------------------------------------------------

    def _supported_operations(self) -> list[str]:
        blocked = _OFFSET_OPERATIONS if self.runner.config.get("disable_set_last_seen") else ()
        if not self.runner.tracked_datasets:
            blocked += _TRACKING_OPERATIONS
        return [op for op in SUPPORTED_OPERATIONS if op not in blocked]

    def _operate(self, operation: str, params: dict[str, Any]) -> Awaitable[None] | None:
        """Begin a pump operation (5.4): checks and claims now, in mailbox order; returns the rest of it to
        await, if any. Raises :class:`PumpConflict` (409) when busy and :class:`PumpOperationError` (400)."""
        handler = self._operations.get(operation)
        if handler is None:
            raise PumpOperationError(f"The pump of pipe '{self.pipe_id}' doesn't support the operation "
                                     f"'{operation}'")
        if operation in _TRACKING_OPERATIONS and operation not in self._supported_operations():
            raise PumpOperationError(f"The pump of pipe '{self.pipe_id}' doesn't support the operation "
                                     f"'{operation}': the pipe tracks no dependencies (no hops from a dataset "
                                     f"source)")
        return handler(params)

    def _op_start(self, params: dict[str, Any]) -> None:
        self._start("full" if params.get("kind") == "full" else "auto", params)

    def _op_start_rescan(self, params: dict[str, Any]) -> None:
        self._start("rescan", params)

    def _op_reset_rescan(self, params: dict[str, Any]) -> None:
        """Rescans here always read from the beginning (there are no background rescans to resume), so the
        next one already starts over; the operation is accepted for compatibility."""

    def _start(self, kind: str, params: dict[str, Any]) -> None:
        if self.mode == "off":
            raise PumpOperationError(f"The pump of pipe '{self.pipe_id}' is off (mode 'off') and cannot be started")
        if not self.valid:
            raise PumpOperationError(f"The pipe '{self.pipe_id}' has config errors and cannot be started")
        self._refuse_if_tripped()
        assert self._nursery is not None  # (messages are handled while the actor runs)
        self._claim("run")  # now: the answer says is-running, and a second start gets 409
        self._nursery.start_soon(self._spawned_run, kind, params.get("user"))

    def _tripped(self) -> bool:
        """Whether the sink dataset's circuit breaker has tripped (the schedule then runs nothing)."""
        return self._trip_reason() is not None

    def _refuse_if_tripped(self) -> None:
        """A pipe whose sink dataset's circuit breaker has tripped is refused a run (node-spec 2.8, 4.4);
        its schedule and dependency-tracking wakes run nothing until the breaker is rolled back or
        committed (the sink also refuses a run that begins on a tripped dataset)."""
        reason = self._trip_reason()
        if reason is not None:
            raise PumpOperationError(f"The pipe '{self.pipe_id}' cannot run: {reason}")

    def _trip_reason(self) -> str | None:
        """Why the sink dataset's circuit breaker holds the pipe back; None when it does not."""
        name = self.runner.sink_dataset
        try:
            dataset = self._datasets.open(name, create=False) if name is not None else None
        except (KeyError, storage.StorageError):  # missing, or damaged: the run itself says so
            return None
        if dataset is not None and dataset.breaker_tripped:
            return dataset.breaker.reason(name)
        return None

    async def _spawned_run(self, kind: str, user: Any) -> None:
        await self._execute(kind, origin="api", user=user, claimed=True)

    def _op_stop(self, params: dict[str, Any]) -> None:
        self._stop_run()

    def _op_discard_retries(self, params: dict[str, Any]) -> Awaitable[None]:
        """The pending write retries (node-spec 5.5) become non-retryable, not dead: no dead letters."""
        self._claim("discard-retries")
        return self._discard_retries()

    async def _discard_retries(self) -> None:
        try:
            discarded = await self._writers.apply(discard_write(self.execution_dataset))
        finally:
            self._release()
        log.info("pump %s: discarded %d pending write retries", self.pipe_id, discarded)
        self._publish({"type": "pump-discard-retries", "pipe": self.pipe_id, "discarded": discarded})

    def _op_enable(self, params: dict[str, Any]) -> Awaitable[None]:
        return self._set_disabled(False, None)

    def _op_disable(self, params: dict[str, Any]) -> Awaitable[None]:
        return self._set_disabled(True, params.get("comment"))

    def _set_disabled(self, disabled: bool, comment: str | None) -> Awaitable[None]:
        self.state.disabled, self.state.disabled_comment = disabled, comment
        self._save()
        self._poke()
        event: dict[str, Any] = {"type": "pump-disabled" if disabled else "pump-enabled", "pipe": self.pipe_id}
        if disabled:
            event["comment"] = comment
        log.info("pump %s: %s%s", self.pipe_id, event["type"], f" ({comment})" if comment else "")
        return self._log_event(event)

    def _check_offset_allowed(self, operation: str) -> None:
        if self.runner.config.get("disable_set_last_seen"):
            raise PumpOperationError(f"The pump of pipe '{self.pipe_id}' doesn't support the operation "
                                     f"'{operation}': the pipe has disable_set_last_seen set")

    def _op_update_last_seen(self, params: dict[str, Any]) -> Awaitable[None]:
        self._check_offset_allowed("update-last-seen")
        if "last-seen" not in params or params["last-seen"] is None:
            raise PumpOperationError("update-last-seen needs the parameter 'last-seen'")
        text = str(params["last-seen"])
        value = None if text == "" else _parse_offset(text)
        return self._change_offset("update-last-seen", lambda: self.runner.offset_write(value), params.get("user"))

    def _op_set_last_seen_to_end(self, params: dict[str, Any]) -> Awaitable[None]:
        self._check_offset_allowed("set-last-seen-to-end")
        return self._change_offset("set-last-seen-to-end", self.runner.end_offset_write, params.get("user"))

    def _op_reset_tracking(self, params: dict[str, Any]) -> Awaitable[None]:
        return self._change_tracking("reset-tracking", "end", params.get("user"))

    def _op_set_tracking_to_start(self, params: dict[str, Any]) -> Awaitable[None]:
        return self._change_tracking("set-tracking-to-start", "start", params.get("user"))

    def _change_offset(self, operation: str, change: Callable[[], DatasetWrite], user: Any) -> Awaitable[None]:
        self._claim(operation)
        return self._offset_changed(operation, change, user)

    async def _offset_changed(self, operation: str, change: Callable[[], DatasetWrite], user: Any) -> None:
        before, after = await self._change_state(operation, change, self.runner.get_offset)
        event: dict[str, Any] = {"type": "pump-offset-set", "pipe": self.pipe_id,
                                 "pipe_offset": _offset_text(after), "original_pipe_offset": _offset_text(before),
                                 "is_reset": after is None}
        if user is not None:
            event["user"] = user
        log.info("pump %s: offset %s -> %s", self.pipe_id, before, after)
        await self._log_event(event)

    def _change_tracking(self, operation: str, to: str, user: Any) -> Awaitable[None]:
        """Move the dependency-tracking offsets (node-spec 11); announced on the event bus (the execution
        log has no event type for it)."""
        self._claim(operation)
        return self._tracking_changed(operation, to, user)

    async def _tracking_changed(self, operation: str, to: str, user: Any) -> None:
        before, after = await self._change_state(operation, lambda: self.runner.tracking_write(to),
                                                 self.runner.tracking_offsets)
        event: dict[str, Any] = {"type": "pump-tracking-set", "pipe": self.pipe_id, "operation": operation,
                                 "tracking": after, "original_tracking": before}
        if user is not None:
            event["user"] = user
        log.info("pump %s: %s: tracking offsets %s -> %s", self.pipe_id, operation, before, after)
        self._publish(event)

    async def _change_state(self, operation: str, change: Callable[[], DatasetWrite],
                            read: Callable[[], Any]) -> tuple[Any, Any]:
        """Apply a change of the pipe's state (claimed by the caller: 409 while a run or another change is in
        progress); returns what ``read`` gave before and after it."""
        try:
            before = await trio.to_thread.run_sync(read)
            await self._writers.apply(await trio.to_thread.run_sync(change))
            return before, await trio.to_thread.run_sync(read)
        except PipeRunError as exc:
            raise PumpOperationError(f"The pump of pipe '{self.pipe_id}' doesn't support the operation "
                                     f"'{operation}': {exc}") from exc
        finally:
            self._release()


# -- the actor's address and what it shows ---------------------------------------------------------------------


class PipeRef:
    """The address of a pipe's actor: typed sends and asks (see the module docstring), and its published
    :class:`PumpStatus`. Made by :func:`start_pipe`."""

    def __init__(self, ref: ActorRef, runner: Runner, status: Callable[[], PumpStatus]) -> None:
        self._ref = ref
        self.runner = runner
        self.pipe_id = runner.pipe_id
        self._status = status

    @property
    def status(self) -> PumpStatus:
        """The pump's status as the actor last published it."""
        return self._status()

    @property
    def running(self) -> bool:
        return self.status.running

    def pump_json(self) -> dict[str, Any]:
        return pump_json(self.status, self.runner)

    async def operate(self, operation: str, params: Mapping[str, Any] | None = None) -> PumpStatus:
        """Run a pump operation; raises :class:`PumpConflict` / :class:`PumpOperationError`, and
        :class:`PumpOperationError` when the actor is not running (restarting) within ``STARTUP_WAIT``."""
        try:
            status: PumpStatus = await self._ref.ask(Operate(operation, MappingProxyType(dict(params or {}))),
                                                     accept_within=STARTUP_WAIT)
        except ActorUnavailable:
            raise PumpOperationError(f"The pump of pipe '{self.pipe_id}' is not running (it is restarting)") \
                from None
        return status

    async def run_once(self, kind: str = "auto", *, origin: str = "api", user: Any = None) -> dict[str, Any]:
        """Run the pipe now and return its ``pump-completed``/``pump-failed`` event; raises
        :class:`PumpConflict` if a run is in progress (:class:`~actors.ActorUnavailable` if the actor
        stopped)."""
        event: dict[str, Any] = await self._ref.ask(RunOnce(kind, origin, user))
        return event

    async def wait_idle(self) -> None:
        """Return once no run or offset operation is in progress (or the actor has stopped)."""
        try:
            await self._ref.ask(WaitIdle())
        except ActorUnavailable:
            pass

    async def stop(self) -> None:
        """Ask the run in progress to stop after its current batches."""
        await self._ref.tell(Stop())

    def notify(self, message: Wake | Stop | HoldSchedule | StopScheduling) -> bool:
        """Deliver a notice without waiting; False if the mailbox is full (or the actor stopped)."""
        return self._ref.try_send(message)

    async def tell(self, message: Wake | Stop | HoldSchedule | StopScheduling) -> None:
        """Deliver a notice, waiting while the mailbox is full (nothing if the actor stopped)."""
        await self._ref.tell(message)

    def __repr__(self) -> str:
        return f"PipeRef({self.pipe_id!r})"


def start_pipe(supervisor: Supervisor, name: str, actor: PipeActor) -> PipeRef:
    """Start ``actor`` under ``supervisor`` (a restart reuses it: it reloads its persisted state); its ref."""
    return PipeRef(supervisor.start(name, lambda: actor), actor.runner, lambda: actor.status)


def pump_json(status: PumpStatus, runner: Runner) -> dict[str, Any]:
    """The pump object (node-spec 5.8) of ``status``, with the runner's offset and queues as they are now."""
    try:
        last_seen = _offset_text(runner.get_offset())
    except Exception:
        last_seen = None
    try:
        queues = runner.queues()
    except Exception:
        queues = {"source": 0, "dependencies": {}}
    run = status.run
    runtime = {
        "is-running": status.running,
        "is-disabled": status.disabled,
        "is-valid-config": status.valid,
        "config-errors": list(status.config_errors),
        "supported-operations": list(status.supported_operations),
        "last-seen": last_seen,
        "last-run": status.last_run,
        "last-started": status.last_started,
        "next-run": status.next_run,
        "last-message": status.last_message,
        "last-original-error-message": status.last_original_error_message,
        "success": status.success,
        "sync-type": status.sync_type,
        "progress": {"processed": run.processed if run is not None else status.processed},
        "queues": queues,
        "mode": status.mode,
        **status.schedule,
        "disabled-comment": status.disabled_comment,
        "is-out-of-sync": bool(status.out_of_sync),
        "out-of-sync": list(status.out_of_sync),
        "execution-dataset": status.execution_dataset,
    }
    return {"_id": f"pump:{status.pipe_id}", "runtime": runtime}


def _append_run_log(dataset: Any, started_entity: dict[str, Any], terminal: dict[str, Any],
                    between: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
    terminal["pump_started_location"] = dataset.next_offset  # where pump-started is appended
    dataset.write([started_entity, *between, terminal])


def _read_errors(error: BaseException | None, when: str, formatted: str | None) -> list[dict[str, Any]]:
    """The ``read-error:<GUID>`` log entity of a run that failed reading its source (node-spec 5.7)."""
    if not isinstance(error, PipeRunError) or not error.read_error:
        return []
    cause = error.__cause__
    unreachable = isinstance(cause, ComponentError) and cause.transient and cause.status is None
    return [{"_id": f"read-error:{uuid.uuid4()}", "event_type": "read-error", "error_code": 0 if unreachable else 1,
             "event_time": when, "original_error_message": str(cause if cause is not None else error),
             "traceback": formatted, "original_traceback": formatted}]


def _metrics(result: RunResult | None) -> dict[str, Any]:
    if result is None:
        return {"entities.changes_last_run": 0, "entities.entities_last_run": 0}
    return {"entities.changes_last_run": result.changes, "entities.entities_last_run": result.processed,
            "entities.write_errors_last_run": result.write_errors,
            "entities.source_time": result.source_time, "entities.transform_time": result.transform_time,
            "entities.sink_time": result.sink_time}


def _entity_id(error: BaseException | None, entity: dict[str, Any] | None) -> Any:
    """The ``_id`` of the entity a run failed on, where known (the failing entity, or a DTL error's id)."""
    if isinstance(entity, dict) and entity.get("_id") is not None:
        return entity["_id"]
    while error is not None:
        entity_id = getattr(error, "entity_id", None)
        if entity_id is not None:
            return entity_id
        error = error.__cause__
    return None


def _failure(outcome: _Outcome) -> tuple[str, str | None, dict[str, Any] | None]:
    """(reason_why_stopped, original_error_message, exception_entity) of a failed or stopped run."""
    error = outcome.error
    if error is None:
        return "Pump was stopped", None, None
    if isinstance(error, PipeRunError):
        return f"Pump failed: {error.message}", error.message, error.entity
    text = f"{type(error).__name__}: {error}"
    return f"Pump failed: {text}", text, None
