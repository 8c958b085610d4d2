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
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["CHECKPOINT_EVERY", "DIRECT_MAX", "direct_first"]

DIRECT_MAX = 64 * 1024  # bytes: larger writes (response bodies) take Hypercorn's path
CHECKPOINT_EVERY = 0.001  # seconds: the longest this path runs without letting other tasks in

Send = Callable[[Any, Any], Awaitable[None]]


def direct_first(send: Send) -> Send:
    """``TCPServer.protocol_send`` trying the direct write first (see the module docstring)."""
    from hypercorn.events import Closed, RawData

    last_checkpoint = [0.0]

    async def protocol_send(self: Any, event: Any) -> None:
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
