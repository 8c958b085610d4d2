"""The client library against a real ``sesamd serve``: the domain methods of :class:`Connection` (config as
JSON and zip, env, pipes, pumps, receivers, entities, publishers, datasets, status) and the verify core's
contract kept by :class:`NodeOutput`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sesamd.client import ApiError, AuthError, ConfigRejected, Connection, ConnectionFailed
from sesamd.client._commands.verify import NodeOutput
from sesamd.client.testing import check_output_reader
from sesamd.testing import Daemon, serve_process

CONFIG = [
    {"_id": "people", "type": "pipe", "source": {"type": "http_endpoint"}},
    {"_id": "people-out", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "greeting",
                                                                         ["concat", "Hi ", "_S.name"]]]}},
     "sink": {"type": "http_endpoint"}},
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with serve_process(tmp_path_factory.mktemp("node") / "data") as running:
        yield running


@pytest.fixture
def node(daemon: Daemon) -> Iterator[Connection]:
    with Connection(daemon.url, daemon.token) as connection:
        connection.put_config([], force=True)
        connection.put_env({})
        yield connection


def test_the_node_is_in_developer_mode_and_has_a_start_time(node: Connection) -> None:
    assert node.api_info()["status"]["developer_mode"] is True
    assert node.status()["node_start_time"]


def test_config_goes_up_as_json_or_zip_and_comes_back_as_either(node: Connection) -> None:
    assert node.put_config(CONFIG)["validation_errors"] == []
    assert [e["_id"] for e in node.config()] == ["people", "people-out"]
    with zipfile.ZipFile(io.BytesIO(node.config_zip())) as archive:
        names = sorted(archive.namelist())
        assert names == ["pipes/people-out.conf.json", "pipes/people.conf.json"]
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as again:
            for name in names[1:]:
                again.writestr(name, archive.read(name))
    node.put_config(zipped.getvalue())
    assert [e["_id"] for e in node.config()] == ["people"]


def test_a_refused_config_carries_the_validation_errors(node: Connection) -> None:
    with pytest.raises(ConfigRejected) as refused:
        node.put_config([{"_id": "broken", "type": "pipe", "source": {"type": "no-such-source"}}])
    assert refused.value.status == 400
    [item] = refused.value.validation_errors
    assert item["posted-config"]["_id"] == "broken"
    assert any(error["level"] == "error" for error in item["config-errors"])


def test_env_is_replaced_and_read(node: Connection) -> None:
    node.put_env({"node-env": "test", "n": 1})
    assert node.env() == {"node-env": "test", "n": 1}
    node.post_env({"extra": "x"})
    assert node.env()["extra"] == "x"


def test_pipes_pumps_receivers_entities_and_datasets(node: Connection) -> None:
    node.put_config(CONFIG)
    assert {p["_id"] for p in node.pipes()} >= {"people", "people-out"}
    assert node.pipe("people")["config"]["effective"]["sink"]["dataset"] == "people"
    assert node.pipe("no-such-pipe") is None
    node.receive("people", [{"_id": "1", "name": "Ann"}, {"_id": "2", "name": "Bo"}])
    assert node.dataset("people") is not None and node.dataset("no-such-dataset") is None
    assert [e["_id"] for e in node.dataset_entities("people", history=False, limit=10)] == ["1", "2"]
    assert {e["_id"]: e["greeting"] for e in node.pipe_entities("people-out")} == {"1": "Hi Ann", "2": "Hi Bo"}
    assert [e["_id"] for e in node.pipe_entities("people-out", stage="source")] == ["1", "2"]
    assert node.pump_operation("people-out", "disable")["runtime"]["is-disabled"] is True
    assert node.pump("people-out")["runtime"]["is-disabled"] is True
    body = NodeOutput(node).publisher("people-out", "entities", None)
    assert b"Hi Ann" in body
    assert node.pump("people-out")["runtime"]["is-disabled"] is False
    assert "people" in {d["_id"] for d in node.datasets()}
    node.delete_dataset("people")
    assert node.dataset("people") is None


def test_node_output_keeps_the_output_reader_contract(node: Connection) -> None:
    node.put_config(CONFIG)
    node.receive("people", {"_id": "1", "name": "Ann"})
    check_output_reader(NodeOutput(node), "people-out")


def test_errors_are_one_line_client_errors(daemon: Daemon, tmp_path: Path) -> None:
    with Connection(daemon.url, daemon.token) as node, pytest.raises(ApiError) as missing:
        node.pump("no-such-pipe")
    assert missing.value.status == 404 and "\n" not in str(missing.value)
    with Connection(daemon.url, "a.b.c") as stranger, pytest.raises(AuthError, match="401"):
        stranger.env()
    with Connection("http://127.0.0.1:1", daemon.token) as nowhere, pytest.raises(ConnectionFailed) as refused:
        nowhere.api_info()
    assert refused.value.transient and "cannot reach the node at http://127.0.0.1:1/api" in str(refused.value)
