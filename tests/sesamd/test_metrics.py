"""``GET /api/metrics`` over a real node: runs, entities, failures, lag, datasets and requests, parsed with
prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sesamd._metrics import CONTENT_TYPE
from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

PEOPLE = [{"_id": "1", "name": "Ann"}, {"_id": "2", "name": "Bob"}, {"_id": "3", "name": "Cy"}]
YEARLY = {"cron_expression": "0 0 1 1 *"}  # scheduled (pump metrics are exported), not due during a test
CONFIG = [
    {"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": PEOPLE}, "pump": YEARLY},
    {"_id": "upper", "type": "pipe", "pump": YEARLY,
     "source": {"type": "dataset", "dataset": "people", "supports_signalling": False},
     "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "loud", ["upper", "_S.name"]]]}}},
    {"_id": "broken", "type": "pipe", "pump": YEARLY,
     "source": {"type": "embedded", "entities": [{"_id": "x"}]},
     "transform": {"type": "dtl", "rules": {"default": [["fail!", "always"]]}}},
]

PEOPLE_LABELS = {"pipe": "people", "config_group": "default", "leaf": "false"}  # upper reads its sink
UPPER_LABELS = {"pipe": "upper", "config_group": "default", "leaf": "true"}
NAMED_LABELS = {"pipe": "named", "config_group": "default", "leaf": "true"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scraper:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.app = create_app(node)
        self.client = TokenClient(self.app)

    async def scrape(self) -> Samples:
        response = await self.client.get("/api/metrics")
        body = await response.get_data()
        assert response.status_code == 200, body
        assert response.content_type == CONTENT_TYPE
        samples: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples[sample.name, frozenset(sample.labels.items())] = sample.value
        return samples

    async def configure(self, config: list[dict[str, Any]]) -> None:
        response = await self.client.put("/api/config", json=config)
        assert response.status_code == 200, await response.get_data()


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def scraper(tmp_path: Path) -> AsyncIterator[Scraper]:
    async with open_node(tmp_path) as node:
        yield Scraper(node)


async def test_runs_entities_and_failures_are_counted(scraper: Scraper) -> None:
    await scraper.configure(CONFIG)
    await scraper.client.run_pipe("people")
    await scraper.client.run_pipe("people")  # a noop run: started, not completed (Sesam's rule)
    await scraper.client.run_pipe("broken")
    samples = await scraper.scrape()
    assert value(samples, "sesam_pump_started_total", pipe="people") == 2
    assert value(samples, "sesam_pump_completed_total", pipe="people") == 1
    assert value(samples, "sesam_pump_entities_seen_total", pipe="people") == 6
    assert value(samples, "sesam_pump_entities_changes_total", pipe="people") == 3
    assert value(samples, "sesam_pump_run_duration_seconds_count", pipe="people") == 2
    assert value(samples, "sesam_pump_failed_total", pipe="broken") == 1
    assert value(samples, "sesam_pump_completed_total", pipe="broken") is None
    assert value(samples, "sesam_pump_successful", pipe="people") == 1
    assert value(samples, "sesam_pump_successful", pipe="broken") == -1
    assert value(samples, "sesam_pump_successful", pipe="upper") == 0  # never ran
    assert value(samples, "sesam_pipe_config", pipe="upper", config_group="default", leaf="true") == 1
    assert value(samples, "sesam_pipe_enabled", pipe="upper", config_group="default", leaf="true") == 1
    assert value(samples, "sesam_dataset_count_index_exists", dataset="people") == 3
    assert value(samples, "sesam_pipe_sink_dataset_count_log_exists", **PEOPLE_LABELS) == 3
    assert value(samples, "sesam_pipe_sink_dataset_count_log_deleted", **PEOPLE_LABELS) == 0
    assert value(samples, "sesam_pump_last_completed_time", pipe="people") > 1e9


async def test_source_lag_is_the_entities_after_the_offset(scraper: Scraper) -> None:
    await scraper.configure(CONFIG)
    await scraper.client.run_pipe("people")
    before = await scraper.scrape()
    assert value(before, "sesam_pipe_queue_source", **UPPER_LABELS) == 3
    await scraper.client.run_pipe("upper")
    after = await scraper.scrape()
    assert value(after, "sesam_pipe_queue_source", **UPPER_LABELS) == 0
    assert value(after, "sesam_pump_entities_changes_total", pipe="upper") == 3
    assert value(after, "sesam_dataset_count_index_exists", dataset="upper") == 3


async def test_dependency_tracking_queues(scraper: Scraper) -> None:
    orders = [{"_id": "o1", "person": "1"}, {"_id": "o2", "person": "2"}]
    hop = ["first", ["hops", {"datasets": ["people p"], "where": [["eq", "_S.person", "p._id"]],
                              "return": "p.name"}]]
    config = [CONFIG[0],
              {"_id": "orders", "type": "pipe", "source": {"type": "embedded", "entities": orders},
               "pump": {"mode": "manual"}},
              {"_id": "named", "type": "pipe", "pump": {"mode": "manual"},
               "source": {"type": "dataset", "dataset": "orders", "supports_signalling": False},
               "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "name", hop]]}}}]
    await scraper.configure(config)
    for pipe_id in ("people", "orders", "named"):
        await scraper.client.run_pipe(pipe_id)
    samples = await scraper.scrape()
    assert value(samples, "sesam_pipe_queue_tracking", **NAMED_LABELS, dataset="people") == 0
    assert value(samples, "sesam_pipe_enabled", **PEOPLE_LABELS) == 1  # people: read by named's hops only
    assert value(samples, "sesam_pipe_enabled", pipe="orders", config_group="default", leaf="false") == 1
    changed = [{**PEOPLE[0], "name": "Anna"}, *PEOPLE[1:]]
    await scraper.configure([{**config[0], "source": {"type": "embedded", "entities": changed}}, *config[1:]])
    await scraper.client.run_pipe("people")
    assert value(await scraper.scrape(), "sesam_pipe_queue_tracking", **NAMED_LABELS, dataset="people") == 1


def pipe_labels(samples: Samples, name: str) -> dict[str, dict[str, str]]:
    """The labels of each pipe's ``name`` sample, by pipe."""
    return {dict(labels)["pipe"]: dict(labels) for found, labels in samples if found == name}


