"""The ``json`` sink through the node: JSON Push to a receiver the test starts, which records every request's
parameters and body: a full run as one sequence (``is_first`` ... ``is_last``), incremental runs with
changes and deletes, retried 503s, and a 409 failing the run without moving the offset."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from actors.testing import WebRequest, WebServer
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

PEOPLE = [{"_id": str(i), "name": f"person {i}"} for i in range(1, 6)]


PATH = "/api/receivers/people/entities"


@pytest.fixture
def receiver() -> Iterator[WebServer]:
    """A web server answering 200 ``{}`` to every push (see :func:`answer`), recording each request."""
    with WebServer() as web:
        web.route(PATH, b"{}")
        yield web


def answer(web: WebServer, *statuses: int) -> None:
    """Answer the next pushes with ``statuses`` in turn, then 200 for good."""
    web.route(PATH, *statuses, b"{}")


def entity_ids(requests: list[WebRequest]) -> list[str]:
    return [e["_id"] for r in requests for e in r.json()]


def config(port: int, people: list[dict[str, Any]], **pump: Any) -> list[dict[str, Any]]:
    return [
        {"_id": "receiver", "type": "system:url", "url_pattern": f"http://127.0.0.1:{port}/api/receivers/%s"},
        {"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": people},
         "pump": {"mode": "manual"}},
        {"_id": "push", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
         "sink": {"type": "json", "system": "receiver", "url": "people/entities", "batch_size": 2},
         "pump": {"mode": "manual", **pump}},
    ]


@pytest.fixture
async def node(tmp_path: Any) -> AsyncIterator[Any]:
    async with open_node(tmp_path / "node") as node:
        yield node


async def apply(node: Any, entities: list[dict[str, Any]]) -> TokenClient:
    assert await node.apply_config(entities) == []
    actor = node.systems.actor("receiver")
    assert actor is not None
    with trio.fail_after(5):
        await actor.wait_open()
    return TokenClient(create_app(node))


async def test_a_full_run_is_one_sequence_then_incremental_runs_push_changes(node: Any, receiver: WebServer) -> None:
    client = await apply(node, config(receiver.port, PEOPLE))
    await client.run_pipe("people")
    assert (await client.run_pipe("push"))["success"] is True
    requests = list(receiver.requests)
    assert [(r.method, r.path) for r in requests] == [("POST", PATH)] * 4
    assert {r.headers["content-type"] for r in requests} == {"application/json"}
    params = [r.query for r in requests]
    sequence = params[0]["sequence_id"]
    assert all(p["sequence_id"] == sequence and p["is_full"] == "true" for p in params)
    assert [p["request_id"] for p in params] == ["1", "2", "3", "4"]
    assert [p.get("previous_request_id") for p in params] == [None, "1", "2", "3"]
    assert [p.get("is_first") for p in params] == ["true", None, None, None]
    assert [p.get("is_last") for p in params] == [None, None, None, "true"]
    pushed = [e for r in requests for e in r.json()]
    assert [(e["_id"], e["name"]) for e in pushed] == [(p["_id"], p["name"]) for p in PEOPLE]
    assert requests[-1].json() == []  # the sequence ends with an empty request carrying is_last

    since = len(receiver.requests)
    changed = [{**PEOPLE[0], "name": "renamed"}, *PEOPLE[1:4]]  # 1 renamed, 5 gone
    client = await apply(node, config(receiver.port, changed))
    await client.run_pipe("people")
    assert (await client.run_pipe("push"))["success"] is True
    params = [r.query for r in receiver.requests[since:]]
    assert params and all(p["is_full"] == "false" and "is_first" not in p and "is_last" not in p for p in params)
    assert len({p["sequence_id"] for p in params}) == 1 and params[0]["sequence_id"] != sequence
    pushed = {e["_id"]: e for r in receiver.requests[since:] for e in r.json()}
    assert set(pushed) == {"1", "5"}
    assert pushed["1"]["name"] == "renamed" and pushed["5"]["_deleted"] is True


async def test_transient_failures_are_retried_and_a_conflict_fails_the_run(node: Any, receiver: WebServer) -> None:
    client = await apply(node, config(receiver.port, PEOPLE, batch_retries=2, write_retry_delay=0))
    await client.run_pipe("people")
    answer(receiver, 503, 503)  # the first request twice: then it goes through
    assert (await client.run_pipe("push"))["success"] is True
    first, *retried = receiver.requests[:3]
    assert all((r.query, r.body) == (first.query, first.body) for r in retried)  # the same request sent again
    assert entity_ids(receiver.requests[2:]) == [p["_id"] for p in PEOPLE]  # each entity delivered once

    since = len(receiver.requests)
    client = await apply(node, config(receiver.port, [*PEOPLE, {"_id": "6", "name": "six"}],
                                      batch_retries=2, write_retry_delay=0))
    await client.run_pipe("people")
    answer(receiver, 409)
    runtime = await client.run_pipe("push")
    assert runtime["success"] is False
    assert "answered 409" in runtime["last-original-error-message"]
    assert len(receiver.requests) == since + 1  # a conflict is not retried
    # the offset did not move past what was not delivered: the next run sends entity 6
    assert (await client.run_pipe("push"))["success"] is True
    assert entity_ids(receiver.requests[since + 1:]) == ["6"]
