"""Circuit breakers over the API of a real node (node-spec 2.8, 12.4, 14.3): the runtime flags, ``uncommitted``
reads, ``POST /datasets/{id}`` with ``rollback-circuit-breaker`` / ``commit-circuit-breaker``, refused starts,
and ``sesam_pipe_circuit_breaker_tripped`` in ``/api/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient


def pipe(value: str) -> dict[str, Any]:
    entities = [{"_id": f"e{i}", "v": value if i < 3 else "same"} for i in range(4)]
    return {"_id": "p", "type": "pipe", "pump": {"mode": "manual"},
            "source": {"type": "embedded", "entities": entities},
            "sink": {"type": "dataset", "dataset": "p", "circuit_breaker_threshold_count": 1}}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TokenClient]:
    async with open_node(tmp_path) as node:
        yield TokenClient(create_app(node))


async def call(client: TokenClient, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = await client.open("/api" + path, method=method, **kwargs)
    body = await response.get_data()
    assert response.status_code == status, body
    assert response.content_type == "application/json", body
    return await response.get_json()


async def configure(client: TokenClient, value: str) -> None:
    assert await call(client, "PUT", "/config", json=[pipe(value)]) == {"validation_errors": []}


async def tripped_gauge(client: TokenClient) -> float | None:
    response = await client.get("/api/metrics")
    body = await response.get_data()
    assert response.status_code == 200, body
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "sesam_pipe_circuit_breaker_tripped" and sample.labels.get("pipe") == "p":
                return sample.value
    return None


async def values(client: TokenClient, **params: str) -> dict[str, str]:
    entities = await call(client, "GET", "/datasets/p/entities", query_string={"history": "false", **params})
    return {e["_id"]: e["v"] for e in entities}


async def trip(client: TokenClient, value: str) -> None:
    await configure(client, value)
    runtime = await client.run_pipe("p")
    assert runtime["success"] is False
    assert "circuit breaker of dataset 'p' has tripped" in runtime["last-message"]
    assert "wrote 3 entities, more than the limit of 1" in runtime["last-message"]


async def test_trip_read_uncommitted_rollback_and_commit(client: TokenClient) -> None:
    await configure(client, "a")
    assert (await client.run_pipe("p"))["success"] is True  # the initial load: not armed
    assert await tripped_gauge(client) == 0
    missing = await call(client, "POST", "/datasets/p", 400, form={})
    assert "'operation' is missing" in missing["detail"]
    unknown = await call(client, "POST", "/datasets/p", 400, form={"operation": "reset"})
    assert "unknown operation 'reset'" in unknown["detail"]
    not_tripped = await call(client, "POST", "/datasets/p", 409, form={"operation": "commit-circuit-breaker"})
    assert "has not tripped" in not_tripped["detail"]
    await call(client, "POST", "/datasets/none", 404, form={"operation": "commit-circuit-breaker"})

    await trip(client, "b")
    assert (await call(client, "GET", "/pipes/p"))["runtime"]["circuit-breaker-tripped"] is True
    dataset = (await call(client, "GET", "/datasets/p"))["runtime"]
    assert dataset["circuit-breaker-tripped"] is True
    assert dataset["circuit-breaker"] == {"tripped": True, "limit": 1, "written": 3, "writer": "pipe:p",
                                          "phase": "staging"}
    assert dataset["count-log-total"] == 4
    assert await tripped_gauge(client) == 1
    assert await values(client) == {"e0": "a", "e1": "a", "e2": "a", "e3": "same"}
    assert await values(client, uncommitted="true") == {"e0": "b", "e1": "b", "e2": "b", "e3": "same"}
    history = await call(client, "GET", "/datasets/p/entities", query_string={"uncommitted": "true"})
    assert [(e["_id"], e["_updated"]) for e in history[4:]] == [("e0", 4), ("e1", 5), ("e2", 6)]
    entity = await call(client, "GET", "/datasets/p/entity", query_string={"entity_id": "e0"})
    assert entity["v"] == "a"
    staged = await call(client, "GET", "/datasets/p/entity", query_string={"entity_id": "e0", "uncommitted": "true"})
    assert staged["v"] == "b" and staged["_previous"] == 0
    await call(client, "GET", "/datasets/p/entities", 400, query_string={"uncommitted": "maybe"})
    refused = await call(client, "POST", "/pipes/p/pump", 400, form={"operation": "start"})
    assert "circuit breaker of dataset 'p' has tripped" in refused["detail"]

    rolled = await call(client, "POST", "/datasets/p", form={"operation": "rollback-circuit-breaker"})
    assert rolled["rolled-back"] == 3 and rolled["runtime"]["circuit-breaker-tripped"] is False
    assert (await call(client, "GET", "/pipes/p"))["runtime"]["circuit-breaker-tripped"] is False
    assert await tripped_gauge(client) == 0
    assert await values(client, uncommitted="true") == {"e0": "a", "e1": "a", "e2": "a", "e3": "same"}

    await trip(client, "c")
    committed = await call(client, "POST", "/datasets/p", form={"operation": "commit-circuit-breaker"})
    assert committed["committed"] == 3 and committed["runtime"]["count-log-total"] == 7
    assert await values(client) == {"e0": "c", "e1": "c", "e2": "c", "e3": "same"}
    assert (await client.run_pipe("p"))["success"] is True  # nothing more to change
