"""The node API as the ``sesam`` client needs it (client-spec 9.1, 9.3, 11.1), checked route by route against a
real node and app, plus the frozen clock of DTL's ``now``."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import trio
from werkzeug.datastructures import FileStorage

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient


def embedded(pipe_id: str, entities: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities}, **extra}


def dtl(pipe_id: str, source: str, rules: list[Any], **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "dataset", "dataset": source},
            "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], *rules]}}, **extra}


PEOPLE = [{"_id": "1", "name": "Ann", "age": 30}, {"_id": "2", "name": "Bob", "age": 17}]
CONFIG = [
    {"_id": "node", "type": "metadata", "global_defaults": {"use_signalling_internally": False}},
    {"_id": "web", "type": "system:rest", "url_pattern": "http://localhost:1/%s",
     "operations": {"post": {"url": "people", "method": "POST"}}},
    embedded("people", PEOPLE),
    dtl("adults", "people", [["filter", ["gte", "_S.age", 18]]]),
    {"_id": "export", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["filter", ["eq", "_S.name", "Ann"]]]}},
     "sink": {"type": "rest", "system": "web", "operation": "post"}},
]


class Api:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.http = TokenClient(create_app(node))

    async def call(self, method: str, path: str, status: int = 200, *, raw: bool = False, **kwargs: Any) -> Any:
        response = await self.http.open("/api" + path, method=method, **kwargs)
        body = await response.get_data()
        assert response.status_code == status, (method, path, body)
        self.response = response
        if raw:
            return body
        assert response.content_type.startswith("application/json"), (path, response.content_type)
        return json.loads(body)

    async def put_config(self, config: Any, status: int = 200, **params: Any) -> Any:
        return await self.call("PUT", "/config", status, data=json.dumps(config),
                               headers={"Content-Type": "application/json"}, query_string=params)

    async def run(self, pipe_id: str) -> None:
        await self.http.run_pipe(pipe_id)


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path) as node:
        yield Api(node)


def _zip(files: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, entity in files.items():
            archive.writestr(name, json.dumps(entity))
    return buffer.getvalue()


# -- node info, status, admin -------------------------------------------------------------------------


async def test_api_info_has_developer_mode_with_and_without_the_slash(api: Api) -> None:
    for path in ("/", ""):
        info = await api.call("GET", path)
        assert info["status"]["developer_mode"] is True


async def test_status_start_time_moves_on_restart_and_admin_answers_exactly_ok(api: Api) -> None:
    await api.put_config(CONFIG)
    before = (await api.call("GET", "/status"))["node_start_time"]
    await trio.sleep(0.002)
    for operation in ("load_config", "restart"):
        assert await api.call("POST", "/admin", form={"operation": operation}) == {"message": "OK"}
    assert (await api.call("GET", "/status"))["node_start_time"] > before
    assert await api.call("POST", "/admin", form={"operation": "reset"}) == {"message": "OK"}
    assert await api.call("GET", "/config") == []
    refused = await api.call("POST", "/admin", 400, form={"operation": "explode"})
    assert "operation" in refused["detail"]


# -- config --------------------------------------------------------------------------------------------


async def test_put_config_takes_multipart_zip_or_json_and_raw_zip_or_json(api: Api) -> None:
    pipe = embedded("p", [{"_id": "1"}])
    uploads = [
        {"files": {"file": FileStorage(io.BytesIO(_zip({"pipes/p.conf.json": pipe})), "config.zip")}},
        {"files": {"file": FileStorage(io.BytesIO(json.dumps([pipe]).encode()), "config.json")}},
        {"data": _zip({"pipes/x.conf.json": pipe}), "headers": {"Content-Type": "application/zip"}},
        {"data": json.dumps([pipe]), "headers": {"Content-Type": "application/json"}},
    ]
    for upload in uploads:
        await api.put_config([])
        answer = await api.call("PUT", "/config", **upload)
        assert answer == {"validation_errors": []}
        assert [e["_id"] for e in await api.call("GET", "/config")] == ["p"]
    bad = [embedded("p", []), {"_id": "q", "type": "pipe", "source": {"type": "nonsense"}}]
    refused = await api.put_config(bad, 400)
    assert refused["validation_errors"][0]["posted-config"]["_id"] == "q"
    assert refused["validation_errors"][0]["is-valid-config"] is False
    kept = await api.put_config(bad, force="true")
    assert [item["posted-config"]["_id"] for item in kept["validation_errors"]] == ["q"]
    pipe_q = await api.call("GET", "/pipes/q")
    assert pipe_q["runtime"]["is-valid-config"] is False and pipe_q["runtime"]["config-errors"]


async def test_get_config_as_zip_names_each_file_by_id(api: Api) -> None:
    await api.put_config(CONFIG)
    body = await api.call("GET", "/config", raw=True, headers={"Accept": "application/zip"})
    assert api.response.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = sorted(archive.namelist())
        assert names == ["node-metadata.conf.json", "pipes/adults.conf.json", "pipes/export.conf.json",
                         "pipes/people.conf.json", "systems/web.conf.json"]
        assert json.loads(archive.read("pipes/people.conf.json")) == CONFIG[2]  # the original, not effective
    as_json = await api.call("GET", "/config", headers={"Accept": "application/json"})
    assert [e["_id"] for e in as_json] == [e["_id"] for e in CONFIG]


async def test_env_put_replaces_and_get_reads(api: Api) -> None:
    await api.call("PUT", "/env", json={"a": "1", "b": "2"})
    await api.call("PUT", "/env", json={"c": "3"})
    assert await api.call("GET", "/env") == {"c": "3"}


# -- pipes, pumps, datasets -------------------------------------------------------------------------------


async def test_pipe_objects_have_the_runtime_the_client_reads(api: Api) -> None:
    await api.put_config(CONFIG)
    pipes = {p["_id"]: p for p in await api.call("GET", "/pipes")}
    assert set(pipes) == {"people", "adults", "export"}
    for pipe in pipes.values():
        runtime = pipe["runtime"]
        assert runtime["state"] == "Deployed"
        assert runtime["is-valid-config"] is True and runtime["config-errors"] == []
        assert set(runtime["queues"]) >= {"source", "dependencies"}
        assert isinstance(runtime["dependencies"], list)
        assert set(pipe["config"]) == {"original", "effective"}
    assert pipes["adults"]["runtime"]["dependencies"] == ["people"]
    assert pipes["export"]["config"]["effective"]["sink"]["type"] == "rest"
    assert pipes["adults"]["config"]["effective"]["sink"] == {"type": "dataset", "dataset": "adults"}
    await api.call("GET", "/pipes/nope", 404)


async def test_pump_lists_operations_and_refuses_unknown_ones(api: Api) -> None:
    await api.put_config(CONFIG)
    pump = await api.call("GET", "/pipes/people/pump")
    runtime = pump["runtime"]
    assert {"enable", "disable", "start", "stop", "update-last-seen"} <= set(runtime["supported-operations"])
    for key in ("is-disabled", "is-running", "is-valid-config", "config-errors", "last-seen", "last-run",
                "next-run", "progress", "queues"):
        assert key in runtime, key
    refused = await api.call("POST", "/pipes/people/pump", 400, form={"operation": "fly"})
    assert "doesn't support the operation" in refused["detail"]
    after = await api.call("POST", "/pipes/people/pump", form={"operation": "disable"})
    assert after["runtime"]["is-disabled"] is True


async def test_datasets_have_queue_sizes(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run("people")
    dataset = await api.call("GET", "/datasets/people")
    assert dataset["_id"] == "people" and dataset["runtime"]["queues"] == {"size": 0}
    assert all("queues" in d["runtime"] for d in await api.call("GET", "/datasets"))
    entities = await api.call("GET", "/datasets/people/entities", query_string={"history": "false",
                                                                                "deleted": "false"})
    assert [e["_id"] for e in entities] == ["1", "2"]
    await api.call("GET", "/datasets/nope", 404)


async def test_pipe_ids_with_a_colon_can_be_percent_encoded(api: Api) -> None:
    await api.put_config([embedded("crm:person", [{"_id": "1"}])])
    assert (await api.call("GET", "/pipes/" + quote("crm:person", safe="")))["_id"] == "crm:person"
    assert (await api.call("GET", "/pipes/crm%3Aperson/pump"))["_id"] == "pump:crm:person"


# -- entities previews (client-spec 11.1) -------------------------------------------------------------------


async def test_entities_previews_each_stage_from_the_start_and_writes_nothing(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run("people")
    await api.run("adults")
    written = (await api.call("GET", "/datasets/adults"))["runtime"]["next-offset"]
    stages = {stage: await api.call("GET", "/pipes/adults/entities", query_string={"stage": stage})
              for stage in ("source", "before-transforms", "after-transforms", "sink")}
    assert [e["_id"] for e in stages["source"]] == ["1", "2"]  # from the start, the offset is ignored
    sink = {e["_id"]: e for e in stages["sink"]}
    assert sink["2"]["_filtered"] is True and sink["2"]["_deleted"] is True  # a dataset sink gets the delete
    assert sink["1"]["name"] == "Ann" and sink["1"].get("_deleted", False) is False
    default = await api.call("GET", "/pipes/adults/entities")
    assert [e["_id"] for e in default] == [e["_id"] for e in stages["sink"]]
    assert (await api.call("GET", "/datasets/adults"))["runtime"]["next-offset"] == written  # nothing written
    await api.call("GET", "/pipes/adults/entities", 400, query_string={"stage": "middle"})


async def test_output_pipes_preview_the_sink_stage_without_calling_their_system(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run("people")
    sink = await api.call("GET", "/pipes/export/entities")  # the rest system at port 1 would refuse
    assert [e["_id"] for e in sink] == ["1"]  # Bob is filtered: left out of a non-dataset sink
    after = await api.call("GET", "/pipes/export/entities", query_string={"stage": "after-transforms"})
    assert {e["_id"]: e.get("_filtered", False) for e in after} == {"1": False, "2": True}
    assert (await api.call("GET", "/pipes/export/pump"))["runtime"]["last-run"] is None


async def test_a_missing_source_dataset_previews_as_empty(api: Api) -> None:
    await api.put_config([dtl("late", "never-written", [])])
    for stage in ("source", "sink"):
        assert await api.call("GET", "/pipes/late/entities", query_string={"stage": stage}) == []


# -- routing of the run-all-pipes family ---------------------------------------------------------------------


async def test_the_fixed_pipes_paths_are_not_pipe_ids(api: Api) -> None:
    await api.put_config(CONFIG)
    status = await api.call("GET", "/pipes/get-pipe-runner-status")
    assert status == {"status": "not-running"}
    assert await api.call("GET", "/pipes/get-run-all-pipes-log") == []
    for reserved in ("run-all-pipes", "stop-run-all-pipes", "get-run-all-pipes-log", "get-pipe-runner-status",
                     "delete-all-sink-datasets"):
        refused = await api.put_config([embedded(reserved, [])], 400)
        assert reserved in json.dumps(refused["validation_errors"])


async def test_every_json_answer_has_a_content_type(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run("people")
    for path in ("/", "/status", "/pipes", "/pipes/people", "/pipes/people/pump", "/pipes/people/entities",
                 "/config", "/env", "/datasets", "/datasets/people", "/datasets/people/entities",
                 "/pipes/get-pipe-runner-status", "/pipes/get-run-all-pipes-log", "/pipes/nope"):
        response = await api.http.get("/api" + path)
        assert response.content_type == "application/json", (path, response.content_type)


# -- the frozen clock --------------------------------------------------------------------------------------


async def _now_of(api: Api, config: list[dict[str, Any]]) -> str:
    await api.put_config(config)
    entities = await api.call("GET", "/pipes/stamped/entities")
    return str(entities[0]["stamp"])


async def test_frozen_time_freezes_now_in_metadata_or_the_env(api: Api) -> None:
    pipes = [embedded("seed", [{"_id": "1"}]),
             {"_id": "stamped", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "1"}]},
              "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "stamp", ["now"]]]}}}]
    frozen = [{"_id": "node", "type": "metadata", "frozen_time": "2020-01-01T00:00:00Z"}, *pipes]
    assert await _now_of(api, frozen) == "~t2020-01-01T00:00:00Z"
    frozen[0]["frozen_time"] = "2021-06-30T12:00:00.5Z"
    assert await _now_of(api, frozen) == "~t2021-06-30T12:00:00.5Z"
    real = await _now_of(api, pipes)
    assert real.startswith("~t") and not real.startswith(("~t2020", "~t2021"))
    await api.call("PUT", "/env", json={"node-frozen-time": "2019-05-17T08:00:00Z"})
    assert await _now_of(api, pipes) == "~t2019-05-17T08:00:00Z"
    from_env = [{"_id": "node", "type": "metadata", "frozen_time": "$ENV(node-frozen-time)"}, *pipes]
    assert await _now_of(api, from_env) == "~t2019-05-17T08:00:00Z"
    await api.call("PUT", "/env", json={"node-frozen-time": "soon"})
    refused = await api.put_config(pipes, 400)
    assert "frozen_time" in refused["detail"] and "node-frozen-time" in refused["detail"]
