"""The actors' message protocol: requests and their one-shot replies, refusals, and the pipe actor's messages."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

import storage
from actors import (
    ActorUnavailable,
    Datasets,
    EventBus,
    HoldSchedule,
    Operate,
    PipeActor,
    PipeRef,
    PumpConflict,
    PumpOperationError,
    Request,
    RestartPolicy,
    RunOnce,
    Stop,
    StopScheduling,
    Supervisor,
    WaitIdle,
    Wake,
    start_pipe,
)
from actors.testing import FakeRunner, run_in_thread, thread_aware_mock_clock


@dataclasses.dataclass(frozen=True)
class Double(Request):
    value: int


@dataclasses.dataclass(frozen=True)
class Crash:
    pass


class Doubler:
    """Answers Double with twice its value (a negative one with an error); crashes on Crash."""

    def __init__(self) -> None:
        self.answered = 0

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for message in mailbox:
            if isinstance(message, Crash):
                raise RuntimeError("asked to crash")
            if not message.reply.take():
                continue
            self.answered += 1
            if message.value < 0:
                message.reply.fail(ValueError(f"negative: {message.value}"))
            else:
                message.reply.send(2 * message.value)


EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
FAST = RestartPolicy(initial=0.01, maximum=0.01, max_restarts=1, window=60)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return thread_aware_mock_clock()


async def test_a_request_is_answered_through_its_reply() -> None:
    async with Supervisor() as supervisor:
        ref = supervisor.start("doubler", Doubler)
        assert await ref.ask(Double(21)) == 42
        with pytest.raises(ValueError, match="negative: -1"):
            await ref.ask(Double(-1))


def test_messages_are_frozen_and_their_replies_are_their_own() -> None:
    first, second = Double(1), Double(1)
    assert first == second and first.reply is not second.reply  # the reply takes no part in equality
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.value = 2  # type: ignore[misc]
    operate = Operate("start", {"user": "u"})
    assert (operate.op, dict(operate.params)) == ("start", {"user": "u"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        operate.op = "stop"  # type: ignore[misc]
    assert RunOnce().kind == "auto" and RunOnce().origin == "api" and HoldSchedule(True).held is True


async def test_a_stopped_actor_refuses_requests_queued_and_later() -> None:
    async with Supervisor() as supervisor:
        never = trio.Event()

        class Sleeper:
            async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
                await never.wait()

        ref = supervisor.start("sleeper", Sleeper)
        queued = Double(1)
        await ref.send(queued)  # never taken
        await supervisor.stop("sleeper")
        with pytest.raises(ActorUnavailable, match="has stopped"):
            await queued.reply.receive()
        with pytest.raises(ActorUnavailable, match="has stopped"):
            await ref.ask(Double(2))
        assert await ref.tell(Wake()) is False and ref.try_send(Wake()) is False


async def test_a_failed_actor_refuses_requests(autojump_clock: trio.testing.MockClock) -> None:
    async with Supervisor(policy=FAST) as supervisor:
        ref = supervisor.start("doubler", Doubler)
        await ref.send(Crash())
        await trio.sleep(1)
        await ref.send(Crash())  # the second crash within the window: given up on
        await trio.sleep(1)
        assert supervisor.status("doubler").state == "failed"
        with pytest.raises(ActorUnavailable, match="has failed"):
            await ref.ask(Double(1))


async def test_a_request_not_taken_in_time_is_withdrawn_and_never_done(autojump_clock: trio.testing.MockClock) -> None:
    actor = Doubler()
    async with Supervisor(policy=RestartPolicy(initial=30, max_restarts=5)) as supervisor:
        ref = supervisor.start("doubler", lambda: actor)
        await ref.send(Crash())  # restarting for 30 seconds
        with pytest.raises(ActorUnavailable, match="restarting"):
            await ref.ask(Double(1), accept_within=5)
        await trio.sleep(60)  # restarted: it skips the withdrawn request
        assert actor.answered == 0
        assert await ref.ask(Double(2), accept_within=5) == 4 and actor.answered == 1


# -- the pipe actor's messages ---------------------------------------------------------------------------------


class Setting:
    def __init__(self, root: Path) -> None:
        self.store = storage.NodeStore(root / "node")
        self.datasets = Datasets(root / "data")
        self.bus = EventBus()
        self.supervisor: Supervisor | None = None

    def start(self, runner: FakeRunner, **options: Any) -> tuple[PipeActor, PipeRef]:
        assert self.supervisor is not None
        actor = PipeActor(runner, store=self.store, datasets=self.datasets, bus=self.bus, driver=run_in_thread,
                          clock=lambda: EPOCH + timedelta(seconds=trio.current_time()), **options)
        return actor, start_pipe(self.supervisor, f"pipe:{runner.pipe_id}", actor)


@pytest.fixture
async def setting(tmp_path: Path) -> AsyncIterator[Setting]:
    result = Setting(tmp_path)
    async with Supervisor() as supervisor:
        result.supervisor = supervisor
        yield result
    result.datasets.close_all()
    result.store.close()


async def test_operate_answers_the_status_after_the_operation_which_the_ref_shows_too(
    setting: Setting, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    _actor, ref = setting.start(runner)
    assert ref.status.disabled is False and ref.status.pipe_id == "p"
    status = await ref.operate("disable", {"comment": "maintenance"})
    assert status.disabled is True and status.disabled_comment == "maintenance"
    assert ref.status is status  # published: read without a round trip
    assert ref.pump_json()["runtime"]["is-disabled"] is True
    with pytest.raises(PumpOperationError, match="doesn't support the operation 'fly'"):
        await ref.operate("fly")


async def test_claims_follow_the_mailbox_order_and_a_stop_is_not_queued_behind_the_run(
    setting: Setting, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    runner.block = True
    _actor, ref = setting.start(runner)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ref.operate, "start")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(PumpConflict):
            await ref.run_once()  # sent after the start: the pump is claimed, whatever the run is doing
        assert ref.status.running is True and ref.status.busy == "run"
        await trio.to_thread.run_sync(runner.entered.wait)
        await ref.stop()  # handled while the run goes on
        await ref.wait_idle()
    assert runner.stopped_runs == 1 and ref.status.running is False
    assert ref.status.last_message == "Pump was stopped"


async def test_run_once_answers_the_runs_event_and_progress_is_published(
    setting: Setting, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(mode="manual")
    _actor, ref = setting.start(runner)
    event = await ref.run_once("full", origin="run-all-pipes", user="u")
    assert event["type"] == "pump-completed" and event["processed"] == 3 and event["sync_type"] == "full"
    assert ref.status.success is True and ref.status.processed == 3 and ref.status.run is None
    assert ref.pump_json()["runtime"]["last-seen"] == "3"  # the runner's offset, read when rendered


async def test_hold_schedule_and_stop_scheduling_stop_scheduled_and_signalled_runs(
    setting: Setting, autojump_clock: trio.testing.MockClock
) -> None:
    runner = FakeRunner(schedule_interval=10)
    _actor, ref = setting.start(runner)
    await trio.sleep(15)
    assert len(runner.runs) == 1
    assert ref.notify(HoldSchedule(True))
    await ref.wait_idle()  # answered after the notice before it was handled (mailbox order)
    assert ref.status.next_run is None
    await trio.sleep(30)
    assert ref.notify(Wake())  # a signal while held is dropped
    await trio.sleep(1)
    assert len(runner.runs) == 1
    await ref.run_once()  # the run-all scheduler still runs it
    assert len(runner.runs) == 2
    assert ref.notify(HoldSchedule(False))
    await trio.sleep(11)
    assert len(runner.runs) == 3
    await ref.tell(StopScheduling())
    await trio.sleep(60)
    assert len(runner.runs) == 3 and ref.status.next_run is None
    await ref.operate("start")  # a start by hand still works
    await ref.wait_idle()
    assert len(runner.runs) == 4


async def test_a_pipe_actor_answers_a_request_it_does_not_know_with_an_error(
    setting: Setting, autojump_clock: trio.testing.MockClock
) -> None:
    _actor, ref = setting.start(FakeRunner(mode="manual"))
    with pytest.raises(TypeError, match="takes no Double"):
        await ref._ref.ask(Double(1))
    assert ref.notify(Stop()) and ref.notify(Wake())  # notices that find nothing to do are no errors
    await ref.wait_idle()
    assert (await ref.operate("stop")).running is False


async def test_requests_to_a_stopped_pipe_actor(setting: Setting, autojump_clock: trio.testing.MockClock) -> None:
    assert setting.supervisor is not None
    _actor, ref = setting.start(FakeRunner(mode="manual"))
    await setting.supervisor.stop("pipe:p")
    with pytest.raises(PumpOperationError, match="not running"):
        await ref.operate("enable")
    with pytest.raises(ActorUnavailable):
        await ref.run_once()
    await ref.wait_idle()  # a stopped pump is idle
    assert isinstance(WaitIdle(), Request)
