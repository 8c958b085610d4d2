"""Coalesced dataset-changed events (sesamd._changes) on a fake clock."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from sesamd._changes import DatasetChanges


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def changes(clock: Clock, published: list[dict[str, Any]]) -> DatasetChanges:
    stamps = iter(f"t{i}" for i in range(1000))
    return DatasetChanges(published.append, window=0.05, clock=clock, now_text=lambda: next(stamps))


def test_the_first_commit_goes_out_at_once_and_the_window_holds_the_rest_back_as_one_event() -> None:
    clock, published = Clock(), []
    feed = changes(clock, published)
    feed.committed("a", 0, "p")
    assert published == [{"type": "dataset-changed", "dataset": "a", "offset": 0, "pipe": "p", "commits": 1,
                          "time": "t0", "first_commit_time": "t0"}]
    clock.now += 0.01
    feed.committed("a", 1, "p")
    clock.now += 0.01
    feed.committed("a", 2, "p")
    feed.committed("b", 7, None)  # another dataset has a window of its own
    assert [e["dataset"] for e in published] == ["a", "b"]
    assert feed.due() == 100.05
    feed.flush()
    assert len(published) == 2  # not due yet
    clock.now = 100.05
    feed.flush()
    assert published[2] == {"type": "dataset-changed", "dataset": "a", "offset": 2, "pipe": "p", "commits": 2,
                            "time": "t2", "first_commit_time": "t1"}
    clock.now += 0.2
    feed.committed("a", 3, "p")  # a quiet window passed: at once again
    assert published[3]["offset"] == 3 and published[3]["commits"] == 1


async def test_the_task_publishes_held_back_events_when_due_and_the_rest_when_it_ends() -> None:
    published: list[dict[str, Any]] = []
    feed = DatasetChanges(published.append, window=0.05)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.run)
        await trio.testing.wait_all_tasks_blocked()
        feed.committed("a", 0, None)
        feed.committed("a", 1, None)
        assert [e["offset"] for e in published] == [0]
        with trio.fail_after(1):
            while len(published) < 2:
                await trio.sleep(0.01)
        assert published[1]["offset"] == 1 and feed.due() == float("inf")  # nothing held back any more
        feed.committed("a", 2, None)  # within the window of the last event: held back...
        nursery.cancel_scope.cancel()  # ...and published when the task ends (a node shutting down)
    assert [e["offset"] for e in published] == [0, 1, 2]


def test_a_runs_end_first_publishes_what_is_held_back_of_its_datasets() -> None:
    from actors import EventBus
    from sesamd._feed import EventFeed

    clock, bus = Clock(), EventBus()
    changes = DatasetChanges(bus.publish, window=0.05, clock=clock)
    bus.add_listener(changes.run_ended)
    feed = EventFeed(bus)
    changes.committed("out", 0, "p")
    changes.committed("out", 1, "p")  # held back
    changes.committed("other", 5, "q")
    changes.committed("other", 6, "q")  # held back: another pipe's
    bus.publish({"type": "pump-completed", "pipe": "p"})
    kinds = [(e.event["type"], e.event.get("offset")) for e in feed.entries()]
    assert kinds == [("dataset-changed", 0), ("dataset-changed", 5), ("dataset-changed", 1), ("pump-completed", None)]
    feed.close()
