"""The ``json`` source through the node (and once through a real ``sesamd serve``): the getting-started guide's
pull configuration (two ``system:url``
systems with ``base_url``, ``json`` sources, customers-with-orders without ``["copy", "_id"]``) against a web
server the test starts, then an added order reaching Maria by dependency tracking; and the failures of a
source (an error answer, malformed JSON, a refused connection) failing the run without touching the data."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.testing import WebServer
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient, serve_process

CUSTOMERS = [
    {"_id": "1", "first_name": "John", "last_name": "Smith", "age": 42},
    {"_id": "2", "first_name": "Maria", "last_name": "Hawkins", "age": 32},
    {"_id": "3", "first_name": "Pam", "last_name": "Curie", "age": 21},
]
ORDERS = [
    {"_id": "1000", "customer_id": "1", "discount": 4.20, "items": [{"ean": "a", "price": 22.10, "quantity": 2}]},
    {"_id": "1001", "customer_id": "1", "items": [{"ean": "b", "price": 73.50, "quantity": 1},
                                                  {"ean": "c", "price": 10.40, "quantity": 1}]},
    {"_id": "1002", "customer_id": "2", "items": [{"ean": "d", "price": 39.95, "quantity": 1}]},
]
NEW_ORDER = {"_id": "1003", "customer_id": "2", "items": [{"ean": "e", "price": 19.95, "quantity": 1}]}


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


def requested(web: WebServer) -> list[tuple[str, dict[str, str]]]:
    """The path and query of each request the web server got, in order."""
    return [(r.path, r.query) for r in web.requests]


def guide_config(port: int) -> list[dict[str, Any]]:
    """The guide's sesam-seed configuration, with YOUR-IP-HERE:8000 replaced."""
    base = f"http://127.0.0.1:{port}"
    return [
        {"_id": "customer-system", "type": "system:url", "base_url": f"{base}/customers/"},
        {"_id": "customers", "type": "pipe",
         "source": {"type": "json", "system": "customer-system", "url": "customers.json"}},
        {"_id": "order-system", "type": "system:url", "base_url": f"{base}/orders/"},
        {"_id": "orders", "type": "pipe",
         "source": {"type": "json", "system": "order-system", "url": "orders.json"}},
        {"_id": "customers-with-orders", "type": "pipe",
         "source": {"type": "dataset", "dataset": "customers"},
         "transform": {"type": "dtl", "rules": {
             "default": [
                 ["add", "type", "customer"],
                 ["add", "name", ["concat", ["list", "_S.first_name", " ", "_S.last_name"]]],
                 ["add", "orders", ["apply", "order", ["hops", {
                     "datasets": ["orders o"], "where": [["eq", "_S._id", "o.customer_id"]]}]]],
                 ["add", "order_count", ["count", "_T.orders"]],
                 ["add", "total", ["sum", ["map", "_.total", "_T.orders"]]],
                 ["filter", ["gt", "_T.total", 25.00]],
             ],
             "order": [
                 ["copy", "items"],
                 ["copy", "discount"],
                 ["add", "total", ["minus", ["coalesce", ["list", "_S.discount", 0]],
                                   ["sum", ["map", ["multiply", "_.quantity", "_.price"], "_S.items"]]]],
             ],
         }}},
    ]


