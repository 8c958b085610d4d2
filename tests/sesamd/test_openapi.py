"""``GET /api/openapi.json``: a valid OpenAPI 3.1 document made from the route table, equal to the URL map."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import h11
import hypercorn.config
import hypercorn.trio
import pytest
import trio
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from sesamd._auth import Permission
from sesamd._node import open_node
from sesamd.api import PUBLIC, Param, Resource, create_app, routes_of
from sesamd.api._openapi import document, openapi_path

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture
async def app(tmp_path: Any) -> AsyncIterator[Any]:
    async with open_node(tmp_path) as node:
        yield create_app(node)


async def _document(app: Any) -> dict[str, Any]:
    response = await app.test_client().get("/api/openapi.json")  # public: no token
    assert response.status_code == 200 and response.content_type == "application/json"
    body: dict[str, Any] = await response.get_json()
    return body


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, method.upper()): operation for path, item in doc["paths"].items()
            for method, operation in item.items() if method in METHODS}


async def test_the_document_is_valid_openapi_3_1(app: Any) -> None:
    doc = await _document(app)
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == str(app.extensions["sesamd"].node.version)
    assert doc == document(routes_of(app), str(app.extensions["sesamd"].node.version))
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert await _document(app) == doc  # cached per app, the same each time


async def test_every_url_rule_is_an_operation_and_every_operation_a_rule(app: Any) -> None:
    in_map: set[tuple[str, str]] = set()
    websockets: set[str] = set()
    for rule in app.url_map.iter_rules():
        path = openapi_path(rule.rule)[0]
        in_map |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
        if rule.websocket:
            websockets.add(path)
    operations = _operations(await _document(app))
    assert set(operations) == in_map
    assert {path for (path, _), op in operations.items() if op.get("x-websocket")} == websockets
    assert len(operations) >= 30


async def test_each_operation_carries_its_route(app: Any) -> None:
    operations = _operations(await _document(app))
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids))
    for route in routes_of(app):
        path, path_parameters = openapi_path(route.path)
        for method in route.methods:
            op = operations[(path, method)]
            assert op["operationId"].startswith(route.endpoint)
            assert op["summary"] == route.summary
            assert op["x-permission"] == str(route.permission)
            assert op["security"] == ([] if route.permission == PUBLIC else [{"bearerAuth": []}])
            parameters = op.get("parameters", [])
            assert [p["name"] for p in parameters if p["in"] == "path"] == [p["name"] for p in path_parameters]
            query = {p["name"]: p for p in parameters if p["in"] == "query"}
            assert list(query) == [p.name for p in route.query]
            for param in route.query:
                assert query[param.name]["schema"]["type"] == param.type
                assert query[param.name]["required"] is param.required
            if route.body is None:
                assert "requestBody" not in op
            else:
                assert route.body in op["requestBody"]["content"]
            responses = op["responses"]
            error = responses["4XX"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
            if route.websocket:
                assert op["x-websocket"] is True and method == "GET" and "101" in responses
            else:
                assert "x-websocket" not in op
                for status in route.status:
                    assert route.produces in responses[str(status)]["content"]


async def test_config_upload_is_json_or_multipart_and_forms_are_string_fields(app: Any) -> None:
    operations = _operations(await _document(app))
    content = operations[("/api/config", "PUT")]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert content["application/json"]["schema"] == {}
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
    form = operations[("/api/pipes/{pipe_id}/pump", "POST")]["requestBody"]["content"]
    assert form == {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}
    login = operations[("/api/jwt", "POST")]
    assert login["security"] == [] and "text/plain" in login["responses"]["200"]["content"]
    error = (await _document(app))["components"]["schemas"]["Error"]
    assert error["required"] == ["detail", "status"]
    assert error["properties"] == {"detail": {"type": "string"}, "status": {"type": "integer"}}


def test_converters_become_path_parameters() -> None:
    assert openapi_path("/api/pipes/<pipe_id>/pump") == ("/api/pipes/{pipe_id}/pump", [
        {"name": "pipe_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}])
    path, parameters = openapi_path("/api/x/<path:rest>/<int:n>/<int(min=1):m>/<uuid:u>")
    assert path == "/api/x/{rest}/{n}/{m}/{u}"
    assert [(p["name"], p["schema"]["type"]) for p in parameters] == [
        ("rest", "string"), ("n", "integer"), ("m", "integer"), ("u", "string")]
    assert openapi_path("/api/status") == ("/api/status", [])


def test_declared_statuses_websockets_and_query_params_are_documented() -> None:
    resource = Resource("t")

    @resource.route("/things", "POST", permission=Permission.WRITE_CONFIG, summary="Add", status=(201,),
                    body="application/json", query=(Param("force", "boolean", "x"), Param("n", "integer",
                                                                                           required=True)))
    async def add() -> None: ...

    @resource.route("/things/<thing_id>", "GET", "PATCH", permission=PUBLIC, summary="One", produces="text/plain")
    async def one(thing_id: str) -> None: ...

    @resource.websocket("/things/events", permission=Permission.READ_CONFIG, summary="Events",
                        query=(Param("since"),))
    async def events() -> None: ...

    doc = document(resource.routes, "1.2.3")
    validate(doc, cls=OpenAPIV31SpecValidator)
    post = doc["paths"]["/api/things"]["post"]
    assert set(post["responses"]) == {"201", "4XX"} and post["operationId"] == "t.add"
    assert [(p["name"], p["schema"]["type"], p["required"]) for p in post["parameters"]] == [
        ("force", "boolean", False), ("n", "integer", True)]
    item = doc["paths"]["/api/things/{thing_id}"]
    assert (item["get"]["operationId"], item["patch"]["operationId"]) == ("t.one.get", "t.one.patch")
    assert item["get"]["responses"]["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}
    ws = doc["paths"]["/api/things/events"]["get"]
    assert ws["x-websocket"] is True and set(ws["responses"]) == {"101", "4XX"}
    assert ws["security"] == [{"bearerAuth": []}] and ws["x-permission"] == "read_config"
    with pytest.raises(ValueError, match="twice"):
        document(resource.routes + resource.routes)


def _request_bytes(connection: h11.Connection, method: str, target: str, body: bytes = b"",
                   headers: tuple[tuple[str, str], ...] = ()) -> tuple[bytes, bytes]:
    """The head and the body (with its end) of a request, as h11 writes them."""
    fields = [("Host", "test"), *headers] + ([("Content-Length", str(len(body)))] if body else [])
    head = connection.send(h11.Request(method=method, target=target, headers=fields))
    tail = (connection.send(h11.Data(data=body)) if body else b"") + connection.send(h11.EndOfMessage())
    return head, tail


async def _response(stream: trio.SocketStream, connection: h11.Connection) -> tuple[int, bytes]:
    status, body = 0, b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            connection.start_next_cycle()
            return status, body
        else:
            raise AssertionError(f"unexpected {event!r}")


async def test_a_request_refused_before_its_body_arrived_leaves_its_connection_usable(app: Any) -> None:
    """Regression (found by the fuzz run): a 401 sent while the body was still on its way left hypercorn's
    keep-alive connection half-closed, and the next request on it was never answered."""
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, app, config, shutdown_trigger=stop.wait))
        port = int(re.sub(r".*:", "", binds[0]))
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        connection = h11.Connection(h11.CLIENT)
        with trio.fail_after(5):
            for path in ("/api/config", "/api/no-such-route"):  # the guard's 401, the router's 404
                head, tail = _request_bytes(connection, "PUT", path, b"[]", (("Content-Type", "application/json"),))
                await stream.send_all(head)
                await trio.sleep(0.2)  # the headers alone reach the app first
                await stream.send_all(tail)
                status, body = await _response(stream, connection)
                assert status in (401, 404), body
                head, tail = _request_bytes(connection, "GET", "/api/ping")
                await stream.send_all(head + tail)
                assert (await _response(stream, connection))[0] == 200
        await stream.aclose()
        stop.set()
