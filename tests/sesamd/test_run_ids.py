"""Run ids in a real node: every pump event of a run (started, progress, completed or failed) carries the same
``run``, the run's ``start_time`` in the execution log; two runs differ; the log lines of a run name it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from sesamd import _logging
from sesamd._feed import FeedFilter, FeedSubscription
from sesamd._node import open_node
from sesamd.testing import quick_progress_engine

PUMP_EVENTS = frozenset({"pump-started", "pump-progress", "pump-completed", "pump-failed"})
BROKEN = {"_id": "broken", "type": "pipe", "pump": {"mode": "manual"},
          "source": {"type": "embedded", "entities": [{"_id": "x"}]},
          "transform": {"type": "dtl", "rules": {"default": [["fail!", "always broken"]]}}}
COPY = {"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "src"}, "pump": {"mode": "manual"}}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines of the root logger into a buffer; the root logger restored after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    _logging.configure("json", stream=out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


async def one_run(node: Any, subscription: FeedSubscription, pipe_id: str) -> list[dict[str, Any]]:
    """Start a run of ``pipe_id``; its pump events, up to its pump-completed or pump-failed."""
    await node.operate(pipe_id, "start", {})
    got = []
    with trio.fail_after(120):
        async for entry in subscription:
            if entry.event.get("pipe") == pipe_id:
                got.append(entry.event)
                if entry.event["type"] in ("pump-completed", "pump-failed"):
                    return got
    raise AssertionError("the feed ended")


def run_of(events: list[dict[str, Any]]) -> str:
    """The run id all ``events`` carry (one, or the test fails)."""
    runs = {event["run"] for event in events}
    assert len(runs) == 1, [(e["type"], e.get("run")) for e in events]
    [run] = runs
    return run


async def test_pump_events_and_log_lines_carry_one_run_id_per_run(tmp_path: Path, log_lines: io.StringIO) -> None:
    async with open_node(tmp_path, quick_progress_engine()) as node:
        stop_tracking = _logging.track_runs(node.events)
        try:
            await trio.to_thread.run_sync(lambda: node.datasets.open("src").write(
                [{"_id": str(i), "text": "x" * 50} for i in range(20_000)]))
            await node.apply_config([COPY, BROKEN])
            subscription = node.feed.subscribe(FeedFilter(types=PUMP_EVENTS))
            copy_first = await one_run(node, subscription, "copy")
            copy_second = await one_run(node, subscription, "copy")
            broken_first = await one_run(node, subscription, "broken")
            broken_second = await one_run(node, subscription, "broken")
            logged = node.datasets.open("system:pump_execution:copy").get("pump-started")
        finally:
            stop_tracking()
    kinds = [e["type"] for e in copy_first]
    assert kinds[0] == "pump-started" and kinds[-1] == "pump-completed" and "pump-progress" in kinds
    runs = [run_of(events) for events in (copy_first, copy_second, broken_first, broken_second)]
    assert runs[0] != runs[1] and runs[2] != runs[3]
    for events, run in zip((copy_first, copy_second, broken_first, broken_second), runs, strict=True):
        assert events[0]["start_time"] == events[-1]["start_time"] == run
    assert logged is not None and logged["start_time"] == runs[0]  # the second, a noop run, is not logged
    assert broken_first[-1]["type"] == "pump-failed"

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    failed = [line["run"] for line in lines if line.get("pipe") == "broken" and "run failed" in line["msg"]]
    assert failed == runs[2:]
