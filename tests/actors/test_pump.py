"""The pump: scheduling, operations, stop, persistence, events, the execution log, failures, isolation."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

import storage
from actors import ConfigError, Datasets, DatasetWrite, PipeRunError, RunResult, Supervisor, run_pipeline
from actors._events import EventBus, Subscription, iso_time
from actors._pump import PipeActor, PipeRef, PumpConflict, PumpOperationError, Wake, pump_json, start_pipe
from actors.testing import EventLog, FakeRunner, run_in_thread, thread_aware_mock_clock

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday, 00:00 UTC


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """pytest-trio's autojump clock, except that virtual time stands still while worker threads run
    (a run in a worker thread takes no virtual time)."""
    return thread_aware_mock_clock()


def mock_wall_clock() -> datetime:
    """Wall time that follows Trio's (mock) clock."""
    return EPOCH + timedelta(seconds=trio.current_time())


class Pump:
    """A pipe actor under test, driven through its :class:`PipeRef` only: started under a supervisor by
    :func:`running` or :meth:`start`, else under the test's own (``fallback``) when first sent a message;
    ``pump_json()`` renders the status it last published."""

    def __init__(self, actor: PipeActor, fallback: Supervisor | None = None) -> None:
        self.actor = actor
        self.pipe_id = actor.pipe_id
        self._fallback = fallback
        self._ref: PipeRef | None = None

    def start(self, supervisor: Supervisor, name: str | None = None) -> PipeRef:
        self._ref = start_pipe(supervisor, name or f"pipe:{self.pipe_id}", self.actor)
        return self._ref

    @property
    def ref(self) -> PipeRef:
        if self._ref is None:
            assert self._fallback is not None, "the pump is not started (use running())"
            self.start(self._fallback, f"pipe:{self.pipe_id}:{id(self)}")
        assert self._ref is not None
        return self._ref

    def pump_json(self) -> dict[str, Any]:
        return pump_json(self.actor.status, self.actor.runner)

    async def operate(self, operation: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return pump_json(await self.ref.operate(operation, params), self.actor.runner)

    async def run_once(self, kind: str = "auto", **options: Any) -> dict[str, Any]:
        return await self.ref.run_once(kind, **options)

    async def wait_idle(self) -> None:
        await self.ref.wait_idle()

    def wake(self) -> None:
        assert self.ref.notify(Wake())


class Node:
    """What a pump needs around it: a node store, datasets, an event bus recording everything."""

    def __init__(self, root: Path) -> None:
        self.store = storage.NodeStore(root / "node")
        self.datasets = Datasets(root / "data")
        self.bus = EventBus(clock=mock_wall_clock)
        self.events: Subscription = self.bus.subscribe(10_000)
        self.seen: list[dict[str, Any]] = []
        self.supervisor: Supervisor | None = None  # where a pump not started otherwise runs

    def actor(self, runner: Any, **options: Any) -> Pump:
        options.setdefault("driver", run_in_thread)  # runner doubles run in a thread; real runners in stages
        return Pump(PipeActor(runner, store=self.store, datasets=self.datasets, bus=self.bus, clock=mock_wall_clock,
                              **options), self.supervisor)

    def drain(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.seen.append(self.events.receive_nowait())
            except trio.WouldBlock:
                return self.seen

    def types(self, pipe: str | None = None) -> list[str]:
        return [e["type"] for e in self.drain() if pipe is None or e.get("pipe") == pipe]

    def log(self, pipe: str = "p") -> list[dict[str, Any]]:
        """Every version in the execution log, oldest first."""
        name = f"system:pump_execution:{pipe}"
        if not self.datasets.exists(name):
            return []
        return list(self.datasets.open(name).iter_entities())


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    result = Node(tmp_path)
    async with Supervisor() as supervisor:
        result.supervisor = supervisor
        yield result
    result.datasets.close_all()
    result.store.close()


@asynccontextmanager
async def running(*pumps: Pump, events: EventLog | None = None) -> AsyncIterator[Supervisor]:
    async with Supervisor(on_event=events) as supervisor:
        for pump in pumps:
            pump.start(supervisor)
        await trio.testing.wait_all_tasks_blocked()  # let the actors start
        yield supervisor


async def until(predicate: Callable[[], bool], timeout: float = 3600) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def wait_entered(runner: FakeRunner) -> None:
    await trio.to_thread.run_sync(runner.entered.wait)


# -- scheduling ------------------------------------------------------------------------------------------------


async def test_schedule_interval_runs_every_interval_after_the_previous_run(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(schedule_interval=60)
    actor = node.actor(runner)
    async with running(actor):
        assert actor.pump_json()["runtime"]["next-run"] == "2024-01-01T00:01:00.000000Z"
        await trio.sleep(185)
    assert [round(t) for _, t in runner.runs] == [60, 120, 180]
    assert {kind for kind, _ in runner.runs} == {"auto"}
    assert node.store.get("pump", "p")["next_run"] is None  # short intervals are not persisted


async def test_every_nth_scheduled_run_is_a_rescan_and_full_rescans_win_over_partial_ones(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(schedule_interval=10, rescan_run_count=2, partial_rescan_run_count=3, partial_rescan_delta=5)
    actor = node.actor(runner)
    async with running(actor):
        await trio.sleep(65)
    assert [kind for kind, _ in runner.runs] == ["auto", "rescan", "partial", "rescan", "auto", "rescan"]
    assert node.store.get("pump", "p")["scheduled_runs"] == 6
    restarted = node.actor(runner)  # the count survives a restart
    async with running(restarted):
        await trio.sleep(15)
    assert runner.runs[-1][0] == "auto"  # run 7


async def test_rescan_cron_expression_starts_rescans_between_the_scheduled_runs(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(schedule_interval=1000, rescan_cron_expression="30 * * * *")
    async with running(node.actor(runner)):
        await trio.sleep(3700)
    # the cron rescan (00:30) leaves the interval schedule alone; the next one would be at 01:30
    assert [(kind, round(t)) for kind, t in runner.runs] == [
        ("auto", 1000), ("rescan", 1800), ("auto", 2000), ("auto", 3000)]


@pytest.mark.parametrize(("pump", "message"), [
    ({"rescan_run_count": 2, "rescan_cron_expression": "0 * * * *"}, "exclude each other"),
    ({"partial_rescan_run_count": 2}, "partial_rescan_run_count needs partial_rescan_delta"),
    ({"rescan_run_count": 0}, "rescan_run_count must be an integer >= 1, not 0"),
    ({"partial_rescan_delta": "5"}, "partial_rescan_delta must be an integer >= 1, not '5'"),
    ({"rescan_cron_expression": "every day"}, "cron"),
])
async def test_bad_rescan_settings_are_config_errors(node: Node, pump: dict[str, Any], message: str) -> None:
    actor = node.actor(FakeRunner(**pump))
    runtime = actor.pump_json()["runtime"]
    assert runtime["is-valid-config"] is False
    assert any(message in error["msg"] and error["elements"] == "pump" for error in runtime["config-errors"])


async def test_start_rescan_runs_a_rescan_and_conflicts_while_running(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    runner.block = True
    actor = node.actor(runner)
    async with running(actor):
        await actor.operate("start-rescan")
        await wait_entered(runner)
        with pytest.raises(PumpConflict):
            await actor.operate("start-rescan")
        await actor.operate("reset-rescan")  # accepted: rescans always start from the beginning
        runner.block = False
        await actor.wait_idle()
    assert [kind for kind, _ in runner.runs] == ["rescan"]
    started = next(e for e in node.drain() if e["type"] == "pump-started")
    assert started["rescan"] is True and started["sync_type"] == "full"


async def test_default_schedule_is_30s_with_jitter_for_dataset_pipes(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    fast, slow = FakeRunner("fast"), FakeRunner("slow", source="json")
    async with Supervisor() as supervisor:
        node.actor(fast).start(supervisor, "fast")
        node.actor(slow).start(supervisor, "slow")
        await trio.sleep(1000)
    first = fast.runs[0][1]
    assert 28.5 <= first <= 31.5
    assert all(27 <= b[1] - a[1] <= 33 for a, b in zip(fast.runs, fast.runs[1:], strict=False))
    assert len(slow.runs) == 1 and 855 <= slow.runs[0][1] <= 945


async def test_cron_schedule_runs_on_utc_minutes_and_persists_the_next_run(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(cron_expression="*/5 * * * *")
    actor = node.actor(runner)
    async with running(actor):
        await trio.sleep(301)
        assert node.store.get("pump", "p")["next_run"] == "2024-01-01T00:10:00.000000Z"
        await trio.sleep(300)
    assert [round(t) for _, t in runner.runs] == [300, 600]
    runtime = actor.pump_json()["runtime"]
    assert runtime["cron_expression"] == "*/5 * * * *" and runtime["schedule_interval"] is None


async def test_a_persisted_start_missed_while_down_runs_at_startup(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(7200)  # it is now 02:00; the pump should have run at 01:00
    node.store.put("pump", "p", {"next_run": "2024-01-01T01:00:00.000000Z"})
    runner = FakeRunner(cron_expression="0 * * * *")
    async with running(node.actor(runner)):
        await trio.sleep(1)
        assert len(runner.runs) == 1
        await trio.sleep(3600)
    assert [round(t) for _, t in runner.runs] == [7200, 10800]


async def test_manual_and_off_modes_do_not_schedule(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    manual, off = FakeRunner("manual", mode="manual", schedule_interval=10), FakeRunner("off", mode="off")
    m_actor, o_actor = node.actor(manual), node.actor(off)
    async with Supervisor() as supervisor:
        m_actor.start(supervisor, "m")
        o_actor.start(supervisor, "o")
        await trio.sleep(100)
        assert manual.runs == [] and off.runs == []
        assert m_actor.pump_json()["runtime"]["next-run"] is None
        await m_actor.operate("start")
        await m_actor.wait_idle()
        assert len(manual.runs) == 1
        with pytest.raises(PumpOperationError, match="off"):
            await o_actor.operate("start")
    assert o_actor.pump_json()["runtime"]["mode"] == "off"


async def test_run_at_startup_and_wake(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    runner = FakeRunner(schedule_interval=3000, run_at_startup=True)
    actor = node.actor(runner)
    async with running(actor) as supervisor:
        await trio.sleep(1)
        assert len(runner.runs) == 1  # the startup run
        actor.wake()  # a dependency signal
        await trio.sleep(1)
        assert len(runner.runs) == 2
        supervisor.ref("pipe:p").try_send(Wake())  # the same through the mailbox
        await trio.sleep(1)
        assert len(runner.runs) == 3
        await trio.sleep(3000)
        assert len(runner.runs) == 4  # the interval is kept as a backup


async def test_scheduler_kill_switch_keeps_manual_starts(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    runner = FakeRunner(schedule_interval=5)
    actor = node.actor(runner, scheduler_enabled=False)
    async with running(actor):
        await trio.sleep(60)
        assert runner.runs == []
        await actor.operate("start")
        await actor.wait_idle()
    assert len(runner.runs) == 1


async def test_invalid_schedule_is_a_config_error(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    actor = node.actor(FakeRunner(cron_expression="0 12 * * 5#2", mode="sometimes"))
    runtime = actor.pump_json()["runtime"]
    assert runtime["is-valid-config"] is False
    assert [e["elements"] for e in runtime["config-errors"]] == ["pump", "pump.mode"]
    async with running(actor):
        with pytest.raises(PumpOperationError, match="config errors"):
            await actor.operate("start")


# -- start, stop, conflicts ------------------------------------------------------------------------------------


async def test_start_runs_now_and_a_second_start_is_a_conflict(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    runner.block = True
    actor = node.actor(runner)
    async with running(actor):
        pump = await actor.operate("start")
        assert pump["_id"] == "pump:p" and pump["runtime"]["is-running"] is True
        await wait_entered(runner)
        with pytest.raises(PumpConflict) as conflict:
            await actor.operate("start")
        assert conflict.value.pump["runtime"]["is-running"] is True
        with pytest.raises(PumpConflict):
            await actor.run_once()
        with pytest.raises(PumpConflict):
            await actor.operate("update-last-seen", {"last-seen": "5"})
        await actor.operate("stop")
        await actor.wait_idle()
    assert runner.stopped_runs == 1 and len(runner.runs) == 1
    runtime = actor.pump_json()["runtime"]
    assert runtime["is-running"] is False and runtime["success"] is False
    assert runtime["last-message"] == "Pump was stopped"
    assert node.types() == ["pump-started", "pump-failed"]
    assert node.seen[-1]["reason_why_stopped"] == "Pump was stopped"
    assert [e["_id"] for e in node.log()] == ["pump-started", "pump-failed"]


async def test_stop_when_idle_is_a_noop(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    actor = node.actor(FakeRunner(mode="manual"))
    pump = await actor.operate("stop")
    assert pump["runtime"]["is-running"] is False


async def test_stopping_the_actor_asks_the_run_to_stop_and_waits_for_it(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    runner.block = True
    actor = node.actor(runner)
    async with running(actor) as supervisor:
        await actor.operate("start")
        await wait_entered(runner)
        await supervisor.stop("pipe:p")
        assert runner.stopped_runs == 1  # the worker thread finished before the actor was gone
    assert node.types()[-1] == "pump-failed"
    assert node.log()[-1]["event_type"] == "pump-failed"  # the run was logged despite the cancellation


async def test_a_start_right_after_the_actor_is_started_waits_for_it(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    actor = node.actor(runner)
    async with Supervisor() as supervisor:
        actor.start(supervisor)  # as a config upload does; the actor has not run yet
        pump = await actor.operate("start")
        assert pump["runtime"]["is-running"] is True
        await actor.wait_idle()
        assert runner.runs


async def test_start_needs_the_actor_running(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    actor = node.actor(FakeRunner())
    async with running(actor) as supervisor:
        await supervisor.stop("pipe:p")
        with pytest.raises(PumpOperationError, match="not running"):
            await actor.operate("start")


# -- enable / disable -------------------------------------------------------------------------------------------


async def test_disable_is_persisted_across_restart_and_blocks_only_the_scheduler(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(schedule_interval=10)
    actor = node.actor(runner)
    async with running(actor) as supervisor:
        pump = await actor.operate("disable", {"comment": "maintenance"})
        assert pump["runtime"]["is-disabled"] is True and pump["runtime"]["next-run"] is None
        await trio.sleep(100)
        assert runner.runs == []
        await supervisor.stop("pipe:p")
    again = node.actor(runner)  # a new actor (node restart) reads the stored state
    assert again.pump_json()["runtime"]["is-disabled"] is True
    async with running(again):
        await trio.sleep(100)
        assert runner.runs == []
        await again.operate("start")  # a disabled pump can still be started by hand
        await again.wait_idle()
        assert len(runner.runs) == 1
        await again.operate("enable")
        await trio.sleep(10.5)
        assert len(runner.runs) == 2
    assert node.actor(runner).pump_json()["runtime"]["is-disabled"] is False
    events = [e for e in node.drain() if e["type"] in ("pump-disabled", "pump-enabled")]
    assert [(e["type"], e.get("comment")) for e in events] == [("pump-disabled", "maintenance"),
                                                               ("pump-enabled", None)]
    log = {e["_id"]: e for e in node.log()}
    assert log["pump-disabled"]["comment"] == "maintenance" and log["pump-enabled"]["pipe"] == "p"


# -- offsets ---------------------------------------------------------------------------------------------------------


async def test_update_last_seen_sets_and_resets_the_offset(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    runner = FakeRunner(mode="manual")
    actor = node.actor(runner)
    pump = await actor.operate("update-last-seen", {"last-seen": "42"})
    assert runner.offset == 42 and pump["runtime"]["last-seen"] == "42"
    await actor.operate("update-last-seen", {"last-seen": "2024-01-01T00:00:00Z"})
    assert runner.offset == "2024-01-01T00:00:00Z"
    pump = await actor.operate("update-last-seen", {"last-seen": ""})
    assert runner.offset is None and pump["runtime"]["last-seen"] is None
    sets = [e for e in node.drain() if e["type"] == "pump-offset-set"]
    assert [(e["original_pipe_offset"], e["pipe_offset"], e["is_reset"]) for e in sets] == [
        (None, "42", False), ("42", "2024-01-01T00:00:00Z", False), ("2024-01-01T00:00:00Z", None, True)]
    versions = [e for e in node.log() if e["_id"] == "pump-offset-set"]
    assert len(versions) == 3 and versions[-1]["is_reset"] is True and versions[-1]["event_time"]
    with pytest.raises(PumpOperationError, match="last-seen"):
        await actor.operate("update-last-seen", {})


async def test_set_last_seen_to_end(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    runner = FakeRunner(mode="manual")
    pump = await node.actor(runner).operate("set-last-seen-to-end")
    assert runner.offset == 100 and pump["runtime"]["last-seen"] == "100"
    assert node.types()[-1] == "pump-offset-set"


async def test_set_last_seen_to_end_unsupported_by_the_source(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")

    def unsupported() -> DatasetWrite:
        raise PipeRunError("the json source has no end")

    runner.end_offset_write = unsupported  # type: ignore[method-assign]
    actor = node.actor(runner)
    with pytest.raises(PumpOperationError, match="doesn't support the operation 'set-last-seen-to-end'"):
        await actor.operate("set-last-seen-to-end")
    assert actor.pump_json()["runtime"]["is-running"] is False
    await actor.operate("update-last-seen", {"last-seen": "1"})  # not left busy


async def test_disable_set_last_seen_blocks_offset_operations(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    runner.config["disable_set_last_seen"] = True
    actor = node.actor(runner)
    assert "update-last-seen" not in actor.pump_json()["runtime"]["supported-operations"]
    for operation in ("update-last-seen", "set-last-seen-to-end"):
        with pytest.raises(PumpOperationError, match="disable_set_last_seen"):
            await actor.operate(operation, {"last-seen": ""})
    assert runner.offset is None


async def test_unsupported_operation(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    actor = node.actor(FakeRunner())
    with pytest.raises(PumpOperationError, match="doesn't support the operation 'rename-relation'"):
        await actor.operate("rename-relation", {"relation": "x"})
    assert actor.pump_json()["runtime"]["supported-operations"] == [
        "start", "stop", "enable", "disable", "update-last-seen", "set-last-seen-to-end", "start-rescan",
        "reset-rescan", "discard-retries"]


# -- events, the execution log, state ------------------------------------------------------------------------------


async def test_a_run_emits_events_and_writes_the_execution_log(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    actor = node.actor(runner)
    await trio.sleep(5)
    completed = await actor.run_once()
    assert node.types() == ["pump-started", "pump-completed"]
    started = node.seen[0]
    assert started["sync_type"] == "full" and started["start_time"] == "2024-01-01T00:00:05.000000Z"
    assert completed["processed"] == 3 and completed["changes"] == 2 and completed["sync_type"] == "full"
    assert completed["metrics"] == {"entities.changes_last_run": 2, "entities.entities_last_run": 3,
                                    "entities.source_time": 0.25, "entities.transform_time": 0.5,
                                    "entities.sink_time": 0.125, "entities.write_errors_last_run": 0,
                                    "entities.read_errors_last_run": 0}
    await actor.run_once()
    log = node.log()
    assert [e["_id"] for e in log] == ["pump-started", "pump-completed"] * 2  # versions of fixed ids
    second_started, second = log[2], log[3]
    assert second_started["sync_type"] == "incremental" and second_started["pump_definition"] == "pump:p"
    assert second["event_type"] == "pump-completed" and second["pipe"] == "p"
    assert second["pump_started_location"] == second_started["_updated"]
    assert second["sync_type"] == "incremental" and second["entities_succeeded"] == 3
    # at the same clock reading, the second run starts a microsecond after the first: a run id of its own
    assert second["start_time"] == second["end_time"] == "2024-01-01T00:00:05.000001Z"
    assert second["total_time"] == 0.0 and second["metrics"]["entities.changes_last_run"] == 2
    runtime = actor.pump_json()["runtime"]
    assert runtime["success"] is True and runtime["last-run"] == "2024-01-01T00:00:05.000001Z"
    assert runtime["last-seen"] == "6" and runtime["progress"] == {"processed": 3}
    assert runtime["sync-type"] == "incremental" and runtime["execution-dataset"] == "system:pump_execution:p"
    stored = node.store.get("pump", "p")
    assert stored["success"] is True and stored["last_run"] == "2024-01-01T00:00:05.000001Z"


async def test_runs_without_changes_are_not_logged_unless_asked(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    quiet = FakeRunner("quiet", changes=0, mode="manual")
    await node.actor(quiet).run_once()
    assert node.log("quiet") == [] and node.types("quiet") == ["pump-started", "pump-completed"]
    verbose = FakeRunner("verbose", changes=0, mode="manual", log_events_noop_runs=True)
    await node.actor(verbose).run_once()
    assert [e["_id"] for e in node.log("verbose")] == ["pump-started", "pump-completed"]
    by_source = FakeRunner("by-source", changes=0, mode="manual", log_events_noop_runs_changes_only=False)
    await node.actor(by_source).run_once()  # it read 3 entities: not a noop when counting the source
    assert len(node.log("by-source")) == 2


async def test_notification_granularity_forces_a_noop_log(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual", notification_granularity=3600)
    actor = node.actor(runner)
    await actor.run_once()  # changes: logged
    runner.changes = 0
    await trio.sleep(60)
    await actor.run_once()
    assert len(node.log()) == 2
    await trio.sleep(3600)
    await actor.run_once()
    assert len(node.log()) == 4


async def test_a_failing_run_is_logged_as_pump_failed_with_the_offset_unchanged(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    actor = node.actor(runner)
    await actor.operate("update-last-seen", {"last-seen": "7"})
    runner.fail = "the sink rejected an entity"
    failed = await actor.run_once()
    assert failed["type"] == "pump-failed" and runner.offset == 7
    assert failed["original_error_message"] == "the sink rejected an entity"
    log = [e for e in node.log() if e["_id"] == "pump-failed"]
    assert len(log) == 1
    entry = log[0]
    assert entry["reason_why_stopped"] == "Pump failed: the sink rejected an entity"
    assert entry["original_error_message"] == "the sink rejected an entity"
    assert "PipeRunError" in entry["traceback"] and entry["exception_entity"] == {"_id": "bad-one", "x": 1}
    assert entry["sync_type"] == "incremental" and entry["metrics"]["entities.changes_last_run"] == 0
    runtime = actor.pump_json()["runtime"]
    assert runtime["success"] is False and runtime["last-seen"] == "7"
    assert runtime["last-original-error-message"] == "the sink rejected an entity"
    assert runtime["last-message"] == "Pump failed: the sink rejected an entity"


async def test_an_unexpected_engine_error_fails_the_run_not_the_actor(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")

    def broken(**_: Any) -> RunResult:
        raise KeyError("oops")

    runner.run = broken  # type: ignore[method-assign]
    events = EventLog()
    actor = node.actor(runner)
    async with running(actor, events=events):
        await actor.operate("start")
        await actor.wait_idle()
    assert events.kinds() == []
    assert node.log()[-1]["original_error_message"] == "KeyError: 'oops'"


# -- isolation ------------------------------------------------------------------------------------------------------


class BrokenStore:
    """A node store that cannot save: saving the pump state after a run crashes the actor (a failed
    execution-log write does not: the run's outcome is still reported)."""

    def get(self, kind: str, name: str, default: Any = None) -> Any:
        return default

    def put(self, kind: str, name: str, value: Any) -> None:
        raise OSError("disk on fire")


async def test_a_crashing_actor_is_restarted_and_isolated(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    good, bad = FakeRunner("good", schedule_interval=10), FakeRunner("bad", schedule_interval=10)
    events = EventLog()
    bad_actor = Pump(PipeActor(bad, store=BrokenStore(), datasets=node.datasets, bus=node.bus,
                               clock=mock_wall_clock, driver=run_in_thread))
    async with Supervisor(on_event=events) as supervisor:
        node.actor(good).start(supervisor, "good")
        bad_actor.start(supervisor, "bad")
        await trio.sleep(35)
        assert events.kinds()[0] == "actor-crashed" and "disk on fire" in events[0][1]["error"]
        assert supervisor.status("good").state == "running"
        assert len(good.runs) == 3
        assert len(bad.runs) >= 2  # restarted after back-off and scheduled again
        assert bad_actor.pump_json()["runtime"]["is-running"] is False


# -- with the real engine ---------------------------------------------------------------------------------------------


async def test_the_pump_drives_the_real_engine(node: Node, autojump_clock: trio.testing.MockClock) -> None:
    from actors import build_runner

    source = build_runner({"_id": "src", "type": "pipe",
                           "source": {"type": "embedded", "entities": [{"_id": "a", "x": 1}, {"_id": "b"}]}},
                          node.datasets)
    downstream = build_runner({"_id": "down", "type": "pipe", "source": {"type": "dataset", "dataset": "src"}},
                              node.datasets)
    first = node.actor(source, driver=run_pipeline)  # type: ignore[arg-type]
    second = node.actor(downstream, driver=run_pipeline)  # type: ignore[arg-type]
    assert (await first.run_once())["changes"] == 2
    assert (await first.run_once())["changes"] == 0  # a noop: not logged
    assert [e["_id"] for e in node.log("src")] == ["pump-started", "pump-completed"]
    assert (await second.run_once())["sync_type"] == "full"
    assert second.pump_json()["runtime"]["last-seen"] == "1"
    await second.operate("update-last-seen", {"last-seen": ""})
    assert second.pump_json()["runtime"]["last-seen"] is None
    await second.operate("set-last-seen-to-end")
    assert second.pump_json()["runtime"]["last-seen"] == "1"
    assert [e["_id"] for e in node.datasets.open("down").iter_entities()] == ["a", "b"]


class GatedWriters:
    """Writers that hold the n-th write until released (a run caught in the middle)."""

    def __init__(self, datasets: Datasets, hold_at: int) -> None:
        from actors import DatasetWriters

        self.inner = DatasetWriters(datasets)
        self.count = 0
        self.hold_at = hold_at
        self.holding = trio.Event()
        self.release = trio.Event()

    async def apply(self, write: DatasetWrite, *, run_on: Any = None) -> Any:
        self.count += 1
        if self.count == self.hold_at:
            self.holding.set()
            await self.release.wait()
        return await self.inner.apply(write, run_on=run_on)


async def test_the_pump_shows_the_progress_of_a_run_in_progress(node: Node) -> None:
    from actors import build_runner

    build_runner({"_id": "src", "type": "pipe", "source": {"type": "embedded", "entities": [
        {"_id": f"e{i:03}"} for i in range(100)]}}, node.datasets).run()
    runner = build_runner({"_id": "down", "type": "pipe", "batch_size": 10, "pump": {"mode": "manual"},
                           "source": {"type": "dataset", "dataset": "src"}}, node.datasets)
    writers = GatedWriters(node.datasets, hold_at=4)  # the full run's start, then batches 1-3
    one_batch_per_chunk = functools.partial(run_pipeline, chunk_entities=10)  # a write per batch to hold
    actor = Pump(PipeActor(runner, store=node.store, datasets=node.datasets, bus=node.bus, writers=writers,
                           driver=one_batch_per_chunk))
    async with running(actor):
        await actor.operate("start")
        await writers.holding.wait()
        runtime = actor.pump_json()["runtime"]
        assert runtime["is-running"] is True and runtime["sync-type"] == "full"
        assert 30 <= runtime["progress"]["processed"] < 100  # read ahead of the held write, but bounded
        assert runtime["last-seen"] == "19"  # two batches committed
        writers.release.set()
        await actor.wait_idle()
    runtime = actor.pump_json()["runtime"]
    assert runtime["progress"]["processed"] == 100 and runtime["last-seen"] == "99"


# -- populated input and sinks ---------------------------------------------------------------------------------------


async def test_a_run_over_unpopulated_input_completes_as_skipped_and_is_a_noop(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    from actors import build_runner

    with node.datasets.writing("in") as dataset:
        dataset.write([{"_id": "a"}])
    config = {"_id": "p", "type": "pipe", "pump": {"mode": "manual"},
              "source": {"type": "dataset", "dataset": "in", "require_populated_input": True}}
    actor = node.actor(build_runner(config, node.datasets), driver=run_pipeline)
    event = await actor.run_once()
    assert event["type"] == "pump-completed" and "'in'" in event["skipped"] and event["processed"] == 0
    assert node.log() == []  # a skipped run changed nothing: not logged
    assert actor.pump_json()["runtime"]["last-message"] == event["skipped"]
    assert actor.pump_json()["runtime"]["last-seen"] is None and not node.datasets.exists("p")

    verbose = {**config, "pump": {"mode": "manual", "log_events_noop_runs": True}}
    logged = node.actor(build_runner(verbose, node.datasets), driver=run_pipeline)
    await logged.run_once()
    assert [(e["_id"], e.get("skipped", "").startswith("the run was skipped")) for e in node.log()] == [
        ("pump-started", False), ("pump-completed", True)]

    node.datasets.open("in").set_populated(True)
    ran = await actor.run_once()
    assert "skipped" not in ran and ran["processed"] == 1 and ran["changes"] == 1
    assert actor.pump_json()["runtime"]["last-message"] == "Completed"


async def test_a_skipped_scheduled_run_does_not_use_up_a_rescan_turn(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    from actors import build_runner

    with node.datasets.writing("in") as dataset:
        dataset.write([{"_id": "a"}])
    config = {"_id": "p", "type": "pipe", "pump": {"schedule_interval": 10, "rescan_run_count": 2},
              "source": {"type": "dataset", "dataset": "in", "require_populated_input": True}}
    actor = node.actor(build_runner(config, node.datasets), driver=run_pipeline)
    async with running(actor):
        await trio.sleep(25)  # two skipped runs
        assert [e.get("skipped") is not None for e in node.drain() if e["type"] == "pump-completed"] == [True, True]
        assert node.store.get("pump", "p")["scheduled_runs"] == 0
        node.datasets.open("in").set_populated(True)
        await trio.sleep(20)
    completed = [e for e in node.drain() if e["type"] == "pump-completed"]
    assert [e["sync_type"] for e in completed[2:]] == ["full", "full"]  # the first, then the rescan
    assert [e.get("skipped") for e in completed[2:]] == [None, None]


def startup_pipe(pipe_id: str, **pump: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "pump": {"schedule_interval": 3600, **pump},
            "source": {"type": "embedded", "entities": [{"_id": "a"}]}}


async def test_run_at_startup_if_not_populated_runs_only_while_the_sink_is_unpopulated(
    node: Node, autojump_clock: trio.testing.MockClock
) -> None:
    from actors import build_runner

    seen = 0

    def started() -> list[str]:
        """The origins of the runs started since the last call."""
        nonlocal seen
        events = node.drain()
        new, seen = events[seen:], len(events)
        return [e["origin"] for e in new if e["type"] == "pump-started"]

    config = startup_pipe("p", run_at_startup_if_not_populated=True)
    actor = node.actor(build_runner(config, node.datasets), driver=run_pipeline)
    async with running(actor):
        await trio.sleep(1)
    assert started() == ["startup"] and node.datasets.open("p").populated
    again = node.actor(build_runner(config, node.datasets), driver=run_pipeline)  # the next node start
    async with running(again):
        await trio.sleep(1)
    assert started() == []

    node.datasets.open("p").set_populated(False)
    plain = node.actor(build_runner(startup_pipe("p"), node.datasets), driver=run_pipeline)
    async with running(plain):
        await trio.sleep(1)
    assert started() == []  # not asked for

    by_default = node.actor(build_runner(startup_pipe("p"), node.datasets,
                                         {"global_defaults": {"run_at_startup_if_not_populated": True}}),
                            driver=run_pipeline)
    async with running(by_default):
        await trio.sleep(1)
    assert started() == ["startup"]  # the node's global default
    overridden = node.actor(build_runner(startup_pipe("p", run_at_startup_if_not_populated=False), node.datasets,
                                         {"global_defaults": {"run_at_startup_if_not_populated": True}}),
                            driver=run_pipeline)
    node.datasets.open("p").set_populated(False)
    async with running(overridden):
        await trio.sleep(1)
    assert started() == []  # the pump's own setting wins


# -- execution-log retention ------------------------------------------------------------------------------------------


def test_log_retention_comes_from_the_pipe_or_the_global_defaults_and_is_at_least_30_days() -> None:
    from actors._retention import log_retention_hours

    assert log_retention_hours({}, {}, "p") == 720
    assert log_retention_hours({"compaction": {"time_threshold_hours_pump": 1000}}, {}, "p") == 1000
    assert log_retention_hours({"compaction": {"time_threshold_hours_pump": 24}}, {}, "p") == 720
    assert log_retention_hours({}, {"global_defaults": {"compaction_time_threshold_hours_pump": 2000}}, "p") == 2000
    with pytest.raises(ConfigError) as caught:
        log_retention_hours({"compaction": {"time_threshold_hours_pump": "long"}}, {}, "p")
    assert caught.value.where == "pipe p: compaction.time_threshold_hours_pump"


async def test_the_execution_log_is_trimmed_by_time_keeping_the_latest_of_each_event(node: Node) -> None:
    now = [datetime.now(UTC)]
    runner = FakeRunner(mode="manual")
    actor = Pump(PipeActor(runner, store=node.store, datasets=node.datasets, bus=node.bus, clock=lambda: now[0],
                           driver=run_in_thread), node.supervisor)
    await actor.run_once()
    await actor.run_once()
    now[0] += timedelta(days=10)
    await actor.run_once()
    assert len(node.log()) == 6  # nothing older than 30 days yet
    now[0] += timedelta(days=25)  # the first runs are 35 days old now
    await actor.run_once()
    log = node.log()
    assert [e["_id"] for e in log] == ["pump-started", "pump-completed"]  # the latest run's, nothing older
    assert log[1]["start_time"] == iso_time(now[0])
