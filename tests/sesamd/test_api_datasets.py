"""The dataset routes over a real node: uploads, deletes, ``start``, subsets, indexes and namespaces."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trio

from actors import DatasetWrite
from dtl import IndexExpression
from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.api._datasets import index_int_id
from sesamd.testing import TokenClient

JSON_HEADERS = {"Content-Type": "application/json"}


def embedded(pipe_id: str, entities: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities}, **extra}


PEOPLE = [{"_id": "1", "name": "Ann"}, {"_id": "2", "name": "Bob"}, {"_id": "3", "name": "Cy"}]
UPPER = {"_id": "upper", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
         "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "loud", ["upper", "_S.name"]]]}}}


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.client = TokenClient(create_app(node))
        self.headers: Any = None

    async def call(self, method: str, path: str, status: int = 200, *, data: Any = None, **params: Any) -> Any:
        kwargs: dict[str, Any] = {"query_string": params}
        if data is not None:
            kwargs["data"] = data if isinstance(data, bytes) else json.dumps(data)
            kwargs["headers"] = JSON_HEADERS
        response = await self.client.open("/api" + path, method=method, **kwargs)
        body = await response.get_data()  # the whole body: a stream that breaks off fails here
        assert response.status_code == status, body
        assert response.content_type == "application/json", body
        self.headers = response.headers
        return json.loads(body)

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        return await self.call("GET", path, status, **params)

    async def post(self, path: str, data: Any, status: int = 200, **params: Any) -> Any:
        return await self.call("POST", path, status, data=data, **params)

    async def delete(self, path: str, status: int = 200) -> Any:
        return await self.call("DELETE", path, status)

    async def put_config(self, config: Any) -> None:
        assert await self.call("PUT", "/config", data=config) == {"validation_errors": []}

    async def idle(self, pipe_id: str) -> dict[str, Any]:
        return await self.client.wait_idle(pipe_id)

    async def run(self, pipe_id: str) -> dict[str, Any]:
        return await self.client.run_pipe(pipe_id)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with open_node(tmp_path) as node:
        yield Api(node)


def ids(entities: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["_id"], e["_updated"]) for e in entities]


# -- POST /datasets/{id}/entities ---------------------------------------------------------------------


async def test_posted_entities_are_written_with_change_tracking(api: Api) -> None:
    await api.get("/datasets/posted", 404)
    raw = b'[{"_id": "a", "amount": 22.10, "when": "~t2020-01-02T03:04:05Z"}, {"_id": "b", "n": 1}]'
    assert await api.post("/datasets/posted/entities", raw) == {"_id": "posted", "entities": 2, "written": 2,
                                                                "unchanged": 0}
    stored = await api.get("/datasets/posted/entities")
    assert ids(stored) == [("a", 0), ("b", 1)]
    assert stored[0]["amount"] == "~f22.10" and stored[0]["when"] == "~t2020-01-02T03:04:05Z"
    assert api.headers["X-Dataset-Populated"] == "false"
    generation = api.headers["X-Dataset-Generation"]

    again = await api.post("/datasets/posted/entities", raw)  # unchanged: no new versions
    assert (again["written"], again["unchanged"]) == (0, 2)
    one = await api.post("/datasets/posted/entities", {"_id": "b", "n": 2})  # one object, changed
    assert (one["entities"], one["written"]) == (1, 1)
    forced = await api.post("/datasets/posted/entities", raw, force="true")
    assert forced["written"] == 2
    gone = await api.post("/datasets/posted/entities", [{"_id": "a", "_deleted": True}])
    assert gone["written"] == 1
    everything = await api.get("/datasets/posted/entities")
    assert ids(everything) == [("a", 0), ("b", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)]
    assert everything[-1]["_deleted"] is True and everything[-1]["_previous"] == 3
    assert api.headers["X-Dataset-Generation"] == generation
    runtime = (await api.get("/datasets/posted"))["runtime"]
    assert (runtime["count-index-exists"], runtime["count-index-deleted"]) == (1, 1)  # latest versions
    assert (runtime["count-log-exists"], runtime["count-log-deleted"], runtime["count-log-total"]) == (5, 1, 6)
    listed = {d["_id"]: d["runtime"] for d in await api.get("/datasets")}
    assert listed["posted"] == runtime and runtime["populated"] is False
    assert await api.post("/datasets/empty/entities", []) == {"_id": "empty", "entities": 0, "written": 0,
                                                              "unchanged": 0}
    assert (await api.get("/datasets/empty"))["_id"] == "empty"  # created


@pytest.mark.parametrize(("body", "detail"), [
    (b'[{"_id": "a"}, {"_id": "b"}, {"name": "no id"}]', "line 1, entity #3: the entity has no _id"),
    (b'[{"_id": "a"}, {"_id": "b"},\n {"_id": 7}]', "line 2, entity #3: _id must be a string, not a number"),
    (b'[{"_id": "a"}, {"_id": "b"}, {"_id": ["c"]}]', "entity #3: _id must be a string, not an array"),
    (b'[{"_id": "a"}, {"_id": "b"}, "text"]', "entity #3: an entity must be a JSON object, not a string"),
    (b'[{"_id": "a"}, {"_id": "b"},\n{"_id": "c", }]', "line 2, column 14"),
    (b'[{"_id": "a"}, {"_id": "b"}, {"_id": "\xff"}]', "line 1, column 39: invalid UTF-8"),
    (b'[{"_id": "a"}, {"_id": "b"}, {"_id": "c"}', "unexpected end of input"),
])
async def test_a_bad_entity_is_a_400_naming_it_and_nothing_is_written(api: Api, body: bytes, detail: str) -> None:
    await api.post("/datasets/people/entities", [{"_id": "old"}])
    error = await api.post("/datasets/people/entities", body, 400)
    assert detail in error["detail"] and "nothing was written" in error["detail"], error
    assert error["status"] == 400
    if "valid_entities" not in error:  # (bad JSON blames no entity)
        assert error["entity"] == 3 and error["line"] in (1, 2)
    assert ids(await api.get("/datasets/people/entities")) == [("old", 0)]
    await api.post("/datasets/fresh/entities", body, 400)
    await api.get("/datasets/fresh", 404)  # not even created


async def test_uploads_refuse_internal_and_impossible_ids_and_bad_flags(api: Api) -> None:
    quoted = quote("system:pump_execution:x", safe="")
    assert "internal" in (await api.post(f"/datasets/{quoted}/entities", [{"_id": "a"}], 400))["detail"]
    await api.post("/datasets/people/entities", [{"_id": "a"}], 400, force="maybe")
    await api.post("/datasets/" + "x" * 300 + "/entities", [{"_id": "a"}], 400)
    await api.get("/datasets/" + "x" * 300 + "/entities", 404)


async def test_a_pipe_reading_the_dataset_sees_the_posted_entities(api: Api) -> None:
    await api.put_config([UPPER])
    with api.node.events.subscribe(maxsize=20, filter={"pipe": "upper", "type": "pump-completed"}) as events:
        await api.post("/datasets/people/entities", PEOPLE)  # the commit signals the pipe
        with trio.fail_after(10):
            completed = await events.receive()
    assert completed["pipe"] == "upper"
    await api.idle("upper")
    loud = {e["_id"]: e["loud"] for e in await api.get("/datasets/upper/entities", history="false")}
    assert loud == {"1": "ANN", "2": "BOB", "3": "CY"}


# -- DELETE /datasets/{id} ----------------------------------------------------------------------------


async def test_delete_an_idle_dataset(api: Api, tmp_path: Path) -> None:
    await api.post("/datasets/people/entities", PEOPLE)
    deleted = await api.delete("/datasets/people")
    assert deleted["_id"] == "people" and deleted["deleted"] is True
    assert deleted["runtime"]["count-index-exists"] == 3  # as it was
    await api.get("/datasets/people", 404)
    await api.get("/datasets/people/entities", 404)
    assert "people" not in [d["_id"] for d in await api.get("/datasets")]
    assert not (tmp_path / "datasets" / "people").exists()
    assert (await api.delete("/datasets/people", 404))["detail"] == "no dataset 'people'"
    await api.post("/datasets/people/entities", PEOPLE[:1])  # created anew
    assert ids(await api.get("/datasets/people/entities")) == [("1", 0)]


async def test_delete_then_rerun_makes_a_new_generation_that_dependents_notice(api: Api) -> None:
    await api.put_config([embedded("people", PEOPLE), {**UPPER, "pump": {"mode": "manual"}}])
    await api.run("people")
    await api.run("upper")
    log = await api.get("/pipes/people/log")
    assert len(log) == 2 and await api.get("/pipes/people/log", start=1) == log[1:]  # (read as datasets are)
    await api.get("/datasets/people/entities")
    generation = api.headers["X-Dataset-Generation"]
    assert (await api.get("/pipes/upper/pump"))["runtime"]["is-out-of-sync"] is False
    await api.delete("/datasets/people")
    quoted = quote("system:pump_execution:people", safe="")
    assert (await api.delete(f"/datasets/{quoted}"))["_id"] == "system:pump_execution:people"  # allowed
    await api.run("people")  # writes the dataset again: a new one
    assert len(await api.get("/datasets/people/entities")) == 3
    assert api.headers["X-Dataset-Generation"] != generation
    runtime = await api.run("upper")
    assert runtime["is-out-of-sync"] is True
    assert "deleted and created again" in runtime["out-of-sync"][0]["reason"]


async def test_delete_stops_a_run_writing_the_dataset(api: Api) -> None:
    many = [{"_id": str(i), "n": i} for i in range(3000)]
    await api.put_config([embedded("big", many, batch_size=10, pump={"mode": "manual"})])
    response = await api.client.post("/api/pipes/big/pump", form={"operation": "start"})
    assert response.status_code == 200
    with trio.fail_after(10):
        while not api.node.datasets.exists("big"):
            await trio.sleep(0.005)
    await api.delete("/datasets/big")
    assert (await api.get("/pipes/big/pump"))["runtime"]["is-running"] is False
    await api.get("/datasets/big", 404)  # the run stopped before the dataset went: nothing wrote it again
    await api.run("big")  # the next run starts over (the offset went with the dataset)
    assert len(await api.get("/datasets/big/entities", history="false")) == 3000


async def test_a_write_racing_a_delete_fails_or_lands_in_the_new_dataset(api: Api) -> None:
    await api.post("/datasets/people/entities", PEOPLE)
    results: list[Any] = []

    async def write() -> None:
        try:
            results.append(await api.node.writers.apply(DatasetWrite("people", lambda d: d.write([{"_id": "9"}]))))
        except Exception as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(api.delete, "/datasets/people")
        nursery.start_soon(write)
    entities = await api.get("/datasets/people/entities", 200) if api.node.datasets.exists("people") else []
    assert [e["_id"] for e in entities] in ([], ["9"])


# -- reading: start, since, odd ids ---------------------------------------------------------------------


async def test_start_skips_entities_after_the_other_filters(api: Api) -> None:
    await api.post("/datasets/people/entities", PEOPLE)
    await api.post("/datasets/people/entities", [{"_id": "1", "name": "Anne"}, {"_id": "4", "name": "Di"}])
    path = "/datasets/people/entities"
    assert ids(await api.get(path)) == [("1", 0), ("2", 1), ("3", 2), ("1", 3), ("4", 4)]
    assert ids(await api.get(path, start=1, limit=2)) == [("2", 1), ("3", 2)]
    assert ids(await api.get(path, start=2)) == [("3", 2), ("1", 3), ("4", 4)]
    assert ids(await api.get(path, since=1, start=1)) == [("1", 3), ("4", 4)]
    assert ids(await api.get(path, history="false", start=1)) == [("3", 2), ("1", 3), ("4", 4)]
    assert ids(await api.get(path, reverse="true", start=1, limit=1)) == [("1", 3)]
    assert await api.get(path, start=99) == []
    assert await api.get(path, start=1, limit=0) == []
    await api.get(path, 400, start=-1)
    await api.get(path, 400, start="x")


async def test_offsets_beyond_any_offset_are_a_400_or_empty(api: Api) -> None:
    await api.post("/datasets/people/entities", PEOPLE)
    path = "/datasets/people/entities"
    error = await api.get(path, 400, since="100000000000000000000")
    assert "since" in error["detail"]
    await api.get(path, 400, limit="100000000000000000000")
    await api.get(path, 400, start="100000000000000000000")
    biggest = str((1 << 63) - 1)
    assert await api.get(path, since=biggest) == []
    assert len(await api.get(path, since=biggest, reverse="true")) == 3
    assert len(await api.get(path, since="-5")) == 3
    await api.get("/datasets/people/entity", 400, entity_id="1", offset="100000000000000000000")


@pytest.mark.parametrize("name", ["%2e%2e", "..", ".", "a%2Fb", "%2e%2e%2fnode", "x%00y", "%00", "a%2F..%2F..",
                                  "%2e%2e%2f%2e%2e%2fetc"])
async def test_odd_dataset_ids_are_a_404_and_touch_nothing(api: Api, tmp_path: Path, name: str) -> None:
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "datasets" not in p.parts)
    outside = sorted(os.listdir(tmp_path.parent))
    for path in (f"/datasets/{name}/entities", f"/datasets/{name}", f"/datasets/{name}/entity?entity_id=1",
                 f"/datasets/{name}/indexes"):
        response = await api.client.get("/api" + path)
        assert response.status_code == 404, (path, await response.get_data())
        assert (await response.get_json())["status"] == 404
    response = await api.client.delete(f"/api/datasets/{name}")
    assert response.status_code == 404 and (await response.get_json())["status"] == 404
    response = await api.client.post(f"/api/datasets/{name}/entities", data=b'[{"_id": "a"}]', headers=JSON_HEADERS)
    assert response.status_code in (400, 404) and (await response.get_json())["status"] in (400, 404)
    response = await api.client.get(f"/api/datasets/{name}/entities?since=1&start=1&subset=%5B")
    assert response.status_code in (400, 404)
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "datasets" not in p.parts)
    assert after == before and sorted(os.listdir(tmp_path.parent)) == outside
    assert await api.get("/datasets", **{"include-internal-datasets": "true"}) == []
    assert api.node.datasets.names() == []


# -- subsets and indexes ----------------------------------------------------------------------------


GROUPED = [{"_id": "p1", "group": "g1"}, {"_id": "p2", "group": "g2"}, {"_id": "p3", "group": ["g1", "g3"]},
           {"_id": "p4", "group": "~:ns:g1"}]


async def grouped(api: Api) -> IndexExpression:
    """Dataset ``people`` with an index on ``_S.group`` (as a pipe's hops would declare it)."""
    index = IndexExpression("_S.group")
    await api.post("/datasets/people/entities", GROUPED)
    await trio.to_thread.run_sync(api.node.datasets.ensure_index, "people", index)
    await api.post("/datasets/people/entities", [{"_id": "p2", "group": "g1"}, {"_id": "p1", "_deleted": True},
                                                 {"_id": "p5", "group": "g1"}])
    return index


async def test_subset_reads_through_the_index(api: Api) -> None:
    await grouped(api)
    path = "/datasets/people/entities"
    g1 = json.dumps(["eq", "_S.group", "g1"])
    latest = await api.get(path, subset=g1, history="false")
    assert ids(latest) == [("p3", 2), ("p2", 4), ("p5", 6)]  # the deleted p1 is in no subset
    assert ids(await api.get(path, subset=g1)) == [("p2", 1), ("p3", 2), ("p2", 4), ("p5", 6)]  # older versions
    assert ids(await api.get(path, subset=g1, since=2)) == [("p2", 4), ("p5", 6)]
    assert ids(await api.get(path, subset=g1, history="false", reverse="true", start=1, limit=1)) == [("p2", 4)]
    assert ids(await api.get(path, subset=json.dumps(["eq", "_S.group", "~:ns:g1"]))) == [("p4", 3)]
    assert ids(await api.get(path, subset=json.dumps(["eq", "_S.group", "g3"]))) == [("p3", 2)]
    assert await api.get(path, subset=json.dumps(["eq", "_S.group", "none"])) == []
    unknown = await api.get(path, 404, subset=json.dumps(["eq", "_S.name", "x"]))
    assert "no index" in unknown["detail"]
    for bad in ("[", '["gt", "_S.group", 1]', '["eq", "_S.group"]', '["eq", "_S.group", "_S.other"]',
                '["eq", ["nope-fn"], 1]'):
        assert (await api.get(path, 400, subset=bad))["detail"].startswith("query parameter 'subset'")
    entity = "/datasets/people/entity"
    assert (await api.get(entity, entity_id="p3", subset=g1))["_id"] == "p3"
    await api.get(entity, 404, entity_id="p4", subset=g1)
    await api.get(entity, 404, entity_id="p1", subset=g1)  # deleted
    await api.get(entity, 404, entity_id="p3", subset=json.dumps(["eq", "_S.name", "x"]))


async def test_subset_of_an_index_defined_before_a_restart(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        api = Api(node)
        await grouped(api)
    async with open_node(tmp_path) as node:  # the index is in the dataset, not yet in use
        api = Api(node)
        g1 = json.dumps(["eq", "_S.group", "g1"])
        [index] = await api.get("/datasets/people/indexes")
        assert index["status"] == "orphaned"
        await api.post("/datasets/people/entities", [{"_id": "p6", "group": "g1"}])
        latest = await api.get("/datasets/people/entities", subset=g1, history="false")
        assert [e["_id"] for e in latest] == ["p3", "p2", "p5", "p6"]  # caught up on first use


async def test_index_routes(api: Api) -> None:
    await api.get("/datasets/nope/indexes", 404)
    index = await grouped(api)
    [found] = await api.get("/datasets/people/indexes")
    assert found["expression"] == "_S.group" and found["dataset"] == "people"
    assert found["status"] == "up-to-date" and found["progress"] == {"indexed": 7, "total": 7}
    assert found["id"] == index_int_id(index.key) and isinstance(found["id"], int)
    await api.delete("/datasets/people/indexes/12345", 404)
    await api.delete("/datasets/people/indexes/abc", 404)
    removed = await api.delete(f"/datasets/people/indexes/{found['id']}")
    assert removed["id"] == found["id"] and removed["deleted"] is True
    assert await api.get("/datasets/people/indexes") == []
    await api.delete(f"/datasets/people/indexes/{found['id']}", 404)
    await api.get("/datasets/people/entities", 404, subset=json.dumps(["eq", "_S.group", "g1"]))
    assert len(await api.get("/datasets/people/entities")) == 7  # the entities stay


async def test_indexes_a_pipe_uses_are_not_orphaned(api: Api) -> None:
    hops = ["hops", {"datasets": ["groups g"], "where": [["eq", "_S.group", "g._id"]], "return": "g.label"}]
    labelled = {"_id": "labelled", "type": "pipe", "pump": {"mode": "manual"},
                "source": {"type": "dataset", "dataset": "people"},
                "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "label", ["first", hops]]]}}}
    await api.put_config([embedded("people", [{"_id": "p0", "group": "g0"}]),
                          embedded("groups", [{"_id": "g0", "label": "Zero"}]), labelled])
    for pipe_id in ("people", "groups", "labelled"):
        assert (await api.run(pipe_id))["success"] is True
    assert (await api.get("/datasets/labelled/entity", entity_id="p0"))["label"] == "Zero"
    [index] = await api.get("/datasets/groups/indexes")
    assert (index["expression"], index["status"]) == ("_S._id", "up-to-date")
    subset = json.dumps(["eq", "_S._id", "g0"])
    assert [e["_id"] for e in await api.get("/datasets/groups/entities", subset=subset)] == ["g0"]


# -- namespaces -----------------------------------------------------------------------------------------


async def test_namespaces_are_the_builtins_and_the_metadata(api: Api) -> None:
    found = await api.get("/namespaces")
    assert found["_"] == "http://example.org/" and found["rdf"] == "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    assert {"rdfs", "owl", "foaf", "wgs84", "xsd", "dc", "skos", "dcterms", "gs"} <= set(found)
    await api.put_config([{"_id": "node", "type": "metadata", "namespaces": {"default": {
        "fifa": "http://www.fifa.com/", "_": "http://example.com/"}}}])
    found = await api.get("/namespaces")
    assert found["fifa"] == "http://www.fifa.com/" and found["_"] == "http://example.com/"
    guest = TokenClient(api.client.app, "guest")
    assert (await guest.get("/api/namespaces")).status_code == 200
