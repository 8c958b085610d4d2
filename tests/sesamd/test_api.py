"""The REST API over a real node and engine, through quart-trio's in-process test client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import trio

from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.api._views import json_array as _json_array
from sesamd.testing import TokenClient


def embedded(pipe_id: str, entities: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities}, **extra}


PEOPLE = [{"_id": "1", "name": "Ann", "score": 1.50}, {"_id": "2", "name": "Bob"}, {"_id": "3", "name": "Cy"}]
CONFIG = [
    embedded("people", PEOPLE),
    {"_id": "upper", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "loud", ["upper", "_S.name"]]]}}},
]


class Api:
    """A test client with JSON helpers."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.client = TokenClient(create_app(node))

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        response = await self.client.get("/api" + path, query_string=params)
        body = await response.get_data()
        assert response.status_code == status, body
        self.headers = response.headers
        return json.loads(body)

    async def put_config(self, config: Any, status: int = 200, **params: Any) -> Any:
        response = await self.client.put("/api/config", data=json.dumps(config),
                                         headers={"Content-Type": "application/json"}, query_string=params)
        body = await response.get_data()
        assert response.status_code == status, body
        assert response.content_type == "application/json"
        return json.loads(body)

    async def pump(self, pipe_id: str, operation: str, status: int = 200, **form: str) -> Any:
        response = await self.client.post(f"/api/pipes/{quote(pipe_id, safe='')}/pump",
                                          form={"operation": operation, **form})
        body = await response.get_data()
        assert response.status_code == status, body
        return json.loads(body)

    async def idle(self, pipe_id: str) -> dict[str, Any]:
        return await self.client.wait_idle(pipe_id)

    async def run(self, pipe_id: str) -> dict[str, Any]:
        return await self.client.run_pipe(pipe_id)


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path) as node:
        yield Api(node)


async def test_health_info_and_errors(api: Api) -> None:
    assert (await api.get("/health")) == {"status": "ok"}
    info = await api.get("")
    assert info["node_id"] == api.node.node_id and "node_start_time" in info
    assert (await api.get("/status"))["node_version"]
    missing = await api.get("/nothing/here", 404)
    assert missing["status"] == 404 and "/api/nothing/here" in missing["detail"]
    assert (await api.get("/pipes/nope", 404)) == {"detail": "no pipe 'nope'", "status": 404}
    assert (await api.get("/datasets/nope/entities", 404))["detail"] == "no dataset 'nope'"


