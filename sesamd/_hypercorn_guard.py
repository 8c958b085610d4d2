"""A guard for a race in Hypercorn 0.18's Trio connection (installed by ``serve`` before it listens).

``TCPServer._close`` calls ``send_eof`` without the connection's send lock, so a client that closes a
websocket while the server is still sending makes the in-flight ``send_all`` raise
``trio.BusyResourceError``. Hypercorn catches only Broken/ClosedResourceError there, so the error escapes
the connection task and takes the whole server (every other connection, then the node) down with it. Found
by ``tests/e2e/test_events_feed.py`` failing about one run in thirty (traceback ending in
``tcp_server.protocol_send``). The guard treats a busy stream as what it is, a connection already closing:
the protocol is told ``Closed``, as Hypercorn does for a broken stream.

:func:`install` also puts the direct path for small writes of :mod:`sesamd._hypercorn_send` in front, and
has websocket apps offered direct frame writes (:mod:`sesamd._ws_direct`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["install"]

_installed = False


def guarded(send: Callable[[Any, Any], Awaitable[None]]) -> Callable[[Any, Any], Awaitable[None]]:
    """``TCPServer.protocol_send`` that ends the connection on a busy stream instead of raising."""
    from hypercorn.events import Closed

    async def protocol_send(self: Any, event: Any) -> None:
        try:
            await send(self, event)
        except trio.BusyResourceError:
            await self.protocol.handle(Closed())

    protocol_send.__wrapped__ = send  # type: ignore[attr-defined]
    return protocol_send


def install() -> None:
    """Guard Hypercorn's Trio ``TCPServer.protocol_send``, with the direct path for small writes in front
    (:mod:`sesamd._hypercorn_send`), once per process."""
    global _installed
    if _installed:
        return
    from hypercorn.trio.tcp_server import TCPServer

    from ._hypercorn_send import direct_first
    from ._ws_direct import install as offer_direct_frames

    TCPServer.protocol_send = direct_first(guarded(TCPServer.protocol_send))  # type: ignore[method-assign]
    offer_direct_frames()
    _installed = True
