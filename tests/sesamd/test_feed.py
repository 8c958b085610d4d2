"""The live event feed's core: numbering, the ring buffer, resuming, filters, visibility, slow subscribers,
encoding once, and log records from the Trio thread and from worker threads."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio

from actors import EventBus
from sesamd import _feed
from sesamd._auth import ROLES, Permission
from sesamd._feed import (
    EventFeed,
    FeedError,
    FeedFilter,
    FeedLogHandler,
    encode_event,
    may_subscribe,
    parse_since,
    visible_to,
)


def started(pipe: str = "a", **extra: Any) -> dict[str, Any]:
    return {"type": "pump-started", "pipe": pipe, **extra}


def drain(subscription: _feed.FeedSubscription) -> list[dict[str, Any]]:
    """Every entry ready now, decoded from the bytes a client would get."""
    out = []
    while True:
        try:
            entry = subscription.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return out
        assert entry.text == entry.data.decode()
        out.append(orjson.loads(entry.data))


def seqs(events: list[dict[str, Any]]) -> list[Any]:
    return [e["seq"] if e["type"] != "lagged" else ("lagged", e["missed"], e["seq"]) for e in events]


# -- numbering and the ring buffer -------------------------------------------------------------------------


async def test_every_bus_event_gets_a_seq_and_a_time_and_is_encoded() -> None:
    bus = EventBus(clock=lambda: datetime(2024, 1, 31, 12, tzinfo=UTC))
    feed = EventFeed(bus)
    assert feed.last_seq == 0 and feed.oldest_seq == 1
    bus.publish(started("a"))
    bus.publish({"type": "config-applied", "added": ["a"], "removed": [], "changed": []})
    assert feed.last_seq == 2
    first, second = feed.entries()
    assert first.seq == 1 and first.event == {"type": "pump-started", "pipe": "a",
                                              "time": "2024-01-31T12:00:00.000000Z", "seq": 1}
    assert orjson.loads(first.data) == first.event and second.event["seq"] == 2
    assert feed.entries(1) == [second] and feed.entries(2) == []


async def test_a_bus_subscriber_still_gets_the_events_and_a_broken_listener_breaks_nothing() -> None:
    bus = EventBus()
    feed = EventFeed(bus)
    bus.add_listener(lambda event: 1 / 0)
    with bus.subscribe() as subscription:
        bus.publish(started())
        assert subscription.receive_nowait()["type"] == "pump-started"
    assert feed.last_seq == 1
    feed.close()  # detaches from the bus
    bus.publish(started())
    assert feed.last_seq == 1


async def test_the_ring_buffer_keeps_the_newest_capacity_events() -> None:
    feed = EventFeed(capacity=5)
    for i in range(12):
        feed.append(started(n=i))
    assert [e.seq for e in feed.entries()] == [8, 9, 10, 11, 12]
    assert feed.oldest_seq == 8 and feed.last_seq == 12
    assert [e.seq for e in feed.entries(10)] == [11, 12]
    with pytest.raises(ValueError):
        EventFeed(capacity=0)


# -- resuming ----------------------------------------------------------------------------------------------


async def test_since_replays_the_buffered_events_then_live_ones() -> None:
    feed = EventFeed(capacity=10)
    for _ in range(5):
        feed.append(started())
    subscription = feed.subscribe(since=2)
    feed.append(started())
    assert seqs(drain(subscription)) == [3, 4, 5, 6]
    assert subscription.last_seq == 6
    assert drain(feed.subscribe(since=6)) == []  # up to date
    live = feed.subscribe()  # no since: live events only
    feed.append(started())
    assert seqs(drain(live)) == [7]


async def test_since_older_than_the_buffer_gets_lagged_with_how_many_are_gone() -> None:
    feed = EventFeed(capacity=5)
    for _ in range(12):  # 1..7 are gone, 8..12 buffered
        feed.append(started())
    assert seqs(drain(feed.subscribe(since=3))) == [("lagged", 4, 7), 8, 9, 10, 11, 12]
    assert seqs(drain(feed.subscribe(since=0))) == [("lagged", 7, 7), 8, 9, 10, 11, 12]
    assert seqs(drain(feed.subscribe(since=7))) == [8, 9, 10, 11, 12]  # nothing gone: no notice


async def test_since_ahead_of_the_feed_says_reset_and_replays_the_buffer() -> None:
    feed = EventFeed(capacity=5)
    for _ in range(3):
        feed.append(started())
    [notice, *rest] = drain(feed.subscribe(since=500))  # a client of an earlier node process
    assert notice["type"] == "lagged" and notice["reset"] is True and notice["missed"] == 0
    assert seqs(rest) == [1, 2, 3]


async def test_replay_is_filtered_and_not_limited_by_the_queue_size() -> None:
    feed = EventFeed(capacity=100)
    for i in range(50):
        feed.append(started("a" if i % 2 else "b"))
    subscription = feed.subscribe(FeedFilter(pipes=("a",)), since=0, maxsize=3)
    events = drain(subscription)
    assert len(events) == 25 and {e["pipe"] for e in events} == {"a"}


# -- slow subscribers --------------------------------------------------------------------------------------


async def test_a_slow_subscriber_gets_lagged_and_never_blocks_the_publisher() -> None:
    feed = EventFeed()
    slow = feed.subscribe(maxsize=3)
    fast = feed.subscribe(maxsize=1000)
    for _ in range(10):
        feed.append(started())  # synchronous: returns at once whoever is behind
    assert slow.pending() == 4 and slow.total_dropped == 7
    assert seqs(drain(slow)) == [("lagged", 7, 7), 8, 9, 10]
    assert seqs(drain(fast)) == list(range(1, 11))
    feed.append(started())
    assert seqs(drain(slow)) == [11]  # caught up: no more notices


async def test_receive_waits_for_live_events_and_a_cancelled_receive_loses_nothing() -> None:
    feed = EventFeed()
    subscription = feed.subscribe()
    got: list[int] = []

    async def reader() -> None:
        async for entry in subscription:
            got.append(entry.seq)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        feed.append(started())
        feed.append(started())
        await trio.testing.wait_all_tasks_blocked()
        assert got == [1, 2]
        subscription.close()
    assert got == [1, 2] and feed.subscriber_count == 0

    subscription = feed.subscribe()
    with trio.move_on_after(0.01):  # cancelled while waiting
        await subscription.receive()
    feed.append(started())
    with trio.CancelScope() as scope:  # cancelled with an event ready: it stays for the next receive
        scope.cancel()
        await subscription.receive()
    assert (await subscription.receive()).seq == 3


async def test_closing_the_feed_ends_its_subscriptions_after_what_is_buffered() -> None:
    feed = EventFeed()
    subscription = feed.subscribe()
    feed.append(started())
    feed.close()
    assert (await subscription.receive()).seq == 1
    with pytest.raises(trio.EndOfChannel):
        await subscription.receive()
    assert feed.subscribe().closed


async def test_a_discarding_close_drops_what_is_buffered() -> None:
    feed = EventFeed()
    subscription = feed.subscribe()
    feed.append(started())
    subscription.close(discard=True)
    with pytest.raises(trio.EndOfChannel):
        subscription.receive_nowait()
    feed.append(started())  # a closed subscription gets nothing more
    assert subscription.pending() == 0


# -- encoding once -----------------------------------------------------------------------------------------


async def test_an_event_is_encoded_once_whatever_the_number_of_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    original = _feed.encode_event

    def counting(event: dict[str, Any]) -> bytes:
        calls.append(event)
        return original(event)

    monkeypatch.setattr(_feed, "encode_event", counting)
    feed = EventFeed()
    subscriptions = [feed.subscribe() for _ in range(50)]
    feed.append(started())
    assert len(calls) == 1
    entries = [s.receive_nowait() for s in subscriptions]
    assert all(entry.text is entries[0].text for entry in entries)


async def test_encoding_never_raises() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    event = {"type": "pump-failed", "amount": Decimal("1.10"), "at": datetime(2024, 1, 2, tzinfo=UTC),
             "ids": {"b", "a"}, 3: "int key", "odd": Odd(), "broken": Broken(), "raw": b"\xffx",
             "error": ValueError("bad")}
    decoded = orjson.loads(encode_event(event))
    assert decoded["amount"] == "1.10" and decoded["at"].startswith("2024-01-02T00:00:00")
    assert decoded["ids"] == ["a", "b"] and decoded["3"] == "int key" and decoded["odd"] == "odd"
    assert decoded["broken"] == "<Broken>" and decoded["error"] == "ValueError: bad"
    assert orjson.loads(encode_event({"type": "x", "big": 2 ** 70}))["big"] == 2 ** 70  # the json fallback
    cycle: dict[str, Any] = {"type": "x", "seq": 4}
    cycle["self"] = cycle
    assert orjson.loads(encode_event(cycle)) == {"type": "x", "seq": 4,
                                                 "error": "the event could not be encoded as JSON"}


# -- filters -----------------------------------------------------------------------------------------------


def passes(filter: FeedFilter, event: dict[str, Any]) -> bool:
    return filter.matches(event)


async def test_pipe_globs_match_the_pipe_and_events_without_a_pipe_as_documented() -> None:
    only = FeedFilter(pipes=("orders*", "customers"))
    assert passes(only, started("orders-2024")) and passes(only, started("customers"))
    assert not passes(only, started("customers-x")) and not passes(only, started("x-orders"))
    assert passes(only, {"type": "config-applied", "added": ["x"]})  # node-wide
    assert passes(only, {"type": "actor-restarted", "actor": "dataset:x"})  # not a pipe's actor
    assert passes(only, {"type": "dataset-changed", "dataset": "whatever", "pipe": "orders"})  # its writer
    assert not passes(only, {"type": "dataset-changed", "dataset": "orders", "pipe": "other"})
    assert passes(only, {"type": "dataset-changed", "dataset": "orders-raw", "pipe": None})  # no writer
    assert not passes(only, {"type": "log", "level": "ERROR", "message": "node-wide"})
    assert passes(only, {"type": "log", "level": "ERROR", "message": "m", "pipe": "orders"})
    assert passes(FeedFilter(), started("anything"))


async def test_types_and_log_levels() -> None:
    chosen = FeedFilter(types=frozenset({"pump-failed", "log"}), log_level=logging.INFO)
    assert passes(chosen, {"type": "pump-failed", "pipe": "a"}) and not passes(chosen, started())
    assert passes(chosen, {"type": "log", "level": "INFO"}) and not passes(chosen, {"type": "log", "level": "DEBUG"})
    default = FeedFilter()
    assert not passes(default, {"type": "log", "level": "INFO"})  # WARNING and up by default
    assert passes(default, {"type": "log", "level": "WARNING"})
    assert passes(default, {"type": "log", "level": "Level 35"})  # a custom level
    assert passes(FeedFilter(types=frozenset({"pump-started"})), started())
    assert not passes(FeedFilter(types=frozenset({"pump-started"})), {"type": "log", "level": "CRITICAL"})


async def test_filters_from_the_query() -> None:
    parsed = FeedFilter.parse({"pipes": "a, b*", "types": "pump-started,pump-failed", "level": "info",
                               "since": "12"})
    assert parsed == FeedFilter(("a", "b*"), frozenset({"pump-started", "pump-failed"}), logging.INFO)
    assert parsed.describe() == {"pipes": ["a", "b*"], "types": ["pump-failed", "pump-started"], "level": "INFO"}
    assert FeedFilter.parse({}) == FeedFilter() and FeedFilter.parse({"pipes": "", "types": ""}) == FeedFilter()
    assert FeedFilter.parse({"level": "WARN"}).log_level == logging.WARNING
    assert parse_since("12") == 12 and parse_since(None) is None and parse_since(0) == 0


async def test_filters_from_a_subscribe_message_keep_what_it_does_not_say() -> None:
    base = FeedFilter.parse({"pipes": "a"})
    message = {"type": "subscribe", "token": "t", "types": ["pump-failed"], "level": "error"}
    assert FeedFilter.from_message(message, base) == FeedFilter(("a",), frozenset({"pump-failed"}), logging.ERROR)
    assert FeedFilter.from_message({"pipes": None}, base) == FeedFilter()
    assert FeedFilter.from_message({"pipes": []}, base).pipes is None


@pytest.mark.parametrize(("parse", "field"), [
    (lambda: FeedFilter.parse({"level": "loud"}), "level"),
    (lambda: FeedFilter.parse({"types": "pump-started,nope"}), "types"),
    (lambda: FeedFilter.from_message({"pipes": "a,b"}), "pipes"),
    (lambda: FeedFilter.from_message({"pipes": ["a", 1]}), "pipes"),
    (lambda: FeedFilter.from_message({"pipes": ["a", " "]}), "pipes"),
    (lambda: FeedFilter.from_message({"types": "log"}), "types"),
    (lambda: FeedFilter.from_message({"types": ["lagged"]}), "types"),
    (lambda: FeedFilter.from_message({"level": True}), "level"),
    (lambda: FeedFilter.from_message({"level": ["info"]}), "level"),
    (lambda: FeedFilter.from_message(["not", "an", "object"]), "message"),  # type: ignore[arg-type]
    (lambda: parse_since("-1"), "since"),
    (lambda: parse_since("x"), "since"),
    (lambda: parse_since(-3), "since"),
    (lambda: parse_since(True), "since"),
])
async def test_bad_filters_name_the_field(parse: Any, field: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse()
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)


# -- visibility --------------------------------------------------------------------------------------------


EVENTS = {
    "pump": started(),
    "config": {"type": "config-applied", "added": []},
    "actor": {"type": "actor-restarted", "actor": "pipe:a", "pipe": "a"},
    "data": {"type": "dataset-changed", "dataset": "a", "offset": 3},
    "log": {"type": "log", "level": "ERROR", "message": "m"},
}


def visible(permissions: Any) -> set[str]:
    may_see = visible_to(permissions)
    return {name for name, event in EVENTS.items() if may_see(event)}


async def test_what_each_permission_may_see() -> None:
    assert visible({"read_config"}) == {"pump", "config", "actor"}
    assert visible(["read_data"]) == {"data"}
    assert visible({"read_config", "read_data"}) == {"pump", "config", "actor", "data"}
    assert visible({"admin"}) == set(EVENTS)
    assert visible(set()) == set()
    assert visible(ROLES["guest"]) == {"pump", "config", "actor"}  # Permission members are strings
    assert visible(ROLES["developer"]) == {"pump", "config", "actor", "data"}
    assert visible(ROLES["admin"]) == set(EVENTS)
    assert may_subscribe({Permission.READ_DATA}) and not may_subscribe({"write_data", "run_pump_operation"})


async def test_a_subscriber_sees_only_what_its_permissions_allow() -> None:
    feed = EventFeed()
    guest = feed.subscribe(may_see=visible_to({"read_config"}))
    reader = feed.subscribe(may_see=visible_to({"read_data"}))
    for event in EVENTS.values():
        feed.append(event)
    assert [e["type"] for e in drain(guest)] == ["pump-started", "config-applied", "actor-restarted"]
    assert [e["type"] for e in drain(reader)] == ["dataset-changed"]
    assert [e["type"] for e in drain(feed.subscribe(may_see=visible_to({"read_config"}), since=0))] == \
        ["pump-started", "config-applied", "actor-restarted"]  # replay is checked the same way


async def test_a_broken_predicate_drops_the_event_not_the_publisher() -> None:
    feed = EventFeed()
    broken = feed.subscribe(may_see=lambda event: 1 / 0)
    fine = feed.subscribe()
    feed.append(started())
    assert broken.pending() == 0 and fine.pending() == 1


# -- log records -------------------------------------------------------------------------------------------


@pytest.fixture
def logger() -> Any:
    named = logging.getLogger("tests.feed")
    named.setLevel(logging.DEBUG)
    named.propagate = False
    yield named
    named.handlers.clear()
    named.propagate = True
    named.setLevel(logging.NOTSET)


async def until(predicate: Any) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.001)


async def test_log_records_from_the_trio_thread(logger: logging.Logger) -> None:
    feed = EventFeed()
    logger.addHandler(FeedLogHandler(feed))
    logger.debug("below the floor")
    logger.info("pump %s: started %d", "orders", 3)
    logger.warning("plain", extra={"pipe": "customers"})
    try:
        raise ValueError("inner")
    except ValueError:
        logger.exception("went wrong")
    events = [e.event for e in feed.entries()]  # at once, no waiting
    assert [(e["level"], e["message"], e.get("pipe")) for e in events] == [
        ("INFO", "pump orders: started 3", "orders"), ("WARNING", "plain", "customers"),
        ("ERROR", "went wrong", None)]
    assert events[0]["logger"] == "tests.feed" and events[0]["type"] == "log" and events[0]["seq"] == 1
    assert "ValueError: inner" in events[2]["exception"]
    assert events[0]["time"].endswith("Z")


async def test_log_records_from_a_worker_thread_are_handed_to_the_trio_thread(logger: logging.Logger) -> None:
    feed = EventFeed()
    logger.addHandler(FeedLogHandler(feed, trio.lowlevel.current_trio_token(), level=logging.WARNING))
    threads: list[int] = []
    subscription = feed.subscribe(FeedFilter(log_level=logging.DEBUG))
    original = subscription._offer

    def offer(entry: Any) -> None:
        threads.append(threading.get_ident())
        original(entry)

    subscription._offer = offer  # type: ignore[method-assign]

    def work() -> None:
        logger.info("below the handler's level")
        for i in range(3):
            logger.error("pipe %s: failed %d", "p", i)

    await trio.to_thread.run_sync(work)
    await until(lambda: feed.last_seq == 3)
    assert [e["message"] for e in drain(subscription)] == ["pipe p: failed 0", "pipe p: failed 1", "pipe p: failed 2"]
    assert set(threads) == {threading.get_ident()}  # appended in the Trio thread


async def test_the_log_handler_never_raises_and_does_not_recurse(logger: logging.Logger) -> None:
    feed = EventFeed()
    handler = FeedLogHandler(feed)
    logger.addHandler(handler)
    chatty = feed.subscribe(may_see=lambda event: logger.error("seen %s", event["type"]) or True)
    feed.append(started())  # the predicate logs while the feed appends: deferred, then not again
    await until(lambda: feed.last_seq == 2)
    await trio.testing.wait_all_tasks_blocked()
    assert [e.event["type"] for e in feed.entries()] == ["pump-started", "log"]
    assert chatty.pending() == 2

    class Gone:
        def run_sync_soon(self, *args: Any) -> None:
            raise trio.RunFinishedError("the run is over")

    late = FeedLogHandler(feed, Gone())  # type: ignore[arg-type]
    thread = threading.Thread(target=late.emit, args=(logger.makeRecord("x", logging.ERROR, "f", 1, "m", (), None),))
    thread.start()
    thread.join()
    bad = logger.makeRecord("x", logging.ERROR, "f", 1, "%d", ("not a number",), None)
    handler.emit(bad)  # a record whose message does not format still goes in, as it is
    assert feed.entries()[-1].event["message"] == "%d"


async def test_excluded_loggers_stay_out(logger: logging.Logger) -> None:
    feed = EventFeed()
    handler = FeedLogHandler(feed, exclude=("tests.feed.access",))
    logger.addHandler(handler)
    logging.getLogger("tests.feed.access").warning("GET /api 200")
    logging.getLogger("tests.feed.accessory").warning("kept")
    assert [e.event["message"] for e in feed.entries()] == ["kept"]


# -- handing entries out directly --------------------------------------------------------------------------


async def test_direct_gets_what_has_nothing_queued_ahead_of_it_and_order_holds() -> None:
    feed = EventFeed()
    subscription = feed.subscribe(FeedFilter(pipes=("a",)))
    handed: list[int] = []
    refuse = {3}

    def direct(entry: _feed.FeedEntry) -> bool:
        if entry.seq in refuse:
            return False
        handed.append(entry.seq)
        return True

    subscription.direct = direct
    feed.append(started("a"))  # 1: handed out
    feed.append(started("b"))  # 2: not for this filter, not offered
    feed.append(started("a"))  # 3: refused: queued
    feed.append(started("a"))  # 4: queued behind 3, not offered
    assert handed == [1] and subscription.last_seq == 1 and subscription.pending() == 2
    assert seqs(drain(subscription)) == [3, 4]
    feed.append(started("a"))  # 5: nothing queued again
    assert handed == [1, 5] and subscription.last_seq == 5 and subscription.pending() == 0


async def test_direct_is_not_offered_what_comes_after_a_lagged_notice_or_a_replay() -> None:
    feed = EventFeed()
    feed.append(started())
    replaying = feed.subscribe(since=0)
    replaying.direct = lambda entry: True
    feed.append(started())  # the replayed 1 is ahead of it
    assert seqs(drain(replaying)) == [1, 2]
    lagging = feed.subscribe(maxsize=1)
    for _ in range(3):
        feed.append(started())
    lagging.direct = lambda entry: True
    feed.append(started())  # a lagged notice is owed first
    assert seqs(drain(lagging)) == [("lagged", 3, 5), 6]


async def test_wait_returns_when_woken_or_offered() -> None:
    feed = EventFeed()
    subscription = feed.subscribe()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscription.wait)
            await trio.testing.wait_all_tasks_blocked()
            subscription.wake()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscription.wait)
            await trio.testing.wait_all_tasks_blocked()
            feed.append(started())
        await subscription.wait()  # something queued: returns at once
    assert subscription.pending() == 1


async def test_a_direct_that_raises_is_dropped_and_the_entry_queued() -> None:
    feed = EventFeed()
    subscription, other = feed.subscribe(), feed.subscribe()

    def broken(entry: _feed.FeedEntry) -> bool:
        raise RuntimeError("gone wrong")

    subscription.direct = broken
    feed.append(started())
    assert subscription.direct is None
    assert seqs(drain(subscription)) == [1] and seqs(drain(other)) == [1]
