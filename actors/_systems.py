"""The SystemActor: owns one system's resources (HTTP client, SQL pool) while it runs under a supervisor.

It opens the :class:`~actors.components.System` when it starts, keeps it open while it runs, and closes it
when it is stopped, cancelled or crashes (the supervisor then restarts it, which opens it again). Its
``limiter`` (``worker_threads`` tokens, node-spec 10.0) caps how many pipes run against the system at once;
it lives as long as the actor, across restarts. Pipes use ``async with actor.using() as system:``.

Mailbox messages (frozen dataclasses): :class:`Reload` closes and reopens the resources; anything else is a
bug and crashes it. The actor publishes a :class:`SystemStatus` snapshot on every change of state (``status``:
the registry and the API read it without a round trip).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import trio

from .components import System

__all__ = ["Reload", "SystemActor", "SystemStatus"]

CLOSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Reload:
    """Close the system's clients and pools and open them anew."""


@dataclass(frozen=True)
class SystemStatus:
    """What a system actor shows of itself: ``state`` is starting, open, closing, stopped or crashed."""

    state: str = "starting"
    opens: int = 0
    last_error: str | None = None


class SystemActor:
    """Runs one system: ``run(mailbox)`` for the supervisor, ``using()`` for pipes, ``status_json()`` for the API."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.limiter = trio.CapacityLimiter(system.worker_threads)
        self.status = SystemStatus()
        self._open = trio.Event()

    def _set(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)

    @property
    def id(self) -> str:
        return self.system.id

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        try:
            await self._open_system()
            async for message in mailbox:
                if type(message) is Reload:
                    await self._close_system()
                    await self._open_system()
                else:
                    raise TypeError(f"system actor '{self.id}' got an unknown message {type(message).__name__}")
            self._set(state="stopped")
        except BaseException as exc:
            self._set(state="stopped" if isinstance(exc, trio.Cancelled) else "crashed")
            if isinstance(exc, Exception):
                self._set(last_error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            final = self.status.state
            await self._close_system()
            self._set(state=final)

    async def _open_system(self) -> None:
        self._set(state="starting")
        await self.system.open()
        self._set(state="open", opens=self.status.opens + 1)
        self._open.set()

    async def _close_system(self) -> None:
        """Close the resources, also while being cancelled (shielded, bounded in time)."""
        if self._open.is_set():
            self._open = trio.Event()
        self._set(state="closing")
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            await self.system.close()

    async def wait_open(self) -> System:
        """Wait until the system's resources are open; returns the system."""
        await self._open.wait()
        return self.system

    @asynccontextmanager
    async def using(self) -> AsyncIterator[System]:
        """Hold one of the system's ``worker_threads`` slots while the system is open."""
        async with self.limiter:
            yield await self.wait_open()

    def status_json(self) -> dict[str, Any]:
        """The ``runtime`` part of the API's system object."""
        return {
            "is-valid-config": True,
            "config-errors": [],
            "state": self.status.state,
            "worker-threads": self.limiter.total_tokens,
            "pipes-running": self.limiter.borrowed_tokens,
            "pipes-waiting": self.limiter.statistics().tasks_waiting,
            "opens": self.status.opens,
            "last-error": self.status.last_error,
            "system": self.system.status(),
        }
