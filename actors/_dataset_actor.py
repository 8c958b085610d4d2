"""Dataset actors: the single writer of each dataset in the node.

A :class:`DatasetActor` owns the writes to one dataset. Writers (pipe runs, pump logs, offset changes)
send it :class:`~actors.DatasetWrite` values and wait for the outcome; it applies them in arrival order in
a worker thread under the dataset's lock, several queued writes per thread hop, each its own LevelDB
batch, and then announces the commit (the node wakes the pipes that read the dataset). A write that fails
fails only its sender. When the dataset cannot be opened (damaged, or no room to recover its log) each write
gets that error and the actor goes on; every write taken from the mailbox is answered. A sender may offer its
own thread (``run_on``): a pipe run does, so that its batch is encoded and hashed on the thread (and core)
that produced it; the actor still decides when.

:class:`DatasetWriters` is the node's entry point: ``await writers.apply(write)`` starts the dataset's
actor under the supervisor on first use. Without a supervisor (tests, tools) it applies writes in a
worker thread under the lock, the same single-writer guarantee without the actor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from itertools import groupby
from typing import Any

import trio

from ._datasets import Datasets, DatasetWrite
from ._runtime import ActorRef, Supervisor

__all__ = ["DatasetActor", "DatasetWriters", "RunOn", "WriterClosed"]

RunOn = Callable[..., Awaitable[Any]]
"""Runs ``function(*args)`` on some thread and returns its result, like ``trio.to_thread.run_sync``."""

MAX_WRITES_PER_HOP = 16  # queued writes applied in one worker-thread call


class WriterClosed(RuntimeError):
    """The dataset's writer was closed (the dataset is being removed) before the write was applied."""


class _Request:
    __slots__ = ("answered", "done", "error", "run_on", "value", "write")

    def __init__(self, write: DatasetWrite, run_on: RunOn | None) -> None:
        self.write = write
        self.run_on = run_on
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.answered = False

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class DatasetActor:
    """Applies the writes sent to one dataset, in order (see the module docstring)."""

    def __init__(self, name: str, datasets: Datasets, on_commit: Callable[[str], None] | None = None) -> None:
        self.name = name
        self._datasets = datasets
        self._on_commit = on_commit

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        try:
            await self._serve(mailbox)
        except trio.Cancelled:  # stopped for good (a crash restarts with the mailbox as it is)
            _refuse_waiting(mailbox, self.name)
            raise

    async def _serve(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for first in mailbox:
            requests = [first]
            while len(requests) < MAX_WRITES_PER_HOP:
                try:
                    requests.append(mailbox.receive_nowait())
                except trio.WouldBlock:
                    break
            grew = False
            with trio.CancelScope(shield=True):  # a write taken from the mailbox is always answered
                try:
                    for run_on, group in groupby(requests, key=lambda r: r.run_on):
                        grew |= await (run_on or trio.to_thread.run_sync)(_apply, self._datasets, self.name,
                                                                          list(group))
                except Exception as exc:  # the dataset could not be opened (damaged, no room): each write fails
                    for request in requests:
                        if not request.answered:
                            request.error = exc
                finally:
                    for request in requests:
                        request.done.set()
            if grew and self._on_commit is not None:
                self._on_commit(self.name)


def _refuse_waiting(mailbox: trio.MemoryReceiveChannel[Any], name: str) -> None:
    """Answer the writes still queued with WriterClosed and close the mailbox, so that no writer waits for an
    actor that has stopped (later sends fail at once)."""
    while True:
        try:
            request = mailbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            break
        request.error = WriterClosed(f"the writer of dataset '{name}' has stopped")
        request.done.set()
    mailbox.close()


def _apply(datasets: Datasets, name: str, requests: list[_Request]) -> bool:
    """Apply the writes in order under the dataset's lock; True if the dataset got new versions."""
    with datasets.writing(name) as dataset:
        before = dataset.next_offset
        for request in requests:
            try:
                with dataset.writes():  # LevelDB's errors as storage errors; refused after a failed write
                    request.value = request.write.apply(dataset)
            except Exception as exc:  # the sender's failure, not the writer's
                request.error = exc
            request.answered = True
        return dataset.next_offset != before


class DatasetWriters:
    """The node's dataset actors, one per dataset written, started on first use (see the module docstring)."""

    def __init__(self, datasets: Datasets, *, on_commit: Callable[[str], None] | None = None,
                 mailbox_size: int = 8) -> None:
        self.datasets = datasets
        self._on_commit = on_commit
        self._mailbox_size = mailbox_size
        self._supervisor: Supervisor | None = None
        self._refs: dict[str, ActorRef] = {}
        self._pending: Counter[str] = Counter()
        self._idle: dict[str, trio.Event] = {}
        self._closing: set[str] = set()

    def attach(self, supervisor: Supervisor) -> None:
        """Run dataset actors under ``supervisor`` from now on."""
        self._supervisor = supervisor

    @staticmethod
    def actor_name(dataset: str) -> str:
        return f"dataset:{dataset}"

    def running(self) -> list[str]:
        """The datasets that have a running actor."""
        return sorted(self._refs)

    async def apply(self, write: DatasetWrite, *, run_on: RunOn | None = None) -> Any:
        """Have the dataset's single writer apply ``write``; returns what it returned, raises what it raised.

        ``run_on`` offers the sender's thread for applying it (see the module docstring)."""
        name = write.dataset
        if name in self._closing:
            raise WriterClosed(f"dataset '{name}' is being removed")
        request = _Request(write, run_on)
        if self._supervisor is None:
            if await (run_on or trio.to_thread.run_sync)(_apply, self.datasets, name, [request]) \
                    and self._on_commit is not None:
                self._on_commit(name)
            return request.outcome()
        self._pending[name] += 1
        try:
            try:
                await self._ref(name).send(request)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise WriterClosed(f"the writer of dataset '{name}' has stopped") from None
            await request.done.wait()
        finally:
            self._pending[name] -= 1
            if not self._pending[name]:
                del self._pending[name]
                idle = self._idle.pop(name, None)
                if idle is not None:
                    idle.set()
        return request.outcome()

    def _ref(self, name: str) -> ActorRef:
        ref = self._refs.get(name)
        if ref is None:
            assert self._supervisor is not None
            actor_name = self.actor_name(name)
            if actor_name in self._supervisor:  # left over from a close that was cancelled
                ref = self._supervisor.ref(actor_name)
            else:
                actor = DatasetActor(name, self.datasets, self._on_commit)
                ref = self._supervisor.start(actor_name, lambda: actor, mailbox_size=self._mailbox_size)
            self._refs[name] = ref
        return ref

    async def close(self, name: str) -> None:
        """Stop the dataset's actor once the writes already sent are applied; new writes get WriterClosed
        until this returns (then the dataset may be deleted)."""
        self._closing.add(name)
        try:
            await self._stop(name)
        finally:
            self._closing.discard(name)

    async def delete(self, name: str) -> None:
        """Close the dataset's writer (as :meth:`close`) and remove the dataset with all its data before the
        writer takes writes again: a write sent meanwhile gets WriterClosed; a later one creates the dataset
        anew (with a new generation)."""
        self._closing.add(name)
        try:
            await self._stop(name)
            await trio.to_thread.run_sync(self.datasets.delete, name)
        finally:
            self._closing.discard(name)

    async def _stop(self, name: str) -> None:
        while self._pending.get(name):
            idle = self._idle.setdefault(name, trio.Event())
            await idle.wait()
        if self._refs.pop(name, None) is not None and self._supervisor is not None:
            await self._supervisor.stop(self.actor_name(name))
