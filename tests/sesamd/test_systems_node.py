"""Systems through the node and the API: validation with paths, restarts by config diff, the API shapes,
and secrets that never show."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy
import trio

from sesamd._config import ConfigValidationError
from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

SECRET = "hunter2-very-secret"


def url(system_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": system_id, "type": "system:url", "url_pattern": f"http://{system_id}.test/%s", **extra}


def sqlite(system_id: str, path: Any) -> dict[str, Any]:
    return {"_id": system_id, "type": "system:sqlite", "database": str(path)}


def pipe(pipe_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": []}, **extra}


async def wait_open(node: Node, *ids: str) -> None:
    with trio.fail_after(5):
        for system_id in ids:
            actor = node.systems.actor(system_id)
            assert actor is not None, system_id
            await actor.wait_open()


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.client = TokenClient(create_app(node))

    async def get(self, path: str, status: int = 200) -> Any:
        response = await self.client.get("/api" + path)
        body = await response.get_data()
        assert response.status_code == status, body
        assert response.content_type == "application/json"
        return json.loads(body)

    async def text(self, path: str) -> str:
        response = await self.client.get("/api" + path)
        return (await response.get_data()).decode()

    async def put_config(self, config: Any, status: int = 200, **params: Any) -> Any:
        response = await self.client.put("/api/config", data=json.dumps(config),
                                         headers={"Content-Type": "application/json"}, query_string=params)
        body = await response.get_data()
        assert response.status_code == status, body
        return json.loads(body)


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path / "node") as node:
        yield Api(node)


async def test_systems_start_and_only_changed_ones_restart(tmp_path: Any) -> None:
    async with open_node(tmp_path / "node") as node:
        config = [url("a"), url("b"), sqlite("c", tmp_path / "c.db"), pipe("p", source={"type": "embedded",
                                                                                       "entities": [], "system": "a"})]
        assert await node.apply_config(config) == []
        await wait_open(node, "a", "b", "c")
        actors = {s: node.systems.actor(s) for s in "abc"}
        systems = {s: actors[s].system for s in "abc"}  # type: ignore[union-attr]
        assert all(s.is_open for s in systems.values())
        assert systems["a"].client is not None  # type: ignore[attr-defined]

        # b changes, c is removed, d is new, a is unchanged (another key order): only b restarts
        changed = [{"url_pattern": "http://a.test/%s", "_id": "a", "type": "system:url"},
                   url("b", headers={"X": "1"}), url("d"), config[3]]
        assert await node.apply_config(changed) == []
        await wait_open(node, "a", "b", "d")
        assert node.systems.actor("a") is actors["a"] and systems["a"].is_open
        assert actors["a"].status.opens == 1  # type: ignore[union-attr]
        assert node.systems.actor("b") is not actors["b"]
        assert not systems["b"].is_open and systems["b"].client is None  # type: ignore[attr-defined]
        assert node.systems.actor("b").system.headers["X"] == "1"  # type: ignore[union-attr]
        assert not systems["c"].is_open and systems["c"].engine is None  # type: ignore[attr-defined]
        assert node.systems.actor("c") is None and sorted(node.systems.systems) == ["a", "b", "d"]
        b, d = node.systems.actor("b"), node.systems.actor("d")
    # the node's shutdown closes every system
    assert not systems["a"].is_open and not b.system.is_open and not d.system.is_open  # type: ignore[union-attr]


async def test_systems_are_reopened_when_the_node_starts_again(tmp_path: Any) -> None:
    async with open_node(tmp_path / "node") as node:
        await node.apply_config([sqlite("db", tmp_path / "db.sqlite")])
        await wait_open(node, "db")
    async with open_node(tmp_path / "node") as node:
        await wait_open(node, "db")
        system: Any = node.systems.actor("db").system  # type: ignore[union-attr]

        def select() -> Any:
            with system.engine.connect() as connection:
                return connection.execute(sqlalchemy.text("SELECT 1")).scalar()

        assert await trio.to_thread.run_sync(select) == 1


async def test_bad_system_config_is_rejected_with_id_and_path(api: Api) -> None:
    await api.put_config([url("good")])
    await wait_open(api.node, "good")
    good = api.node.systems.actor("good")
    bad = await api.put_config([url("good"), pipe("p"), url("web", headers={"X-Key": 42}),
                                {"_id": "svc", "type": "system:microservice"}], 400)
    errors = {(item["posted-config"]["_id"], e["elements"]): e["msg"] for item in bad["validation_errors"]
              for e in item["config-errors"]}  # Sesam's shape: per entity, paths relative to it
    assert set(errors) == {("web", "$['headers']['X-Key']"), ("svc", "$")}
    header = errors["web", "$['headers']['X-Key']"]
    assert "system 'web'" in header and "string" in header
    assert "system 'svc'" in errors["svc", "$"] and "base_url" in errors["svc", "$"]  # sesamd starts no containers
    # nothing changed
    assert [s["_id"] for s in await api.get("/systems")] == ["good"]
    assert api.node.systems.actor("good") is good and good.system.is_open  # type: ignore[union-attr]

    missing = await api.put_config([url("web", username="u")], 400)
    assert missing["validation_errors"][0]["config-errors"] == [
        {"elements": "$", "level": "error", "msg": "system 'web': 'password' is required when 'username' is set"}]
    unknown = await api.put_config([{"_id": "x", "type": "system:nope"}], 400)
    assert unknown["validation_errors"][0]["config-errors"][0]["elements"] == "$['type']"


async def test_forced_bad_system_is_shown_with_its_errors(api: Api) -> None:
    result = await api.put_config([url("ok"), {"_id": "pg", "type": "system:postgresql", "host": "h"}], force="true")
    [item] = result["validation_errors"]
    assert item["posted-config"]["_id"] == "pg" and [e["elements"] for e in item["config-errors"]] == ["$"]
    await wait_open(api.node, "ok")
    shown = await api.get("/systems/pg")
    assert shown["runtime"]["is-valid-config"] is False and shown["runtime"]["state"] == "invalid-config"
    assert shown["runtime"]["config-errors"] == item["config-errors"]
    assert api.node.systems.actor("pg") is None
    # fixing it starts it, and leaves the other one alone
    ok = api.node.systems.actor("ok")
    await api.put_config([url("ok"), {"_id": "pg", "type": "system:postgresql", "host": "127.0.0.1",
                                      "database": "test", "username": "postgres"}])
    await wait_open(api.node, "pg")
    assert api.node.systems.actor("ok") is ok
    assert (await api.get("/systems/pg"))["runtime"]["is-valid-config"] is True


async def test_systems_api_shapes(api: Api, tmp_path: Any) -> None:
    await api.put_config([url("web", connect_timeout=1.5), sqlite("lite", tmp_path / "x.db"),
                          {"_id": "short", "type": "url", "base_url": "http://s.test/"}])
    await wait_open(api.node, "web", "lite", "short")
    listed = await api.get("/systems")
    assert [s["_id"] for s in listed] == ["lite", "short", "web"]
    web = await api.get("/systems/web")
    assert web == listed[2]
    assert web["config"]["original"] == url("web", connect_timeout=1.5)  # as uploaded, decimals as numbers
    effective = web["config"]["effective"]
    assert effective["connect_timeout"] == 1.5 and effective["read_timeout"] == 1800
    assert effective["worker_threads"] == 10 and effective["verify_ssl"] is False
    runtime = web["runtime"]
    assert runtime["is-valid-config"] is True and runtime["config-errors"] == []
    assert runtime["state"] == "open" and runtime["actor-state"] == "running" and runtime["actor-restarts"] == 0
    assert runtime["worker-threads"] == 10 and runtime["pipes-running"] == 0
    assert runtime["system"]["type"] == "system:url" and runtime["system"]["is-open"] is True
    lite = listed[0]
    assert lite["config"]["effective"]["pool_size"] == 10 and lite["runtime"]["system"]["dialect"] == "sqlite"
    assert listed[1]["config"]["effective"]["type"] == "system:url"
    assert await api.get("/systems/web/config") == url("web", connect_timeout=1.5)
    assert await api.get("/systems/nope", 404) == {"detail": "no system 'nope'", "status": 404}
    assert (await api.get("/systems/nope/config", 404))["status"] == 404
    assert (await api.get(f"/systems/{quote('we:b', safe='')}", 404))["detail"] == "no system 'we:b'"


async def test_secret_values_are_never_shown(api: Api) -> None:
    response = await api.client.put("/api/secrets", json={"pw": SECRET, "port": "port-" + SECRET})
    assert response.status_code == 200
    config = [url("web", authentication="basic", username="ann", password="$SECRET(pw)",
                  headers={"X-Key": "key $SECRET(pw)"})]
    await api.put_config(config)
    await wait_open(api.node, "web")
    system: Any = api.node.systems.actor("web").system  # type: ignore[union-attr]
    assert system.headers["X-Key"] == f"key {SECRET}" and system.auth is not None  # the values are used
    for path in ("/systems", "/systems/web", "/systems/web/config", "/config"):
        assert SECRET not in await api.text(path), path
    shown = await api.get("/systems/web")
    assert shown["config"]["original"]["password"] == "$SECRET(pw)"
    assert shown["config"]["effective"]["headers"] == {"X-Key": "key $SECRET(pw)"}

    # errors about values that came from secrets don't show them
    bad = [{"_id": "pg", "type": "system:postgresql", "host": "h", "database": "d", "port": "$SECRET(port)"},
           url("web2", url_pattern="$SECRET(pw)"), url("web3", worker_threads="$SECRET(pw)")]
    response = await api.client.put("/api/config", json=bad)
    body = (await response.get_data()).decode()
    assert response.status_code == 400 and SECRET not in body
    items = json.loads(body)["validation_errors"]
    elements = [(i["posted-config"]["_id"], e["elements"]) for i in items for e in i["config-errors"]]
    assert elements == [("pg", "$['port']"), ("web2", "$['url_pattern']"), ("web3", "$['worker_threads']")]
    assert "$SECRET(port)" in items[0]["config-errors"][0]["msg"]


async def test_a_changed_secret_restarts_the_system_that_uses_it(tmp_path: Any) -> None:
    async with open_node(tmp_path / "node") as node:
        node.store.put("secret", "token", "t1")
        await node.apply_config([url("jwt", authentication="jwt", jwt_token="$SECRET(token)"), url("other")])
        await wait_open(node, "jwt", "other")
        first, other = node.systems.actor("jwt"), node.systems.actor("other")
        assert first.system.headers["Authorization"] == "Bearer t1"  # type: ignore[union-attr]
        node.store.put("secret", "token", "t2")
        await node.apply_config(node.config())
        await wait_open(node, "jwt")
        second = node.systems.actor("jwt")
        assert second is not first and not first.system.is_open  # type: ignore[union-attr]
        assert second.system.headers["Authorization"] == "Bearer t2"  # type: ignore[union-attr]
        assert node.systems.actor("other") is other


async def test_undefined_secret_in_a_system(tmp_path: Any) -> None:
    async with open_node(tmp_path / "node") as node:
        with pytest.raises(ConfigValidationError, match="undefined secret 'nope'"):
            await node.apply_config([url("web", password="$SECRET(nope)", username="u")])
        errors = await node.apply_config([url("web", password="$SECRET(nope)", username="u")], force=True)
        assert errors[0]["elements"] == "$[0]['password']"
        state = node.systems.get("web")
        assert not state.is_valid and state.errors == errors and state.actor is None
