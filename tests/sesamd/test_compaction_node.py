"""Compaction in a real node: the readers' offsets protect what they need, the route, the schedule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from actors._retention import CompactionSettings, compaction_settings
from sesamd._cli import main
from sesamd._compaction import DEFAULT_INTERVAL, interval_of, protected_offsets
from sesamd._feed import FeedFilter, visible_to
from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

MANUAL = {"mode": "manual"}


def copy_pipe(pipe_id: str, dataset: str, **source: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "pump": MANUAL,
            "source": {"type": "dataset", "dataset": dataset, "supports_signalling": False, **source}}


def config(*extra: dict[str, Any], src: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``raw`` (uploaded) -> pipe ``src`` -> pipe ``down`` (every version), and ``hopper`` (reads ``other``,
    hops into ``src``)."""
    rules = {"default": [["copy", "*"], ["add", "hopped", ["hops", {"datasets": ["src s"],
                                                                    "where": [["eq", "_S._id", "s._id"]]}]]]}
    return [
        {**copy_pipe("src", "raw"), **(src or {})},
        copy_pipe("down", "src", include_previous_versions=True),
        {**copy_pipe("hopper", "other"), "transform": {"type": "dtl", "rules": rules}},
        *extra,
    ]


class Api:
    def __init__(self, node: Node, role: str = "admin") -> None:
        self.node = node
        self.client = TokenClient(create_app(node), role)

    async def call(self, method: str, path: str, status: int = 200, body: Any = None, **query: Any) -> Any:
        kwargs: dict[str, Any] = {"query_string": query}
        if body is not None:
            kwargs.update(data=json.dumps(body), headers={"Content-Type": "application/json"})
        response = await self.client.open("/api" + path, method=method, **kwargs)
        data = await response.get_data()
        assert response.status_code == status, data
        return json.loads(data) if response.content_type == "application/json" else data.decode()

    async def put_config(self, entities: list[dict[str, Any]]) -> None:
        assert await self.call("PUT", "/config", body=entities) == {"validation_errors": []}

    async def round(self, r: int) -> None:
        """Upload round ``r`` of ``raw`` (ids change in round r when n % (r + 1) == 0) and run ``src``."""
        await self.call("POST", "/datasets/raw/entities", body=[
            {"_id": f"e{n}", "r": r} for n in range(12) if r == 0 or n % (r + 1) == 0])
        await self.client.run_pipe("src")


def log_of(node: Node, name: str, since: int | None = None) -> list[tuple[str, Any, bool]]:
    dataset = node.datasets.get(name)
    assert dataset is not None
    return [(e["_id"], e.get("r"), e["_deleted"]) for e in dataset.iter_entities(since)]


async def scenario(data_dir: Path, *, compact: bool) -> dict[str, Any]:
    """Rounds 0-2, ``down`` and ``hopper`` read, rounds 3-4; then (``compact``) a pass; then ``down`` reads."""
    async with open_node(data_dir) as node:
        api = Api(node)
        await api.put_config(config())
        await api.call("POST", "/datasets/other/entities", body=[{"_id": "e1"}, {"_id": "e2"}])
        for r in range(3):
            await api.round(r)
        await api.client.run_pipe("down")
        await api.client.run_pipe("hopper")
        await api.client.run_pipe("hopper")  # (the first run only starts its tracking offset)
        for r in range(3, 5):
            await api.round(r)
        offsets = {pipe_id: node.pipe(pipe_id).runner.get_offset()  # type: ignore[union-attr]
                   for pipe_id in ("src", "down", "hopper")}
        offsets["tracking"] = node.pipe("hopper").runner.tracking_offsets()  # type: ignore[union-attr]
        runners = [state.runner for state in node.pipes.values()]
        protected = await trio.to_thread.run_sync(protected_offsets, runners)
        result = await api.call("POST", "/datasets/src/compact", keep_versions=1) if compact else None
        before = log_of(node, "src", offsets["down"])
        await api.client.run_pipe("down")
        return {"offsets": offsets, "protected": protected, "result": result, "before": before,
                "down": log_of(node, "down"), "src": log_of(node, "src"),
                "versions": [v["r"] for v in node.datasets.get("src").versions("e0")]}  # type: ignore[union-attr]


async def test_a_reader_that_has_not_read_yet_gets_every_version_it_must_see(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]):
    compacted = await scenario(tmp_path / "compacted", compact=True)
    copy = await scenario(tmp_path / "copy", compact=False)
    offsets = compacted["offsets"]
    down, hopper = offsets["down"], offsets["tracking"]["src"]
    assert isinstance(down, int) and isinstance(hopper, int)
    assert compacted["protected"] == {"src": min(down, hopper),  # a source offset and a tracking offset
                                      "raw": offsets["src"], "other": offsets["hopper"]}
    result = compacted["result"]
    assert result["removed"] > 0 and result["protected"] == min(down, hopper) and result["pipe"] == "src"
    assert result["keep_versions"] == 1 and result["chunks"] >= 1 and result["bytes_freed"] > 0
    assert len(compacted["src"]) == len(copy["src"]) - result["removed"]
    assert compacted["before"] == copy["before"]  # what down had yet to read
    assert compacted["down"] == copy["down"]  # ... and so what it wrote
    assert compacted["versions"] == [2, 3, 4]  # round 2 was e0's latest at the readers' offsets
    assert copy["versions"] == [0, 1, 2, 3, 4]
    assert main(["dataset", "check", "src", "--data-dir", str(tmp_path / "compacted")]) == 0, capsys.readouterr()


