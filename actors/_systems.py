"""The SystemActor: owns one system's resources (HTTP client, SQL pool) while it runs under a supervisor.

It opens the :class:`~actors.components.System` when it starts, keeps it open while it runs, and closes it
when it is stopped, cancelled or crashes (the supervisor then restarts it, which opens it again). Its
``limiter`` (``worker_threads`` tokens, node-spec 10.0) caps how many pipes run against the system at once;
it lives as long as the actor, across restarts. Pipes use ``async with actor.using() as system:``.

Mailbox messages: ``"reopen"`` closes and reopens the resources; anything else is a bug and crashes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .components import System

__all__ = ["SystemActor"]

CLOSE_TIMEOUT = 10.0


class SystemActor:
    """Runs one system: ``run(mailbox)`` for the supervisor, ``using()`` for pipes, ``status_json()`` for the API."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.limiter = trio.CapacityLimiter(system.worker_threads)
        self.state = "starting"  # starting, open, closing, stopped, crashed
        self.opens = 0
        self.last_error: str | None = None
        self._open = trio.Event()

    @property
    def id(self) -> str:
        return self.system.id

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        try:
            await self._open_system()
            async for message in mailbox:
                if message == "reopen":
                    await self._close_system()
                    await self._open_system()
                else:
                    raise TypeError(f"system actor '{self.id}' got an unknown message {type(message).__name__}")
            self.state = "stopped"
        except BaseException as exc:
            self.state = "stopped" if isinstance(exc, trio.Cancelled) else "crashed"
            if isinstance(exc, Exception):
                self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            final = self.state
            await self._close_system()
            self.state = final

    async def _open_system(self) -> None:
        self.state = "starting"
        await self.system.open()
        self.opens += 1
        self.state = "open"
        self._open.set()

    async def _close_system(self) -> None:
        """Close the resources, also while being cancelled (shielded, bounded in time)."""
        if self._open.is_set():
            self._open = trio.Event()
        self.state = "closing"
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
            "state": self.state,
            "worker-threads": self.limiter.total_tokens,
            "pipes-running": self.limiter.borrowed_tokens,
            "pipes-waiting": self.limiter.statistics().tasks_waiting,
            "opens": self.opens,
            "last-error": self.last_error,
            "system": self.system.status(),
        }