async def test_pipe_gauges_carry_the_config_group_and_whether_the_pipe_is_a_leaf(scraper: Scraper) -> None:
    crm = {"metadata": {"$config-group": "crm"}}
    config = [{**CONFIG[0], **crm}, CONFIG[1], CONFIG[2],
              {"_id": "self", "type": "pipe", "pump": YEARLY, **crm,  # reads only its own sink: a leaf
               "source": {"type": "dataset", "dataset": "self"}},
              {"_id": "out", "type": "pipe", "pump": YEARLY, "source": {"type": "dataset", "dataset": "upper"},
               "sink": {"type": "null"}}]
    response = await scraper.client.put("/api/config-all", json=config)
    assert response.status_code == 200, await response.get_data()
    samples = await scraper.scrape()
    expected = {"people": ("crm", "false"), "upper": ("default", "false"), "broken": ("default", "true"),
                "self": ("crm", "true"), "out": ("default", "true")}
    for name in ("sesam_pipe_enabled", "sesam_pipe_config", "sesam_pipe_queue_source",
                 "sesam_pipe_sink_dataset_count_index_exists"):
        found = pipe_labels(samples, name)
        wanted = expected if name != "sesam_pipe_sink_dataset_count_index_exists" else {}  # no sinks written yet
        assert {pipe: (labels["config_group"], labels["leaf"]) for pipe, labels in found.items()} == wanted, name
    assert set(pipe_labels(samples, "sesam_pump_successful")["people"]) == {"pipe"}  # pump metrics: by pipe


