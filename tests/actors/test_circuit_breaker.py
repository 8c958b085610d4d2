"""Circuit breakers through the pipe engine and the real pump (node-spec 2.8): a run that changes more of its
populated sink than allowed fails and leaves its writes uncommitted; downstream pipes don't see them, the
pipe is refused runs until a rollback or a commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

import storage
from actors import Datasets, DatasetWrite, EventBus, Supervisor, build_runner, run_pipeline
from actors._pump import PipeActor, PipeRef, PumpOperationError, start_pipe


class Node:
    """A node store, datasets and an event bus around real pumps."""

    def __init__(self, root: Path, supervisor: Supervisor) -> None:
        self.store = storage.NodeStore(root / "node")
        self.datasets = Datasets(root / "data")
        self.bus = EventBus()
        self.supervisor = supervisor

    def pump(self, config: dict[str, Any], *, scheduled: bool = False) -> PipeRef:
        actor = PipeActor(build_runner(config, self.datasets), store=self.store, datasets=self.datasets, bus=self.bus,
                          driver=run_pipeline, scheduler_enabled=scheduled)
        return start_pipe(self.supervisor, f"pipe:{config['_id']}:{id(actor)}", actor)

    def write(self, name: str, entities: list[dict[str, Any]], populated: bool | None = None) -> None:
        with self.datasets.writing(name) as dataset:
            dataset.write(entities, populated=populated)

    def latest(self, name: str) -> dict[str, Any]:
        return {e["_id"]: e.get("v") for e in self.datasets.open(name).iter_entities(history=False)
                if not e["_deleted"]}

    def log(self, pipe: str) -> list[dict[str, Any]]:
        return list(self.datasets.open(f"system:pump_execution:{pipe}").iter_entities())


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with Supervisor() as supervisor:
        result = Node(tmp_path, supervisor)
        yield result
    result.datasets.close_all()
    result.store.close()


def _source(n: int, value: str = "a") -> list[dict[str, Any]]:
    return [{"_id": f"e{i}", "v": value} for i in range(n)]


PIPE = {"_id": "p", "type": "pipe", "batch_size": 2, "pump": {"mode": "manual"},
        "source": {"type": "dataset", "dataset": "in"},
        "sink": {"type": "dataset", "dataset": "out", "circuit_breaker_threshold_count": 3}}
DOWNSTREAM = {"_id": "d", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "out"},
              "sink": {"type": "dataset", "dataset": "down"}}


async def _loaded(node: Node) -> tuple[PipeRef, PipeRef]:
    node.write("in", _source(10), populated=True)
    pipe, downstream = node.pump(PIPE), node.pump(DOWNSTREAM)
    first = await pipe.run_once()
    assert first["type"] == "pump-completed" and first["changes"] == 10  # the initial load cannot trip
    assert node.datasets.open("out").populated
    assert (await downstream.run_once())["changes"] == 10
    return pipe, downstream


async def _trip(node: Node, pipe: PipeRef) -> dict[str, Any]:
    node.write("in", [{"_id": f"e{i}", "v": "b"} for i in range(5)])
    failed = await pipe.run_once()
    assert failed["type"] == "pump-failed"
    assert "circuit breaker of dataset 'out' has tripped" in failed["reason_why_stopped"]
    assert "wrote 4 entities, more than the limit of 3" in failed["reason_why_stopped"]  # batches of 2
    return failed


async def test_a_run_over_the_limit_trips_and_a_rollback_lets_a_fixed_source_run(node: Node) -> None:
    pipe, downstream = await _loaded(node)
    await _trip(node, pipe)
    logged = [e for e in node.log("p") if e["_id"] == "pump-failed"]
    assert "'out' has tripped" in logged[-1]["reason_why_stopped"]
    assert pipe.status.last_message.startswith("Pump failed: ")
    out = node.datasets.open("out")
    assert out.breaker_tripped and node.latest("out") == {f"e{i}": "a" for i in range(10)}
    assert [storage.loads(b)["v"] for _s, b in out.iter_uncommitted(since=9)] == ["b"] * 4
    assert out.get_offset("pipe:p")["offset"] == 9  # not past what was committed

    assert (await downstream.run_once())["changes"] == 0  # downstream sees nothing of it
    assert node.latest("down") == {f"e{i}": "a" for i in range(10)}
    with pytest.raises(PumpOperationError, match="cannot run: the circuit breaker of dataset 'out' has tripped"):
        await pipe.run_once()
    with pytest.raises(PumpOperationError, match="circuit breaker"):
        await pipe.operate("start")

    assert node.datasets.apply(DatasetWrite("out", storage.Dataset.rollback_staged)) == 4
    node.write("in", _source(5))  # the source fixed: the old values again (new offsets)
    rerun = await pipe.run_once()
    assert rerun["type"] == "pump-completed" and rerun["processed"] == 5 and rerun["changes"] == 0
    assert out.breaker is None and out.get_offset("pipe:p")["offset"] == 19
    assert node.latest("out") == {f"e{i}": "a" for i in range(10)}


async def test_commit_exposes_the_writes_and_moves_the_offset(node: Node) -> None:
    pipe, downstream = await _loaded(node)
    await _trip(node, pipe)
    out = node.datasets.open("out")
    assert node.datasets.apply(DatasetWrite("out", storage.Dataset.commit_staged)) == 4
    assert out.breaker is None
    assert node.latest("out") == {**{f"e{i}": "a" for i in range(10)}, **{f"e{i}": "b" for i in range(4)}}
    assert out.get("e0")["_previous"] == 0
    assert out.get_offset("pipe:p")["offset"] == 13  # the batch that tripped
    assert (await downstream.run_once())["changes"] == 4
    again = await pipe.run_once()  # the rest of the source: one change, within the limit
    assert again["type"] == "pump-completed" and again["processed"] == 1 and again["changes"] == 1
    assert out.get_offset("pipe:p")["offset"] == 14


async def test_a_tripped_pipe_is_not_run_by_its_schedule_until_rolled_back(node: Node) -> None:
    node.write("in", _source(10), populated=True)
    scheduled = {**PIPE, "pump": {"schedule_interval": 0.2}}
    pipe = node.pump(scheduled, scheduled=True)
    with trio.fail_after(30):
        while not node.datasets.exists("out") or not node.datasets.open("out").populated:
            await trio.sleep(0.05)  # the schedule makes the initial load
        await pipe.wait_idle()
    node.write("in", [{"_id": f"e{i}", "v": "b"} for i in range(5)])
    with trio.fail_after(30):
        while not node.datasets.open("out").breaker_tripped:
            await trio.sleep(0.05)  # a scheduled run trips it
        await pipe.wait_idle()
    logged = len(node.log("p"))
    await trio.sleep(1.0)  # five schedule intervals: nothing runs, nothing fails
    assert len(node.log("p")) == logged
    assert pipe.status.running is False

    assert node.datasets.apply(DatasetWrite("out", storage.Dataset.rollback_staged)) == 4
    node.write("in", _source(5))  # the source fixed
    with trio.fail_after(30):  # the schedule runs it again
        while node.datasets.open("out").get_offset("pipe:p")["offset"] != 19:
            await trio.sleep(0.05)
    assert node.latest("out") == {f"e{i}": "a" for i in range(10)}


def test_deletion_tracking_deletes_count_against_the_limit(datasets: Datasets) -> None:
    def pipe(entities: list[dict[str, Any]]) -> Any:
        return build_runner({"_id": "p", "type": "pipe", "source": {"type": "embedded", "entities": entities},
                             "sink": {"circuit_breaker_threshold_factor": 0.2}}, datasets)

    assert pipe(_source(10)).run().changes == 10
    assert pipe(_source(8)).run().deleted == 2  # 2 deletes: not over 0.2 x 10
    with pytest.raises(storage.CircuitBreakerTripped, match="wrote 3 entities, more than the limit of 2"):
        pipe(_source(5)).run()  # 3 deletes: over 0.2 x 10
    dataset = datasets.open("p")
    assert len([e for e in dataset.iter_entities(history=False) if not e["_deleted"]]) == 8
    with pytest.raises(storage.CircuitBreakerTripped):
        pipe(_source(8)).run()  # refused while tripped
    datasets.apply(DatasetWrite("p", storage.Dataset.commit_staged))
    assert sorted(e["_id"] for e in dataset.iter_entities(history=False) if not e["_deleted"]) == \
        [f"e{i}" for i in range(5)]


def test_an_unarmed_sink_writes_as_before(datasets: Datasets) -> None:
    runner = build_runner({"_id": "p", "type": "pipe", "source": {"type": "embedded", "entities": _source(3)}},
                          datasets)
    assert runner.run().changes == 3 and runner.run().changes == 0
    assert datasets.open("p").breaker is None
