"""Test doubles for the actor runtime. Drive time with pytest-trio's ``autojump_clock`` (a MockClock)."""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["EventLog", "RecordingActor", "ScriptedCrashActor"]


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
