"""The event feed's websocket session, against an in-memory socket: authentication by header and by
message, refusals (4401, 4403, 4400), the subscribe timeout, pings, resuming, changing the filter, and
clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio

from sesamd._auth import Forbidden, Unauthenticated
from sesamd._feed import EventFeed
from sesamd._feed_session import SocketClosed, run_feed_session

TOKENS: dict[str, Collection[str]] = {
    "Bearer reader": {"read_config", "read_data"},
    "reader": {"read_config", "read_data"},
    "Bearer guest": {"read_config"},
    "Bearer admin": {"admin"},
    "writer": {"write_data"},
}


def authenticate(credential: str | None) -> Collection[str]:
    if credential == "forbidden":
        raise Forbidden("this token may not do that")
    if credential not in TOKENS:
        raise Unauthenticated("invalid token")
    return TOKENS[credential]


class FakeSocket:
    """The client's end: ``send_json`` as the client, ``next`` to read what the session sent."""

    def __init__(self) -> None:
        self._to_session, self._from_client = trio.open_memory_channel[str | bytes | None](100)
        self._to_client, self._from_session = trio.open_memory_channel[str | bytes](1000)
        self.closed: tuple[int, str] | None = None
        self.gone = False

    # the session's side
    async def send(self, data: str | bytes) -> None:
        if self.gone:
            raise SocketClosed
        await self._to_client.send(data)

    async def receive(self) -> str | bytes | None:
        try:
            return await self._from_client.receive()
        except trio.EndOfChannel:
            raise SocketClosed from None

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
        self._to_client.close()

    # the client's side
    async def send_json(self, message: Any) -> None:
        await self._to_session.send(orjson.dumps(message).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self._to_session.send(data)

    async def next(self) -> dict[str, Any]:
        with trio.fail_after(30):
            data = await self._from_session.receive()
        assert isinstance(data, str)  # JSON text frames
        message: dict[str, Any] = orjson.loads(data)
        return message

    async def next_event(self) -> dict[str, Any]:
        """The next message that is not a ping."""
        while True:
            message = await self.next()
            if message["type"] != "ping":
                return message

    async def ended(self) -> list[dict[str, Any]]:
        """What is left once the session closed the socket."""
        rest = []
        with trio.fail_after(30):
            async for data in self._from_session:
                rest.append(orjson.loads(data))
        return rest

    def hang_up(self) -> None:
        self.gone = True
        self._to_session.close()


@asynccontextmanager
async def session(feed: EventFeed, *, query: Mapping[str, str] | None = None, authorization: str | None = None,
                  **options: Any) -> AsyncIterator[tuple[FakeSocket, trio.Nursery]]:
    ws = FakeSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_feed_session(ws, feed, authenticate, query=query or {},
                                                    authorization=authorization, **options))
        yield ws, nursery
        nursery.cancel_scope.cancel()


def pump(pipe: str = "a", kind: str = "pump-started") -> dict[str, Any]:
    return {"type": kind, "pipe": pipe}


async def test_a_header_subscribes_at_once_with_the_query_filter() -> None:
    feed = EventFeed()
    feed.append(pump("a"))
    async with session(feed, query={"pipes": "a*,c", "types": "pump-started,dataset-changed"},
                       authorization="Bearer reader") as (ws, _):
        ack = await ws.next()
        assert ack == {"type": "subscribed", "seq": 1, "epoch": feed.epoch, "since": None,
                       "filter": {"pipes": ["a*", "c"], "types": ["dataset-changed", "pump-started"],
                                  "level": "WARNING"}}
        feed.append(pump("b"))
        feed.append(pump("a2", "pump-completed"))
        feed.append(pump("a1"))
        feed.append({"type": "dataset-changed", "dataset": "c", "offset": 9, "pipe": None})
        first, second = await ws.next(), await ws.next()
        assert (first["pipe"], first["seq"]) == ("a1", 4)
        assert (second["type"], second["seq"], second["dataset"]) == ("dataset-changed", 5, "c")
        assert feed.subscriber_count == 1
    assert feed.subscriber_count == 0  # cleaned up when the session ends


