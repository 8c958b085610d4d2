"""Publishers through the node's API: JSON Pull from ``http_endpoint`` pipes (``since``/``limit`` continuation,
``_B``, the ``X-Dataset-*`` headers, filenames), CSV from ``csv_endpoint`` pipes (dialects, encodings, deleted
entities), no pump for either, anonymous access granted by a pipe's ACL, and bad requests."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

PEOPLE = [{"_id": str(i), "name": f"person {i}", "age": 20 + i, "score": f"~f{i}.50"} for i in range(1, 8)]

CONFIG = [
    {"_id": "people-out", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "sink": {"type": "http_endpoint"}},
    {"_id": "people-shaped", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [
         ["filter", ["gt", "_S.age", ["integer", ["coalesce", ["list", "_B.min_age", "0"]]]]],
         ["copy", "name"], ["add", "asked", "_B.who"]]}},
     "sink": {"type": "http_endpoint", "filename": "people.json"}},
    {"_id": "people-csv", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "sink": {"type": "csv_endpoint", "columns": ["_id", "name", "score", "tags"]}},
    {"_id": "people-semicolons", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "sink": {"type": "csv_endpoint", "columns": ["name", "age"], "delimiter": ";", "quoting": "all",
              "include_header": False, "encoding": "latin-1", "lineterminator": "\n",
              "skip-deleted-entities": False}},
    {"_id": "people-open", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "sink": {"type": "http_endpoint"}, "permissions": [["allow", ["group:Anonymous"], ["read_data"]]]},
    {"_id": "into-people", "type": "pipe", "source": {"type": "http_endpoint"}, "sink": {"dataset": "people"},
     "permissions": [["allow", ["group:Anonymous"], ["write_data"]]]},
]


class Api:
    def __init__(self, client: TokenClient) -> None:
        self.client = client

    async def get(self, path: str, status: int = 200, **query: Any) -> tuple[Any, Any]:
        response = await self.client.get(path, query_string={k: str(v) for k, v in query.items()})
        body = await response.get_data()
        assert response.status_code == status, body
        return response, body

    async def pull(self, pipe_id: str, status: int = 200, **query: Any) -> tuple[list[Any], Any]:
        response, body = await self.get(f"/api/publishers/{pipe_id}/entities", status, **query)
        return json.loads(body), response.headers

    async def upload(self, entities: list[dict[str, Any]]) -> None:
        response = await self.client.post("/api/datasets/people/entities", json=entities)
        assert response.status_code == 200, await response.get_data()


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(CONFIG) == []
        api = Api(TokenClient(create_app(node)))
        await api.upload(PEOPLE)
        yield api


async def test_json_pull_serves_the_source_with_since_and_limit(api: Api) -> None:
    entities, headers = await api.pull("people-out")
    assert [e["_id"] for e in entities] == [p["_id"] for p in PEOPLE]
    assert entities[0]["name"] == "person 1" and entities[0]["_updated"] == 0
    assert headers["X-Dataset-Max-Updated"] == "6" and headers["X-Dataset-Filtered"] == "false"
    assert headers["X-Dataset-Populated"] == "false"  # nothing marked the uploaded dataset populated
    assert headers["X-Dataset-Generation"] and "Content-Disposition" not in headers
    # a client following the protocol: since = the last _updated it got
    got, since = [], None
    while True:
        page, _ = await api.pull("people-out", limit=3, **({} if since is None else {"since": since}))
        if not page:
            break
        assert len(page) <= 3
        got += [e["_id"] for e in page]
        since = page[-1]["_updated"]
    assert got == [p["_id"] for p in PEOPLE]
    # changes and deletes appear after the offset
    await api.upload([{"_id": "2", "name": "renamed", "age": 22}, {"_id": "3", "_deleted": True}])
    page, _ = await api.pull("people-out", since=since)
    assert [(e["_id"], e.get("name"), e["_deleted"]) for e in page] == [("2", "renamed", False), ("3", None, True)]


async def test_query_parameters_reach_dtl_as_b(api: Api) -> None:
    entities, headers = await api.pull("people-shaped", min_age=24, who="ci")
    assert [(e["_id"], e["name"], e["asked"]) for e in entities] == [
        ("5", "person 5", "ci"), ("6", "person 6", "ci"), ("7", "person 7", "ci")]
    assert headers["X-Dataset-Filtered"] == "true"
    assert [e["_updated"] for e in entities] == [4, 5, 6]  # the source's, for continuation
    assert headers["Content-Disposition"] == 'attachment; filename="people.json"'
    page, _ = await api.pull("people-shaped", min_age=24, since=4, limit=1)
    assert [e["_id"] for e in page] == ["6"]
    response, body = await api.get("/api/publishers/people-shaped/entities/other.json")
    assert response.headers["Content-Disposition"] == 'attachment; filename="other.json"'
    assert len(json.loads(body)) == 7


async def test_csv_publisher(api: Api) -> None:
    await api.upload([{"_id": "8", "name": 'say "hi", then go', "tags": ["a", "b"]}, {"_id": "1", "_deleted": True}])
    response, body = await api.get("/api/publishers/people-csv/csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert rows[0] == ["_id", "name", "score", "tags"]
    assert rows[1] == ["2", "person 2", "2.50", ""]  # 1 is deleted: skipped; decimals as numbers
    assert rows[-1] == ["8", 'say "hi", then go', "", '["a","b"]']
    assert len(rows) == 1 + 7
    assert b'"say ""hi"", then go"' in body and body.count(b"\r\n") == 8
    response, body = await api.get("/api/publishers/people-csv/csv/people.csv", limit=2, since=2)
    assert response.headers["Content-Disposition"] == 'attachment; filename="people.csv"'
    assert list(csv.reader(io.StringIO(body.decode()))) == [["_id", "name", "score", "tags"],
                                                           ["4", "person 4", "4.50", ""],
                                                           ["5", "person 5", "5.50", ""]]


async def test_csv_dialect_and_encoding(api: Api) -> None:
    await api.upload([{"_id": "9", "name": "Åse Ødegård", "age": 50}, {"_id": "1", "_deleted": True}])
    _, body = await api.get("/api/publishers/people-semicolons/csv")
    lines = body.decode("latin-1").split("\n")
    assert lines[0] == '"person 2";"22"'  # no header; every cell quoted; 1's latest version is its delete
    assert '"Åse Ødegård";"50"' in lines
    assert '"";""' in lines  # the deleted entity is kept (skip-deleted-entities: false)
    assert lines[-1] == "" and len(lines) == 6 + 2 + 1


async def test_publishers_are_not_pumped(api: Api) -> None:
    response = await api.client.get("/api/pipes/people-out/pump")
    runtime = (await response.get_json())["runtime"]
    assert runtime["next-run"] is None and runtime["last-run"] is None


async def test_anonymous_access_needs_a_grant(api: Api) -> None:
    anonymous = Api(TokenClient(api.client.app, role=None))
    entities, _ = await anonymous.pull("people-open")
    assert len(entities) == 7
    await anonymous.pull("people-out", status=401)
    await anonymous.get("/api/publishers/people-csv/csv", status=401)
    await anonymous.get("/api/publishers/no-such-pipe/entities", status=401)  # no grant: no hint it exists
    response = await anonymous.client.post("/api/receivers/into-people/entities", json=[{"_id": "x"}])
    assert response.status_code == 200, await response.get_data()
    response = await anonymous.client.post("/api/datasets/people/entities", json=[{"_id": "y"}])
    assert response.status_code == 401
    entities, _ = await api.pull("people-out")
    assert "x" in [e["_id"] for e in entities] and "y" not in [e["_id"] for e in entities]
    # a token still needs its role's permission, grant or not
    guest = Api(TokenClient(api.client.app, role="guest"))
    await guest.pull("people-open", status=403)


async def test_bad_requests(api: Api) -> None:
    _, body = await api.get("/api/publishers/people-out/entities", 400, since="abc")
    assert "since" in json.loads(body)["detail"]
    _, body = await api.get("/api/publishers/people-out/entities", 400, limit=-1)
    assert "limit" in json.loads(body)["detail"]
    _, body = await api.get("/api/publishers/people-csv/entities", 404)
    assert "csv_endpoint" in json.loads(body)["detail"]
    _, body = await api.get("/api/publishers/people-out/csv", 404)
    assert "'http_endpoint', not 'csv_endpoint'" in json.loads(body)["detail"]
    await api.get("/api/publishers/no-such-pipe/entities", 404)
    await api.get("/api/publishers/into-people/entities", 404)
    response = await api.client.post("/api/pipes/people-out/pump", form={"operation": "disable"})
    assert response.status_code == 200
    _, body = await api.get("/api/publishers/people-out/entities", 409)
    assert "disabled" in json.loads(body)["detail"]


async def test_a_bad_permissions_list_is_a_config_error(api: Api) -> None:
    pipe = {"_id": "p", "type": "pipe", "permissions": [["allow", "group:x", []]]}
    response = await api.client.put("/api/config", json=[*CONFIG, pipe])
    body = await response.get_data()
    assert response.status_code == 400 and b"pipe p: permissions[0]: must be" in body, body
