"""A direct path for Hypercorn's small writes: one ``write(2)`` instead of a lock, a shielded scope and
two task switches (installed with the guard by :func:`sesamd._hypercorn_guard.install`).

Hypercorn 0.18's Trio ``TCPServer.protocol_send`` takes the connection's send lock, opens a shielded cancel
scope and awaits ``SocketStream.send_all`` for every piece of data, websocket frames included: about half of
what a live-feed frame costs the Trio thread, which the pump's worker thread waits for (they share the
GIL). Measured with 50 feed subscribers (scratch harness: Trio-thread CPU over 100,000 frames): 48 µs a
frame through Hypercorn's path, 35 µs with this one.

:func:`direct_first` wraps ``protocol_send``: ``RawData`` of at most :data:`DIRECT_MAX` bytes, on a plain
(not TLS) socket stream whose send lock is free, is written at once with a non-blocking ``os.write`` on the
socket's descriptor, holding the lock meanwhile, so it cannot interleave with another writer of the
connection. What the socket does not take at once (a client that reads slowly) goes on through
``send_all`` under the same lock, shielded as Hypercorn does. A socket that is gone (any ``OSError``)
closes the connection as Hypercorn does for a broken stream. Everything else takes Hypercorn's own path.

A write that completes returns without a checkpoint; so that a task sending many small pieces in a row
cannot hold the Trio loop, a checkpoint follows once :data:`CHECKPOINT_EVERY` seconds have passed since
the last one this path made.

:func:`write_now` is the same write for a caller that cannot wait (the live feed handing a frame to an idle
subscriber, :mod:`sesamd._ws_direct`): it writes at once or not at all. What a socket takes only in part
is kept as the connection's *rest*, which the next write of the connection (through ``protocol_send``)
or :func:`flush` sends first, so nothing can come between a frame's start and its end.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any
from weakref import WeakKeyDictionary

import trio

__all__ = ["CHECKPOINT_EVERY", "DIRECT_MAX", "direct_first", "flush", "has_rest", "write_now"]

DIRECT_MAX = 64 * 1024  # bytes: larger writes (response bodies) take Hypercorn's path
CHECKPOINT_EVERY = 0.001  # seconds: the longest this path runs without letting other tasks in

Send = Callable[[Any, Any], Awaitable[None]]

_rests: WeakKeyDictionary[Any, bytes] = WeakKeyDictionary()  # TCPServer -> what its socket did not take yet


def write_now(server: Any, data: bytes) -> bool:
    """Write ``data`` to the connection of ``server`` (a Hypercorn Trio ``TCPServer``) without waiting.

    True when the socket took it: whole, or its start, the rest kept for the connection's next write or
    :func:`flush` to send first. False when nothing was written: a TLS stream, the connection's lock held
    (another write under way), a rest still unsent, a full socket or a gone one (the caller's normal path
    finds out which)."""
    stream = server.stream
    if type(stream) is not trio.SocketStream or server.send_lock.locked() or server in _rests:
        return False
    try:
        written = os.write(stream.socket.fileno(), data)
    except OSError:  # BlockingIOError included: nothing was written
        return False
    if written < len(data):
        _rests[server] = bytes(memoryview(data)[written:])
    return True


def has_rest(server: Any) -> bool:
    """Whether :func:`write_now` kept a rest of ``server``'s connection that is not sent yet."""
    return server in _rests


async def flush(server: Any) -> None:
    """Send the rest :func:`write_now` kept (if any), under the connection's lock; a gone client closes
    the connection as Hypercorn does."""
    from hypercorn.events import Closed

    if server not in _rests:
        return
    async with server.send_lock:
        rest = _rests.pop(server, None)
        if rest is None:
            return
        try:
            with trio.CancelScope(shield=True):
                await server.stream.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            await server.protocol.handle(Closed())


def direct_first(send: Send) -> Send:
    """``TCPServer.protocol_send`` trying the direct write first (see the module docstring)."""
    from hypercorn.events import Closed, RawData

    last_checkpoint = [0.0]

    async def protocol_send(self: Any, event: Any) -> None:
        if _rests and self in _rests:  # the end of a frame write_now started goes first
            await flush(self)
        stream, lock = self.stream, self.send_lock
        if type(event) is not RawData or type(stream) is not trio.SocketStream or lock.locked() \
                or len(event.data) > DIRECT_MAX:
            await send(self, event)
            return
        data = event.data
        lock.acquire_nowait()
        try:
            try:
                written = os.write(stream.socket.fileno(), data)
            except BlockingIOError:
                written = 0
            except OSError:  # reset, shut down or closed (fileno -1): the client is gone
                await self.protocol.handle(Closed())
                return
            if written < len(data):
                try:
                    with trio.CancelScope(shield=True):
                        await stream.send_all(memoryview(data)[written:])
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                    await self.protocol.handle(Closed())
                return
        finally:
            lock.release()
        now = trio.current_time()
        if now - last_checkpoint[0] >= CHECKPOINT_EVERY:
            last_checkpoint[0] = now
            await trio.lowlevel.cancel_shielded_checkpoint()

    protocol_send.__wrapped__ = send  # type: ignore[attr-defined]
    return protocol_send
