"""Websocket text frames written straight to a Hypercorn connection, for the live feed's fan-out.

Through the framework a feed frame costs the Trio thread a task switch to the subscriber's session, then
Quart's websocket, Hypercorn's ``WSStream`` and wsproto, which build the same frame for every subscriber,
then the write; the pump's worker thread waits for all of it (they share the GIL). :class:`DirectFrames`
lets the feed hand an event to an idle subscriber while it publishes: the frame is built once per event
(:func:`text_frame`, a one-entry memo shared by the subscribers) and written with one non-blocking
``write(2)`` (:func:`sesamd._hypercorn_send.write_now`), with no task switch. Whatever it cannot write at
once (a busy connection, a full socket) takes the normal path, so the subscriber's order stays whole.

:func:`install` (called by :func:`sesamd._hypercorn_guard.install`) makes Hypercorn's Trio worker offer a
:class:`DirectFrames` to every websocket app in the ASGI scope's extensions, under :data:`EXTENSION`. It
writes only while the websocket is open over HTTP/1.1 on a plain socket and the client asked for no
extension (a ``permessage-deflate`` frame must be compressed: browsers get wsproto's frames).
"""

from __future__ import annotations

from types import MethodType
from typing import Any

from ._hypercorn_send import flush, has_rest, write_now

__all__ = ["EXTENSION", "DirectFrames", "install", "text_frame"]

EXTENSION = "sesamd.direct_frames"

_installed = False
_memo: list[Any] = [None, b""]  # the last text framed and its frame (the feed offers one event to many)


def text_frame(text: str) -> bytes:
    """A server's websocket frame carrying ``text`` whole (FIN, opcode 1, unmasked, RFC 6455 5.2)."""
    if text is _memo[0]:
        frame: bytes = _memo[1]
        return frame
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = b"\x81\x7e" + size.to_bytes(2, "big")
    else:
        header = b"\x81\x7f" + size.to_bytes(8, "big")
    frame = header + payload
    _memo[0], _memo[1] = text, frame
    return frame


class DirectFrames:
    """Whole text frames for one websocket of Hypercorn (a ``WSStream``), written without waiting."""

    def __init__(self, stream: Any) -> None:
        from hypercorn.protocol.ws_stream import ASGIWebsocketState

        self._stream = stream
        self._open = ASGIWebsocketState.CONNECTED
        self._server: Any = None  # its TCPServer, found at the first write
        self._usable: bool | None = None

    def _connection(self) -> Any:
        """The TCPServer to write to, or None when frames must go through wsproto."""
        if self._usable is None:
            self._usable = False
            from hypercorn.protocol.h11 import H11Protocol
            from hypercorn.trio.tcp_server import TCPServer

            protocol = _owner(self._stream.send)  # WSStream.send is H11Protocol.stream_send over HTTP/1.1
            server = _owner(protocol.send) if isinstance(protocol, H11Protocol) else None  # TCPServer's
            if isinstance(server, TCPServer) and self._stream.handshake.extensions is None:
                self._server, self._usable = server, True
        return self._server if self._usable else None

    def try_send(self, text: str) -> bool:
        """Write ``text`` as one frame now; False when nothing was written (send it the normal way). After
        True, :attr:`has_rest` says whether the frame's end still waits for :meth:`flush`."""
        stream = self._stream
        if stream.closed or stream.state is not self._open:
            return False
        server = self._connection()
        return server is not None and write_now(server, text_frame(text))

    @property
    def has_rest(self) -> bool:
        return self._server is not None and has_rest(self._server)

    async def flush(self) -> None:
        """Send the end of a frame :meth:`try_send` began."""
        if self._server is not None:
            await flush(self._server)


def _owner(method: Any) -> Any:
    """The object a bound method belongs to (None for anything else)."""
    return method.__self__ if isinstance(method, MethodType) else None


def install() -> None:
    """Offer a :class:`DirectFrames` to every websocket app Hypercorn's Trio worker starts (once)."""
    global _installed
    if _installed:
        return
    from hypercorn.protocol.ws_stream import WSStream
    from hypercorn.trio.task_group import TaskGroup

    spawn_app = TaskGroup.spawn_app

    async def offering_spawn_app(self: Any, app: Any, config: Any, scope: Any, send: Any) -> Any:
        stream = _owner(send)  # WSStream.app_send for a websocket
        if scope.get("type") == "websocket" and isinstance(stream, WSStream):
            scope.setdefault("extensions", {})[EXTENSION] = DirectFrames(stream)
        return await spawn_app(self, app, config, scope, send)

    offering_spawn_app.__wrapped__ = spawn_app  # type: ignore[attr-defined]
    TaskGroup.spawn_app = offering_spawn_app  # type: ignore[method-assign]
    _installed = True
