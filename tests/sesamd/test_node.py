"""The node: config validation, substitution, and config applied as a diff (only changed pipes restart)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import DatasetWrite, Operate, PumpStatus, StopScheduling, WaitIdle, Wake, _datasets, _events
from actors.components import ConfigError
from actors.testing import FakeRunner
from sesamd._config import (
    ConfigValidationError,
    SubstitutionError,
    diff,
    entity_hash,
    parse_config,
    render_json,
    substitute,
    validate_structure,
)
from sesamd._node import Engine, open_node


def build_fake(config: dict[str, Any]) -> FakeRunner:
    """A runner for a pipe config: ``"bad": "<path>"`` in the config fails the build at that path."""
    if "bad" in config:
        raise ConfigError("this is wrong", where=f"pipe {config['_id']}: {config['bad']}")
    return FakeRunner(config={**config, "effective": True})


class FakeActor:
    """Stands in for PipeActor: records its life and the operations sent to it in ``log`` (shared by all actors
    of a test) and counts the wakes it gets."""

    def __init__(self, pipe_id: str, runner: FakeRunner, log: list[tuple[str, str]]) -> None:
        self.pipe_id, self.runner, self.log = pipe_id, runner, log
        self.status = PumpStatus(pipe_id)
        self.scheduler_enabled = True
        self.woken = 0

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        self.log.append(("started", self.pipe_id))
        try:
            async for message in mailbox:
                if isinstance(message, Operate | WaitIdle) and message.reply.take():
                    if isinstance(message, Operate):
                        self.log.append((message.op, self.pipe_id))
                    message.reply.send(self.status if isinstance(message, Operate) else None)
                elif isinstance(message, Wake):
                    self.woken += 1
                elif isinstance(message, StopScheduling):
                    self.scheduler_enabled = False
        finally:
            self.log.append(("stopped", self.pipe_id))


def fake_engine(log: list[tuple[str, str]], actors: dict[str, FakeActor] | None = None) -> Engine:
    """An engine of fakes; ``actors`` gets each pipe's latest actor."""
    made = actors if actors is not None else {}

    def make_actor(pipe_id: str, runner: Any, node: Any) -> Any:
        actor = made[pipe_id] = FakeActor(pipe_id, runner, log)
        return actor

    return Engine(
        make_datasets=_datasets.Datasets,
        build_runner=lambda config, datasets, metadata: build_fake(config),
        make_actor=make_actor,
        make_events=_events.EventBus,
        config_errors=(ConfigError,),
    )


