"""One websocket client of the live event feed (``GET /api/events``), independent of the web framework.

:func:`run_feed_session` drives a :class:`FeedSocket` (the API wraps Quart's websocket in one) against the
node's :class:`~sesamd._feed.EventFeed`:

1. The filter comes from the query (``pipes``, ``types``, ``level``, ``since``: see
   :class:`~sesamd._feed.FeedFilter`). A ``token`` query parameter is refused: tokens in URLs end up in
   access logs. The token comes in the ``Authorization`` header, or, since browsers cannot set headers on
   a websocket, in a first ``subscribe`` message.
2. With a header that authenticates the client is subscribed at once. Without a header the session waits
   up to ``subscribe_timeout`` seconds for ``{"type": "subscribe", "token": "...", "pipes": [...],
   "types": [...], "level": "info", "since": 12}`` (its fields replace the query's). A header that does
   not authenticate is an error at once (no second try by message).
3. Subscribed, the client gets ``{"type": "subscribed", "seq": <the feed's last seq>, "epoch": ...,
   "filter": {...}}``, then the buffered events after ``since`` (if given), then live ones, each a JSON
   text frame carrying its ``seq``. A later ``subscribe`` message changes the filter (and, with a token,
   the permissions): it is acknowledged the same way and continues after the last event sent (or its own
   ``since``), under the new filter.
   While the session waits with nothing to send, the feed may write an event's frame to the client itself
   as it publishes it (``direct``, the server's :class:`DirectSend`): one write and no task switch, in
   the same order; whatever it cannot write at once is queued for the sender as usual.
4. While idle for ``ping_interval`` seconds the session sends ``{"type": "ping", "seq": <last seq>}``
   (everything up to that seq that the filter takes has been sent: a good ``since`` to resume from); a
   client's ``{"type": "ping"}`` gets ``{"type": "pong", "seq": ...}``.

Errors are a JSON ``{"type": "error", "status": 400|401|403, "detail": "..."}`` frame followed by a close
with code 4000 + status (4400, 4401, 4403). ``authenticate(header_or_token)`` returns the client's
permission strings or raises :class:`~sesamd._auth.AuthError` (401, 403) with a message; it gets the header
as sent, and a message's ``token`` as sent (the API's function should take a bare token as well as a
``Bearer`` one). Without any read permission (``read_config``, ``read_data`` or ``admin``) the answer is
403. The subscription is closed however the session ends; a feed closed at shutdown closes the socket with
1001.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import trio

from ._auth import AuthError
from ._feed import (
    DEFAULT_MAXSIZE,
    EventFeed,
    FeedEntry,
    FeedError,
    FeedFilter,
    FeedSubscription,
    may_subscribe,
    parse_since,
    visible_to,
)

__all__ = ["MAX_MESSAGE_BYTES", "DirectSend", "FeedSocket", "SocketClosed", "run_feed_session"]

MAX_MESSAGE_BYTES = 64 * 1024  # a client message longer than this is refused (400)
CLOSE_GOING_AWAY = 1001
CLOSE_NORMAL = 1000

Authenticate = Callable[[str | None], Collection[str] | Awaitable[Collection[str]]]


class FeedSocket(Protocol):
    """What the session needs of a websocket; ``receive`` raises (or returns None) once the client is gone."""

    async def send(self, data: str | bytes) -> None: ...
    async def receive(self) -> str | bytes | None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


class DirectSend(Protocol):
    """A way to write a whole text frame to the client at once, without waiting (the server's; see
    :mod:`sesamd._ws_direct`): ``try_send`` is False when nothing was written; after True, ``has_rest``
    says whether the frame's end still waits for ``flush``."""

    def try_send(self, text: str) -> bool: ...
    @property
    def has_rest(self) -> bool: ...
    async def flush(self) -> None: ...


class SocketClosed(Exception):
    """An adapter may raise this from ``send``/``receive`` when the client has gone (a normal end)."""


