"""A request body that stops arriving is answered 408 and its connection dropped (ASGI middleware).

Hypercorn's own ``read_timeout`` would also cut off a client that is slowly *reading* a large streamed
response (it sends nothing meanwhile), so the idle limit applies only while a request body is still owed:
when no part of it arrives for ``idle`` seconds, the client gets a 408 and the app sees a disconnect.
"""

from __future__ import annotations

from typing import Any

import orjson
import trio

__all__ = ["IdleBodyTimeout"]

ASGIApp = Any


class IdleBodyTimeout:
    def __init__(self, app: ASGIApp, idle: float = 10.0) -> None:
        self.app = app
        self.idle = idle

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        owed = True  # until the last part of the request body has arrived
        timed_out = False

        async def receive_with_limit() -> dict[str, Any]:
            nonlocal owed, timed_out
            if not owed or timed_out:
                message: dict[str, Any] = await receive() if not timed_out else {"type": "http.disconnect"}
                return message
            with trio.move_on_after(self.idle):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    owed = False
                return message
            timed_out = True
            detail = f"no part of the request body arrived for {self.idle:g} s: the request is dropped"
            await send({"type": "http.response.start", "status": 408,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": orjson.dumps({"detail": detail, "status": 408})})
            return {"type": "http.disconnect"}

        async def send_unless_timed_out(message: dict[str, Any]) -> None:
            if not timed_out:
                await send(message)

        await self.app(scope, receive_with_limit, send_unless_timed_out)
