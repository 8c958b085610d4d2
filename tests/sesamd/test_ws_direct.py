"""Direct websocket frames (``sesamd._ws_direct``) through a real Hypercorn server: the frame is the one
wsproto makes, a websocket app is offered the writer, what it writes arrives whole and in order among
frames sent the normal way, a client that reads slowly gets every frame intact, and a client that asked
for compression gets none written directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from sesamd._hypercorn_guard import install
from sesamd._ws_direct import EXTENSION, DirectFrames, text_frame

App = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000])
def test_a_frame_is_the_one_wsproto_makes(size: int) -> None:
    text = ("é" * size)[:size] if size % 2 else "x" * size
    assert text_frame(text) == Connection(ConnectionType.SERVER).send(TextMessage(data=text))


def test_the_memo_gives_each_text_its_own_frame() -> None:
    a, b = "a" * 10, "b" * 10
    assert text_frame(a) == text_frame(a) and text_frame(b) != text_frame(a)
    assert text_frame(a)[2:] == b"a" * 10


class Served:
    """What the app saw: the writer offered, and what each direct try did."""

    def __init__(self) -> None:
        self.writer: Any = "not offered"
        self.tries: list[bool] = []
        self.rests = 0


@asynccontextmanager
async def server(app: App) -> AsyncIterator[str]:
    install()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(lambda task_status: serve(app, config, task_status=task_status))
        yield binds[0].replace("http://", "ws://")
        nursery.cancel_scope.cancel()


def frames_app(served: Served, count: int, size: int, *, start: trio.Event | None = None) -> App:
    """Accepts, then sends ``count`` numbered frames of ``size`` bytes: the even ones directly (when it
    can), the odd ones through ASGI; a frame's rest is flushed before the next one is sent."""

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                  send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        writer = served.writer = scope["extensions"].get(EXTENSION)
        if start is not None:
            await start.wait()
        for number in range(count):
            text = f"{number:08d}".ljust(size, "x")
            if number % 2 == 0 and writer is not None:
                took = writer.try_send(text)
                served.tries.append(took)
                if took:
                    if writer.has_rest:
                        served.rests += 1
                        await writer.flush()
                    continue
            await send({"type": "websocket.send", "text": text})
        await send({"type": "websocket.close", "code": 1000})

    return app


async def test_a_websocket_app_is_offered_the_writer_and_its_frames_arrive_in_order() -> None:
    served = Served()
    async with server(frames_app(served, 200, 300)) as url, open_websocket_url(url + "/feed") as ws:
        got = [await ws.get_message() for _ in range(200)]
    assert isinstance(served.writer, DirectFrames)
    assert served.tries == [True] * 100  # every even frame went straight to the socket
    assert [int(text[:8]) for text in got] == list(range(200))
    assert all(len(text) == 300 for text in got)


async def test_a_client_that_reads_slowly_gets_every_frame_whole() -> None:
    served = Served()
    start = trio.Event()
    async with server(frames_app(served, 400, 60_000, start=start)) as url, \
            open_websocket_url(url + "/feed", message_queue_size=0, max_message_size=1 << 20) as ws:
        start.set()
        await trio.sleep(0.3)  # the app fills the socket while the client reads nothing
        got = []
        for _ in range(400):
            got.append(await ws.get_message())
            if len(got) % 50 == 0:
                await trio.sleep(0.01)
    assert [int(text[:8]) for text in got] == list(range(400))
    assert all(len(text) == 60_000 for text in got)
    assert True in served.tries and (served.rests or False in served.tries)  # the socket filled up


async def test_a_client_asking_for_compression_gets_no_direct_frame() -> None:
    served = Served()
    async with server(frames_app(served, 10, 200)) as url:
        host, port = url.removeprefix("ws://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        client = WSConnection(ConnectionType.CLIENT)
        deflate = PerMessageDeflate()
        await stream.send_all(client.send(Request(host=host, target="/feed", extensions=[deflate])))
        texts: list[str] = []
        accepted = False
        with trio.fail_after(10):
            while len(texts) < 10:
                client.receive_data(await stream.receive_some())
                for event in client.events():
                    if isinstance(event, AcceptConnection):
                        accepted = True
                    elif isinstance(event, TextMessage):
                        texts.append(event.data)
        await stream.aclose()
    assert accepted and deflate.enabled()
    assert served.tries == [False] * 5  # the even frames too went through wsproto, compressed
    assert [int(text[:8]) for text in texts] == list(range(10))
