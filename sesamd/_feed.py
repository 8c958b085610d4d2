"""The live event feed behind ``GET /api/events``: numbered node events, a ring buffer to resume from, and
filtered, bounded subscriptions (sans-IO but for waiting, which is Trio's).

:class:`EventFeed` listens to the node's :class:`~actors.EventBus`: every published event gets a node-wide
``seq`` (1, 2, ... for the life of the feed; a node restart starts again at 1, see ``epoch``) beside the
``time`` the bus gives it, is encoded to JSON **once** (orjson; values JSON has no form for, such as
``Decimal``, become strings, and an event never fails to encode) and is kept in a ring buffer of the last
``capacity`` events. Log records come in through :class:`FeedLogHandler` (straight into the feed, not
through the bus).

:meth:`EventFeed.subscribe` returns a :class:`FeedSubscription`: it first replays the buffered events after
``since`` (preceded by a ``lagged`` notice when some of them are no longer buffered), then the live ones.
Each subscription has a bounded queue: when it is full the oldest event is dropped, and the next read
yields ``{"type": "lagged", "missed": n, "seq": <seq of the last one missed>}`` instead, so a slow
subscriber never slows (nor blocks) a publisher. Publishing costs one encoding plus, per subscriber, a
filter test and a deque append. What a subscription hands out is a :class:`FeedEntry` carrying the encoded
text, ready to send. A subscription may also take an entry straight away as it is published
(:attr:`FeedSubscription.direct`, while nothing is queued ahead of it): the websocket session writes an
idle client's frame at once instead of waking its sender (see :mod:`sesamd._ws_direct`).

Filters (:class:`FeedFilter`) select by pipe id (``fnmatch`` globs), event type and, for ``log`` events, the
least level. How events without a ``pipe`` field meet a pipe filter:

- ``dataset-changed`` and ``dataset-compacted`` match on the pipe writing the dataset (its ``pipe`` field,
  when a pipe of the node sinks into it), else on its ``dataset`` name;
- ``log`` records without a pipe do not pass a pipe filter (a pipe-filtered subscriber wants that pipe's
  records, not the whole node's);
- any other event without a pipe is node-wide (``config-applied``, the events of actors that are not
  pipes) and always passes.

What a subscriber may see at all is decided by a predicate, built from its permissions by
:func:`visible_to`: pump, config and actor events need ``read_config``, ``dataset-changed`` and
``dataset-compacted`` need ``read_data``, ``log`` records need ``admin`` (which sees everything).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import threading
import traceback
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import trio

from actors import EventBus
from actors._events import iso_time

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_MAXSIZE",
    "EVENT_TYPES",
    "READ_PERMISSIONS",
    "EventFeed",
    "FeedEntry",
    "FeedError",
    "FeedFilter",
    "FeedLogHandler",
    "FeedSubscription",
    "encode_event",
    "may_subscribe",
    "parse_since",
    "visible_to",
]

Event = dict[str, Any]

DEFAULT_CAPACITY = 10_000  # events the ring buffer keeps for resuming subscribers
DEFAULT_MAXSIZE = 1_000  # events a subscription's queue holds before it drops the oldest
DEFAULT_LOG_LEVEL = logging.WARNING  # the least level of the log records a subscriber gets by default
EVENT_TYPES = frozenset({  # the types a filter may name (log records are "log")
    "pump-started", "pump-progress", "pump-completed", "pump-failed", "pump-enabled", "pump-disabled",
    "pump-offset-set", "pump-tracking-set", "config-applied", "actor-crashed", "actor-restarted",
    "actor-failed", "dataset-changed", "dataset-compacted", "pipe-cycle-warning", "log",
})
_DATASET_EVENTS = frozenset({"dataset-changed", "dataset-compacted"})  # read_data; matched on dataset too
READ_PERMISSIONS = frozenset({"read_config", "read_data", "admin"})  # any one of them lets a client subscribe
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "WARN": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL, "FATAL": logging.CRITICAL}
_CONFIG_EVENTS_PREFIXES = ("pump-", "config-", "actor-", "pipe-")


class FeedError(ValueError):
    """A bad filter or ``since`` (400): ``field`` names what is wrong, the message says how."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = f"{field}: {message}"


