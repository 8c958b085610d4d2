"""The Hypercorn guard: a stream busy with ``send_eof`` ends the connection instead of the server."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.trio.tcp_server import TCPServer

from sesamd._hypercorn_guard import guarded, install


class ClosingStream:
    """A socket stream whose ``send_eof`` is in flight: ``send_all`` meets trio's conflict detector."""

    async def send_all(self, data: bytes) -> None:
        raise trio.BusyResourceError("another task is currently sending data on this SocketStream")


class Protocol:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def handle(self, event: Any) -> None:
        self.events.append(event)


def connection() -> TCPServer:
    server = TCPServer(None, Config(), None, None, ClosingStream())  # type: ignore[arg-type]
    server.protocol = Protocol()  # type: ignore[assignment]
    return server


async def test_unguarded_hypercorn_raises_on_a_busy_stream() -> None:
    """The upstream race this guard exists for: when this fails, Hypercorn fixed it and the guard can go."""
    unguarded = inspect.unwrap(TCPServer.protocol_send)
    with pytest.raises(trio.BusyResourceError):
        await unguarded(connection(), RawData(b"frame"))


async def test_the_guard_closes_the_connection_instead() -> None:
    server = connection()
    await guarded(inspect.unwrap(TCPServer.protocol_send))(server, RawData(b"x"))
    assert [type(event) for event in server.protocol.events] == [Closed]  # type: ignore[attr-defined]


async def test_install_guards_the_class_once() -> None:
    install()
    first = TCPServer.protocol_send
    install()
    assert TCPServer.protocol_send is first
    server = connection()
    await server.protocol_send(RawData(b"x"))
    assert [type(event) for event in server.protocol.events] == [Closed]  # type: ignore[attr-defined]
