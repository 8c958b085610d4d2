"""The event bus: in-process publish/subscribe of event dicts (pump and log events).

:meth:`EventBus.publish` is synchronous and never blocks, so pumps can emit from any Trio task. Each
subscriber has a bounded buffer; when it is full the oldest events are dropped and the subscriber's next
read yields ``{"type": "lagged", "dropped": n}`` before the events that are left. A slow subscriber (a
websocket client) therefore never slows a publisher. Publish from the Trio thread only (worker threads
hand their results back first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import trio

__all__ = ["EventBus", "EventFilter", "Subscription", "iso_now", "iso_time"]

Event = dict[str, Any]
EventFilter = Callable[[Event], bool] | Mapping[str, Any]


def iso_time(moment: datetime) -> str:
    """ISO 8601 UTC text with microseconds and a ``Z``: ``2024-01-31T12:00:00.000000Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_now() -> str:
    return iso_time(datetime.now(UTC))


def _matcher(spec: EventFilter | None) -> Callable[[Event], bool]:
    """A predicate from a callable, or from a mapping of field -> value (a list/set/tuple means any of)."""
    if spec is None:
        return lambda event: True
    if callable(spec):
        return spec
    wanted = {key: (set(value) if isinstance(value, (list, set, tuple, frozenset)) else {value})
              for key, value in spec.items()}

    def match(event: Event) -> bool:
        return all(event.get(key) in values for key, values in wanted.items())

    return match


class Subscription:
    """One subscriber's bounded view of the bus; async-iterate it, and close it (or use ``with``)."""

    def __init__(self, bus: EventBus, maxsize: int, accept: Callable[[Event], bool]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.dropped = 0  # dropped since the last lagged notice
        self.total_dropped = 0
        self._bus = bus
        self._accept = accept
        self._buffer: deque[Event] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False

    def _offer(self, event: Event) -> None:
        try:
            if not self._accept(event):
                return
        except Exception:  # a broken filter drops the event rather than breaking the publisher
            return
        if len(self._buffer) >= self.maxsize:
            self._buffer.popleft()
            self.dropped += 1
            self.total_dropped += 1
        self._buffer.append(event)
        self._lot.unpark_all()

    def receive_nowait(self) -> Event:
        """The next event (or lagged notice); raises :class:`trio.WouldBlock` if there is none yet."""
        if self.dropped:
            notice = {"type": "lagged", "dropped": self.dropped}
            self.dropped = 0
            return notice
        if self._buffer:
            return self._buffer.popleft()
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> Event:
        """Wait for the next event; raises :class:`trio.EndOfChannel` once closed and drained."""
        while True:
            try:
                event = self.receive_nowait()
            except trio.WouldBlock:
                await self._lot.park()
                continue
            await trio.lowlevel.checkpoint()
            return event

    def pending(self) -> int:
        return len(self._buffer) + (1 if self.dropped else 0)

    def close(self) -> None:
        """Stop receiving; a waiting reader ends after what is buffered."""
        self._closed = True
        self._bus._subscribers.discard(self)
        self._lot.unpark_all()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class EventBus:
    """Fan-out of event dicts to subscribers; a ``time`` (ISO UTC) is added when an event has none."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._closed = False

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching subscriber; never blocks."""
        if "time" not in event:
            event = {**event, "time": iso_time(self._clock())}
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener never breaks the publisher
                pass
        for subscription in list(self._subscribers):
            subscription._offer(event)

    def add_listener(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener(event)`` synchronously for every event published from now on (with its ``time``),
        before the subscribers get it (the node's :class:`~sesamd._feed.EventFeed` numbers events so); it
        must not block and must not change the event. Returns a function that removes the listener."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def subscribe(self, maxsize: int = 1000, filter: EventFilter | None = None) -> Subscription:
        """A new subscription holding at most ``maxsize`` events; ``filter`` is a predicate or field map."""
        subscription = Subscription(self, maxsize, _matcher(filter))
        if self._closed:
            subscription._closed = True
        else:
            self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (shutdown): readers finish what is buffered, then stop."""
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.close()