async def test_a_subscribe_message_carries_the_token_and_the_filter() -> None:
    feed = EventFeed()
    async with session(feed, query={"pipes": "x"}) as (ws, _):
        await ws.send_json({"type": "ping"})  # answered while waiting for the subscribe message
        assert (await ws.next())["type"] == "pong"
        assert feed.subscriber_count == 0
        await ws.send_json({"type": "subscribe", "token": "reader", "pipes": ["b"], "level": "error"})
        ack = await ws.next()
        assert ack["type"] == "subscribed" and ack["filter"] == {"pipes": ["b"], "types": None, "level": "ERROR"}
        feed.append(pump("x"))
        feed.append(pump("b"))
        assert (await ws.next())["pipe"] == "b"


async def test_a_subscriber_sees_only_what_its_permissions_allow() -> None:
    feed = EventFeed()
    async with session(feed, authorization="Bearer guest") as (ws, _):
        await ws.next()
        feed.append({"type": "dataset-changed", "dataset": "a", "offset": 1})
        feed.append({"type": "log", "level": "ERROR", "logger": "x", "message": "m"})
        feed.append(pump("a"))
        assert (await ws.next())["type"] == "pump-started"


@pytest.mark.parametrize(("authorization", "message", "status"), [
    ("Bearer nope", None, 401),
    (None, {"type": "subscribe", "token": "nope"}, 401),
    (None, {"type": "subscribe"}, 401),  # no token at all
    ("forbidden", None, 403),
    ("writer", None, 403),  # no read permission
    (None, {"type": "subscribe", "token": "writer"}, 403),
    (None, {"type": "subscribe", "token": "reader", "types": ["nope"]}, 400),
    (None, {"type": "subscribe", "token": "reader", "since": -1}, 400),
    (None, {"type": "subscribe", "token": 7}, 400),
    (None, {"type": "hello"}, 400),
    (None, "not json", 400),
])
async def test_refusals_send_an_error_and_close_with_4000_plus_the_status(
        authorization: str | None, message: Any, status: int) -> None:
    feed = EventFeed()
    async with session(feed, authorization=authorization) as (ws, _):
        if isinstance(message, dict):
            await ws.send_json(message)
        elif message is not None:
            await ws.send_raw(message)
        [error] = await ws.ended()
        assert error["type"] == "error" and error["status"] == status and error["detail"]
        assert ws.closed is not None and ws.closed[0] == 4000 + status
    assert feed.subscriber_count == 0


@pytest.mark.parametrize(("query", "field"), [({"level": "loud"}, "level"), ({"types": "x"}, "types"),
                                              ({"since": "soon"}, "since"), ({"token": "reader"}, "token")])
async def test_a_bad_query_is_refused_with_4400_naming_the_field(query: dict[str, str], field: str) -> None:
    async with session(EventFeed(), query=query, authorization="Bearer reader") as (ws, _):
        [error] = await ws.ended()
        assert error["status"] == 400 and error["detail"].startswith(f"{field}: ")
        assert ws.closed is not None and ws.closed[0] == 4400


async def test_without_a_header_or_a_subscribe_message_the_session_times_out(
        autojump_clock: trio.testing.MockClock) -> None:
    async with session(EventFeed(), subscribe_timeout=10) as (ws, _):
        started = trio.current_time()
        [error] = await ws.ended()
        assert error["status"] == 401 and "within 10 s" in error["detail"]
        assert ws.closed is not None and ws.closed[0] == 4401
        assert trio.current_time() - started == pytest.approx(10)