class Api:
    def __init__(self, client: TokenClient) -> None:
        self.client = client

    async def entities(self, dataset: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/datasets/{dataset}/entities", query_string={"deleted": "false"})
        if missing_ok and response.status_code == 404:
            return []
        assert response.status_code == 200, await response.get_data()
        return [e for e in json.loads(await response.get_data()) if not e.get("_deleted")]

    async def run(self, pipe_id: str) -> dict[str, Any]:
        return await self.client.run_pipe(pipe_id)

    async def last_run(self, pipe_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/pipes/{pipe_id}/pump")
        return (await response.get_json())["runtime"]  # type: ignore[no-any-return]


@pytest.fixture
async def node_api(tmp_path: Any, web: WebServer) -> AsyncIterator[tuple[Any, Api]]:
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(guide_config(web.port)) == []
        with trio.fail_after(5):
            for system_id in ("customer-system", "order-system"):
                actor = node.systems.actor(system_id)
                assert actor is not None
                await actor.wait_open()
        yield node, Api(TokenClient(create_app(node)))


def serve(web: WebServer, customers: Any = CUSTOMERS, orders: Any = ORDERS) -> None:
    """Serve the two files (a list: as JSON; bytes as they are; an int: answer that status)."""
    for path, answer in (("/customers/customers.json", customers), ("/orders/orders.json", orders)):
        web.route(path, answer if isinstance(answer, (bytes, int)) else json.dumps(answer, indent=1).encode())


def summary(entities: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["_id"]: (e["name"], e["order_count"], Decimal(e["total"].removeprefix("~f"))) for e in entities}


async def test_the_guide_pulls_and_tracks_a_new_order(node_api: tuple[Any, Api], web: WebServer) -> None:
    _node, api = node_api
    serve(web)
    for pipe_id in ("customers", "orders", "customers-with-orders"):
        await api.run(pipe_id)
    customers = await api.entities("customers")
    assert [c["_id"] for c in customers] == ["1", "2", "3"]
    orders = {o["_id"]: o for o in await api.entities("orders")}
    assert orders["1000"]["discount"] == "~f4.2"  # JSON decimals as transit decimals, with the digits sent
    assert summary(await api.entities("customers-with-orders")) == {
        "1": ("John Smith", 2, Decimal("123.90")), "2": ("Maria Hawkins", 1, Decimal("39.95"))}
    assert ("/customers/customers.json", {}) in requested(web) and ("/orders/orders.json", {}) in requested(web)

    serve(web, orders=[*ORDERS, NEW_ORDER])
    await api.run("orders")
    await api.run("customers-with-orders")
    result = summary(await api.entities("customers-with-orders"))
    assert result["2"] == ("Maria Hawkins", 2, Decimal("59.90"))
    assert result["1"] == ("John Smith", 2, Decimal("123.90"))


@pytest.mark.parametrize("answer", [500, 404, b'[{"_id": "1", "first_name": "Jo"}, {"_id": ', b'{"not": "a list"'],
                         ids=["500", "404", "cut-off", "malformed"])
async def test_a_failing_source_fails_the_run_and_keeps_the_data(node_api: tuple[Any, Api], web: WebServer,
                                                                 answer: Any) -> None:
    _node, api = node_api
    serve(web)
    await api.run("customers")
    assert len(await api.entities("customers")) == 3
    serve(web, customers=answer)
    runtime = await api.run("customers")
    assert runtime["success"] is False
    message = runtime["last-original-error-message"]
    assert message.startswith("reading the source failed: GET http://127.0.0.1:") and "customers.json" in message
    assert ("answered" if isinstance(answer, int) else "not a JSON array") in message
    assert [c["_id"] for c in await api.entities("customers")] == ["1", "2", "3"]  # nothing deleted or changed


async def test_a_refused_connection_fails_the_run(tmp_path: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(guide_config(port)[:2]) == []
        actor = node.systems.actor("customer-system")
        assert actor is not None
        await actor.wait_open()
        runtime = await TokenClient(create_app(node)).run_pipe("customers")
    assert runtime["success"] is False
    assert "the connection failed" in runtime["last-original-error-message"]


@pytest.mark.parametrize(("system", "pump", "failures"), [
    ({}, {"max_read_retries": 2, "read_retry_delay": 0, "mode": "manual"}, 1),  # the pump's read retries
    ({"retry_strategy": {"503": {"max_read_retries": 2, "read_retry_delay": 0}}},
     {"mode": "manual"}, 2),  # no retry settings on the pump: the system's strategy gives them
], ids=["pump-read-retries", "system-retry-strategy"])
async def test_read_retries_ride_out_a_passing_failure(tmp_path: Any, web: WebServer, system: dict[str, Any],
                                                       pump: dict[str, Any], failures: int) -> None:
    config = guide_config(web.port)[:2]
    config[0].update(system)
    config[1]["pump"] = pump  # manual: only this test's run
    web.route("/customers/customers.json", *[503] * failures, json.dumps(CUSTOMERS).encode())  # then the data
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(config) == []
        actor = node.systems.actor("customer-system")
        assert actor is not None
        await actor.wait_open()
        api = Api(TokenClient(create_app(node)))
        runtime = await api.run("customers")
        assert runtime["success"] is True, runtime
        assert [c["_id"] for c in await api.entities("customers")] == ["1", "2", "3"]
    assert requested(web) == [("/customers/customers.json", {})] * (failures + 1)


async def test_the_scheduled_pumps_fill_the_guide_without_a_manual_run(node_api: tuple[Any, Api],
                                                                        web: WebServer) -> None:
    _node, api = node_api
    serve(web)
    with trio.fail_after(20):
        while len(await api.entities("customers-with-orders", missing_ok=True)) < 2:
            await trio.sleep(0.05)
    assert summary(await api.entities("customers-with-orders"))["2"] == ("Maria Hawkins", 1, Decimal("39.95"))


def wait_for(client: httpx.Client, dataset: str, check: Any, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/datasets/{dataset}/entities", params={"history": "false", "deleted": "false"})
        entities = response.json() if response.status_code == 200 else []
        if response.status_code == 200 and check(entities):
            return entities  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{dataset}: {response.status_code} {response.text[:500]}"
        time.sleep(0.1)


def test_the_guide_pulls_by_itself_and_follows_a_new_order(tmp_path: Path, web: WebServer) -> None:
    serve(web)
    with serve_process(tmp_path / "data") as daemon, \
            httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
        response = client.put("/config", content=json.dumps(guide_config(web.port)),
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        first = wait_for(client, "customers-with-orders", lambda found: len(found) == 2)
        assert summary(first) == {"1": ("John Smith", 2, Decimal("123.90")),
                                  "2": ("Maria Hawkins", 1, Decimal("39.95"))}

        serve(web, orders=[*ORDERS, NEW_ORDER])
        response = client.post("/pipes/orders/pump", data={"operation": "start"})
        assert response.status_code in (200, 409), response.text
        updated = wait_for(client, "customers-with-orders",
                           lambda found: summary(found).get("2", (None, 0))[1] == 2)
        assert summary(updated)["2"] == ("Maria Hawkins", 2, Decimal("59.90"))
        assert daemon.terminate() == 0
