"""Test doubles for the actor runtime. Drive time with pytest-trio's ``autojump_clock`` (a MockClock), or
with :func:`thread_aware_mock_clock` when the code under test runs work in ``trio.to_thread`` workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

__all__ = ["EventLog", "RecordingActor", "ScriptedCrashActor", "autojump_unless_threads_run", "run_in_thread",
           "thread_aware_mock_clock"]


def autojump_unless_threads_run(clock: trio.testing.MockClock) -> trio.testing.MockClock:
    """Make an autojumping ``clock`` stand still while worker threads run; returns the same clock.

    A plain autojump clock counts a task waiting for ``trio.to_thread`` as idle and jumps to the next
    deadline in the middle of the thread's work; with this one, work in a worker thread takes no virtual
    time. (``MockClock`` is final, so this patches the instance rather than subclassing.) Only threads
    holding a token of the default thread limiter count.
    """
    jump = clock._autojump

    def autojump() -> None:
        if trio.to_thread.current_default_thread_limiter().statistics().borrowed_tokens:
            time.sleep(0.0002)  # a worker thread is busy: don't jump, let it have the GIL
            return
        jump()

    clock._autojump = autojump  # type: ignore[method-assign]
    return clock


def thread_aware_mock_clock(autojump_threshold: float = 0) -> trio.testing.MockClock:
    """A new autojumping ``MockClock`` that does not jump while worker threads run (see
    :func:`autojump_unless_threads_run`); pytest-trio's ``autojump_clock`` uses threshold 0."""
    return autojump_unless_threads_run(trio.testing.MockClock(autojump_threshold=autojump_threshold))


class RecordingActor:
    """Appends every message it receives to ``received`` (shared across restarts)."""

    def __init__(self, received: list[Any]) -> None:
        self.received = received

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for message in mailbox:
            self.received.append(message)


class ScriptedCrashActor:
    """Records messages and raises on the message ``"crash"``."""

    def __init__(self, received: list[Any]) -> None:
        self.received = received

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for message in mailbox:
            if message == "crash":
                raise RuntimeError("asked to crash")
            self.received.append(message)


class EventLog(list[tuple[str, dict[str, Any]]]):
    """An ``on_event`` sink that keeps the events."""

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.append((kind, data))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self]


async def run_in_thread(runner: Any, *, kind: str, writers: Any, should_stop: Callable[[], bool],
                        on_begin: Callable[[Any], None] | None = None) -> Any:
    """A pump driver for runner doubles: ``runner.run(kind=..., should_stop=...)`` in a worker thread (the
    real driver is :func:`actors.run_pipeline`)."""
    return await trio.to_thread.run_sync(lambda: runner.run(kind=kind, should_stop=should_stop))
