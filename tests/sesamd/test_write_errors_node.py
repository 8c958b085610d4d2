"""Write errors through the node and its API (node-spec 5.5, 5.7): a ``json`` sink whose receiver refuses one
entity, with the pump tolerating write errors; what the execution log, the pump-completed event, the
dead-letter dataset and the ``discard-retries`` operation then show."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from actors.testing import Answer, WebRequest, WebServer
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

PEOPLE = [{"_id": str(i), "name": f"person {i}"} for i in range(1, 6)]
LOG = "/api/datasets/system:pump_execution:push/entities"


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


@pytest.fixture
async def node(tmp_path: Any) -> AsyncIterator[Any]:
    async with open_node(tmp_path / "node") as node:
        yield node


def receiver(refused: set[str], delivered: list[str]) -> Any:
    def answer(request: WebRequest) -> Answer:
        ids = [e["_id"] for e in request.json()]
        if refused & set(ids):
            return Answer.json({"error": "refused"}, status=422)
        delivered.extend(ids)
        return Answer.json({})
    return answer


async def configure(node: Any, web: WebServer, **pump: Any) -> TokenClient:
    config = [
        {"_id": "target", "type": "system:url", "base_url": web.url("/")},
        {"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": PEOPLE},
         "pump": {"mode": "manual"}},
        {"_id": "push", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
         "sink": {"type": "json", "system": "target", "url": "receive"},
         "pump": {"mode": "manual", "batch_retries": 0, "max_consecutive_write_errors": 3, **pump}},
    ]
    assert await node.apply_config(config) == []
    actor = node.systems.actor("target")
    assert actor is not None
    with trio.fail_after(5):
        await actor.wait_open()
    client = TokenClient(create_app(node))
    await client.run_pipe("people")
    return client


async def log_entities(client: TokenClient) -> dict[str, dict[str, Any]]:
    response = await client.get(LOG, query_string={"history": "false"})
    assert response.status_code == 200
    return {e["_id"]: e for e in await response.get_json()}


async def test_a_refused_entity_is_retried_then_discarded_through_the_api(node: Any, web: WebServer) -> None:
    refused, delivered = {"3"}, []
    web.route("/receive", receiver(refused, delivered))
    client = await configure(node, web, max_write_errors_in_retry_dataset=10)
    events: list[dict[str, Any]] = []
    node.events.add_listener(events.append)
    runtime = await client.run_pipe("push")
    assert runtime["success"] is True and delivered == ["1", "2", "4", "5"]
    log = await log_entities(client)
    error = log["write-error:3"]
    assert (error["retryable"], error["dead"], error["error_code"], error["retry_attempts"]) == (True, False, 1, 0)
    [event] = [e for e in events if e["type"] == "pump-completed" and e["pipe"] == "push"]
    assert event["write_errors"] == {"failed": 1, "dead": 0, "retried": 0} and event["entities_failed"] == 1
    completed = log["pump-completed"]
    assert (completed["entities_failed"], completed["retry_entities_exist"]) == (1, True)
    assert completed["metrics"]["entities.write_errors_last_run"] == 1

    await client.run_pipe("push")  # the retry pass sends 3 again, alone; still refused
    assert [r.json() for r in web.of("/receive")][-1][0]["_id"] == "3"
    assert (await log_entities(client))["write-error:3"]["retry_attempts"] == 1

    response = await client.post("/api/pipes/push/pump", form={"operation": "discard-retries"})
    assert response.status_code == 200
    assert "discard-retries" in (await response.get_json())["runtime"]["supported-operations"]
    sent = len(web.of("/receive"))
    await client.run_pipe("push")
    assert len(web.of("/receive")) == sent  # nothing pending: nothing sent
    log = await log_entities(client)
    assert log["write-error:3"]["retryable"] is False and log["write-error:3"]["dead"] is False
    assert log["pump-discard-retries"]["discarded"] == 1


async def test_with_retries_off_the_refused_entity_is_a_dead_letter_readable_over_the_api(
        node: Any, web: WebServer) -> None:
    refused, delivered = {"2"}, []
    web.route("/receive", receiver(refused, delivered))
    client = await configure(node, web, dead_letter_dataset="push-dead")
    assert (await client.get("/api/datasets/push-dead")).status_code == 200  # asserted when the pipe loaded
    runtime = await client.run_pipe("push")
    assert runtime["success"] is True and delivered == ["1", "3", "4", "5"]
    response = await client.get("/api/datasets/push-dead/entities")
    assert response.status_code == 200
    [letter] = await response.get_json()
    assert letter["_id"] == "2" and letter["dead"] is True and letter["entity"]["name"] == "person 2"
    assert "422" in letter["original_error_message"]


async def test_a_failing_run_says_which_entity_and_leaves_it_in_the_log(node: Any, web: WebServer) -> None:
    refused, delivered = {"1", "2", "3"}, []
    web.route("/receive", receiver(refused, delivered))
    client = await configure(node, web)
    runtime = await client.run_pipe("push")
    assert runtime["success"] is False
    assert "writing entity '3' failed" in runtime["last-original-error-message"]
    assert "3 write errors in a row" in runtime["last-original-error-message"]
    log = await log_entities(client)
    assert {"write-error:1", "write-error:2", "write-error:3"} <= set(log)
    assert log["pump-failed"]["exception_entity"]["_id"] == "3"
