"""The systems API: add, replace and delete systems, their own secrets, and their status, logs and reload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from actors import SystemActor
from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

SECRET = "s3cr3t-value-for-tests"
OTHER = "another-s3cr3t-value"


def url(system_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": system_id, "type": "system:url", "url_pattern": f"http://{system_id}.test/%s", **extra}


def pipe(pipe_id: str, **source: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": [], **source}}


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.client = TokenClient(create_app(node))
        self.bodies: list[str] = []  # every response body, to check that no secret value is ever shown

    async def call(self, method: str, path: str, status: int = 200, body: Any = None, **params: Any) -> Any:
        kwargs: dict[str, Any] = {"query_string": params}
        if body is not None:
            kwargs.update(data=json.dumps(body), headers={"Content-Type": "application/json"})
        response = await self.client.open("/api" + path, method=method, **kwargs)
        text = (await response.get_data()).decode()
        self.bodies.append(text)
        assert response.status_code == status, (method, path, text)
        if response.content_type.startswith("text/plain"):
            return text
        assert response.content_type == "application/json", response.content_type
        return json.loads(text)

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        return await self.call("GET", path, status, **params)

    def actor(self, system_id: str) -> SystemActor:
        actor = self.node.systems.actor(system_id)
        assert actor is not None, system_id
        return actor

    async def wait_open(self, system_id: str) -> Any:
        with trio.fail_after(5):
            return await self.actor(system_id).wait_open()

    def assert_nothing_shown(self, *values: str) -> None:
        for body in self.bodies:
            for value in values:
                assert value not in body, body


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path / "node") as node:
        yield Api(node)


async def test_post_systems_adds_them_with_201(api: Api) -> None:
    await api.call("PUT", "/config", body=[pipe("p")])
    added = await api.call("POST", "/systems", 201, body=[url("a"), url("b", headers={"X": "1"})])
    assert [s["_id"] for s in added] == ["a", "b"]
    assert added[1]["config"]["original"] == url("b", headers={"X": "1"}) and "runtime" in added[1]
    assert (await api.wait_open("b")).headers["X"] == "1"
    one = await api.call("POST", "/systems", 201, body=url("c"))  # one object is fine too
    assert [s["_id"] for s in one] == ["c"]
    assert [e["_id"] for e in await api.get("/config")] == ["p", "a", "b", "c"]  # appended in order

    # an id that exists (a system or any other entity): 409, nothing applied
    for clash in ("a", "p"):
        response = await api.call("POST", "/systems", 409, body=[url("d"), url(clash)])
        assert f"'{clash}'" in response["detail"]
    assert "d" not in api.node.systems.systems

    # invalid: 400 with validation_errors, nothing applied; with force it is added, invalid
    bad = [url("d"), url("e", headers={"X": 1})]
    refused = await api.call("POST", "/systems", 400, body=bad)
    [item] = refused["validation_errors"]
    assert item["posted-config"]["_id"] == "e" and item["is-valid-config"] is False
    assert item["config-errors"][0]["elements"] == "$['headers']['X']"
    assert "system 'e'" in item["config-errors"][0]["msg"]
    assert sorted(api.node.systems.systems) == ["a", "b", "c"]
    forced = await api.call("POST", "/systems", 201, body=bad, force="true")
    assert [(s["_id"], s["runtime"]["is-valid-config"]) for s in forced] == [("d", True), ("e", False)]

    wrong = await api.call("POST", "/systems", 400, body=[pipe("q")])
    assert "not a system" in wrong["detail"]
    assert (await api.call("POST", "/systems", 400, body="x"))["status"] == 400


async def test_put_system_config_creates_or_replaces_one(api: Api) -> None:
    created = await api.call("PUT", "/systems/web/config", body={"type": "system:url",
                                                                  "url_pattern": "http://w.test/%s"})
    assert created["_id"] == "web" and created["runtime"]["is-valid-config"] is True
    first = api.actor("web")
    await api.wait_open("web")
    replaced = await api.call("PUT", "/systems/web/config", body=url("web", headers={"X": "2"}))
    assert replaced["config"]["original"]["headers"] == {"X": "2"}
    assert (await api.wait_open("web")).headers["X"] == "2" and api.actor("web") is not first
    assert not first.system.is_open
    assert await api.get("/systems/web/config") == url("web", headers={"X": "2"})

    mismatch = await api.call("PUT", "/systems/web/config", 400, body=url("other"))
    assert "differs" in mismatch["detail"]
    invalid = await api.call("PUT", "/systems/web/config", 400, body=url("web", connect_timeout="soon"))
    assert invalid["validation_errors"][0]["config-errors"][0]["elements"] == "$['connect_timeout']"
    assert api.actor("web").system.headers["X"] == "2"  # unchanged
    forced = await api.call("PUT", "/systems/web/config", body=url("web", connect_timeout="soon"), force="true")
    assert forced["runtime"]["is-valid-config"] is False and api.node.systems.actor("web") is None

    await api.call("PUT", "/pipes/p/config", body=pipe("p"))
    assert "is a pipe" in (await api.call("PUT", "/systems/p/config", 409, body=url("p")))["detail"]
    assert "not a system" in (await api.call("PUT", "/systems/x/config", 400, body=pipe("x")))["detail"]


async def test_delete_system_leaves_its_pipes_invalid_and_drops_its_secrets(api: Api) -> None:
    await api.call("PUT", "/config", body=[url("src"), url("keep"), pipe("p", system="src")])
    await api.wait_open("src")
    actor = api.actor("src")
    await api.call("PUT", "/systems/src/secrets", body={"token": SECRET})
    deleted = await api.call("DELETE", "/systems/src")
    assert deleted["_id"] == "src" and deleted["config"]["original"] == url("src")
    assert deleted["runtime"]["is-valid-config"] is True  # as it was
    assert not actor.system.is_open and "src" not in api.node.systems.systems
    assert [e["_id"] for e in await api.get("/config")] == ["keep", "p"]
    shown = (await api.get("/pipes/p"))["runtime"]
    assert shown["is-valid-config"] is False
    [error] = shown["config-errors"]
    assert error["elements"] == "$['source']['system']"
    assert "system 'src'" in error["msg"] and "not in the config" in error["msg"]
    assert api.node.store.get("system-secret", "src") is None  # its secrets go with it
    assert (await api.call("DELETE", "/systems/src", 404))["detail"] == "no system 'src'"

    # adding it again makes the pipe valid again; a pipe naming a system that never existed is refused
    await api.call("POST", "/systems", 201, body=[url("src")])
    assert (await api.get("/pipes/p"))["runtime"]["is-valid-config"] is True
    refused = await api.call("PUT", "/pipes/q/config", 400, body=pipe("q", system="nope"))
    assert "system 'nope'" in refused["validation_errors"][0]["config-errors"][0]["msg"]


async def test_system_secrets_win_over_global_ones_and_are_never_shown(api: Api) -> None:
    assert await api.call("PUT", "/secrets", body={"token": OTHER, "only-global": "g"}) == {
        "secrets": ["only-global", "token"]}  # an object, which sesamclient prints as one
    config = [url("jwt", authentication="jwt", jwt_token="$SECRET(token)"),
              url("other", headers={"X": "$SECRET(token)"})]
    await api.call("PUT", "/config", body=config)
    await api.wait_open("jwt")
    first = api.actor("jwt")
    other = api.actor("other")
    assert first.system.headers["Authorization"] == f"Bearer {OTHER}"

    assert await api.get("/systems/jwt/secrets") == []
    put = await api.call("PUT", "/systems/jwt/secrets", body={"token": SECRET, "spare": "x"})
    assert put == {"system": "jwt", "secrets": ["spare", "token"]}
    second = await api.wait_open("jwt")
    assert api.actor("jwt") is not first and not first.system.is_open  # restarted with its own value
    assert second.headers["Authorization"] == f"Bearer {SECRET}"
    assert api.actor("other") is other and other.system.headers["X"] == OTHER  # the global one, untouched

    merged = await api.call("POST", "/systems/jwt/secrets", body={"more": "y"})
    assert merged["secrets"] == ["more", "spare", "token"]
    assert await api.get("/systems/jwt/secrets") == ["more", "spare", "token"]
    replaced = await api.call("PUT", "/systems/jwt/secrets", body={"more": "z"})
    assert replaced["secrets"] == ["more"]
    assert (await api.wait_open("jwt")).headers["Authorization"] == f"Bearer {OTHER}"  # back to the global
    await api.call("PUT", "/systems/jwt/secrets", body={"token": SECRET, "more": "z"})
    deleted = await api.call("DELETE", "/systems/jwt/secrets/token")
    assert deleted == {"deleted": "token", "system": "jwt", "secrets": ["more"]}
    await api.call("DELETE", "/systems/jwt/secrets/token", 404)
    await api.call("POST", "/systems/jwt/secrets", body={"token": SECRET})

    # nothing shows the values: systems, their config, status, logs, the whole config, errors
    await api.wait_open("jwt")
    for path in ("/systems", "/systems/jwt", "/systems/jwt/config", "/systems/jwt/status", "/systems/jwt/logs",
                 "/config", "/secrets", "/systems/jwt/secrets"):
        await api.get(path)
    bad = await api.call("PUT", "/systems/jwt/config", 400, body=url("jwt", worker_threads="$SECRET(token)"))
    assert "$SECRET(token)" in json.dumps(bad)
    api.assert_nothing_shown(SECRET, OTHER)

    # secrets of a system that does not exist: 404
    for method, path in (("GET", "/systems/nope/secrets"), ("PUT", "/systems/nope/secrets"),
                         ("POST", "/systems/nope/secrets"), ("DELETE", "/systems/nope/secrets/token")):
        response = await api.call(method, path, 404, body={"a": "b"} if method in ("PUT", "POST") else None)
        assert response["detail"] == "no system 'nope'"
    assert (await api.call("PUT", "/systems/jwt/secrets", 400, body=["x"]))["status"] == 400


async def test_a_system_secret_makes_a_forced_system_valid(api: Api) -> None:
    config = [url("web", authentication="basic", username="u", password="$SECRET(pw)")]
    refused = await api.call("PUT", "/config", 400, body=config)
    assert "undefined secret 'pw'" in json.dumps(refused)
    await api.call("PUT", "/config", body=config, force="true")
    assert (await api.get("/systems/web/status"))["running"] is False
    await api.call("PUT", "/systems/web/secrets", body={"pw": SECRET})
    await api.wait_open("web")
    assert (await api.get("/systems/web"))["runtime"]["is-valid-config"] is True
    assert api.actor("web").system.auth is not None


async def test_status_logs_and_reload(api: Api) -> None:
    await api.call("PUT", "/config", body=[url("web"), url("bad", read_timeout=-1)], force="true")
    await api.wait_open("web")
    status = await api.get("/systems/web/status")
    assert status["running"] is True and status["state"] == "open" and status["opens"] == 1
    assert status["actor-state"] == "running" and status["restarts"] == 0 and status["error"] is None
    bad = await api.get("/systems/bad/status")
    assert bad["running"] is False and bad["state"] == "invalid-config" and bad["is-valid-config"] is False
    await api.get("/systems/nope/status", 404)

    actor = api.actor("web")
    reloaded = await api.call("POST", "/systems/web/reload", 202)
    assert reloaded["_id"] == "web"
    with trio.fail_after(5):
        while actor.status.opens < 2 or actor.status.state != "open":
            await trio.sleep(0.01)
    assert api.actor("web") is actor  # the same actor, its clients and pools made anew
    assert "invalid config" in (await api.call("POST", "/systems/bad/reload", 409))["detail"]
    await api.call("POST", "/systems/nope/reload", 404)

    logs = await api.get("/systems/web/logs")
    lines = logs.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "config applied: starting", "opening its clients and pools (system:url)",
        "reload requested: closing and reopening its clients and pools"]
    assert all(line.split(" ")[1] == "INFO" for line in lines)
    stamp = lines[1].split(" ")[0]
    assert stamp.endswith("Z") and "T" in stamp
    assert (await api.get("/systems/web/logs", since=stamp)).splitlines() == lines[2:]
    assert await api.get("/systems/web/logs", since="2999-01-01T00:00:00+00:00") == ""
    assert "ISO 8601" in (await api.get("/systems/web/logs", 400, since="yesterday"))["detail"]
    assert "config invalid, not started" in await api.get("/systems/bad/logs")
    await api.get("/systems/nope/logs", 404)

    # the listing takes Sesam's parameters (sesamd has no internal systems and no storage breakdown)
    listed = await api.get("/systems", **{"include-internal-systems": "true", "verbose": "true"})
    assert [s["_id"] for s in listed] == ["bad", "web"]


class FlakyActor(SystemActor):
    """Crashes on its first run, with a secret value in the error."""

    runs = 0

    async def run(self, mailbox: Any) -> None:
        FlakyActor.runs += 1
        if FlakyActor.runs == 1:
            raise RuntimeError(f"could not connect with {SECRET}")
        await super().run(mailbox)


async def test_a_crash_is_logged_without_secret_values(api: Api) -> None:
    api.node.systems._make_actor = FlakyActor
    await api.call("PUT", "/config", body=[url("web", headers={"X": "$SECRET(x)"})], force="true")
    await api.call("PUT", "/systems/web/secrets", body={"x": SECRET})
    await api.wait_open("web")  # after the supervisor's restart
    logs = await api.get("/systems/web/logs")
    assert "ERROR crashed: RuntimeError: could not connect with $SECRET(x)" in logs
    assert "WARNING restarted by its supervisor (restart 1)" in logs
    status = await api.get("/systems/web/status")
    assert status["running"] is True and status["restarts"] == 1 and "$SECRET(x)" in status["error"]
    api.assert_nothing_shown(SECRET)
