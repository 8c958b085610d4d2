"""``GET /api/ready``: public; 200 ``{"ready": true}``, or 503 naming the failing pipes and systems (invalid
config, an actor given up after too many crashes), the damaged datasets, or that the node is stopping."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import storage
from actors.testing import thread_aware_mock_clock
from sesamd import _health
from sesamd._node import Engine, default_engine, open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient


def pipe(pipe_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "pump": {"mode": "manual"},
            "source": {"type": "embedded", "entities": [{"_id": "a"}]}, **extra}


async def ready(node: Any) -> tuple[int, dict[str, Any]]:
    client = TokenClient(create_app(node), role=None)  # no token: a load balancer's probe
    response = await client.get("/api/ready")
    return response.status_code, await response.get_json()


async def test_a_healthy_node_is_ready_without_a_token(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        await node.apply_config([pipe("a"), pipe("b")])
        assert await ready(node) == (200, {"ready": True})
        assert _health.pipe_counts(node).text() == "2 pipes: 2 idle, 0 running, 0 failed"


async def test_invalid_pipes_and_systems_are_named(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        await node.apply_config([
            pipe("good"),
            pipe("bad", source={"type": "no-such-source"}),
            {"_id": "db", "type": "system:sqlite"},  # no database
            {"_id": "web", "type": "system:url", "base_url": "http://127.0.0.1:1/"},
        ], force=True)
        status, body = await ready(node)
    assert status == 503
    assert body == {"ready": False, "stopping": False, "failing-pipes": {"bad": _health.CONFIG_INVALID},
                    "failing-systems": {"db": _health.CONFIG_INVALID}, "damaged-datasets": {}}


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return thread_aware_mock_clock()  # the supervisor's back-off takes no real time


def crashing_engine(crashing: str) -> Engine:
    """The real engine, but the actor of pipe ``crashing`` crashes each time it starts."""
    engine = default_engine()
    make_actor = engine.make_actor

    async def crash(mailbox: Any) -> None:
        raise RuntimeError("the pump's state cannot be read")

    def make(pipe_id: str, runner: Any, node: Any) -> Any:
        actor = make_actor(pipe_id, runner, node)
        if pipe_id == crashing:
            actor.run = crash
        return actor

    return dataclasses.replace(engine, make_actor=make)


async def test_a_pipe_whose_actor_was_given_up_is_failing(tmp_path: Path, clock: trio.testing.MockClock) -> None:
    async with open_node(tmp_path, crashing_engine("crashing")) as node:
        await node.apply_config([pipe("fine"), pipe("crashing")])
        with trio.fail_after(3600):
            while node.actor_status("crashing").state != "failed":
                await trio.sleep(1)
        status, body = await ready(node)
        assert status == 503 and body["failing-pipes"] == {"crashing": _health.GIVEN_UP}
        assert _health.pipe_counts(node).text() == "2 pipes: 1 idle, 0 running, 1 failed"


async def test_a_damaged_dataset_is_named(tmp_path: Path) -> None:
    with storage.DataDir(tmp_path).open_dataset("people") as dataset:
        dataset.write([{"_id": "a"}])
    for manifest in (tmp_path / "datasets" / "people").glob("MANIFEST-*"):
        manifest.unlink()  # what a lost file does to LevelDB
    async with open_node(tmp_path) as node:
        with pytest.raises(storage.DatasetDamaged):
            await trio.to_thread.run_sync(node.datasets.open, "people")
        status, body = await ready(node)
    assert status == 503 and list(body["damaged-datasets"]) == ["people"]
    assert body["failing-pipes"] == {} and body["failing-systems"] == {}


async def test_a_stopping_node_is_not_ready(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        await node.stop_runs(1.0)
        status, body = await ready(node)
    assert status == 503 and body["stopping"] is True


def test_pipe_counts_text() -> None:
    assert _health.PipeCounts(idle=1).text() == "1 pipe: 1 idle, 0 running, 0 failed"
    assert _health.PipeCounts(10, 2, 0).text() == "12 pipes: 10 idle, 2 running, 0 failed"
    assert _health.PipeCounts(1, 0, 1, restarting=1, last_run_failed=2).text() == \
        "3 pipes: 1 idle, 0 running, 1 failed, 1 restarting; 2 last runs failed"
