"""The node's test scheduler (client-spec 10.3): run-all-pipes driven over the pipes' pump actors.

One run at a time, in the node's own nursery (a sync request waits for it; a client that goes away does not
stop it). The decisions come from :mod:`sesamd._run_all_plan`; this module does the I/O: it holds the pumps'
own schedules for the whole run (:class:`actors.HoldSchedule`, also for pipes restarted meanwhile), resets
pipes and deletes sink datasets, and runs each pipe with :class:`actors.RunOnce` (the run a ``start``
operation makes, logged and counted the same way), all through the pipes' :class:`~actors.PipeRef`. The
groups of one topological level run side by side, bounded by the node's run limiter.

A pipe reading only datasets is not run again while none of the datasets it reads changed since the start
of its last good run in this run-all (generation, next offset, populated flag): that run would find no work.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import trio

from actors import ActorUnavailable, PipeRef, PumpConflict

from ._run_all_plan import (
    INPUT,
    Options,
    PipeNode,
    PipeOutcome,
    Plan,
    Progress,
    after_pass,
    classify,
    is_user_pipe,
    plan,
)

if TYPE_CHECKING:
    from ._node import Node, PipeState

__all__ = ["Busy", "Run", "RunAllPipes", "UnknownPipes", "pipe_nodes"]

log = logging.getLogger("sesamd.run_all")

KEEP_RUNS = 20  # finished runs whose status and log stay readable by token
MAX_LOG_LINES = 50_000  # per run; the oldest lines go first
ORIGIN = "run-all-pipes"  # the origin of the pump runs it makes (execution log, events)


class Busy(RuntimeError):
    """A run-all-pipes run is in progress (one at a time)."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"run-all-pipes is already running (token '{run.token}'); stop it first with "
                         "POST /api/pipes/stop-run-all-pipes")
        self.run = run


class UnknownPipes(KeyError):
    """run-pipes named pipes that do not exist."""