async def test_an_idle_session_sends_pings_with_the_last_seq(autojump_clock: trio.testing.MockClock) -> None:
    feed = EventFeed()
    feed.append(pump())
    async with session(feed, authorization="Bearer reader", ping_interval=5) as (ws, _):
        await ws.next()
        before = trio.current_time()
        assert await ws.next() == {"type": "ping", "seq": 1}
        assert trio.current_time() - before == pytest.approx(5)
        feed.append(pump())
        assert (await ws.next())["seq"] == 2
        assert await ws.next() == {"type": "ping", "seq": 2}
        await ws.send_json({"type": "ping"})
        assert await ws.next() == {"type": "pong", "seq": 2}


async def test_since_resumes_from_the_buffer_and_says_when_events_are_gone() -> None:
    feed = EventFeed(capacity=3)
    for _ in range(6):
        feed.append(pump())
    async with session(feed, query={"since": "4"}, authorization="Bearer reader") as (ws, _):
        assert (await ws.next())["since"] == 4
        assert [(await ws.next())["seq"] for _ in range(2)] == [5, 6]
    async with session(feed, query={"since": "1"}, authorization="Bearer reader") as (ws, _):
        await ws.next()
        lagged = await ws.next()
        assert (lagged["type"], lagged["missed"], lagged["seq"]) == ("lagged", 2, 3)
        assert [(await ws.next())["seq"] for _ in range(3)] == [4, 5, 6]
    async with session(feed) as (ws, _):  # since in the subscribe message
        await ws.send_json({"type": "subscribe", "token": "reader", "since": 5})
        await ws.next()
        assert (await ws.next())["seq"] == 6


async def test_a_later_subscribe_message_changes_the_filter_without_gaps_or_repeats() -> None:
    feed = EventFeed()
    async with session(feed, query={"pipes": "a"}, authorization="Bearer reader") as (ws, _):
        await ws.next()
        feed.append(pump("a"))  # 1
        assert (await ws.next())["seq"] == 1
        feed.append(pump("b"))  # 2: not for this filter, but for the next one
        await trio.testing.wait_all_tasks_blocked()
        await ws.send_json({"type": "subscribe", "pipes": ["b"]})  # no token: the same permissions
        ack = await ws.next()
        assert ack["type"] == "subscribed" and ack["filter"]["pipes"] == ["b"] and ack["since"] == 1
        assert (await ws.next())["seq"] == 2  # after the last event sent, under the new filter
        feed.append(pump("a"))
        feed.append(pump("b"))
        assert (await ws.next())["seq"] == 4
        assert feed.subscriber_count == 1
        await ws.send_json({"type": "subscribe", "token": "Bearer guest", "pipes": None})  # new permissions
        assert (await ws.next())["type"] == "subscribed"
        feed.append({"type": "dataset-changed", "dataset": "a", "offset": 1})
        feed.append(pump("c"))
        assert (await ws.next())["pipe"] == "c"
        await ws.send_json({"type": "subscribe", "token": "nope"})
        assert (await ws.next())["status"] == 401
        assert await ws.ended() == []
        assert ws.closed is not None and ws.closed[0] == 4401


async def test_a_client_that_goes_is_cleaned_up() -> None:
    feed = EventFeed()
    ws = FakeSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_feed_session(ws, feed, authenticate, query={}, authorization="Bearer admin"))
        await ws.next()
        assert feed.subscriber_count == 1
        ws.hang_up()
    assert feed.subscriber_count == 0  # the session returned by itself


async def test_a_lagging_client_gets_lagged_notices() -> None:
    feed = EventFeed()
    async with session(feed, authorization="Bearer reader", maxsize=2) as (ws, _):
        await ws.next()
        for _ in range(10):  # before the session's sender runs again
            feed.append(pump())
        messages = [await ws.next() for _ in range(3)]
        assert [(m["type"], m["seq"]) for m in messages] == [("lagged", 8), ("pump-started", 9), ("pump-started", 10)]
        assert messages[0]["missed"] == 8


async def test_shutdown_closes_the_socket_with_1001() -> None:
    feed = EventFeed()
    async with session(feed, authorization="Bearer reader") as (ws, _):
        await ws.next()
        feed.append(pump())
        feed.close()
        assert [m["seq"] for m in await ws.ended()] == [1]
        assert ws.closed == (1001, "the node is shutting down")


