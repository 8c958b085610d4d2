"""Pipe cycles: the graph's cycles, the detector's heuristic (events in, warnings out), and a real node whose
two pipes feed each other a counter for ever (warned about in the log, the feed, the metrics and the
execution logs) beside a cycle that converges (never warned about)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from sesamd._cycles import CycleDetector, CycleWarning, PipeEdges, find_cycles
from sesamd._feed import FeedFilter, FeedSubscription
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

GRAPH = {
    "seed": PipeEdges(frozenset(), "seed"),
    "a": PipeEdges(frozenset({"seed", "b"}), "a"),
    "b": PipeEdges(frozenset({"a"}), "b"),
    "out": PipeEdges(frozenset({"b"}), None),
    "self": PipeEdges(frozenset({"self"}), "self"),
}


def completed(pipe: str, changes: int) -> dict[str, Any]:
    return {"type": "pump-completed", "pipe": pipe, "changes": changes}


def test_cycles_are_the_strongly_connected_components_and_self_loops() -> None:
    assert find_cycles(GRAPH) == [("a", "b"), ("self",)]
    assert find_cycles({"x": PipeEdges(frozenset({"y"}), "x"), "y": PipeEdges(frozenset(), "y")}) == []


def test_every_member_changing_for_n_rounds_warns_once() -> None:
    detector = CycleDetector(rounds=3)
    detector.set_graph(GRAPH)
    warnings = []
    for _ in range(5):
        for pipe in ("a", "b"):
            warnings += detector.observe(completed(pipe, 1))
    assert warnings == [CycleWarning(("a", "b"), 3)]
    assert detector.active() == {"a": ("a", "b"), "b": ("a", "b")}
    assert detector.observe(completed("out", 5)) == [] and detector.observe(completed("seed", 5)) == []


def test_a_run_without_changes_or_a_failure_starts_the_count_again() -> None:
    detector = CycleDetector(rounds=2)
    detector.set_graph(GRAPH)
    assert detector.observe(completed("a", 1)) == []
    assert detector.observe(completed("b", 1)) == []
    assert detector.observe(completed("a", 0)) == []  # a settles: no warning
    assert detector.observe(completed("b", 1)) == []
    assert detector.observe(completed("a", 1)) == []
    assert detector.observe(completed("b", 1)) == []
    assert detector.observe(completed("a", 1)) == [CycleWarning(("a", "b"), 2)]
    assert detector.observe({"type": "pump-failed", "pipe": "b", "error": "x"}) == []
    assert detector.active() == {}  # settled (for now): may be warned about again
    for pipe in ("b", "a", "b"):
        found = detector.observe(completed(pipe, 1))
    assert found == [CycleWarning(("a", "b"), 2)]


def test_off_and_graph_changes() -> None:
    detector = CycleDetector(rounds=0)
    detector.set_graph(GRAPH)
    assert not [w for _ in range(20) for p in ("a", "b") for w in detector.observe(completed(p, 1))]
    detector.set_graph({"a": GRAPH["a"], "b": PipeEdges(frozenset({"seed"}), "b")}, rounds=1)
    assert detector.cycles == [] and detector.observe(completed("a", 1)) == []


def hop(field: str) -> list[Any]:
    return ["first", ["path", field, ["hops", {"datasets": ["b b"], "where": [["eq", "_S._id", "b._id"]]}]]]


def cycle_config(a_rules: list[Any], rounds: int) -> list[dict[str, Any]]:
    return [
        {"_id": "node", "type": "metadata", "pipe_cycle_warning_rounds": rounds},
        {"_id": "seed", "type": "pipe", "pump": {"mode": "manual"},
         "source": {"type": "embedded", "entities": [{"_id": "x"}]}},
        {"_id": "a", "type": "pipe", "source": {"type": "dataset", "dataset": "seed"},
         "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], *a_rules]}}},
        {"_id": "b", "type": "pipe", "source": {"type": "dataset", "dataset": "a"},
         "transform": {"type": "dtl", "rules": {"default": [["copy", "*"]]}}},
    ]


COUNTER = [["add", "n", ["plus", 1, ["coalesce", ["list", hop("n"), 0]]]]]  # changes on every pass
COPY = [["add", "m", ["coalesce", ["list", hop("m"), 0]]]]  # the same value from the second pass on


async def metric(client: TokenClient, name: str, pipe: str) -> float | None:
    text = (await (await client.get("/api/metrics")).get_data()).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("pipe") == pipe:
                return sample.value
    return None


async def first(subscription: FeedSubscription, timeout: float = 60) -> dict[str, Any]:
    with trio.fail_after(timeout):
        return (await subscription.receive()).event


async def test_a_cycle_that_never_settles_is_warned_about(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        warnings = node.feed.subscribe(FeedFilter(types=frozenset({"pipe-cycle-warning"})))
        logs = node.feed.subscribe(FeedFilter(types=frozenset({"log"})), maxsize=100_000)
        response = await client.put("/api/config", json=cycle_config(COUNTER, 3))
        assert response.status_code == 200, await response.get_data()
        await client.run_pipe("seed")
        warning = await first(warnings)
        assert warning["pipes"] == ["a", "b"] and warning["rounds"] == 3 and warning["threshold"] == 3
        async for entry in logs:
            if entry.event["logger"] == "sesamd.cycles":
                break
        assert entry.event["level"] == "WARNING" and "pipe cycle a, b" in entry.event["message"]
        for pipe in ("a", "b"):
            assert await metric(client, "sesam_pipe_cycle_warnings_total", pipe) == 1
            assert await metric(client, "sesam_pipe_cycle_warning", pipe) == 1
            logged = node.datasets.open(f"system:pump_execution:{pipe}").get("pipe-cycle-warning")
            assert logged is not None and logged["cycle"] == ["a", "b"] and logged["rounds"] == 3
        assert node.datasets.open("b").get("x")["n"] >= 3
        response = await client.get("/api/pipes/a/log")
        assert any(e["_id"] == "pipe-cycle-warning" for e in await response.get_json())


async def test_a_converging_cycle_is_not_warned_about(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        events = node.feed.subscribe(FeedFilter(types=frozenset({"pump-completed", "pipe-cycle-warning"})))
        response = await client.put("/api/config", json=cycle_config(COPY, 2))
        assert response.status_code == 200, await response.get_data()
        await client.run_pipe("seed")
        seen = []
        while not any(e["pipe"] == "a" and e["changes"] == 0 for e in seen if e["type"] == "pump-completed"):
            seen.append(await first(events))
        await client.wait_idle("b")
        assert [e for e in seen if e["type"] == "pipe-cycle-warning"] == []
        assert await metric(client, "sesam_pipe_cycle_warning", "a") == 0
        assert await metric(client, "sesam_pipe_cycle_warnings_total", "a") is None
        assert node.datasets.open("b").get("x")["m"] == 0