async def test_config_round_trip_keeps_decimals(api: Api) -> None:
    assert await api.put_config(CONFIG) == {"validation_errors": []}
    response = await api.client.get("/api/config")
    text = (await response.get_data()).decode()
    assert json.loads(text) == sorted(CONFIG, key=lambda e: e["_id"])
    raw = b'[{"_id": "d", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "1", "v": 22.10}]}}]'
    response = await api.client.put("/api/config", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert '"v": 22.10' in (await (await api.client.get("/api/config")).get_data()).decode()


async def test_bad_config_is_rejected_with_the_entity_and_path(api: Api) -> None:
    await api.put_config(CONFIG)
    bad = [embedded("people", PEOPLE), {"_id": "upper", "type": "pipe", "source": {"type": "dataset"}},
           {"_id": "x", "type": "pipe", "source": {"type": "no-such-source"}}]
    result = await api.put_config(bad, 400)
    assert result["status"] == 400
    items = {item["posted-config"]["_id"]: item for item in result["validation_errors"]}  # one item per entity
    assert set(items) == {"upper", "x"}
    assert items["x"]["posted-config"] == bad[2] and items["x"]["is-valid-config"] is False
    upper = items["upper"]["config-errors"]
    assert upper[0]["level"] == "error" and upper[0]["elements"].startswith("$['source']")  # relative to the entity
    assert "pipe upper" in upper[0]["msg"] and "dataset" in upper[0]["msg"]
    assert "no-such-source" in items["x"]["config-errors"][0]["msg"]
    assert "upper" in result["detail"]
    assert [e["_id"] for e in await api.get("/config")] == ["people", "upper"]  # unchanged
    not_json = await api.client.put("/api/config", data=b"[{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in (await not_json.get_json())["detail"]
    not_array = await api.put_config({"_id": "a"}, 400)
    assert not_array["validation_errors"][0]["config-errors"][0]["elements"] == "$"


async def test_multipart_upload_and_force(api: Api) -> None:
    from quart.datastructures import FileStorage

    upload = FileStorage(stream=__import__("io").BytesIO(json.dumps(CONFIG).encode()), filename="sesam.conf.json",
                         content_type="application/json")
    response = await api.client.put("/api/config", files={"file": upload})
    assert response.status_code == 200, await response.get_data()
    bad = [*CONFIG, {"_id": "x", "type": "pipe", "source": {"type": "no-such-source"}}]
    result = await api.put_config(bad, force="true")
    assert len(result["validation_errors"]) == 1
    pipe = await api.get("/pipes/x")
    assert pipe["runtime"]["is-valid-config"] is False
    assert pipe["runtime"]["config-errors"][0]["elements"].startswith("$['source']")
    refused = await api.pump("x", "start", 400)
    assert "invalid" in refused["detail"]


async def test_pipe_object_pump_and_log(api: Api) -> None:
    await api.put_config(CONFIG)
    pipes = await api.get("/pipes")
    assert [p["_id"] for p in pipes] == ["people", "upper"]
    upper = await api.get("/pipes/upper")
    assert upper["config"]["original"] == CONFIG[1]
    assert upper["config"]["effective"]["sink"] == {"type": "dataset", "dataset": "upper"}
    runtime = upper["runtime"]
    assert runtime["state"] == "Deployed" and runtime["is-valid-config"] is True
    assert runtime["dependencies"] == ["people"]
    assert runtime["execution-dataset"] == "system:pump_execution:upper"
    assert {"is-running", "is-disabled", "config-errors", "queues", "last-seen"} <= set(runtime)
    assert set(await api.get("/pipes/upper", fields="runtime")) == {"_id", "runtime"}

    pump = await api.get("/pipes/people/pump")
    assert pump["_id"] == "pump:people" and "start" in pump["runtime"]["supported-operations"]
    runtime = await api.run("people")
    assert runtime["success"] is True, runtime
    runtime = await api.run("upper")
    assert runtime["success"] is True, runtime
    unsupported = await api.pump("people", "frobnicate", 400)
    assert "doesn't support the operation" in unsupported["detail"]
    missing = await api.client.post("/api/pipes/people/pump", form={})
    assert missing.status_code == 400

    log = await api.get("/pipes/people/log")
    assert [e["_id"] for e in log] == ["pump-started", "pump-completed"]
    assert log[1]["pipe"] == "people"
    assert await api.get("/pipes/people/log", since=log[0]["_updated"]) == log[1:]
    assert await api.get("/pipes/people/log", reverse="true", limit=1) == log[1:]
    preview = await api.get("/pipes/upper/entities", stage="sink", limit=2)
    assert [e["loud"] for e in preview] == ["ANN", "BOB"]
    assert (await api.get("/pipes/upper/entities", 400, stage="nope"))["detail"].startswith("query parameter 'stage'")


async def test_start_while_running_is_a_conflict(api: Api) -> None:
    many = [{"_id": str(i), "n": i} for i in range(3000)]
    await api.put_config([embedded("big", many, batch_size=10)])
    await api.pump("big", "start")
    second = await api.client.post("/api/pipes/big/pump", form={"operation": "start"})
    if second.status_code == 409:  # the first run may already be over on a fast machine
        body = await second.get_json()
        assert body["_id"] == "pump:big" and body["status"] == 409
    else:
        assert second.status_code == 200
    with trio.fail_after(20):
        while (await api.get("/pipes/big/pump"))["runtime"]["is-running"]:
            await trio.sleep(0.02)


async def test_datasets_and_entities(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run("people")
    await api.put_config([embedded("people", [PEOPLE[0], {"_id": "2", "name": "Bo"}]), CONFIG[1]])
    await api.run("people")

    names = [d["_id"] for d in await api.get("/datasets")]
    assert names == ["people", "upper"]
    internal = [d["_id"] for d in await api.get("/datasets", **{"include-internal-datasets": "true"})]
    assert "system:pump_execution:people" in internal
    people = await api.get("/datasets/people")
    assert people["runtime"]["populated"] is True
    assert people["runtime"]["count-index-exists"] == 2
    assert people["runtime"]["count-index-deleted"] == 1
    assert (people["runtime"]["count-log-exists"], people["runtime"]["count-log-deleted"]) == (4, 1)

    everything = await api.get("/datasets/people/entities")
    assert [(e["_id"], e["_updated"], e["_deleted"]) for e in everything] == [
        ("1", 0, False), ("2", 1, False), ("3", 2, False), ("2", 3, False), ("3", 4, True)]
    assert everything[0]["score"] == "~f1.5"  # json.dumps wrote 1.5
    assert api.headers["X-Dataset-Populated"] == "true"
    assert api.headers["X-Dataset-Max-Updated"] == "4"
    assert api.headers["X-Dataset-Generation"]
    latest = await api.get("/datasets/people/entities", history="false", deleted="false")
    assert [e["_id"] for e in latest] == ["1", "2"]
    assert [e["_updated"] for e in await api.get("/datasets/people/entities", since=1, limit=2)] == [2, 3]
    assert [e["_updated"] for e in await api.get("/datasets/people/entities", reverse="true", limit=2)] == [4, 3]
    assert await api.get("/datasets/people/entities", since=99) == []
    assert (await api.get("/datasets/people/entities", 400, limit="x"))["detail"] == (
        "query parameter 'limit' must be an integer, not 'x'")
    assert (await api.get("/datasets/people/entities", 400, history="maybe"))["status"] == 400

    entity = await api.get("/datasets/people/entity", entity_id="2")
    assert entity["name"] == "Bo" and entity["_previous"] == 1
    assert (await api.get("/datasets/people/entity", 404, entity_id="9"))["detail"] == (
        "dataset 'people' has no entity '9'")
    await api.get("/datasets/people/entity", 400)
    await api.get("/datasets/people/entity", 404, entity_id="2", offset=1)

    quoted = quote("system:pump_execution:people", safe="")
    log = await api.get(f"/datasets/{quoted}/entities")
    assert {e["_id"] for e in log} == {"pump-started", "pump-completed"}
    assert (await api.get(f"/datasets/{quoted}"))["_id"] == "system:pump_execution:people"


async def test_large_dataset_streams_in_chunks(api: Api) -> None:
    many = [{"_id": f"{i:05}", "n": i} for i in range(2500)]
    await api.put_config([embedded("many", many, batch_size=1000)])
    await api.run("many")
    entities = await api.get("/datasets/many/entities")
    assert [e["n"] for e in entities] == list(range(2500))

    dataset = api.node.datasets.get("many")
    snapshot = dataset.snapshot()
    closed: list[bool] = []

    class Snapshot:
        def close(self) -> None:
            closed.append(True)
            snapshot.close()

    stream = _json_array(dataset.iter_stored(snapshot=snapshot), Snapshot(), trio.CapacityLimiter(1))
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 4 and closed == [True]  # three chunks of at most 1000, then the closing bracket
    assert [e["n"] for e in json.loads(b"".join(chunks))] == list(range(2500))
    assert json.loads(await (await api.client.get("/api/datasets/many/entities?limit=0")).get_data()) == []


async def test_env_substitution_through_the_api(api: Api) -> None:
    response = await api.client.put("/api/env", json={"who": "Eve"})
    assert response.status_code == 200
    config = [embedded("greet", [{"_id": "1", "name": "$ENV(who)"}])]
    await api.put_config(config)
    assert (await api.get("/pipes/greet"))["config"]["effective"]["source"]["entities"][0]["name"] == "Eve"
    assert (await api.get("/config")) == config  # as uploaded
    await api.client.post("/api/env", json={"who": "Mallory"})
    assert (await api.get("/pipes/greet"))["config"]["effective"]["source"]["entities"][0]["name"] == "Mallory"
    assert (await api.get("/env")) == {"who": "Mallory"}
    undefined = await api.put_config([embedded("x", [{"_id": "1", "v": "$ENV(nope)"}])], 400)
    assert undefined["validation_errors"][0]["config-errors"][0]["elements"] == "$['source']['entities'][0]['v']"
    await api.client.put("/api/secrets", json={"pw": "hunter2"})
    assert await api.get("/secrets") == ["pw"]


def switched(pipe_id: str, **parts: dict[str, Any]) -> dict[str, Any]:
    """A pipe whose named parts (source, sink, transform) are conditionals on ``$ENV(stage)``."""
    return {"_id": pipe_id, "type": "pipe",
            **{part: {"type": "conditional", "condition": "$ENV(stage)", "alternatives": alternatives}
               for part, alternatives in parts.items()}}


async def test_the_effective_config_shows_the_chosen_alternatives_of_conditionals(api: Api) -> None:
    await api.client.put("/api/env", json={"stage": "prod"})
    config = [switched("inbound",
                       source={"prod": {"type": "http_endpoint"},
                               "dev": {"type": "embedded", "entities": [{"_id": "x"}]}},
                       sink={"prod": {"type": "dataset", "dataset": "inbound-orders"}, "dev": {"type": "null"}})]
    await api.put_config(config)
    shown = (await api.get("/pipes/inbound"))["config"]
    assert shown["effective"]["source"] == {"type": "http_endpoint"}
    assert shown["effective"]["sink"] == {"type": "dataset", "dataset": "inbound-orders"}
    assert shown["original"] == config[0]
    await api.client.post("/api/env", json={"stage": "dev"})
    shown = (await api.get("/pipes/inbound"))["config"]
    assert shown["effective"]["source"] == {"type": "embedded", "entities": [{"_id": "x"}]}
    assert shown["effective"]["sink"] == {"type": "null"}


async def test_undefined_variables_only_count_in_the_chosen_alternative(api: Api) -> None:
    await api.client.put("/api/env", json={"stage": "dev"})
    unused = {"type": "json", "system": "$ENV(erp_system)", "url": "$ENV(erp_base)/orders"}
    config = [switched("orders", source={"dev": {"type": "embedded", "entities": [{"_id": "o1"}]}, "prod": unused},
                       transform={"dev": {"type": "dtl", "rules": {"default": [["copy", "*"]]}},
                                  "prod": {"type": "dtl", "rules": {"default": [
                                      ["add", "sealed", ["encrypt", "$SECRET(erp_key)", "_S._id"]]]}}})]
    await api.put_config(config)
    runtime = (await api.get("/pipes/orders"))["runtime"]
    assert runtime["is-valid-config"] is True and runtime["config-errors"] == []
    await api.run("orders")
    assert [e["_id"] for e in await api.get("/datasets/orders/entities")] == ["o1"]
    chosen = [switched("broken", source={"dev": {"type": "embedded", "entities": [{"_id": "1", "v": "$ENV(gone)"}]},
                                         "prod": unused})]
    refused = await api.put_config(chosen, 400)
    errors = refused["validation_errors"][0]["config-errors"]
    assert [e["elements"] for e in errors] == ["$['source']['alternatives']['dev']['entities'][0]['v']"]
    assert "gone" in errors[0]["msg"]
    forced = await api.put_config(chosen, force="true")
    assert forced["validation_errors"][0]["is-valid-config"] is False
    assert (await api.get("/pipes/broken"))["runtime"]["is-valid-config"] is False


async def test_pipe_config_endpoints(api: Api) -> None:
    await api.put_config(CONFIG)
    assert await api.get("/pipes/people/config") == CONFIG[0]
    changed = embedded("people", PEOPLE[:1])
    response = await api.client.put("/api/pipes/people/config", json=changed)
    assert response.status_code == 200
    assert (await api.get("/pipes/people/config")) == changed
    response = await api.client.delete("/api/pipes/upper")
    assert response.status_code == 200 and (await response.get_json())["_id"] == "upper"
    assert [p["_id"] for p in await api.get("/pipes")] == ["people"]


async def test_dependency_tracking_operations_and_warnings_through_the_api(api: Api) -> None:
    people = [{"_id": f"p{i}", "group": f"g{i % 2}"} for i in range(4)]
    hops = ["first", ["hops", {"datasets": ["groups g"], "where": [["eq", "_S.group", "g._id"]], "return": "g.label"}]]
    labelled = {"_id": "labelled", "type": "pipe", "pump": {"mode": "manual"},
                "source": {"type": "dataset", "dataset": "people"},
                "dependency_tracking": {"dependency_warning_threshold": 1},
                "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "label", hops]]}}}

    def config(label: str) -> list[dict[str, Any]]:
        return [embedded("people", people), embedded("groups", [{"_id": "g0", "label": label}]), labelled]

    async def label() -> Any:
        return (await api.get("/datasets/labelled/entity", entity_id="p0")).get("label")

    await api.put_config(config("Zero"))
    for pipe_id in ("people", "groups", "labelled"):
        assert (await api.run(pipe_id))["success"] is True
    operations = (await api.get("/pipes/labelled/pump"))["runtime"]["supported-operations"]
    assert {"reset-tracking", "set-tracking-to-start"} <= set(operations)
    assert "reset-tracking" not in (await api.get("/pipes/people/pump"))["runtime"]["supported-operations"]
    refused = await api.pump("people", "reset-tracking", 400)
    assert "doesn't support the operation 'reset-tracking'" in refused["detail"]

    await api.put_config(config("Nil"))
    await api.run("groups")
    await api.pump("labelled", "reset-tracking")  # the change to g0 is skipped
    await api.run("labelled")
    assert await label() == "Zero"
    await api.pump("labelled", "set-tracking-to-start")  # every entry of groups counts as a change
    with api.node.events.subscribe(maxsize=10, filter={"pipe": "labelled", "type": "pump-completed"}) as events:
        await api.run("labelled")
        completed = await events.receive()
    assert await label() == "Nil"
    assert completed["warnings"] == ["dependency tracking: the source entities affected by changes in 'groups' "
                                     "passed dependency_warning_threshold (1)"]
    log = await api.get("/pipes/labelled/log", reverse="true", limit=1)
    assert log[0]["warnings"] == completed["warnings"]  # in the execution log too


async def test_a_recreated_input_marks_the_pipe_out_of_sync_until_a_full_run(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run("people")
    await api.run("upper")
    assert (await api.get("/pipes/upper/pump"))["runtime"]["is-out-of-sync"] is False
    await api.node.writers.close("people")  # the source dataset is deleted and loaded again (a new generation)
    await trio.to_thread.run_sync(api.node.datasets.delete, "people")
    await api.run("people")
    runtime = await api.run("upper")
    assert runtime["success"] is True and runtime["sync-type"] == "incremental"  # continue: runs as asked
    assert runtime["is-out-of-sync"] is True
    assert [r["dataset"] for r in runtime["out-of-sync"]] == ["people"]
    assert "deleted and created again" in runtime["out-of-sync"][0]["reason"]
    await api.pump("upper", "update-last-seen", **{"last-seen": ""})  # a reset: the next run is full
    runtime = await api.run("upper")
    assert runtime["sync-type"] == "full" and runtime["is-out-of-sync"] is False and runtime["out-of-sync"] == []


async def test_automatic_reprocessing_resets_the_pipe_when_its_config_changes(api: Api) -> None:
    upper = {**CONFIG[1], "reprocessing_policy": "automatic", "rescan_when_config_changes": True}
    await api.put_config([CONFIG[0], upper])
    await api.run("people")  # (its commit signals upper, whose first run is full)
    await api.run("upper")
    assert (await api.run("upper"))["sync-type"] == "incremental"  # nothing changed: in sync
    changed = {**upper, "transform": {"type": "dtl", "rules": {"default": [
        ["copy", "*"], ["add", "loud", ["concat", ["list", ["upper", "_S.name"], "!"]]]]}}}
    await api.put_config([CONFIG[0], changed])
    with api.node.events.subscribe(maxsize=10, filter={"pipe": "upper", "type": "pump-completed"}) as events:
        runtime = await api.run("upper")
        completed = await events.receive()
    assert runtime["sync-type"] == "full" and runtime["is-out-of-sync"] is False
    assert completed["reset"] is True and completed["out_of_sync"][0]["reason"] == "the pipe's config changed"
    loud = {e["_id"]: e["loud"] for e in await api.get("/datasets/upper/entities")}
    assert loud == {"1": "ANN!", "2": "BOB!", "3": "CY!"}  # every entity again, under the new config
    assert (await api.run("upper"))["sync-type"] == "incremental"


async def test_automatic_reprocessing_waits_for_a_deleted_input_to_come_back(api: Api) -> None:
    upper = {**CONFIG[1], "reprocessing_policy": "automatic"}
    await api.put_config([CONFIG[0], upper])
    await api.run("people")
    await api.run("upper")
    await api.node.writers.close("people")
    await trio.to_thread.run_sync(api.node.datasets.delete, "people")
    runtime = await api.run("upper")  # a full run now would delete every output entity: no reset
    assert runtime["sync-type"] == "incremental" and runtime["is-out-of-sync"] is True
    assert [r["kind"] for r in runtime["out-of-sync"]] == ["deleted"]
    assert len(await api.get("/datasets/upper/entities")) == 3
    with api.node.events.subscribe(maxsize=20, filter={"pipe": "upper", "type": "pump-completed"}) as events:
        await api.run("people")  # the input is back (another generation): now the pipe resets
        runtime = await api.run("upper")  # (people's commit may have signalled the reset run already)
        reset = await events.receive()
    assert reset["reset"] is True and reset["sync_type"] == "full"
    assert [r["kind"] for r in reset["out_of_sync"]] == ["recreated"]
    assert runtime["is-out-of-sync"] is False
    assert {e["_id"]: e["loud"] for e in await api.get("/datasets/upper/entities")} == {"1": "ANN", "2": "BOB",
                                                                                       "3": "CY"}