class _Refused(Exception):
    """End the session with an error frame and a 4xxx close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_GONE = (SocketClosed, trio.BrokenResourceError, trio.ClosedResourceError, EOFError, ConnectionError)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _authenticate(authenticate: Authenticate, credential: str) -> Collection[str]:
    try:
        permissions = authenticate(credential)
        if inspect.isawaitable(permissions):
            permissions = await permissions
    except AuthError as exc:
        raise _Refused(exc.status, str(exc) or ("not authenticated" if exc.status == 401 else "forbidden")) from None
    if not may_subscribe(permissions):
        raise _Refused(403, "reading the event feed needs a read permission (read_config, read_data or admin)")
    return permissions


def _parse_message(raw: str | bytes) -> dict[str, Any]:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise _Refused(400, f"message: longer than {MAX_MESSAGE_BYTES} bytes")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Refused(400, f"message: not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise _Refused(400, "message: must be a JSON object")
    kind = message.get("type")
    if kind not in ("subscribe", "ping", "pong"):
        raise _Refused(400, f"type: unknown message type {kind!r} (known: subscribe, ping, pong)")
    return message


@dataclass
class _Request:
    """A (re)subscription: who the client is, what it wants, and where to start."""

    permissions: Collection[str]
    filter: FeedFilter
    since: int | None


def _request_of(message: Mapping[str, Any], base: FeedFilter, since: int | None) -> tuple[FeedFilter, int | None]:
    try:
        chosen = FeedFilter.from_message(message, base)
        if "since" in message:
            since = parse_since(message["since"])
    except FeedError as exc:
        raise _Refused(400, exc.detail) from None
    return chosen, since


class _Session:
    def __init__(self, ws: FeedSocket, feed: EventFeed, authenticate: Authenticate, ping_interval: float,
                 maxsize: int, direct: DirectSend | None = None) -> None:
        self.ws = ws
        self.direct = direct
        self.idle = False  # the sender waits with nothing to send: the feed may write to the client itself
        self.feed = feed
        self.authenticate = authenticate
        self.ping_interval = ping_interval if ping_interval > 0 else math.inf
        self.maxsize = maxsize
        self.send_lock = trio.Lock()
        self.subscription: FeedSubscription | None = None
        self.pending: _Request | None = None  # a resubscription for the sender to make
        self.request: _Request | None = None
        self.position = 0  # where the subscription started (its since, else the feed's last seq then)
        self.last_send = trio.current_time()  # when the last frame went (the pinger's clock)

    async def send(self, text: str) -> None:
        """Send one frame; frames never interleave. The lock is taken without a checkpoint of its own when
        it is free (the common case: only the sender sends), which keeps a frame to one task switch."""
        lock = self.send_lock
        if lock.locked():
            async with lock:
                await self.ws.send(text)
        else:
            lock.acquire_nowait()
            try:
                await self.ws.send(text)
            finally:
                lock.release()
        self.last_send = trio.current_time()

    async def subscribe(self, request: _Request) -> None:
        """Subscribe (closing an earlier subscription) and acknowledge; called by the sender only."""
        old = self.subscription
        since = request.since
        if old is not None:
            old.close(discard=True)
            if since is None:
                since = max(self.position, old.last_seq)  # go on after the last event sent
        self.request = request
        self.position = since if since is not None else self.feed.last_seq
        self.subscription = self.feed.subscribe(request.filter, visible_to(request.permissions), since=since,
                                                maxsize=self.maxsize)
        if self.direct is not None:
            self.subscription.direct = self.send_now
        await self.send(_json({"type": "subscribed", "seq": self.feed.last_seq, "epoch": self.feed.epoch,
                               "since": since, "filter": request.filter.describe()}))

    def send_now(self, entry: FeedEntry) -> bool:
        """The subscription's ``direct``: while the sender waits idle, write the entry's frame to the
        client as the feed publishes it (no task switch); False leaves it to the queue and the sender."""
        direct = self.direct
        if not self.idle or self.pending is not None or self.send_lock.locked() or direct is None \
                or not direct.try_send(entry.text):
            return False
        self.last_send = trio.current_time()
        if direct.has_rest and self.subscription is not None:  # the socket took part of it: the sender ends it
            self.subscription.wake()
        return True

    async def sender(self) -> None:
        direct = self.direct
        while True:
            if self.pending is not None:
                request, self.pending = self.pending, None
                await self.subscribe(request)
            subscription = self.subscription
            assert subscription is not None
            if direct is not None and direct.has_rest:
                await direct.flush()
            try:
                entry = subscription.receive_nowait()
            except trio.WouldBlock:
                self.idle = True  # until woken: by a queued entry, a frame's rest, a close
                try:
                    await subscription.wait()
                finally:
                    self.idle = False
                continue
            except trio.EndOfChannel:
                if self.pending is not None:  # closed for a resubscription
                    continue
                await self.ws.close(CLOSE_GOING_AWAY, "the node is shutting down")
                return
            await self.send(entry.text)

    async def pinger(self) -> None:
        """Ping once the session has sent nothing for ``ping_interval`` seconds and has nothing to send
        (so everything up to the ping's seq that the filter takes has been sent). A timer of its own rather
        than a timeout on every wait of the sender: that would cost a cancel scope per frame."""
        while True:
            await trio.sleep_until(self.last_send + self.ping_interval)
            if trio.current_time() < self.last_send + self.ping_interval:
                continue  # a frame went meanwhile
            subscription = self.subscription
            if self.pending is None and not self.send_lock.locked() and (
                    subscription is None or not subscription.pending()):
                await self.send(_json({"type": "ping", "seq": self.feed.last_seq}))
            else:  # a frame is on its way to a slow client: not idle, look again later
                await trio.sleep(self.ping_interval)

    async def receiver(self) -> None:
        while True:
            raw = await self.ws.receive()
            if raw is None:
                return
            message = _parse_message(raw)
            kind = message["type"]
            if kind == "ping":
                await self.send(_json({"type": "pong", "seq": self.feed.last_seq}))
            elif kind == "subscribe":
                await self.resubscribe(message)

    async def resubscribe(self, message: Mapping[str, Any]) -> None:
        current = self.pending or self.request
        assert current is not None
        permissions = current.permissions
        token = message.get("token")
        if token is not None:
            if not isinstance(token, str) or not token:
                raise _Refused(400, "token: must be a non-empty string")
            permissions = await _authenticate(self.authenticate, token)
        chosen, since = _request_of(message, current.filter, None)
        self.pending = _Request(permissions, chosen, since)
        if self.subscription is not None:
            self.subscription.close()  # wakes the sender, which makes the new subscription


async def _first_subscribe(session: _Session, base: FeedFilter, since: int | None,
                           timeout: float) -> _Request:
    """Wait for the subscribe message that carries the token (answering pings meanwhile)."""
    with trio.move_on_after(timeout):
        while True:
            raw = await session.ws.receive()
            if raw is None:
                raise SocketClosed
            message = _parse_message(raw)
            if message["type"] == "ping":
                await session.send(_json({"type": "pong", "seq": session.feed.last_seq}))
                continue
            if message["type"] != "subscribe":
                continue
            token = message.get("token")
            if token is None or token == "":
                raise _Refused(401, "no token: send it in the Authorization header or in the subscribe message")
            if not isinstance(token, str):
                raise _Refused(400, "token: must be a string")
            permissions = await _authenticate(session.authenticate, token)
            chosen, since = _request_of(message, base, since)
            return _Request(permissions, chosen, since)
    raise _Refused(401, f"no subscribe message with a token within {timeout:g} s (or send an Authorization header)")


async def run_feed_session(ws: FeedSocket, feed: EventFeed, authenticate: Authenticate, *,
                           query: Mapping[str, str], authorization: str | None, ping_interval: float = 20.0,
                           subscribe_timeout: float = 10.0, maxsize: int = DEFAULT_MAXSIZE,
                           direct: DirectSend | None = None) -> None:
    """Serve one websocket client of ``feed`` until it goes or is refused (see the module docstring).

    ``direct``, the server's way to write a frame at once (see :class:`DirectSend`), lets the feed hand
    events to the client as it publishes them while the session is idle, instead of waking its sender.

    Returns normally when the client goes, after a refusal (error frame + 4xxx close) or at shutdown;
    exceptions of ``ws`` other than a gone client, and of ``authenticate`` other than AuthError, propagate
    (the subscription is closed either way)."""
    session = _Session(ws, feed, authenticate, ping_interval, maxsize, direct)
    try:
        try:
            if "token" in query:
                raise _Refused(400, "token: tokens are not accepted in the URL (they end up in logs); send the "
                                    "Authorization header or a subscribe message")
            try:
                base, since = FeedFilter.parse(query), parse_since(query.get("since"))
            except FeedError as exc:
                raise _Refused(400, exc.detail) from None
            if authorization:
                session.pending = _Request(await _authenticate(authenticate, authorization), base, since)
            else:
                session.pending = await _first_subscribe(session, base, since, subscribe_timeout)
            async with trio.open_nursery() as nursery:
                async def sender() -> None:
                    await session.sender()
                    nursery.cancel_scope.cancel()

                async def receiver() -> None:
                    await session.receiver()
                    nursery.cancel_scope.cancel()  # the client went

                nursery.start_soon(sender)
                nursery.start_soon(receiver)
                if session.ping_interval != math.inf:
                    nursery.start_soon(session.pinger)
        except BaseExceptionGroup as group:
            ending = _ending(group)
            if ending is None:
                raise
            raise ending from None
    except _Refused as refusal:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await session.send(_json({"type": "error", "status": refusal.status, "detail": refusal.detail}))
                await ws.close(4000 + refusal.status, refusal.detail[:120])
            except _GONE:
                pass
    except _GONE:
        pass
    finally:
        if session.subscription is not None:
            session.subscription.close(discard=True)


def _ending(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """The refusal or gone client in ``group`` that ended the session, if any."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    for kind in (_Refused, *_GONE):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return None
