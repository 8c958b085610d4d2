"""``GET /events``: the live event feed over a websocket (see :mod:`sesamd._feed_session`)."""

from __future__ import annotations

from collections.abc import Collection

import trio
from quart import websocket

from .._auth import Permission, Unauthenticated
from .._feed_session import SocketClosed, run_feed_session
from .._ws_direct import EXTENSION
from ._context import api
from ._routes import Param, Resource

resource = Resource("events")

PING_INTERVAL = 20.0  # seconds of quiet before the feed pings a subscriber


class _QuartSocket:
    """Quart's websocket as the session's FeedSocket.

    A client that closes while we send races Hypercorn's own end of the connection (its ``send_eof`` and
    our frame meet on the stream: ``trio.BusyResourceError``); the client is gone either way.
    """

    async def send(self, data: str | bytes) -> None:
        try:
            await websocket.send(data)
        except trio.BusyResourceError:
            raise SocketClosed("the client closed the connection") from None

    async def receive(self) -> str | bytes | None:
        data: str | bytes = await websocket.receive()
        return data

    async def close(self, code: int, reason: str = "") -> None:
        try:
            await websocket.close(code, reason)
        except trio.BusyResourceError:
            raise SocketClosed("the client closed the connection") from None


def _permissions(credential: str | None) -> Collection[str]:
    """The permissions of a header (``Bearer ...``) or of a bare token from a subscribe message."""
    if not credential or not credential.strip():
        raise Unauthenticated("missing bearer token: send the Authorization header or a subscribe message "
                              "with a 'token'")
    auth = api().auth
    principal = auth.authenticate(credential) if " " in credential.strip() else auth.verify(credential.strip())
    return principal.permissions


@resource.websocket("/events", permission=Permission.READ_CONFIG,
                    query=(Param("pipes", description="pipe ids, '*' wildcards, comma-separated"),
                           Param("types", description="event types, comma-separated"),
                           Param("level", description="the least level of log records (default warning)"),
                           Param("since", "integer", "resume after this sequence number")),
                    summary="Live pump, config and log events (websocket; the token in the header or a "
                            "first subscribe message)")
async def events() -> None:
    await websocket.accept()
    await run_feed_session(_QuartSocket(), api().node.feed, _permissions, query=dict(websocket.args),
                           authorization=websocket.headers.get("Authorization"), ping_interval=PING_INTERVAL,
                           direct=websocket.scope.get("extensions", {}).get(EXTENSION))