async def test_the_route_checks_its_input_and_permission(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        api = Api(node)
        await api.call("POST", "/datasets/people/entities", body=[{"_id": "a", "v": 1}])
        await api.call("POST", "/datasets/people/entities", body=[{"_id": "a", "v": 2}])
        missing = await api.call("POST", "/datasets/nope/compact", 404)
        assert "nope" in missing["detail"]
        bad = await api.call("POST", "/datasets/people/compact", 400, keep_versions="-1")
        assert "keep_versions" in bad["detail"]
        zero = await api.call("POST", "/datasets/people/compact", 400, keep_versions="0")
        assert "time_threshold_hours" in zero["detail"]
        system = await api.call("POST", "/datasets/system:config/compact", 400)
        assert "system" in system["detail"]
        await Api(node, "guest").call("POST", "/datasets/people/compact", 403)
        kept = await api.call("POST", "/datasets/people/compact")  # not a sink: the node's defaults (keep 2)
        assert kept["removed"] == 0 and kept["keep_versions"] == 2 and kept["pipe"] is None
        young = await api.call("POST", "/datasets/people/compact", keep_versions="0", time_threshold_hours="1")
        assert young["removed"] == 0 and young["time_threshold_hours"] == 1  # nothing is an hour old
        done = await Api(node, "user").call("POST", "/datasets/people/compact", keep_versions="1")
        assert done["removed"] == 1 and done["protected"] is None
        assert [v["v"] for v in node.datasets.get("people").versions("a")] == [2]  # type: ignore[union-attr]
        metrics = await api.call("GET", "/metrics")
        assert 'sesam_dataset_compacted_versions_total{dataset="people"} 1.0' in metrics


async def test_the_schedule_compacts_sink_datasets_on_its_interval(tmp_path: Path) -> None:
    metadata = {"_id": "node", "type": "metadata", "compaction": {"interval_seconds": 0.2}}
    async with open_node(tmp_path) as node:
        api = Api(node)
        pipes = [{**copy_pipe("src", "raw"), "compaction": {"keep_versions": 1}},  # nobody reads src
                 {**copy_pipe("other-copy", "other"), "compaction": {"automatic": False}}]
        await api.put_config(pipes)
        with node.events.subscribe(filter={"type": "dataset-compacted"}) as events:
            await api.call("POST", "/datasets/other/entities", body=[{"_id": "x", "v": 1}])
            await api.client.run_pipe("other-copy")
            await api.call("POST", "/datasets/other/entities", body=[{"_id": "x", "v": 2}])
            await api.client.run_pipe("other-copy")
            for r in range(3):
                await api.round(r)
            await api.put_config([*pipes, metadata])
            with trio.fail_after(20):
                event = await events.receive()
        assert event["dataset"] == "src" and event["pipe"] == "src" and event["trigger"] == "schedule"
        assert event["removed"] == len(log_of(node, "raw")) - 12  # all but the latest versions
        assert [v["r"] for v in node.datasets.get("src").versions("e0")] == [2]  # type: ignore[union-attr]
        assert len(node.datasets.get("other-copy").versions("x")) == 2  # type: ignore[union-attr]  # automatic off
        assert node.datasets.get("raw").counts()["log"] == len(log_of(node, "raw"))  # type: ignore[union-attr]


def test_the_interval_setting() -> None:
    assert interval_of({}) == DEFAULT_INTERVAL == 24 * 3600
    assert interval_of({"compaction": {"interval_seconds": 30}}) == 30.0
    assert interval_of({"compaction": {"interval_seconds": "~f0.5"}}) == 0.5  # (a fraction in the config)
    with pytest.raises(ValueError, match=r"compaction\.interval_seconds"):
        interval_of({"compaction": {"interval_seconds": "daily"}})


async def test_bad_compaction_settings_are_config_errors(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        api = Api(node)
        errors = await api.call("PUT", "/config", 400, body=config(src={"compaction": {"keep_versions": 0}}))
        assert "compaction.keep_versions" in json.dumps(errors)
        errors = await api.call("PUT", "/config", 400, body=config(src={"compaction": {"keep_versions": "2"}}))
        assert "compaction.keep_versions" in json.dumps(errors)


def test_settings_come_from_the_pipe_else_the_global_defaults() -> None:
    defaults = {"global_defaults": {"compaction_keep_versions": 3, "compaction_time_threshold_hours": "~f1.5"}}
    assert compaction_settings({}, {}, "p") == CompactionSettings(2, None, True, 1.0)
    assert compaction_settings({}, defaults, "p") == CompactionSettings(3, 1.5, True, 1.0)
    assert compaction_settings({"compaction": {"keep_versions": 0, "automatic": False}}, defaults, "p") == \
        CompactionSettings(0, 1.5, False, 1.0)
    with pytest.raises(ValueError, match=r"global_defaults\.compaction_growth_threshold"):
        compaction_settings({}, {"global_defaults": {"compaction_growth_threshold": 0.5}}, "p")


def test_the_feed_shows_compactions_to_data_readers_by_pipe_or_dataset() -> None:
    event = {"type": "dataset-compacted", "dataset": "src", "pipe": "src-pipe", "removed": 3}
    assert visible_to(["read_data"])(event) and not visible_to(["read_config"])(event)
    assert FeedFilter(pipes=("src-*",)).matches(event)
    assert FeedFilter(pipes=("src",)).matches({**event, "pipe": None})
    assert FeedFilter.parse({"types": "dataset-compacted"}).matches(event)
