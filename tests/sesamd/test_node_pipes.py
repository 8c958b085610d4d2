"""The node with the real engine and pumps: signalling between pipes (node-spec 5.2), the dataset sink's
``set_initial_offset: onload`` and the pump's ``run_at_startup_if_not_populated`` (2.5, 5.1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import DatasetWrite, Wake
from sesamd._config import ConfigValidationError
from sesamd._node import Node, open_node


def dataset_pipe(pipe_id: str, dataset: str = "src", *, pump: dict[str, Any] | None = None,
                 **source: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "dataset", "dataset": dataset, **source},
            "pump": pump or {}}


def embedded_pipe(pipe_id: str, *, pump: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "a"}]},
            "pump": pump or {"mode": "manual"}, **extra}


def hopper(pipe_id: str, *, pump: dict[str, Any] | None = None) -> dict[str, Any]:
    rules = {"default": [["copy", "*"], ["add", "hopped", ["hops", {"datasets": ["src s"],
                                                                    "where": [["eq", "_S._id", "s._id"]]}]]]}
    return {**dataset_pipe(pipe_id, "other", pump=pump), "transform": {"type": "dtl", "rules": rules}}


SIGNALLING = {  # pipe -> its effective signalling with the default metadata
    "down": True,  # dataset -> dataset, no explicit schedule
    "timed": False,  # an explicit schedule_interval switches the default off
    "cron": False,  # ... and so does a cron_expression
    "explicit": True,  # an explicit supports_signalling wins over the schedule
    "refused": False,  # ... and over the default
    "to-null": False,  # not a dataset -> dataset pipe
    "hopper": True,  # reads "other", hops into "src"
    "hopper-timed": False,
    "union": True,  # a dataset-reading source
}


def signalling_config(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        embedded_pipe("src"),
        embedded_pipe("other"),
        dataset_pipe("down"),
        dataset_pipe("timed", pump={"schedule_interval": 3600}),
        dataset_pipe("cron", pump={"cron_expression": "0 0 * * *"}),
        dataset_pipe("explicit", pump={"schedule_interval": 3600}, supports_signalling=True),
        dataset_pipe("refused", supports_signalling=False),
        {**dataset_pipe("to-null"), "sink": {"type": "null"}},
        hopper("hopper"),
        hopper("hopper-timed", pump={"schedule_interval": 3600}),
        {"_id": "union", "type": "pipe", "source": {"type": "union_datasets", "datasets": ["other", "src"]}},
        *extra,
    ]


def count_wakes(node: Node) -> dict[str, int]:
    """Count the wakes each pipe's actor gets from now on (the wake itself still happens)."""
    counts = dict.fromkeys(node.pipes, 0)
    for pipe_id, state in node.pipes.items():
        actor = state.actor
        assert actor is not None
        original: Callable[[Any], bool] = actor.notify

        def notify(message: Any, pipe_id: str = pipe_id, original: Callable[[Any], bool] = original) -> bool:
            counts[pipe_id] += isinstance(message, Wake)
            return original(message)

        actor.notify = notify  # type: ignore[method-assign]
    return counts


def write_to(dataset: str, *entities: dict[str, Any]) -> DatasetWrite:
    return DatasetWrite(dataset, lambda d: d.write(list(entities)).appended)


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def last_run(node: Node, pipe_id: str) -> str | None:
    return (node.store.get("pump", pipe_id) or {}).get("last_run")


# -- signalling --------------------------------------------------------------------------------------------------


