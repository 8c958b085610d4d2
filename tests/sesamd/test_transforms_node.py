"""Transforms that talk to services, through the node: a ``chained`` transform of DTL, an ``http`` transform
posting to a microservice (``system:microservice`` with the URL of a running service) and ``json_schema``;
the systems of nested components are found (built for the pipe, or missing: a config error at their path)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.testing import Answer, WebRequest, WebServer
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

PEOPLE = [{"_id": "1", "name": "Ann", "age": 41}, {"_id": "2", "name": "Bob", "age": "old"}]


def enrich(request: WebRequest) -> Answer:
    return Answer.json([{**e, "greeting": f"hello {e['name']}"} for e in request.json()])


def config(port: int) -> list[dict[str, Any]]:
    return [
        {"_id": "svc", "type": "system:microservice", "base_url": f"http://127.0.0.1:{port}/",
         "headers": {"X-Key": "k"}},
        {"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": PEOPLE},
         "transform": {"type": "chained", "transforms": [
             {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "seen", True]]}},
             {"type": "http", "system": "svc", "url": "enrich"},
             {"type": "json_schema", "schema": {"type": "object", "required": ["greeting"],
                                                "properties": {"age": {"type": "integer"}}}},
         ]}},
    ]


@pytest.fixture
def web() -> Any:
    with WebServer() as server:
        server.route("/enrich", enrich)
        yield server


@pytest.fixture
async def client(tmp_path: Any, web: WebServer) -> AsyncIterator[TokenClient]:
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(config(web.port)) == []
        yield TokenClient(create_app(node))


async def test_a_chain_through_a_microservice(client: TokenClient, web: WebServer) -> None:
    await client.run_pipe("people")
    response = await client.get("/api/datasets/people/entities", query_string={"history": "false"})
    stored = {e["_id"]: e for e in json.loads(await response.get_data())}
    assert stored["1"]["greeting"] == "hello Ann" and stored["1"]["seen"] is True and stored["1"]["valid"] is True
    assert stored["2"]["valid"] is False and any("age" in error for error in stored["2"]["errors"])
    [request] = web.of("/enrich")
    assert request.headers["x-key"] == "k" and [e["_id"] for e in request.json()] == ["1", "2"]


async def test_a_nested_component_naming_a_missing_system(client: TokenClient, web: WebServer) -> None:
    broken = config(web.port)[1:]
    response = await client.put("/api/config", json=broken)
    body = await response.get_data()
    assert response.status_code == 400, body
    errors = [e for item in json.loads(body)["validation_errors"] for e in item["config-errors"]]
    assert any(e["elements"] == "$['transform']['transforms'][1]['system']" and "'svc'" in e["msg"]
               for e in errors), errors
