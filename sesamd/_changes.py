"""``dataset-changed`` events, coalesced: at most one per dataset per window (sans-IO core + a Trio flush task).

A dataset written in batches commits many times a second (40 a second for a 40,000 entities/s pump of
1000-entity batches, ten times that at Sesam's default ``batch_size`` of 100), and every event reaches
every websocket subscriber as a frame of its own. So the first commit after a quiet window is published
at once, and the later commits of a window together at its end, as one event carrying the newest end
offset, the number of ``commits`` it covers, the ``time`` of the newest one and the ``first_commit_time``.
A subscriber learns of a commit at most one window late; measured in ``scripts/bench/api.py`` (commit ->
subscriber latency from the first commit covered, and pump throughput with 50 subscribers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from actors._events import iso_now

__all__ = ["DatasetChanges"]

WINDOW = 0.05  # seconds


@dataclass
class _Pending:
    offset: int | None
    pipe: str | None
    commits: int
    time: str  # of the newest commit covered
    first: str  # of the oldest


class DatasetChanges:
    """Collects commits and publishes ``dataset-changed`` events through ``publish``; :meth:`run` (a task of
    the node's) publishes what a window held back. ``clock`` gives seconds (Trio's clock by default)."""

    def __init__(self, publish: Callable[[dict[str, Any]], None], *, window: float = WINDOW,
                 clock: Callable[[], float] = trio.current_time, now_text: Callable[[], str] = iso_now) -> None:
        self._publish = publish
        self.window = window
        self._clock = clock
        self._now_text = now_text
        self._published: dict[str, float] = {}  # dataset -> when its last event went out
        self._pending: dict[str, _Pending] = {}
        self._wake = trio.Event()

    def committed(self, dataset: str, offset: int | None, pipe: str | None) -> None:
        """A commit that added versions to ``dataset`` (its new last offset, and the pipe writing it)."""
        now = self._clock()
        pending = self._pending.get(dataset)
        if pending is None and now >= self._published.get(dataset, -math.inf) + self.window:
            stamp = self._now_text()
            self._emit(dataset, _Pending(offset, pipe, 1, stamp, stamp), now)
            return
        if pending is None:
            stamp = self._now_text()
            self._pending[dataset] = _Pending(offset, pipe, 1, stamp, stamp)
            self._wake.set()
        else:
            pending.offset, pending.pipe, pending.time = offset, pipe, self._now_text()
            pending.commits += 1

    def run_ended(self, event: dict[str, Any]) -> None:
        """A bus listener: a run's end (``pump-completed``, ``pump-failed``) first publishes what is held back of
        the datasets that pipe writes, so its last commits come before it. Listen before the feed does."""
        if event.get("type") not in ("pump-completed", "pump-failed"):
            return
        now = self._clock()
        for dataset, pending in list(self._pending.items()):
            if pending.pipe == event.get("pipe"):
                self._emit(dataset, self._pending.pop(dataset), now)

    def due(self) -> float:
        """When the earliest held-back event is due (inf: none is)."""
        return min((self._published.get(d, -math.inf) + self.window for d in self._pending), default=math.inf)

    def flush(self, *, everything: bool = False) -> None:
        """Publish the held-back events whose window has passed (with ``everything``, all of them)."""
        now = self._clock()
        for dataset in list(self._pending):
            if everything or now >= self._published.get(dataset, -math.inf) + self.window:
                self._emit(dataset, self._pending.pop(dataset), now)

    def _emit(self, dataset: str, pending: _Pending, now: float) -> None:
        self._published[dataset] = now
        self._publish({"type": "dataset-changed", "dataset": dataset, "offset": pending.offset,
                       "pipe": pending.pipe, "commits": pending.commits, "time": pending.time,
                       "first_commit_time": pending.first})

    async def run(self) -> None:
        """Publish held-back events when they are due, until cancelled (then publish the rest)."""
        try:
            while True:
                self._wake = trio.Event()
                with trio.move_on_at(self.due()):
                    await self._wake.wait()  # (a newly held-back dataset may be due before the others)
                self.flush()
        finally:
            self.flush(everything=True)
