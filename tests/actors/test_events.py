"""The event bus: fan-out, filters, bounded buffers with lagged notices, closing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio

from actors._events import EventBus, iso_time


def fixed_clock() -> datetime:
    return datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


async def test_subscribers_receive_events_in_order_with_a_time() -> None:
    bus = EventBus(clock=fixed_clock)
    with bus.subscribe(10) as first, bus.subscribe(10) as second:
        bus.publish({"type": "pump-started", "pipe": "a"})
        bus.publish({"type": "pump-completed", "pipe": "a", "time": "2020-01-01T00:00:00.000000Z"})
        for sub in (first, second):
            assert await sub.receive() == {"type": "pump-started", "pipe": "a", "time": "2024-01-02T03:04:05.600000Z"}
            assert (await sub.receive())["time"] == "2020-01-01T00:00:00.000000Z"
    assert bus.subscriber_count == 0


async def test_a_waiting_subscriber_wakes_on_publish(autojump_clock: trio.testing.MockClock) -> None:
    bus = EventBus()
    got: list[dict[str, object]] = []
    with bus.subscribe(5) as sub:
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                async for event in sub:
                    got.append(event)
                    if len(got) == 2:
                        return

            nursery.start_soon(reader)
            await trio.sleep(1)
            bus.publish({"type": "x"})
            await trio.sleep(1)
            bus.publish({"type": "y"})
    assert [e["type"] for e in got] == ["x", "y"]


async def test_filters_by_predicate_and_by_field_map() -> None:
    bus = EventBus()
    by_pipe = bus.subscribe(10, filter={"pipe": "a", "type": ["pump-failed", "pump-completed"]})
    by_fn = bus.subscribe(10, filter=lambda e: e["type"].startswith("pump-s"))
    for event in ({"type": "pump-started", "pipe": "a"}, {"type": "pump-completed", "pipe": "a"},
                  {"type": "pump-failed", "pipe": "b"}, {"type": "pump-failed", "pipe": "a"}):
        bus.publish(event)
    assert [(e["type"], e["pipe"]) for e in drain(by_pipe)] == [("pump-completed", "a"), ("pump-failed", "a")]
    assert [e["type"] for e in drain(by_fn)] == ["pump-started"]


def drain(sub: object) -> list[dict[str, object]]:
    out = []
    while True:
        try:
            out.append(sub.receive_nowait())  # type: ignore[attr-defined]
        except trio.WouldBlock:
            return out


async def test_a_slow_subscriber_gets_a_lagged_notice_and_never_blocks_the_publisher() -> None:
    bus = EventBus()
    slow = bus.subscribe(3)
    fast = bus.subscribe(100)
    for i in range(10):
        bus.publish({"type": "tick", "n": i})  # synchronous: returns at once however full slow is
    assert slow.pending() == 4 and slow.total_dropped == 7
    events = drain(slow)
    assert events[0] == {"type": "lagged", "dropped": 7}
    assert [e["n"] for e in events[1:]] == [7, 8, 9]  # the newest are kept
    assert [e["n"] for e in drain(fast)] == list(range(10))
    bus.publish({"type": "tick", "n": 10})
    assert [e.get("n") for e in drain(slow)] == [10]  # no new notice once caught up


async def test_closing_ends_iteration_after_the_buffer() -> None:
    bus = EventBus()
    sub = bus.subscribe(10)
    bus.publish({"type": "a"})
    bus.close()
    assert [e["type"] async for e in sub] == ["a"]
    late = bus.subscribe(1)
    bus.publish({"type": "b"})
    with pytest.raises(trio.EndOfChannel):
        await late.receive()


async def test_a_broken_filter_does_not_break_the_publisher() -> None:
    bus = EventBus()
    broken = bus.subscribe(5, filter=lambda e: e["missing"])
    ok = bus.subscribe(5)
    bus.publish({"type": "a"})
    assert drain(broken) == [] and len(drain(ok)) == 1


def test_iso_time_is_utc_with_z() -> None:
    from datetime import timedelta, timezone

    moment = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert iso_time(moment) == "2024-01-01T00:00:00.000000Z"
    with pytest.raises(ValueError):
        EventBus().subscribe(0)
