"""The event feed in a real node: a run's pump-started, dataset-changed, pump-progress and pump-completed
(or pump-failed) events arrive numbered, in order; log records and config changes are in the feed too."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from sesamd._feed import FeedFilter, FeedSubscription
from sesamd._node import open_node
from sesamd.testing import quick_progress_engine


def embedded(pipe_id: str, *ids: str, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": i} for i in ids]},
            "pump": {"mode": "manual"}, **extra}


async def events_until(subscription: FeedSubscription, kinds: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """The events received up to and including the first of ``kinds``."""
    got = []
    with trio.fail_after(timeout):
        async for entry in subscription:
            got.append(entry.event)
            if entry.event["type"] in kinds:
                return got
    raise AssertionError("the feed ended")


async def test_a_run_publishes_numbered_events_into_the_feed(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        await node.apply_config([embedded("p", "a", "b", "c")])
        subscription = node.feed.subscribe(since=0)
        await node.operate("p", "start", {})
        events = await events_until(subscription, {"pump-completed", "pump-failed"})
        kinds = [e["type"] if e["type"] != "dataset-changed" else f"changed {e['dataset']}" for e in events]
        assert kinds[0] == "config-applied" and events[0]["added"] == ["p"]
        assert kinds.index("pump-started") < kinds.index("changed p") < kinds.index("pump-completed")
        numbers = [e["seq"] for e in events]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers) and numbers[0] == 1
        changed = next(e for e in events if e["type"] == "dataset-changed" and e["dataset"] == "p")
        assert changed["pipe"] == "p" and changed["offset"] == 2  # three versions: offsets 0..2
        completed = events[-1]
        assert completed["pipe"] == "p" and completed["processed"] == 3 and completed["changes"] == 3
        assert set(completed["timings"]) == {"source", "transform", "sink"}
        assert all(isinstance(v, float) and v >= 0 for v in completed["timings"].values())
        log_entity = node.datasets.open("system:pump_execution:p").get("pump-completed")
        assert log_entity is not None and "timings" not in log_entity  # the execution log is unchanged


async def test_a_failed_run_says_the_error_and_the_entity(tmp_path: Path) -> None:
    failing = {"type": "dtl", "rules": {"default": [["copy", "*"], ["if", ["eq", "_S._id", "b"], ["fail!", "no b"]]]}}
    async with open_node(tmp_path) as node:
        await node.apply_config([embedded("p", "a", "b", transform=failing)])
        subscription = node.feed.subscribe(FeedFilter(types=frozenset({"pump-failed"})))
        await node.operate("p", "start", {})
        [failed] = await events_until(subscription, {"pump-failed"})
        assert failed["entity_id"] == "b" and "no b" in failed["error"]


async def test_a_long_run_publishes_progress_with_an_eta(tmp_path: Path) -> None:
    async with open_node(tmp_path, quick_progress_engine()) as node:
        await trio.to_thread.run_sync(lambda: node.datasets.open("src").write(
            [{"_id": str(i), "n": i, "text": "x" * 50} for i in range(20_000)]))
        await node.apply_config([{"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "src"},
                                  "pump": {"mode": "manual"}}])
        subscription = node.feed.subscribe(FeedFilter(pipes=("copy",)))
        await node.operate("copy", "start", {})
        events = await events_until(subscription, {"pump-completed", "pump-failed"}, timeout=120)
        assert events[-1]["type"] == "pump-completed" and events[-1]["processed"] == 20_000
        progress = [e for e in events if e["type"] == "pump-progress"]
        assert progress, "no pump-progress during the run"
        assert all(e["pipe"] == "copy" and e["rate"] >= 0 for e in progress)
        reading = [e for e in progress if e["read"] > 0]
        assert reading and all(isinstance(e["eta_seconds"], float) and e["eta_seconds"] >= 0 for e in reading)
        reads = [e["read"] for e in progress]
        assert reads == sorted(reads) and reads[-1] <= 20_000


async def test_log_records_and_supervisor_events_reach_the_feed(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        subscription = node.feed.subscribe(FeedFilter(types=frozenset({"log", "actor-restarted"})))
        logging.getLogger("sesamd.test").warning("pipe %s: something", "p")
        node._on_supervisor_event("actor-restarted", {"actor": "pipe:p", "restarts": 1, "error": "boom"})
        [log_event] = await events_until(subscription, {"log"})
        assert log_event["message"] == "pipe p: something" and log_event["pipe"] == "p"
        restarted = await events_until(subscription, {"actor-restarted"})
        assert restarted[-1]["pipe"] == "p" and restarted[-1]["actor"] == "pipe:p"
    assert not any(type(h).__name__ == "FeedLogHandler" for h in logging.getLogger().handlers)  # removed on exit