async def test_pump_metrics_are_left_out_for_manual_off_and_disabled_pumps(scraper: Scraper) -> None:
    config = [CONFIG[0], {**CONFIG[1], "pump": {"mode": "manual"}}, {**CONFIG[2], "pump": {"mode": "off"}}]
    await scraper.configure(config)
    await scraper.client.run_pipe("people")
    await scraper.client.run_pipe("upper")
    samples = await scraper.scrape()
    pumped = {name for name, _labels in samples if name.startswith("sesam_pump_")}
    assert {"sesam_pump_started_total", "sesam_pump_successful", "sesam_pump_run_duration_seconds_count",
            "sesam_pump_total_time"} <= pumped
    for name in pumped:  # every pump metric: of the scheduled pipe only
        assert {dict(labels)["pipe"] for found, labels in samples if found == name} == {"people"}, name
    assert value(samples, "sesam_pipe_enabled", **UPPER_LABELS) == 1  # the pipe gauges of every pipe
    assert value(samples, "sesam_pipe_config", pipe="broken", config_group="default", leaf="true") == 1
    assert value(samples, "sesam_pipe_sink_dataset_count_index_exists", **UPPER_LABELS) == 3

    response = await scraper.client.post("/api/pipes/people/pump", form={"operation": "disable"})
    assert response.status_code == 200, await response.get_data()
    disabled = await scraper.scrape()
    assert not {name for name, _labels in disabled if name.startswith("sesam_pump_")} & pumped
    assert value(disabled, "sesam_pipe_enabled", **PEOPLE_LABELS) == 0
    assert value(disabled, "sesam_pipe_sink_dataset_count_index_exists", **PEOPLE_LABELS) == 3

    response = await scraper.client.post("/api/pipes/people/pump", form={"operation": "enable"})
    assert response.status_code == 200, await response.get_data()
    enabled = await scraper.scrape()
    assert value(enabled, "sesam_pump_started_total", pipe="people") == 1  # back, counted as before
    assert value(enabled, "sesam_pump_successful", pipe="people") == 1


async def test_actor_restarts_and_http_requests_are_counted(scraper: Scraper) -> None:
    await scraper.configure(CONFIG)
    await scraper.client.get("/api/pipes/nope")
    scraper.node.events.publish({"type": "actor-restarted", "actor": "pipe:people", "restarts": 1})
    samples = await scraper.scrape()
    assert value(samples, "sesam_actor_restarts_total", actor="pipe:people") == 1
    assert value(samples, "sesam_http_requests_total", method="PUT", route="/api/config", status="200") == 1
    assert value(samples, "sesam_http_requests_total", method="GET", route="/api/pipes/<pipe_id>",
                 status="404") == 1
    assert value(samples, "sesam_http_request_duration_seconds_count", method="PUT", route="/api/config") == 1


async def test_metrics_need_admin(scraper: Scraper) -> None:
    developer = TokenClient(scraper.app, "developer")
    response = await developer.get("/api/metrics")
    assert response.status_code == 403
    response = await TokenClient(scraper.app, None).get("/api/metrics")
    assert response.status_code == 401


async def test_two_nodes_keep_their_own_registries(tmp_path: Path) -> None:
    async with open_node(tmp_path / "a") as a, open_node(tmp_path / "b") as b:
        first, second = Scraper(a), Scraper(b)
        await first.configure(CONFIG[:1])
        await first.client.run_pipe("people")
        assert value(await first.scrape(), "sesam_pump_started_total", pipe="people") == 1
        assert value(await second.scrape(), "sesam_pump_started_total", pipe="people") is None


async def test_damaged_datasets_are_named(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        for name in ("good", "bad"):
            node.datasets.open(name).write([{"_id": "1"}, {"_id": "2"}])
        manifest = next(node.data_dir.dataset_path("bad").glob("MANIFEST-*"))
    with manifest.open("r+b") as f:
        f.truncate(20)  # into its first record
    async with open_node(tmp_path) as node:
        samples = await Scraper(node).scrape()
    assert value(samples, "sesam_dataset_damaged", dataset="bad") == 1
    assert value(samples, "sesam_dataset_damaged", dataset="good") is None
    assert value(samples, "sesam_dataset_count_index_exists", dataset="good") == 2
    assert value(samples, "sesam_dataset_count_index_exists", dataset="bad") is None