# -- encoding ---------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson's fallback: a form for what JSON has none for (never raises)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The event as compact JSON bytes; never raises (an event that cannot be encoded at all becomes a
    stand-in saying so, with its type, seq and time)."""
    try:
        return orjson.dumps(event, default=_default, option=_OPTIONS)
    except Exception:  # e.g. an integer beyond 64 bits, a cycle
        pass
    try:
        return json.dumps(event, default=_default, separators=(",", ":"), ensure_ascii=False).encode()
    except Exception:
        stand_in = {key: event.get(key) for key in ("type", "seq", "time", "pipe")
                    if isinstance(event.get(key), (str, int))}
        stand_in["error"] = "the event could not be encoded as JSON"
        return orjson.dumps(stand_in)


class FeedEntry(NamedTuple):
    """One event as the feed keeps and hands it out: its seq, the few fields filters read (``key``: its
    ``type``, ``pipe``, ``dataset`` and a log record's ``levelno``, those it has) and its JSON text, made
    once, at publication, and shared by every subscriber.

    The ring buffer holds only these: about 0.6 KB an event instead of 5 KB with the event's dict and its
    JSON as bytes beside the text (measured with tracemalloc over 10,000 pump and dataset events), so the
    default ring of 10,000 events stays near 6 MB. ``event`` and ``data`` are decoded and encoded again
    when asked for (tests, tools), never on the way to a subscriber."""

    seq: int
    key: Mapping[str, Any]
    text: str

    @property
    def event(self) -> Event:
        """The event (decoded from the text)."""
        decoded: Event = orjson.loads(self.text)
        return decoded

    @property
    def data(self) -> bytes:
        """The event's JSON as UTF-8 bytes."""
        return self.text.encode()


_KEY_FIELDS = ("type", "pipe", "dataset")


def _key(event: Mapping[str, Any]) -> dict[str, Any]:
    key = {name: event[name] for name in _KEY_FIELDS if name in event}
    if event.get("type") == "log":
        key["levelno"] = _event_level(event)
    return key


def _entry(seq: int, event: Event) -> FeedEntry:
    return FeedEntry(seq, _key(event), encode_event(event).decode("utf-8", "replace"))


# -- filters -----------------------------------------------------------------------------------------------


def _level_of(value: Any, field: str = "level") -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FeedError(field, f"must be a level name ({', '.join(n.lower() for n in _LEVELS)}), not "
                               f"{value!r}")
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        return _LEVELS[text.upper()]
    except KeyError:
        raise FeedError(field, f"unknown level {value!r} (known: debug, info, warning, error, critical)") \
            from None


def _event_level(event: Event) -> int:
    level = event.get("levelno")
    if type(level) is int:
        return level
    name = event.get("level")
    if isinstance(name, str):
        known = _LEVELS.get(name)
        if known is not None:
            return known
        if name.startswith("Level ") and name[6:].isdigit():  # logging's name for a custom level
            return int(name[6:])
    return 0


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise FeedError(field, f"must be a list of strings, not {value!r}")
    items = [item.strip() for item in value]
    if not all(items):
        raise FeedError(field, "must not contain empty strings")
    return items


def _check_types(types: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(types)
    unknown = sorted(chosen - EVENT_TYPES)
    if unknown:
        raise FeedError("types", f"unknown event type{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(repr(t) for t in unknown)} (known: {', '.join(sorted(EVENT_TYPES))})")
    return chosen


@dataclass(frozen=True)
class FeedFilter:
    """Which events a subscriber wants (see the module docstring for events without a pipe).

    ``pipes``: fnmatch globs (``*``, ``?``, ``[...]``) matched against the event's pipe id, None for all;
    ``types``: the event types wanted (``log`` for log records), None for all; ``log_level``: the least
    level of the ``log`` events passed."""

    pipes: tuple[str, ...] | None = None
    types: frozenset[str] | None = None
    log_level: int = DEFAULT_LOG_LEVEL
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pipes is not None:
            object.__setattr__(self, "pipes", tuple(self.pipes))
            joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.pipes) or r"(?!)"
            object.__setattr__(self, "_pattern", re.compile(joined))
        if self.types is not None:
            object.__setattr__(self, "types", frozenset(self.types))

    def matches(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "log" and _event_level(event) < self.log_level:  # type: ignore[arg-type]
            return False
        if self.types is not None and kind not in self.types:
            return False
        pattern = self._pattern
        if pattern is None:
            return True
        pipe = event.get("pipe")
        if pipe is None:
            if kind not in _DATASET_EVENTS:
                return kind != "log"  # log records without a pipe do not pass; other events are node-wide
            pipe = event.get("dataset")
        return isinstance(pipe, str) and pattern.match(pipe) is not None

    def describe(self) -> dict[str, Any]:
        """The filter as JSON (the ``subscribed`` acknowledgement)."""
        return {"pipes": list(self.pipes) if self.pipes is not None else None,
                "types": sorted(self.types) if self.types is not None else None,
                "level": logging.getLevelName(self.log_level)}

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> FeedFilter:
        """From query parameters: ``pipes=a,b*``, ``types=pump-started,pump-failed``, ``level=info``
        (others, such as ``since``, are ignored here). An empty ``pipes`` or ``types`` means all."""
        pipes = types = None
        level = DEFAULT_LOG_LEVEL
        if query.get("pipes") is not None:
            pipes = tuple(_split(str(query["pipes"]))) or None
        if query.get("types") is not None:
            listed = _split(str(query["types"]))
            types = _check_types(listed) if listed else None
        if query.get("level") not in (None, ""):
            level = _level_of(query["level"])
        return cls(pipes, types, level)

    @classmethod
    def from_message(cls, message: Mapping[str, Any], base: FeedFilter | None = None) -> FeedFilter:
        """From a ``subscribe`` message: ``{"pipes": [...], "types": [...], "level": "info"}``; a field
        that is absent keeps its value in ``base`` (the defaults without one), null means all."""
        if not isinstance(message, Mapping):
            raise FeedError("message", f"must be a JSON object, not {type(message).__name__}")
        base = base or cls()
        pipes, types, level = base.pipes, base.types, base.log_level
        if "pipes" in message:  # null or [] means all
            pipes = None if message["pipes"] is None else tuple(_strings(message["pipes"], "pipes")) or None
        if "types" in message:
            types = None if message["types"] is None else _check_types(_strings(message["types"], "types")) or None
        if "level" in message:
            level = DEFAULT_LOG_LEVEL if message["level"] is None else _level_of(message["level"])
        return cls(pipes, types, level)


def parse_since(value: Any) -> int | None:
    """``since`` (a query parameter's text or a message's number): a seq >= 0, or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if type(value) is int and value >= 0:
        return value
    raise FeedError("since", f"must be a sequence number (an integer >= 0), not {value!r}")


# -- visibility --------------------------------------------------------------------------------------------


def _everything(event: Mapping[str, Any]) -> bool:
    return True


def may_subscribe(permissions: Collection[str]) -> bool:
    """Whether the permissions let a client subscribe at all (any read permission)."""
    return any(str(p) in READ_PERMISSIONS for p in permissions)


def visible_to(permissions: Collection[str]) -> Callable[[Mapping[str, Any]], bool]:
    """What a principal with these permissions (strings, or ``Permission`` members) may see: pump, config,
    actor and ``pipe-`` events with ``read_config``, ``dataset-changed`` with ``read_data``, ``log`` records
    (and any other event) only with ``admin``, which sees everything."""
    held = frozenset(str(p) for p in permissions)
    if "admin" in held:
        return _everything
    config, data = "read_config" in held, "read_data" in held

    def may_see(event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        if kind in _DATASET_EVENTS:
            return data
        if isinstance(kind, str) and kind.startswith(_CONFIG_EVENTS_PREFIXES):
            return config
        return False  # log records and anything unknown: admin only

    return may_see


# -- the feed and its subscriptions ------------------------------------------------------------------------


class FeedSubscription:
    """One subscriber's view of the feed (see the module docstring): async-iterate it (or :meth:`receive`)
    for :class:`FeedEntry` values, and :meth:`close` it (or use ``with``).

    ``direct``, when set, is offered each accepted entry that has nothing queued ahead of it, as it is
    published: it returns True when it handed the entry out itself (the live feed's session writing the
    frame at once), False to have it queued as usual."""

    def __init__(self, feed: EventFeed, filter: FeedFilter, may_see: Callable[[Mapping[str, Any]], bool],
                 maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.feed = feed
        self.filter = filter
        self.maxsize = maxsize
        self.last_seq = 0  # seq of the last event handed out (a lagged notice: of the last one missed)
        self.dropped = 0  # dropped since the last lagged notice
        self.total_dropped = 0
        self._may_see = may_see
        self._replay: deque[FeedEntry] = deque()
        self._queue: deque[FeedEntry] = deque()
        self._dropped_seq = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self.direct: Callable[[FeedEntry], bool] | None = None

    def accepts(self, event: Mapping[str, Any]) -> bool:
        try:
            return self.filter.matches(event) and bool(self._may_see(event))
        except Exception:  # a broken predicate drops the event rather than breaking the publisher
            return False

    def _offer(self, entry: FeedEntry) -> None:
        if not self.accepts(entry.key):
            return
        queue = self._queue
        direct = self.direct
        if direct is not None and not queue and not self._replay:  # (a lagged notice implies a queue)
            try:
                took = direct(entry)
            except Exception:  # a broken direct path costs this subscriber the shortcut, not the publisher
                took, self.direct = False, None
            if took:
                self.last_seq = entry.seq
                return
        if len(queue) >= self.maxsize:
            self._dropped_seq = queue.popleft().seq
            self.dropped += 1
            self.total_dropped += 1
        queue.append(entry)
        if self._lot:
            self._lot.unpark_all()

    def receive_nowait(self) -> FeedEntry:
        """The next entry (or lagged notice); raises :class:`trio.WouldBlock` if there is none yet and
        :class:`trio.EndOfChannel` once closed and drained."""
        if self._replay:
            entry = self._replay.popleft()
        elif self.dropped:
            entry = self.feed._notice({"type": "lagged", "missed": self.dropped, "seq": self._dropped_seq})
            self.dropped = 0
        elif self._queue:
            entry = self._queue.popleft()
        elif self._closed:
            raise trio.EndOfChannel
        else:
            raise trio.WouldBlock
        self.last_seq = max(self.last_seq, entry.seq)
        return entry

    async def receive(self) -> FeedEntry:
        """Wait for the next entry; raises :class:`trio.EndOfChannel` once closed and drained. A cancelled
        receive loses nothing (an entry is only taken when the call returns it)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                entry = self.receive_nowait()
            except trio.WouldBlock:
                await self._lot.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return entry

    async def wait(self) -> None:
        """Park until an entry is offered to the queue, :meth:`wake` is called or the subscription closes
        (whichever comes first; it may also return with nothing to receive)."""
        if self._queue or self._replay or self.dropped or self._closed:
            await trio.lowlevel.checkpoint()
            return
        await self._lot.park()

    def wake(self) -> None:
        """Make a reader waiting in :meth:`receive` look again, or one in :meth:`wait` return."""
        self._lot.unpark_all()

    def pending(self) -> int:
        return len(self._replay) + len(self._queue) + (1 if self.dropped else 0)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, discard: bool = False) -> None:
        """Stop receiving; a waiting reader gets what is buffered (nothing with ``discard``), then
        :class:`trio.EndOfChannel`."""
        self._closed = True
        if discard:
            self._replay.clear()
            self._queue.clear()
            self.dropped = 0
        self.feed._remove(self)
        self._lot.unpark_all()

    def __enter__(self) -> FeedSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> FeedSubscription:
        return self

    async def __anext__(self) -> FeedEntry:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class EventFeed:
    """The node's numbered, buffered event feed (see the module docstring). ``bus`` is the node's
    :class:`~actors.EventBus` (the feed listens to it), or None for a feed that only gets :meth:`append`.
    Use it from the Trio thread."""

    def __init__(self, bus: EventBus | None = None, *, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], datetime] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.epoch = os.urandom(6).hex()  # tells a client that seq numbers started again (a node restart)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ring: deque[FeedEntry] = deque(maxlen=capacity)
        self._seq = 0
        self._subscriptions: dict[FeedSubscription, None] = {}
        self._targets: tuple[FeedSubscription, ...] = ()
        self._closed = False
        self.appending = False  # inside append (a log record emitted meanwhile is deferred)
        self._detach: Callable[[], None] | None = None
        if bus is not None:
            self._detach = bus.add_listener(self.append)

    # -- publishing ------------------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the newest event (0 before the first)."""
        return self._seq

    @property
    def oldest_seq(self) -> int:
        """The seq of the oldest buffered event (``last_seq + 1`` while the buffer is empty)."""
        return self._ring[0].seq if self._ring else self._seq + 1

    def append(self, event: Mapping[str, Any]) -> FeedEntry:
        """Number, encode and buffer ``event`` (a ``time`` is added if it has none) and offer it to every
        subscription; never blocks. Returns the entry."""
        self.appending = True
        try:
            self._seq += 1
            stamped = {**event, "seq": self._seq}
            if "time" not in stamped:
                stamped["time"] = iso_time(self._clock())
            entry = _entry(self._seq, stamped)
            self._ring.append(entry)
            for subscription in self._targets:
                subscription._offer(entry)
            return entry
        finally:
            self.appending = False

    def _notice(self, event: Event) -> FeedEntry:
        """A control message for one subscriber (not numbered, not buffered): lagged and the like."""
        event.setdefault("time", iso_time(self._clock()))
        seq = event.get("seq")
        return _entry(seq if type(seq) is int else self._seq, event)

    def entries(self, since: int = 0) -> list[FeedEntry]:
        """The buffered entries after ``since``, oldest first."""
        if since < self.oldest_seq:
            return list(self._ring)
        start = since - self.oldest_seq + 1  # seqs in the ring are consecutive
        return [self._ring[i] for i in range(start, len(self._ring))]

    # -- subscribing -----------------------------------------------------------------------------------------

    def subscribe(self, filter: FeedFilter | None = None,
                  may_see: Callable[[Mapping[str, Any]], bool] | None = None, since: int | None = None,
                  maxsize: int = DEFAULT_MAXSIZE) -> FeedSubscription:
        """A new subscription: first the buffered events after ``since`` that it accepts, then live ones.

        When events after ``since`` are no longer buffered, a ``lagged`` notice says how many comes first
        (``missed`` counts every event gone, whatever the filter). A ``since`` ahead of the feed (a client
        of an earlier node process) gets a lagged notice with ``"reset": true`` and the whole buffer."""
        subscription = FeedSubscription(self, filter or FeedFilter(), may_see or _everything, maxsize)
        if since is not None:
            oldest = self.oldest_seq
            if since > self._seq:
                subscription._replay.append(self._notice({"type": "lagged", "missed": oldest - 1,
                                                          "seq": oldest - 1, "reset": True}))
                since = 0
            elif since < oldest - 1:
                subscription._replay.append(self._notice({"type": "lagged", "missed": oldest - 1 - since,
                                                          "seq": oldest - 1}))
            subscription._replay.extend(e for e in self.entries(since) if subscription.accepts(e.key))
        if self._closed:
            subscription._closed = True
        else:
            self._subscriptions[subscription] = None
            self._targets = tuple(self._subscriptions)
        return subscription

    def _remove(self, subscription: FeedSubscription) -> None:
        if self._subscriptions.pop(subscription, 0) is None:
            self._targets = tuple(self._subscriptions)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        """End every subscription (shutdown; readers finish what is buffered) and stop listening."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
        if self._detach is not None:
            self._detach()
            self._detach = None


# -- log records -------------------------------------------------------------------------------------------


def _record_pipe(record: logging.LogRecord) -> str | None:
    """The pipe a record is about: an ``extra={"pipe": ...}``, or the first argument of a message that
    starts ``pump %s`` / ``pipe %s`` (as the pump's and the node's do)."""
    pipe = getattr(record, "pipe", None)
    if isinstance(pipe, str):
        return pipe
    message, args = record.msg, record.args
    if isinstance(message, str) and message.startswith(("pump %s", "pipe %s")) and isinstance(args, tuple) \
            and args and isinstance(args[0], str):
        return args[0]
    return None


class FeedLogHandler(logging.Handler):
    """Turns log records at or above ``level`` (default INFO) into ``log`` events of ``feed``:
    ``{"type": "log", "level": "WARNING", "logger": name, "message": text, "pipe": id}`` (``pipe`` when the
    record names one, ``exception`` when it carries one).

    Records from the Trio thread go into the feed at once; records from other threads (and any emitted
    while the feed is appending) are handed to the Trio thread with ``trio_token.run_sync_soon``. It never
    blocks and never raises; a record emitted while it is handling one (in the same thread) is dropped.
    Loggers named in ``exclude`` (and their children) are left out: per-request access logs would only
    crowd the ring buffer."""

    def __init__(self, feed: EventFeed, trio_token: trio.lowlevel.TrioToken | None = None, *,
                 level: int = logging.INFO, exclude: Iterable[str] = ("hypercorn.access",)) -> None:
        super().__init__(level)
        self.feed = feed
        self.trio_token = trio_token if trio_token is not None else trio.lowlevel.current_trio_token()
        self.trio_thread = threading.get_ident()  # made in the Trio thread
        self.exclude = tuple(exclude)
        self._local = threading.local()

    def event_of(self, record: logging.LogRecord) -> Event:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        event: Event = {"type": "log", "level": record.levelname, "logger": record.name, "message": message}
        pipe = _record_pipe(record)
        if pipe is not None:
            event["pipe"] = pipe
        if record.exc_info and record.exc_info[0] is not None:
            event["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        event["time"] = iso_time(datetime.fromtimestamp(record.created, UTC))
        return event

    def emit(self, record: logging.LogRecord) -> None:
        local = self._local
        if getattr(local, "busy", False):
            return  # the feed (or something it called) logging while we handle a record
        local.busy = True
        try:
            name = record.name
            if any(name == prefix or name.startswith(prefix + ".") for prefix in self.exclude):
                return
            event = self.event_of(record)
            if threading.get_ident() == self.trio_thread and not self.feed.appending:
                self.feed.append(event)
            else:
                self.trio_token.run_sync_soon(self._append_soon, event)
        except Exception:  # trio.RunFinishedError after the run, a broken record: the record is dropped
            pass
        finally:
            local.busy = False

    def _append_soon(self, event: Event) -> None:
        local = self._local
        local.busy = True
        try:
            self.feed.append(event)
        except Exception:  # a callback of run_sync_soon must never raise (it would crash the run)
            pass
        finally:
            local.busy = False
