"""Config through the API: exactly as uploaded, groups, zip, history, per-entity checks, metadata, admin."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient


def embedded(pipe_id: str, entities: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities or []}, **extra}


class Client:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.http = TokenClient(create_app(node))

    async def call(self, method: str, path: str, status: int = 200, *, raw: bool = False, **kwargs: Any) -> Any:
        response = await self.http.open("/api" + path, method=method, **kwargs)
        body = await response.get_data()
        assert response.status_code == status, body
        self.response = response
        return body if raw else json.loads(body)

    async def put_config(self, body: Any, status: int = 200, path: str = "/config", **params: Any) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.call("PUT", path, status, data=data, headers={"Content-Type": "application/json"},
                               query_string=params)


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Client]:
    async with open_node(tmp_path) as node:
        yield Client(node)


async def test_the_config_comes_back_exactly_as_uploaded_in_upload_order(api: Client) -> None:
    raw = (b'[{"_id": "zeta", "type": "pipe", "source": {"type": "embedded", "entities": '
           b'[{"_id": "1", "price": 22.10, "code": "~f22.1", "tilde": "~x", "big": 1e5}]}},'
           b' {"_id": "node", "type": "metadata"}, {"_id": "alpha", "type": "pipe", '
           b'"source": {"type": "embedded", "entities": []}}]')
    await api.put_config(raw)
    text = (await api.call("GET", "/config", raw=True)).decode()
    assert [e["_id"] for e in json.loads(text)] == ["zeta", "node", "alpha"]
    assert '"price": 22.10' in text and '"code": "~f22.1"' in text and '"tilde": "~x"' in text
    assert '"big": 1e5' in text
    config = await api.call("GET", "/pipes/zeta/config", raw=True)
    assert b'"code": "~f22.1"' in config and b'"price": 22.10' in config
    pipe = await api.call("GET", "/pipes/zeta")
    assert pipe["config"]["original"]["source"]["entities"][0]["code"] == "~f22.1"
    stored = api.node.datasets.get("zeta")
    assert stored is None  # (nothing ran yet)


async def test_force_keeps_every_entity_and_marks_the_invalid_ones(api: Client) -> None:
    config = [embedded("good"), {"_id": "odd", "type": "nonsense"},
              {"_id": "bad", "type": "pipe", "source": {"type": "dataset"}}]
    refused = await api.put_config(config, 400)
    assert {item["posted-config"]["_id"] for item in refused["validation_errors"]} == {"odd", "bad"}
    assert await api.call("GET", "/config") == []  # nothing applied
    kept = await api.put_config(config, force="true")
    items = {item["posted-config"]["_id"]: item for item in kept["validation_errors"]}
    assert items["odd"]["config-errors"][0]["elements"] == "$['type']"
    assert all(item["is-valid-config"] is False for item in items.values())
    assert [e["_id"] for e in await api.call("GET", "/config")] == ["good", "odd", "bad"]
    assert (await api.call("GET", "/pipes/bad"))["runtime"]["is-valid-config"] is False
    assert (await api.call("GET", "/pipes/good"))["runtime"]["is-valid-config"] is True
    # another pipe's error is no reason to refuse an edit, an addition or a deletion of this one
    await api.call("PUT", "/pipes/good/config", json=embedded("good", [{"_id": "1"}]))
    assert (await api.call("GET", "/pipes/good/config"))["source"]["entities"] == [{"_id": "1"}]
    await api.call("POST", "/pipes", 201, json=[embedded("new")])
    await api.call("DELETE", "/pipes/new")
    assert [e["_id"] for e in await api.call("GET", "/config")] == ["good", "odd", "bad"]
    # ...but its own error is
    wrong = await api.call("PUT", "/pipes/good/config", 400, json={"type": "pipe", "source": {"type": "nope"}})
    assert wrong["validation_errors"][0]["posted-config"]["_id"] == "good"
    assert (await api.call("GET", "/pipes/good/config"))["source"]["entities"] == [{"_id": "1"}]


async def test_post_pipes_is_201_and_409_for_an_existing_id(api: Client) -> None:
    created = await api.call("POST", "/pipes", 201, json=[embedded("a"), embedded("b")])
    assert [p["_id"] for p in created] == ["a", "b"] and created[0]["runtime"]["is-valid-config"] is True
    clash = await api.call("POST", "/pipes", 409, json=[embedded("c"), embedded("a")])
    assert "'a'" in clash["detail"]
    assert [e["_id"] for e in await api.call("GET", "/config")] == ["a", "b"]
    invalid = await api.call("POST", "/pipes", 400, json=[{"_id": "d", "type": "pipe", "source": {"type": "x"}}])
    assert invalid["validation_errors"][0]["posted-config"]["_id"] == "d"
    not_pipe = await api.call("POST", "/pipes", 400, json=[{"_id": "s", "type": "system:url", "base_url": "x"}])
    assert "not a pipe" in not_pipe["detail"]


async def test_config_as_a_zip_both_ways(api: Client) -> None:
    config = [{"_id": "node", "type": "metadata"}, {"_id": "web", "type": "system:url", "base_url": "http://x"},
              embedded("p:1", [{"_id": "1", "v": 1.50}])]
    await api.put_config(config)
    data = await api.call("GET", "/config", raw=True, headers={"Accept": "application/zip"})
    assert api.response.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["node-metadata.conf.json", "pipes/p:1.conf.json",
                                              "systems/web.conf.json"]
        assert b'"v": 1.5\n' in archive.read("pipes/p:1.conf.json")
    await api.put_config([])
    await api.call("PUT", "/config", data=data, headers={"Content-Type": "application/zip"})
    assert await api.call("GET", "/config") == json.loads(json.dumps(config))
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("pipes/broken.conf.json", b'{"_id": ')
    refused = await api.call("PUT", "/config", 400, data=bad.getvalue(), headers={"Content-Type": "application/zip"})
    assert "pipes/broken.conf.json" in refused["detail"]
    garbage = await api.call("PUT", "/config", 400, data=b"PK\x03\x04garbage",
                             headers={"Content-Type": "application/zip"})
    assert "zip" in garbage["detail"]


def grouped(pipe_id: str, group: str) -> dict[str, Any]:
    return embedded(pipe_id, metadata={"$config-group": group})


async def test_config_groups_replace_only_their_own_entities(api: Client) -> None:
    await api.put_config([embedded("plain")])
    await api.put_config([grouped("g1", "team"), grouped("g2", "team")], path="/config/team")
    assert [e["_id"] for e in await api.call("GET", "/config")] == ["plain"]
    assert [e["_id"] for e in await api.call("GET", "/config/team")] == ["g1", "g2"]
    await api.put_config([embedded("other")])  # the default group only
    assert [e["_id"] for e in await api.call("GET", "/config-all")] == ["g1", "g2", "other"]
    await api.put_config([grouped("g3", "team")], path="/config/team")
    assert [e["_id"] for e in await api.call("GET", "/config-all")] == ["other", "g3"]
    wrong = await api.put_config([embedded("x")], 400, path="/config/team")
    assert "$config-group" in wrong["detail"]
    await api.put_config([embedded("only")], path="/config-all")
    assert [e["_id"] for e in await api.call("GET", "/config-all")] == ["only"]


async def test_config_history_keeps_every_accepted_version(api: Client) -> None:
    await api.put_config([embedded("p", [{"_id": "1"}])])
    await api.put_config([embedded("p", [{"_id": "2"}])])
    await api.put_config([embedded("p", [{"_id": "2"}])])  # unchanged: no new version
    await api.put_config([])
    versions = await api.call("GET", "/config-history/entity", query_string={"entity_id": "p"})
    assert [v.get("_deleted", False) for v in versions] == [False, False, True]
    assert versions[0]["source"]["entities"] == [{"_id": "1"}]
    newest = await api.call("GET", "/config-history/entity", query_string={"entity_id": "p", "reverse": "true",
                                                                           "limit": "1"})
    assert newest[0]["_deleted"] is True
    await api.call("GET", "/config-history/entity", 400)


async def test_metadata_on_its_own(api: Client) -> None:
    await api.put_config([embedded("p")])
    assert await api.call("GET", "/metadata") == {"_id": "node", "type": "metadata"}
    meta = await api.call("PUT", "/metadata", json={"global_defaults": {"use_signalling_internally": False}})
    assert meta == {"_id": "node", "type": "metadata", "global_defaults": {"use_signalling_internally": False}}
    assert [e["_id"] for e in await api.call("GET", "/config")] == ["node", "p"]
    await api.call("PUT", "/metadata", 400, json={"_id": "other"})
    await api.call("DELETE", "/metadata")
    assert [e["_id"] for e in await api.call("GET", "/config")] == ["p"]
    assert (await api.call("GET", ""))["status"]["developer_mode"] is True
    await api.call("PUT", "/metadata", json={"developer_mode": False})
    assert (await api.call("GET", "/"))["status"]["developer_mode"] is False
    refused = await api.call("POST", "/admin", 403, form={"operation": "reset"})
    assert "developer mode" in refused["detail"]


async def test_admin_restart_reset_and_load_config(api: Client) -> None:
    await api.put_config([embedded("p", [{"_id": "1"}])])
    await api.call("POST", "/pipes/p/pump", form={"operation": "start"})
    with trio.fail_after(10):
        while not (await api.call("GET", "/datasets"))[0:1]:
            await trio.sleep(0.02)
    before = (await api.call("GET", "/status"))["node_start_time"]
    assert await api.call("POST", "/admin", form={"operation": "restart"}) == {"message": "OK"}
    assert (await api.call("GET", "/status"))["node_start_time"] != before
    assert (await api.call("GET", "/pipes/p"))["runtime"]["actor-state"] in ("running", "starting")
    assert await api.call("POST", "/admin", form={"operation": "load_config"}) == {"message": "OK"}
    await api.call("PUT", "/env", json={"a": 1})
    assert await api.call("POST", "/admin", form={"operation": "reset"}) == {"message": "OK"}
    assert await api.call("GET", "/config") == []
    assert await api.call("GET", "/datasets") == []
    assert await api.call("GET", "/env") == {}
    unknown = await api.call("POST", "/admin", 400, form={"operation": "explode"})
    assert "restart" in unknown["detail"]


async def test_bad_bodies_are_400_naming_the_problem(api: Client) -> None:
    await api.put_config([embedded("p")])
    not_utf8 = b'[{"_id": "p\xff", "type": "pipe"}]'
    for method, path in (("PUT", "/config"), ("PUT", "/pipes/p/config"), ("PUT", "/env"), ("POST", "/pipes"),
                         ("PUT", "/metadata"), ("PUT", "/secrets")):
        body = await api.call(method, path, 400, data=not_utf8, headers={"Content-Type": "application/json"})
        assert "UTF-8" in body["detail"], (path, body)
    huge = await api.put_config(b"[-8.0e-15, null, 36026148821633209466880]", 400)  # beyond 64 bits: still JSON
    assert huge["validation_errors"][2]["posted-config"] == 36026148821633209466880
    invalid = await api.call("PUT", "/pipes/p/config", 400, data=b"{", headers={"Content-Type": "application/json"})
    assert "not valid JSON" in invalid["detail"]
    for pump in ({"schedule_interval": -5}, {"cron_expression": "61 * * * *"}):
        refused = await api.put_config([embedded("s", pump=pump)], 400)
        assert "pump" in refused["validation_errors"][0]["config-errors"][0]["msg"]