async def test_a_commit_wakes_only_the_pipes_whose_effective_signalling_is_on(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        await node.apply_config(signalling_config())
        assert {p: node.pipe(p).runner.signalling for p in SIGNALLING} == SIGNALLING
        wakes = count_wakes(node)
        assert await node.writers.apply(write_to("src", {"_id": "x", "n": 1})) == 1
        assert {p: wakes[p] for p in SIGNALLING} == {p: int(on) for p, on in SIGNALLING.items()}
        assert wakes["src"] == 0  # never its own output

        # the woken dataset pipe really runs: a signal, long before its 30 s schedule
        await until(lambda: last_run(node, "down") is not None)
        assert node.store.get("pump", "down")["success"] is True and node.datasets.open("down").get("x") is not None


async def test_the_global_default_switches_internal_signalling_off(tmp_path: Path) -> None:
    metadata = {"_id": "node", "type": "metadata", "global_defaults": {"use_signalling_internally": False}}
    async with open_node(tmp_path) as node:
        await node.apply_config(signalling_config(metadata))
        expected = {**dict.fromkeys(SIGNALLING, False), "explicit": True}  # only the explicit setting is left
        assert {p: node.pipe(p).runner.signalling for p in SIGNALLING} == expected
        wakes = count_wakes(node)
        await node.writers.apply(write_to("src", {"_id": "x"}))
        assert {p: wakes[p] for p in SIGNALLING} == {p: int(on) for p, on in expected.items()}


# -- set_initial_offset: onload ----------------------------------------------------------------------------------


def onload_pipe(pipe_id: str, **pump: Any) -> dict[str, Any]:
    return embedded_pipe(pipe_id, pump={"mode": "manual", **pump},
                         sink={"type": "dataset", "set_initial_offset": "onload"})


async def test_onload_marks_the_sink_populated_when_the_pipe_is_loaded(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        with pytest.raises(ConfigValidationError):  # a rejected upload loads nothing
            await node.apply_config([onload_pipe("loaded"), {"_id": "bad", "type": "pipe", "source": {}}])
        assert not node.datasets.exists("loaded")
        await node.apply_config([onload_pipe("loaded"), embedded_pipe("plain")])
        assert node.datasets.open("loaded").populated  # before any run
        assert last_run(node, "loaded") is None and node.datasets.open("loaded").counts()["entities"] == 0
        assert not node.datasets.exists("plain")
        node.datasets.open("loaded").set_populated(False)
        await node.apply_config([onload_pipe("loaded", comment="changed"), embedded_pipe("plain")])
        assert node.datasets.open("loaded").populated  # a changed pipe is loaded again
        node.datasets.open("loaded").set_populated(False)
    async with open_node(tmp_path) as node:
        assert node.datasets.open("loaded").populated  # loaded when the node starts


# -- run_at_startup_if_not_populated -----------------------------------------------------------------------------


async def test_run_at_startup_if_not_populated_runs_pipes_whose_sink_is_not_populated(tmp_path: Path) -> None:
    metadata = {"_id": "node", "type": "metadata", "global_defaults": {"run_at_startup_if_not_populated": True}}
    hourly = {"schedule_interval": 3600}
    config = [
        embedded_pipe("boot", pump={**hourly, "run_at_startup_if_not_populated": True}),
        embedded_pipe("plain", pump=hourly),
        onload_pipe("loaded", run_at_startup_if_not_populated=True),  # populated on load: no run
    ]
    async with open_node(tmp_path) as node:
        await node.apply_config(config)
        await until(lambda: last_run(node, "boot") is not None)
        assert node.datasets.open("boot").populated and node.datasets.open("boot").get("a") is not None
        await trio.sleep(0.2)
        assert last_run(node, "plain") is None and last_run(node, "loaded") is None
        first = last_run(node, "boot")

    async with open_node(tmp_path) as node:  # the sink is populated now: no startup run
        await trio.sleep(0.3)
        assert last_run(node, "boot") == first
        node.datasets.open("boot").set_populated(False)

    async with open_node(tmp_path) as node:  # unpopulated again: it runs
        await until(lambda: last_run(node, "boot") != first)
        await node.apply_config([metadata, *config])  # the global default covers "plain"
        await until(lambda: last_run(node, "plain") is not None)
        await trio.sleep(0.2)
        assert last_run(node, "loaded") is None