def pipe(pipe_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": []}, **extra}


async def settle() -> None:
    for _ in range(20):
        await trio.sleep(0)


async def test_config_diff_restarts_only_changed_pipes(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    async with open_node(tmp_path, fake_engine(log)) as node:
        await node.apply_config([pipe("a"), pipe("b"), pipe("c")])
        await settle()
        assert sorted(log) == [("started", "a"), ("started", "b"), ("started", "c")]
        actors = {p: node.pipe(p).actor for p in "abc"}
        log.clear()

        # b changes, c is removed, d is new, a is the same: only b restarts
        await node.apply_config([pipe("a"), pipe("b", description="changed"), pipe("d")])
        await settle()
        assert sorted(log) == [("started", "b"), ("started", "d"), ("stopped", "b"), ("stopped", "c")]
        assert node.pipe("a").actor is actors["a"]
        assert node.pipe("b").actor is not actors["b"]
        assert sorted(node.pipes) == ["a", "b", "d"]
        log.clear()

        # the same config again (another key order) changes nothing
        await node.apply_config([pipe("d"), {"source": {"entities": [], "type": "embedded"}, "type": "pipe",
                                             "_id": "a"}, pipe("b", description="changed")])
        await settle()
        assert log == []
    assert sorted(log) == [("stopped", "a"), ("stopped", "b"), ("stopped", "d")]


async def test_metadata_and_env_changes_restart_the_pipes_they_affect(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    async with open_node(tmp_path, fake_engine(log)) as node:
        node.store.put("env", "dataset", "x")
        await node.apply_config([pipe("a"), pipe("b", source={"type": "dataset", "dataset": "$ENV(dataset)"})])
        await settle()
        assert node.pipe("b").runner.source_datasets == ["x"]
        log.clear()
        node.store.put("env", "dataset", "y")
        await node.apply_config(node.config())
        await settle()
        assert sorted(log) == [("started", "b"), ("stopped", "b")]
        assert node.pipe("b").runner.source_datasets == ["y"]
        log.clear()
        await node.apply_config([*node.config(), {"_id": "node", "type": "metadata", "namespaced_identifiers": True}])
        await settle()
        assert sorted(log) == [("started", "a"), ("started", "b"), ("stopped", "a"), ("stopped", "b")]


async def test_invalid_config_is_rejected_whole_and_changes_nothing(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    async with open_node(tmp_path, fake_engine(log)) as node:
        await node.apply_config([pipe("a")])
        with pytest.raises(ConfigValidationError) as caught:
            await node.apply_config([pipe("a", description="new"), pipe("b", bad="source.dataset")])
        [error] = caught.value.errors
        assert error["elements"] == "$[1]['source']['dataset']"
        assert "pipe b" in error["msg"] and "this is wrong" in error["msg"]
        assert node.config() == [pipe("a")]
        assert list(node.pipes) == ["a"]
        assert "description" not in node.pipe("a").original


async def test_force_keeps_invalid_pipes_without_running_them(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    async with open_node(tmp_path, fake_engine(log)) as node:
        errors = await node.apply_config([pipe("a"), pipe("b", bad="sink")], force=True)
        await settle()
        assert [e["elements"] for e in errors] == ["$[1]['sink']"]
        assert log == [("started", "a")]
        state = node.pipe("b")
        assert state.actor is None and not state.is_valid and state.errors == errors
        assert node.pump_json("b")["runtime"]["is-valid-config"] is False


async def test_config_is_stored_and_reapplied_when_the_node_starts(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    async with open_node(tmp_path, fake_engine(log)) as node:
        await node.apply_config([pipe("b"), {"_id": "node", "type": "metadata"}, pipe("a"),
                                 {"_id": "web", "type": "system:url", "base_url": "http://x"}])
    log.clear()
    async with open_node(tmp_path, fake_engine(log)) as node:
        await settle()
        assert [e["_id"] for e in node.config()] == ["b", "node", "a", "web"]  # in upload order
        assert sorted(log) == [("started", "a"), ("started", "b")]


async def test_a_commit_with_new_versions_wakes_the_pipes_that_read_the_dataset(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    actors: dict[str, FakeActor] = {}
    async with open_node(tmp_path, fake_engine(log, actors)) as node:
        await node.apply_config([pipe("a"), pipe("b", source={"type": "dataset", "dataset": "a"}),
                                 pipe("c", hops=["a"]), pipe("d"),
                                 pipe("e", source={"type": "dataset", "dataset": "a"}, signalling=False),
                                 pipe("f", hops=["a"], signalling=False)])
        await settle()

        def write(*entities: dict[str, Any]) -> DatasetWrite:
            return DatasetWrite("a", lambda dataset: dataset.write(list(entities)).appended)

        assert await node.writers.apply(write({"_id": "x", "n": 1})) == 1
        await settle()
        assert [actors[p].woken for p in "abcdef"] == [0, 1, 1, 0, 0, 0]  # e, f: signalling is off
        assert node.writers.running() == ["a", "system:config"]  # written by the datasets' actors (config history)
        assert await node.writers.apply(write({"_id": "x", "n": 1})) == 0  # unchanged: nobody is woken
        await settle()
        assert [actors[p].woken for p in "abcdef"] == [0, 1, 1, 0, 0, 0]


async def test_operations_after_stop_runs_are_refused(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    actors: dict[str, FakeActor] = {}
    async with open_node(tmp_path, fake_engine(log, actors)) as node:
        await node.apply_config([pipe("a")])
        await settle()
        await node.stop_runs(grace=1)
        assert actors["a"].scheduler_enabled is False
        with pytest.raises(RuntimeError, match="shutting down"):
            await node.operate("a", "start", {})


def test_structure_errors_name_the_entity_and_the_path() -> None:
    errors = validate_structure([
        pipe("a"), pipe("a"), {"type": "pipe"}, {"_id": "x", "type": "nonsense"},
        {"_id": "meta", "type": "metadata"}, {"_id": "p/q", "type": "pipe"}, pipe("run-all-pipes"), "text",
        {"_id": "s", "type": "system:nope"},
    ])
    found = {(e["elements"], e["msg"]) for e in errors}
    assert ("$[1]['_id']", "'a': duplicate _id (also config entity #0)") in found
    assert ("$[2]['_id']", "config entity #2: '_id' must be a non-empty string") in found
    assert any(where == "$[3]['type']" and "'x'" in msg for where, msg in found)
    assert any(where == "$[4]['_id']" and "'node'" in msg for where, msg in found)
    assert any(where == "$[5]['_id']" and "'/'" in msg for where, msg in found)
    assert any(where == "$[6]['_id']" and "reserved" in msg for where, msg in found)
    assert any(where == "$[7]" for where, msg in found)
    assert any(where == "$[8]['type']" and "system:nope" in msg for where, msg in found)
    assert validate_structure({"_id": "a"})[0]["elements"] == "$"


def test_substitution_keeps_exact_values_and_builds_strings() -> None:
    env = {"port": 8080, "host": "example.org", "flags": {"a": True}}
    entity = {"url": "http://$ENV(host):$ENV(port)/x", "port": "$ENV(port)", "flags": ["$ENV(flags)"],
              "secret": "$SECRET(pw)", "plain": "a $ sign"}
    assert substitute(entity, env) == {"url": "http://example.org:8080/x", "port": 8080, "flags": [{"a": True}],
                                       "secret": "$SECRET(pw)", "plain": "a $ sign"}
    assert substitute(entity, env, {"pw": "hunter2"})["secret"] == "hunter2"
    with pytest.raises(SubstitutionError) as caught:
        substitute({"a": [{"b": "$ENV(missing)"}]}, env, None, "$[3]")
    assert caught.value.path == "$[3]['a'][0]['b']" and "missing" in str(caught.value)


async def test_secrets_only_in_systems_and_never_shown(tmp_path: Any) -> None:
    log: list[tuple[str, str]] = []
    async with open_node(tmp_path, fake_engine(log)) as node:
        node.store.put("secret", "pw", "hunter2")
        with pytest.raises(ConfigValidationError, match="only allowed in system config"):
            await node.apply_config([pipe("a", password="$SECRET(pw)")])
        with pytest.raises(ConfigValidationError, match="undefined secret 'nope'"):
            await node.apply_config([{"_id": "s", "type": "system:url", "password": "$SECRET(nope)"}])
        system = {"_id": "s", "type": "system:url", "base_url": "http://x/", "username": "u", "password": "$SECRET(pw)"}
        await node.apply_config([system])
        assert node.config() == [system]


async def test_dtl_crypto_keys_may_name_secrets_which_reach_the_compiler(tmp_path: Any) -> None:
    rules = {"default": [["copy", "_id"],
                         ["add", "plain", ["decrypt", "$SECRET(key)", ["encrypt", "$SECRET(key)", "hello"]]],
                         ["add", "sealed", ["encrypt", "$SECRET(key)", "hello"]]]}
    config = {"_id": "sealed", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "a"}]},
              "transform": {"type": "dtl", "rules": rules}}
    async with open_node(tmp_path) as node:
        node.store.put("secret", "key", "correct horse battery staple")
        await node.apply_config([config])
        runner = node.pipe("sealed").runner
        await trio.to_thread.run_sync(lambda: runner.run())
        entity = node.datasets.open("sealed").get("a")
        assert entity["plain"] == "hello" and entity["sealed"] != "hello"
        assert "correct horse" not in str(node.config()) and "correct horse" not in str(node.pipe("sealed").effective)
        first = node.pipe("sealed").hash
        node.store.put("secret", "key", "another key")
        await node.apply_config([config])
        assert node.pipe("sealed").hash != first  # a changed secret rebuilds the pipe
        with pytest.raises(ConfigValidationError, match="unknown secret 'nokey'"):
            await node.apply_config([{**config, "transform": {"type": "dtl", "rules": {"default": [
                ["add", "x", ["encrypt", "$SECRET(nokey)", "hello"]]]}}}])
        with pytest.raises(ConfigValidationError, match="only allowed in system config"):
            await node.apply_config([{**config, "comment": "$SECRET(key)"}])


def test_config_json_keeps_decimal_digits() -> None:
    parsed = parse_config(b'[{"_id": "a", "type": "pipe", "x": [25.00, 1e3, -0.5, "~fnot", 7, null, {}]}]')
    assert parsed[0]["x"][:3] == ["~f25.00", "~f1e3", "~f-0.5"]
    assert render_json(parsed, indent=None) == (
        b'[{"_id":"a","type":"pipe","x":[25.00,1e3,-0.5,"~fnot",7,null,{}]}]')
    with pytest.raises(ConfigValidationError, match="line 1"):
        parse_config(b"[{")


def test_hash_and_diff() -> None:
    assert entity_hash({"a": 1, "b": [1, 2]}) == entity_hash({"b": [1, 2], "a": 1})
    assert entity_hash({"a": 1}) != entity_hash({"a": 2})
    change = diff({"a": "1", "b": "1", "c": "1"}, {"a": "1", "b": "2", "d": "1"})
    assert (change.added, change.removed, change.changed, change.unchanged) == (("d",), ("c",), ("b",), ("a",))


