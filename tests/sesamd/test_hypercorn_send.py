"""The direct path for Hypercorn's small writes, against real socket pairs: what it writes arrives whole and
in order, it never interleaves with another writer, a slow reader is waited for, a gone client closes the
connection, and everything it does not take reaches Hypercorn's own path."""

from __future__ import annotations

import socket
from typing import Any

import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.events import Closed, RawData, Updated
from hypercorn.trio.tcp_server import TCPServer

from sesamd._hypercorn_send import DIRECT_MAX, direct_first, flush, has_rest, write_now


class Protocol:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def handle(self, event: Any) -> None:
        self.events.append(event)


class Fallback:
    """Hypercorn's path as the wrapped ``send``: records what reached it and writes it as Hypercorn does."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, server: Any, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, RawData):
            async with server.send_lock:
                with trio.CancelScope(shield=True):
                    await server.stream.send_all(event.data)


def connection(sndbuf: int | None = None) -> tuple[TCPServer, socket.socket, Fallback, Any]:
    ours, theirs = socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    server = TCPServer(None, Config(), None, None, stream)  # type: ignore[arg-type]
    server.protocol = Protocol()  # type: ignore[assignment]
    fallback = Fallback()
    return server, theirs, fallback, direct_first(fallback)


def read_exactly(peer: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = peer.recv(size - got)
        assert chunk, "the peer's side closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


async def test_a_small_write_goes_straight_to_the_socket() -> None:
    server, peer, fallback, send = connection()
    await send(server, RawData(b"\x81\x05hello"))
    await send(server, RawData(b"\x81\x05world"))
    assert read_exactly(peer, 14) == b"\x81\x05hello\x81\x05world"
    assert fallback.events == [] and server.protocol.events == []  # type: ignore[attr-defined]
    assert not server.send_lock.locked()


async def test_what_it_does_not_take_reaches_hypercorns_path() -> None:
    server, peer, fallback, send = connection()
    large = RawData(b"x" * (DIRECT_MAX + 1))
    await send(server, large)
    await send(server, Updated(idle=False))
    held, release = trio.Event(), trio.Event()

    async def other_writer() -> None:  # holds the connection's lock, as Hypercorn's path does mid-write
        async with server.send_lock:
            held.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_writer)
        await held.wait()
        nursery.start_soon(send, server, RawData(b"after"))
        await trio.testing.wait_all_tasks_blocked()
        assert fallback.events[-1] == RawData(b"after")  # waiting for the lock on Hypercorn's path
        release.set()
    assert fallback.events == [large, Updated(idle=False), RawData(b"after")]
    assert read_exactly(peer, DIRECT_MAX + 1 + 5)[-5:] == b"after"


async def test_a_slow_reader_is_waited_for_and_frames_never_interleave() -> None:
    server, peer, _, send = connection(sndbuf=4096)
    peer.setblocking(True)
    frames = [bytes([65 + i % 26]) * 20_000 for i in range(40)]  # far more than the socket buffers hold

    async def writer(mine: list[bytes]) -> None:
        for frame in mine:
            await send(server, RawData(frame))

    received = bytearray()

    async def reader() -> None:
        total = sum(map(len, frames))
        while len(received) < total:
            received.extend(await trio.to_thread.run_sync(peer.recv, 65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer, frames[0::2])
        nursery.start_soon(writer, frames[1::2])
    pieces = [bytes(received[i:i + 20_000]) for i in range(0, len(received), 20_000)]
    assert all(len(set(piece)) == 1 for piece in pieces), "a frame was split by another writer's bytes"
    assert sorted(pieces) == sorted(frames)
    assert server.protocol.events == []  # type: ignore[attr-defined]


async def test_a_gone_client_closes_the_connection() -> None:
    server, peer, _, send = connection()
    peer.close()
    for _ in range(100):  # the first writes may still be buffered before the reset shows
        await send(server, RawData(b"frame"))
        if server.protocol.events:  # type: ignore[attr-defined]
            break
    assert [type(e) for e in server.protocol.events] == [Closed]  # type: ignore[attr-defined]
    assert not server.send_lock.locked()


async def test_a_closed_socket_is_never_written_through_a_stale_descriptor() -> None:
    server, peer, _, send = connection()
    await server.stream.aclose()
    other, other_peer = socket.socketpair()  # likely given the freed descriptor number
    try:
        await send(server, RawData(b"stray"))
        other_peer.setblocking(False)
        try:
            stray = other_peer.recv(16)
        except BlockingIOError:
            stray = b""
        assert stray == b""
        assert [type(e) for e in server.protocol.events] == [Closed]  # type: ignore[attr-defined]
    finally:
        other.close()
        other_peer.close()
        peer.close()


async def test_a_run_of_direct_writes_still_lets_other_tasks_in(mock_clock: trio.testing.MockClock,
                                                                 monkeypatch: Any) -> None:
    server, peer, _, send = connection()
    checkpoint = trio.lowlevel.cancel_shielded_checkpoint
    made: list[float] = []

    async def counted() -> None:
        made.append(trio.current_time())
        await checkpoint()

    monkeypatch.setattr(trio.lowlevel, "cancel_shielded_checkpoint", counted)
    mock_clock.jump(1.0)
    await send(server, RawData(b"a"))  # the first of a run checkpoints
    await send(server, RawData(b"b"))  # no time has passed: it does not
    mock_clock.jump(0.002)
    await send(server, RawData(b"c"))  # over a millisecond since the last one: it does
    assert made == [1.0, 1.002]
    assert read_exactly(peer, 3) == b"abc"


async def test_write_now_writes_at_once_or_not_at_all() -> None:
    server, peer, fallback, _send = connection()
    assert write_now(server, b"\x81\x02hi") and not has_rest(server)
    assert read_exactly(peer, 4) == b"\x81\x02hi"
    await server.send_lock.acquire()  # another writer is under way: nothing is written
    try:
        assert not write_now(server, b"x")
    finally:
        server.send_lock.release()
    peer.close()
    server.stream.socket.close()
    assert not write_now(server, b"x")  # a closed socket: nothing, no error
    assert fallback.events == []


async def test_what_the_socket_does_not_take_goes_before_any_later_write() -> None:
    server, peer, _fallback, send = connection(sndbuf=4096)
    peer.setblocking(False)
    chunk = b"a" * 50_000
    assert write_now(server, chunk)  # more than the socket holds: its start now, the rest kept
    assert has_rest(server)
    assert not write_now(server, b"b" * 10)  # nothing may come between a frame's start and its end
    received = bytearray()

    async def reader() -> None:
        while len(received) < len(chunk) + 10:
            try:
                received.extend(peer.recv(65536))
            except BlockingIOError:
                await trio.sleep(0.001)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await send(server, RawData(b"c" * 10))  # a later write sends the rest first
    assert bytes(received) == chunk + b"c" * 10 and not has_rest(server)
    assert write_now(server, b"d") and not has_rest(server)
    await flush(server)  # nothing kept: a no-op


async def test_flush_sends_the_rest_and_a_gone_client_closes_the_connection() -> None:
    server, peer, _fallback, _send = connection(sndbuf=4096)
    assert write_now(server, b"e" * 50_000) and has_rest(server)
    peer.close()
    with trio.fail_after(10):
        await flush(server)
    assert not has_rest(server)
    assert [type(event) for event in server.protocol.events] == [Closed]  # type: ignore[attr-defined]