async def test_an_async_authenticate_is_awaited() -> None:
    async def check(credential: str | None) -> Collection[str]:
        await trio.sleep(0)
        return {"read_config"}

    feed = EventFeed()
    ws = FakeSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_feed_session(ws, feed, check, query={}, authorization="Bearer x"))
        assert (await ws.next())["type"] == "subscribed"
        nursery.cancel_scope.cancel()


class FakeDirect:
    """The server's direct frames for a FakeSocket: what it takes goes to the client at once. ``refuse``
    holds the seqs it refuses; ``partial`` those it takes only in part (their text reaches the client at
    the flush, and nothing is taken meanwhile, like the real writer's rest)."""

    def __init__(self, ws: FakeSocket, refuse: Collection[int] = (), partial: Collection[int] = ()) -> None:
        self.ws = ws
        self.refuse, self.partial = set(refuse), set(partial)
        self.taken: list[int] = []
        self.rest: str | None = None

    def try_send(self, text: str) -> bool:
        seq = orjson.loads(text)["seq"]
        if seq in self.refuse or self.rest is not None:
            return False
        self.taken.append(seq)
        if seq in self.partial:
            self.rest = text
        else:
            self.ws._to_client.send_nowait(text)
        return True

    @property
    def has_rest(self) -> bool:
        return self.rest is not None

    async def flush(self) -> None:
        if self.rest is not None:
            await self.ws._to_client.send(self.rest)
            self.rest = None


@asynccontextmanager
async def direct_session(feed: EventFeed, **direct: Any) -> AsyncIterator[tuple[FakeSocket, FakeDirect]]:
    ws = FakeSocket()
    fake = FakeDirect(ws, **direct)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_feed_session(ws, feed, authenticate, query={}, authorization="Bearer reader",
                                                    direct=fake))
        assert (await ws.next())["type"] == "subscribed"
        await trio.testing.wait_all_tasks_blocked()
        yield ws, fake
        nursery.cancel_scope.cancel()


async def test_an_idle_session_lets_the_feed_write_each_event_at_once() -> None:
    feed = EventFeed()
    async with direct_session(feed) as (ws, fake):
        for _ in range(5):
            feed.append(pump())
        assert fake.taken == [1, 2, 3, 4, 5]  # while publishing: no task switch to the sender
        assert [(await ws.next())["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_what_the_direct_path_refuses_or_takes_in_part_keeps_the_order() -> None:
    feed = EventFeed()
    async with direct_session(feed, refuse={2, 6}, partial={4}) as (ws, fake):
        for _ in range(4):
            feed.append(pump())  # 1 direct, 2 refused (queued), 3 queued behind it, 4 queued too
        await trio.testing.wait_all_tasks_blocked()  # the sender sends 2, 3, 4 the normal way
        feed.append(pump())  # 5: direct again
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(4):
            feed.append(pump())  # 6 refused, 7-9 queued
        await trio.testing.wait_all_tasks_blocked()
        feed.append(pump())  # 10 direct
        got = [(await ws.next())["seq"] for _ in range(10)]
    assert got == list(range(1, 11))
    assert fake.taken == [1, 5, 10]


async def test_a_frame_taken_in_part_is_ended_before_the_next_one() -> None:
    feed = EventFeed()
    async with direct_session(feed, partial={1}) as (ws, fake):
        feed.append(pump())  # 1: its rest waits for the sender's flush
        feed.append(pump())  # 2: refused while the rest is unsent: queued
        got = [(await ws.next())["seq"] for _ in range(2)]
        assert not fake.has_rest
        await trio.testing.wait_all_tasks_blocked()  # the sender waits idle again
        feed.append(pump())
        assert (await ws.next())["seq"] == 3
    assert got == [1, 2] and fake.taken == [1, 3]
