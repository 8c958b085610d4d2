"""Receivers through the node's API: the getting-started guide's push configuration (``http_endpoint``
sources), and the JSON Push sequence protocol: a full sync deleting what it did not see, a broken sequence
(409), a retried request, incremental pushes, bad input (400, nothing written), and pipes that are not
receivers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

GUIDE_CUSTOMERS = b"""[
    {"_id": "1", "first_name": "John", "last_name": "Smith", "age": 42},
    {"_id": "2", "first_name": "Maria", "last_name": "Hawkins", "age": 32},
    {"_id": "3", "first_name": "Pam", "last_name": "Curie", "age": 21}
]"""
GUIDE_ORDERS = b"""[
    {"_id": "1000", "customer_id": "1", "discount": 4.20, "items": [{"ean": "a", "price": 22.10, "quantity": 2}]},
    {"_id": "1001", "customer_id": "1", "items": [{"ean": "b", "price": 73.50, "quantity": 1},
                                                 {"ean": "c", "price": 10.40, "quantity": 1}]},
    {"_id": "1002", "customer_id": "2", "items": [{"ean": "d", "price": 39.95, "quantity": 1}]}
]"""
CUSTOMERS_WITH_ORDERS = {
    "_id": "customers-with-orders", "type": "pipe", "source": {"type": "dataset", "dataset": "customers"},
    "transform": {"type": "dtl", "rules": {
        "default": [
            ["add", "type", "customer"],
            ["add", "name", ["concat", ["list", "_S.first_name", " ", "_S.last_name"]]],
            ["add", "orders", ["apply", "order", ["hops", {"datasets": ["orders o"],
                                                           "where": [["eq", "_S._id", "o.customer_id"]]}]]],
            ["add", "order_count", ["count", "_T.orders"]],
            ["add", "total", ["sum", ["map", "_.total", "_T.orders"]]],
            ["filter", ["gt", "_T.total", 25.00]],
        ],
        "order": [
            ["copy", "items"], ["copy", "discount"],
            ["add", "total", ["minus", ["coalesce", ["list", "_S.discount", 0]],
                              ["sum", ["map", ["multiply", "_.quantity", "_.price"], "_S.items"]]]],
        ],
    }},
}
GUIDE_PUSH = [{"_id": "customers", "type": "pipe", "source": {"type": "http_endpoint"}},
              {"_id": "orders", "type": "pipe", "source": {"type": "http_endpoint"}},
              CUSTOMERS_WITH_ORDERS]


class Api:
    def __init__(self, client: TokenClient) -> None:
        self.client = client

    async def push(self, pipe_id: str, body: bytes | list[Any], status: int = 200, **params: Any) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}
        response = await self.client.post(f"/api/receivers/{pipe_id}/entities", data=data, query_string=query,
                                          headers={"Content-Type": "application/json"})
        text = await response.get_data()
        assert response.status_code == status, text
        return json.loads(text)

    async def live(self, dataset: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get(f"/api/datasets/{dataset}/entities",
                                         query_string={"history": "false", "deleted": "false"})
        if response.status_code == 404:
            return {}
        assert response.status_code == 200, await response.get_data()
        return {e["_id"]: e for e in json.loads(await response.get_data())}

    async def versions(self, dataset: str) -> int:
        response = await self.client.get(f"/api/datasets/{dataset}/entities")
        return len(json.loads(await response.get_data()))


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(GUIDE_PUSH) == []
        yield Api(TokenClient(create_app(node)))


def totals(entities: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {i: (e["order_count"], Decimal(e["total"].removeprefix("~f"))) for i, e in entities.items()}


async def test_the_guide_pushed(api: Api) -> None:
    assert await api.push("customers", GUIDE_CUSTOMERS) == {}
    assert await api.push("orders", GUIDE_ORDERS) == {}
    assert sorted(await api.live("customers")) == ["1", "2", "3"]
    await api.client.run_pipe("customers-with-orders")
    assert totals(await api.live("customers-with-orders")) == {"1": (2, Decimal("123.90")),
                                                               "2": (1, Decimal("39.95"))}
    order = {"_id": "1003", "customer_id": "2", "items": [{"ean": "e", "price": "~f19.95", "quantity": 1}]}
    await api.push("orders", order)  # one entity, not an array
    await api.client.run_pipe("customers-with-orders")
    assert totals(await api.live("customers-with-orders"))["2"] == (2, Decimal("59.90"))


def people(*ids: int) -> list[dict[str, Any]]:
    return [{"_id": str(i), "name": f"person {i}"} for i in ids]


async def test_a_full_sync_deletes_what_it_did_not_see(api: Api) -> None:
    await api.push("customers", people(1, 2, 3, 4))  # incremental: just written
    sequence = {"sequence_id": "s1", "is_full": True}
    await api.push("customers", people(1, 2), request_id=1, is_first=True, **sequence)
    assert sorted(await api.live("customers")) == ["1", "2", "3", "4"]  # nothing deleted before is_last
    await api.push("customers", people(5), request_id=2, previous_request_id=1, **sequence)
    await api.push("customers", [], request_id=3, previous_request_id=2, is_last=True, **sequence)
    assert sorted(await api.live("customers")) == ["1", "2", "5"]
    # a retry of the last request changes nothing (it does not start a sequence that deletes the rest)
    await api.push("customers", [], request_id=3, previous_request_id=2, is_last=True, **sequence)
    assert sorted(await api.live("customers")) == ["1", "2", "5"]
    # a new sequence replaces the old one
    await api.push("customers", people(5), request_id=1, is_first=True, is_last=True, sequence_id="s2",
                   is_full=True)
    assert sorted(await api.live("customers")) == ["5"]


async def test_a_broken_sequence_is_a_conflict_and_a_retried_request_is_not(api: Api) -> None:
    sequence = {"sequence_id": "s1", "is_full": True}
    await api.push("customers", people(1, 2), request_id=1, is_first=True, **sequence)
    before = await api.versions("customers")
    await api.push("customers", people(1, 2), request_id=1, is_first=True, **sequence)  # the same again
    assert await api.versions("customers") == before  # unchanged entities add no versions
    error = await api.push("customers", people(3), 409, request_id=3, previous_request_id=2, **sequence)
    assert "previous_request_id '2'" in error["detail"] and "('1')" in error["detail"]
    await api.push("customers", people(3), 409, request_id=2, previous_request_id=1, is_first=True, **sequence)
    await api.push("customers", people(3), 409, sequence_id="s1", is_full=False)  # is_full changed
    assert sorted(await api.live("customers")) == ["1", "2"]  # the conflicts wrote nothing
    await api.push("customers", people(3), request_id=2, previous_request_id=1, is_last=True, **sequence)
    assert sorted(await api.live("customers")) == ["1", "2", "3"]


async def test_bad_input_writes_nothing_and_only_receivers_receive(api: Api) -> None:
    await api.push("customers", people(1))
    error = await api.push("customers", b'[{"_id": "2"}, {"name": "no id"}]', 400)
    assert error["entity"] == 2 and "nothing was written" in error["detail"]
    error = await api.push("customers", b'[{"_id": "2"}, ', 400)
    assert error["valid_entities"] == 1
    await api.push("customers", people(2), 400, is_full="maybe")
    assert sorted(await api.live("customers")) == ["1"]
    error = await api.push("customers-with-orders", people(1), 404)
    assert "does not receive entities" in error["detail"]
    await api.push("nope", people(1), 404)
    response = await api.client.get("/api/pipes/customers/pump")
    pump = await response.get_json()
    assert pump["runtime"]["next-run"] is None  # a receiver has no scheduled runs