@dataclass
class Run:
    """One run-all-pipes run: its status (running, success, failed), log and answer."""

    token: str
    options: Options
    status: str = "running"
    reason: str = ""
    passes: int = 0
    progress: Progress = field(default_factory=Progress)
    log: list[tuple[datetime, str, str]] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    started: float = field(default_factory=trio.current_time)
    ended: float | None = None
    stop_reason: str | None = None

    def say(self, loglevel: str, logdata: str) -> None:
        """Append a log line; timestamps strictly increase, so ``since`` never drops or repeats one."""
        now = datetime.now(UTC)
        if self.log and now <= self.log[-1][0]:
            now = self.log[-1][0] + timedelta(microseconds=1)
        self.log.append((now, loglevel, logdata))
        if len(self.log) > MAX_LOG_LINES:
            del self.log[: len(self.log) - MAX_LOG_LINES]
        (log.warning if loglevel in ("WARNING", "ERROR") else log.info)("run-all-pipes %s: %s", self.token, logdata)

    def lines(self, since: datetime | None = None) -> list[dict[str, str]]:
        return [{"timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "loglevel": level, "logdata": data}
                for at, level, data in self.log if since is None or at > since]

    @property
    def run_time(self) -> float:
        return (self.ended if self.ended is not None else trio.current_time()) - self.started

    def answer(self) -> dict[str, Any]:
        """The JSON answer of a finished (or running) run."""
        body: dict[str, Any] = {"status": self.status, "token": self.token, "passes": self.passes,
                                "run_time": round(self.run_time, 3)}
        if self.reason:
            body["reason"] = self.reason
        if self.options.output_run_statistics:
            body["additional_info"] = self.progress.statistics()
        return body


def pipe_nodes(pipes: Iterable[PipeState]) -> list[PipeNode]:
    """The user pipes with a valid config as the plan sees them (kind from the effective config)."""
    found = []
    for state in pipes:
        runner = state.runner
        if runner is None or not state.is_valid or not is_user_pipe(state.id, state.original):
            continue
        source = state.effective.get("source") if isinstance(state.effective.get("source"), dict) else {}
        found.append(PipeNode(state.id, classify(state.effective), frozenset(runner.input_datasets),
                              runner.sink_dataset, pushed=source.get("type") == "http_endpoint"))
    return found


class RunAllPipes:
    """The node's run-all-pipes runs (the API's ``/pipes/run-all-pipes`` family)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.current: Run | None = None
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self._running: set[PipeRef] = set()  # the actors running a pipe for the current run
        self._seen: dict[str, tuple[Any, tuple[Any, ...]]] = {}  # pipe -> (runner, inputs at its last good run)

    @property
    def active(self) -> bool:
        return self.current is not None

    def find(self, token: str | None) -> Run | None:
        """The run of ``token``; without one the current run, else the latest."""
        if token:
            return self.runs.get(token)
        if self.current is not None:
            return self.current
        return next(reversed(self.runs.values()), None)

    def start(self, options: Options) -> Run:
        """Start a run in the node's nursery; raises :class:`Busy` while one runs."""
        if self.current is not None:
            raise Busy(self.current)
        run = Run(uuid.uuid4().hex, options)
        self.current = run
        self.runs[run.token] = run
        while len(self.runs) > KEEP_RUNS:
            self.runs.popitem(last=False)
        self.node.spawn(self._main, run)
        return run

    def request_stop(self, reason: str) -> Run | None:
        """Ask the current run to stop: no more pipes start, the running ones stop after their current batch."""
        run = self.current
        if run is None:
            return None
        if run.stop_reason is None:
            run.stop_reason = reason
            run.say("WARNING", f"Stopping: {reason}")
        for actor in list(self._running):
            if actor.running:
                self.node.spawn(actor.stop)
        return run

    async def stop(self, timeout: float) -> Run | None:
        """Stop the current run and wait for it (at most ``timeout`` seconds); the run, None if none ran."""
        run = self.request_stop("stopped by stop-run-all-pipes")
        if run is not None:
            with trio.move_on_after(timeout):
                await run.done.wait()
        return run

    # -- one run ----------------------------------------------------------------------------------------------

    async def _main(self, run: Run) -> None:
        node = self.node
        node.hold_schedules(True)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watchdog, run)
                try:
                    await self._drive(run)
                finally:
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            log.exception("run-all-pipes %s failed", run.token)
            run.status, run.reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
            run.say("ERROR", f"Failed: {run.reason}")
        finally:
            node.hold_schedules(False)
            self._running.clear()
            self._seen.clear()
            run.ended = trio.current_time()
            self.current = None
            run.done.set()

    async def _watchdog(self, run: Run) -> None:
        await trio.sleep(run.options.max_run_time)
        self.request_stop(f"max_run_time={run.options.max_run_time:g} seconds exceeded")

    def _stopped(self, run: Run) -> bool:
        if run.stop_reason is None and not self.node.accepting_runs:
            run.stop_reason = "the node is shutting down"
        if run.stop_reason is not None:
            run.status, run.reason = "failed", run.stop_reason
            return True
        return False

    async def _drive(self, run: Run) -> None:
        options = run.options
        nodes = pipe_nodes(self.node.pipes.values())
        order = plan(nodes)
        run.say("INFO", f"Running {len(order.order)} pipes ({len(order.inputs)} input pipes) in "
                        f"{len(order.levels)} levels; scheduler_mode {options.scheduler_mode}")
        await self._idle_all()
        if options.reset_pipes_and_delete_sink_datasets:
            await self._reset(run, nodes, order)
        progress = Progress()
        while not self._stopped(run):
            number = progress.passes + 1
            run.say("INFO", f"Running pass #{number}")
            outcomes = await self._pass(run, order, number)
            if self._stopped(run):
                break
            result = after_pass(progress, outcomes, options, inputs=order.inputs, elapsed=run.run_time)
            progress = run.progress = result.progress
            run.passes = progress.passes
            for loglevel, logdata in result.log:
                run.say(loglevel, logdata)
            if result.verdict.status is not None:
                run.status, run.reason = result.verdict.status, result.verdict.reason
                if run.status == "success":
                    self._report_queues(run, order)
                return
        run.say("ERROR", f"Stopped after {run.passes} passes: {run.reason}")

    async def _idle_all(self) -> None:
        """Wait for the runs the pumps started before the hold to end."""
        async with trio.open_nursery() as nursery:
            for state in list(self.node.pipes.values()):
                if state.actor is not None:
                    nursery.start_soon(state.actor.wait_idle)

    async def _reset(self, run: Run, nodes: list[PipeNode], order: Plan) -> None:
        """Reset the pipes to run and delete their sink datasets; with ``delete_input_datasets`` false the sink
        datasets of input pipes (embedded or pushed sources) stay and only their offsets are reset."""
        keep_inputs = not run.options.delete_input_datasets
        deleted, reset = [], []
        for pipe in sorted(nodes, key=lambda p: p.id):
            is_input = pipe.kind == INPUT or pipe.pushed
            if not (pipe.runs or pipe.pushed):
                continue
            if pipe.writes is not None and not (is_input and keep_inputs):
                if self.node.datasets.exists(pipe.writes):
                    await self.node.writers.delete(pipe.writes)
                    deleted.append(pipe.writes)
            elif pipe.runs:
                state = self.node.pipes.get(pipe.id)
                if state is not None and state.runner is not None:
                    await self.node.writers.apply(await trio.to_thread.run_sync(state.runner.offset_write, None))
                    reset.append(pipe.id)
        run.say("INFO", f"Reset: deleted {len(deleted)} sink datasets, reset the offsets of {len(reset)} pipes"
                        f"{' (input datasets kept)' if keep_inputs else ''}")

    async def _pass(self, run: Run, order: Plan, number: int) -> list[PipeOutcome]:
        outcomes: dict[str, PipeOutcome] = {}
        for level in order.for_pass(number):
            if self._stopped(run):
                break
            async with trio.open_nursery() as nursery:
                for group in level:
                    nursery.start_soon(self._group, run, group, number, outcomes)
        return [outcomes[p] for p in order.order if p in outcomes]

    async def _group(self, run: Run, group: tuple[str, ...], number: int, outcomes: dict[str, PipeOutcome]) -> None:
        for pipe_id in group:
            if self._stopped(run):
                return
            outcome = outcomes[pipe_id] = await self._run_pipe(pipe_id, skippable=number > 1)
            if outcome.ran and outcome.changes:
                run.say("INFO", f"Pipe '{pipe_id}' changed {outcome.changes} entities in pass #{number}")

    def _inputs(self, state: PipeState) -> tuple[Any, ...] | None:
        """What the pipe reads, as (dataset, generation, next offset, populated); None for a pipe that reads
        anything besides datasets (its source is no dataset source)."""
        runner = state.runner
        if runner is None or not runner.source_datasets:
            return None
        found = []
        for name in sorted(runner.input_datasets):
            dataset = self.node.datasets.get(name)
            found.append((name, None, None, None) if dataset is None
                         else (name, dataset.generation, dataset.next_offset, dataset.populated))
        return tuple(found)

    async def _run_pipe(self, pipe_id: str, *, skippable: bool) -> PipeOutcome:
        state = self.node.pipes.get(pipe_id)
        if state is None or state.actor is None or state.runner is None:
            return PipeOutcome(pipe_id, False, error="the pipe is not running (removed, or its config is invalid)")
        actor, runner = state.actor, state.runner
        inputs = self._inputs(state)
        if skippable and inputs is not None and self._seen.get(pipe_id) == (runner, inputs):
            return PipeOutcome(pipe_id, True, ran=False)
        self._seen.pop(pipe_id, None)
        started = trio.current_time()
        self._running.add(actor)
        try:
            while True:
                await actor.wait_idle()
                try:
                    event = await actor.run_once("auto", origin=ORIGIN)
                    break
                except PumpConflict:  # a run started through the API meanwhile: wait for it
                    continue
                except ActorUnavailable:  # removed or given up on meanwhile
                    return PipeOutcome(pipe_id, False, error="the pipe's pump has stopped")
        finally:
            self._running.discard(actor)
        seconds = trio.current_time() - started
        changes, processed = int(event.get("changes") or 0), int(event.get("processed") or 0)
        if event.get("type") != "pump-completed":
            return PipeOutcome(pipe_id, False, changes, processed, seconds,
                               error=event.get("reason_why_stopped") or event.get("error") or "the run failed")
        if inputs is not None:
            self._seen[pipe_id] = (runner, inputs)
        return PipeOutcome(pipe_id, True, changes, processed, seconds)

    def _report_queues(self, run: Run, order: Plan) -> None:
        """Log the pipes that still have queued work (source or dependency queues) at the end."""
        for pipe_id in order.order:
            state = self.node.pipes.get(pipe_id)
            if state is None or state.runner is None:
                continue
            try:
                queues = state.runner.queues()
            except Exception:
                continue
            pending = (queues.get("source") or 0) + sum((queues.get("dependencies") or {}).values())
            if pending:
                run.say("WARNING", f"Pipe '{pipe_id}' still has {pending} queued entities at the end")

    # -- run-pipes and delete-all-sink-datasets ----------------------------------------------------------------

    async def run_pipes(self, pipe_ids: list[str], timeout: float | None) -> dict[str, Any]:
        """Run each pipe once, in order (``POST /pipes/run-pipes``); a pipe still running at ``timeout`` is
        stopped after its current batch and answers ``timeout``, later ones ``not-run``."""
        if self.current is not None:
            raise Busy(self.current)
        missing = [p for p in pipe_ids if p not in self.node.pipes]
        if missing:
            raise UnknownPipes(missing)
        deadline = None if timeout is None else trio.current_time() + timeout
        answer: dict[str, Any] = {}
        for pipe_id in pipe_ids:
            if deadline is not None and trio.current_time() >= deadline:
                answer[pipe_id] = {"result": "not-run", "status": {"changes_last_run": 0}}
                continue
            answer[pipe_id] = await self._run_one(pipe_id, deadline)
        return answer

    async def _run_one(self, pipe_id: str, deadline: float | None) -> dict[str, Any]:
        state = self.node.pipes[pipe_id]
        actor = state.actor
        if actor is None:
            return {"result": "failed", "status": {"changes_last_run": 0,
                                                   "last-message": "the pipe's config is invalid"}}
        timed_out = False
        async with trio.open_nursery() as nursery:
            async def watchdog() -> None:
                nonlocal timed_out
                await trio.sleep_until(deadline if deadline is not None else float("inf"))
                timed_out = True
                if actor.running:
                    await actor.stop()

            nursery.start_soon(watchdog)
            while True:
                await actor.wait_idle()
                try:
                    event = await actor.run_once("auto", origin=ORIGIN)
                    break
                except PumpConflict:
                    continue
                except ActorUnavailable:
                    event = {"type": "pump-failed", "reason_why_stopped": "the pipe's pump has stopped"}
                    break
            nursery.cancel_scope.cancel()
        ok = event.get("type") == "pump-completed"
        status = {"changes_last_run": int(event.get("changes") or 0), "processed_last_run":
                  int(event.get("processed") or 0), "last-message": "Completed" if ok
                  else event.get("reason_why_stopped") or ""}
        return {"result": "completed" if ok else "timeout" if timed_out else "failed", "status": status}

    async def delete_sink_datasets(self) -> list[str]:
        """Delete the sink datasets of every user pipe (their runs stop after their current batch first)."""
        if self.current is not None:
            raise Busy(self.current)
        deleted = []
        for pipe in sorted(pipe_nodes(self.node.pipes.values()), key=lambda p: p.id):
            if pipe.writes is None or not self.node.datasets.exists(pipe.writes):
                continue
            actor = self.node.pipes[pipe.id].actor
            if actor is not None:
                await self.node.stop_run(actor)
            await self.node.writers.delete(pipe.writes)
            deleted.append(pipe.writes)
        return deleted
