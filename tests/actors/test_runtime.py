"""The actor runtime: mailboxes, restarts with back-off, giving up, isolation, stopping."""

from __future__ import annotations

import pytest
import trio

from actors import RestartPolicy, Supervisor
from actors.testing import EventLog, RecordingActor, ScriptedCrashActor


async def test_messages_reach_the_actor_in_order(autojump_clock: trio.testing.MockClock) -> None:
    received: list[int] = []
    async with Supervisor() as supervisor:
        ref = supervisor.start("rec", lambda: RecordingActor(received))
        for i in range(5):
            await ref.send(i)
        await trio.sleep(1)
        assert received == [0, 1, 2, 3, 4]
        assert supervisor.status("rec").state == "running"


async def test_a_crashed_actor_restarts_after_back_off_and_keeps_its_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: list[str] = []
    events = EventLog()
    policy = RestartPolicy(initial=2.0, factor=2.0, maximum=10.0, max_restarts=5, window=100.0)
    async with Supervisor(policy=policy, on_event=events) as supervisor:
        ref = supervisor.start("c", lambda: ScriptedCrashActor(received))
        await ref.send("crash")
        await ref.send("after")
        started = trio.current_time()
        while received != ["after"]:
            await trio.sleep(0.1)
        assert trio.current_time() - started == pytest.approx(2.0, abs=0.2)
        status = supervisor.status("c")
        assert status.restarts == 1 and status.state == "running"
        assert status.last_error == "RuntimeError: asked to crash"
        assert events.kinds() == ["actor-crashed", "actor-restarted"]
        assert events[1][1] == {"actor": "c", "restarts": 1, "error": "RuntimeError: asked to crash"}


async def test_too_many_restarts_mark_the_actor_failed_and_siblings_keep_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    crashing: list[str] = []
    healthy: list[str] = []
    events = EventLog()
    policy = RestartPolicy(initial=1.0, factor=2.0, maximum=4.0, max_restarts=3, window=1000.0)
    async with Supervisor(policy=policy, on_event=events) as supervisor:
        bad = supervisor.start("bad", lambda: ScriptedCrashActor(crashing))
        good = supervisor.start("good", lambda: RecordingActor(healthy))
        for _ in range(4):
            await bad.send("crash")
        await trio.sleep(60)
        assert supervisor.status("bad").state == "failed"
        assert supervisor.status("bad").restarts == 3
        assert events.kinds().count("actor-crashed") == 4 and events.kinds()[-1] == "actor-failed"
        await good.send("still here")
        await trio.sleep(1)
        assert healthy == ["still here"]
        assert bad.try_send("x") is True  # the mailbox stays open while failed
        await supervisor.stop("bad")
        assert "bad" not in supervisor


async def test_back_off_grows_exponentially_up_to_the_maximum() -> None:
    policy = RestartPolicy(initial=0.5, factor=2.0, maximum=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_stop_cancels_the_actor_and_a_name_can_be_reused(autojump_clock: trio.testing.MockClock) -> None:
    received: list[str] = []
    async with Supervisor() as supervisor:
        supervisor.start("a", lambda: RecordingActor(received))
        with pytest.raises(ValueError, match="already running"):
            supervisor.start("a", lambda: RecordingActor(received))
        await supervisor.stop("a")
        ref = supervisor.start("a", lambda: RecordingActor(received))
        await ref.send("again")
        await trio.sleep(1)
        assert received == ["again"]


async def test_leaving_the_supervisor_cancels_every_child(autojump_clock: trio.testing.MockClock) -> None:
    received: list[str] = []
    async with Supervisor() as supervisor:
        supervisor.start("a", lambda: RecordingActor(received))
        supervisor.start("b", lambda: RecordingActor(received))
    assert all(s.state == "stopped" for s in supervisor.status().values())
