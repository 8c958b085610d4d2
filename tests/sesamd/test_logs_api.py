"""The log files: the daemon's rotating ``node.log`` (``log_dir``), ``GET /api/logs`` listing them,
``GET /api/logs/{log_id}`` streaming one, and ``POST /api/logs`` changing a level."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sesamd import _logging, _settings
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient, logging_restored, serve_process


@pytest.fixture
def root_logging() -> Iterator[None]:
    with logging_restored():
        yield


@pytest.fixture
async def client(tmp_path: Path, root_logging: None) -> AsyncIterator[TokenClient]:
    async with open_node(tmp_path / "data") as node:
        yield TokenClient(create_app(node))


def test_the_file_handler_writes_the_same_lines_and_rotates(tmp_path: Path, root_logging: None) -> None:
    logging.getLogger().setLevel(logging.INFO)
    directory = _logging.configure_file(tmp_path / "logs", "json", max_bytes=300, backups=2)
    assert _logging.log_directory() == tmp_path / "logs"
    log = logging.getLogger("sesamd.test")
    for number in range(12):
        log.info("line %d of a test that fills the file", number)
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["node.log", "node.log.1", "node.log.2"]  # two rotated files kept, the oldest dropped
    last = (directory / "node.log").read_text().splitlines()[-1]
    assert '"msg":"line 11 of a test that fills the file"' in last and '"logger":"sesamd.test"' in last
    _logging.configure_file(directory)  # again: one file handler, not two
    installed = [h for h in logging.getLogger().handlers if h.get_name() == _logging.FILE_HANDLER_NAME]
    assert len(installed) == 1
    _logging.stop_file()
    assert _logging.log_directory() is None


def test_a_directory_where_no_file_can_be_written_is_an_error(tmp_path: Path, root_logging: None) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(_logging.LoggingError, match=r"cannot write .*a-file/logs/node\.log"):
        _logging.configure_file(blocker / "logs")
    with pytest.raises(_logging.LoggingError, match="unknown format 'xml'"):
        _logging.configure_file(tmp_path, "xml")


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "DATA/logs"), ({"SESAMD_LOG_DIR": "/var/log/sesamd"}, "/var/log/sesamd"),
    ({"SESAMD_LOG_DIR": ""}, None), ({"SESAMD_LOG_DIR": "OFF"}, None)])
def test_the_log_directory_setting(environ: dict[str, str], expected: str | None) -> None:
    effective = _settings.resolve({"data_dir": "DATA"}, environ=environ)
    found = _settings.log_directory(effective)
    assert (None if found is None else str(found)) == expected
    assert (effective["log_file_mb"], effective["log_file_count"]) == (10, 5)


def test_a_log_dir_in_the_file_must_be_a_string(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("log_dir = 3\n")
    with pytest.raises(_settings.SettingsError, match=r"log_dir: must be a directory, or \"\" or 'off'"):
        _settings.resolve(settings=str(toml), environ={})


async def test_the_listing_and_one_file_through_the_api(client: TokenClient, tmp_path: Path) -> None:
    directory = _logging.configure_file(tmp_path / "logs")
    logging.getLogger("sesamd.test").warning("a line for the log file")
    (directory / "node.log.1").write_text("an older line\n")
    (directory / ".hidden").write_text("not listed\n")
    (directory / "sub").mkdir()
    (directory / "link").symlink_to(tmp_path / "data" / "node" / "CURRENT")
    os.utime(directory / "node.log.1", (1_000_000_000, 1_000_000_000))
    response = await client.get("/api/logs")
    listing = await response.get_json()
    assert response.status_code == 200, listing
    assert [entry["_id"] for entry in listing] == ["node.log", "node.log.1"]  # newest first; no link, dir, dot
    current = listing[0]
    assert current["id"] == current["name"] == "node.log" and current["type"] == "log"
    assert current["size"] == (directory / "node.log").stat().st_size > 0
    assert listing[1]["modified"] == "2001-09-09T01:46:40.000000Z" and listing[1]["size"] == 14

    response = await client.get("/api/logs/node.log")
    assert response.status_code == 200 and response.content_type == "text/plain; charset=utf-8"
    assert 'msg="a line for the log file"' in (await response.get_data()).decode()
    response = await client.get("/api/logs/node.log.1")
    assert await response.get_data() == b"an older line\n"


@pytest.mark.parametrize("log_id", ["..%2Fdata%2Fnode%2FCURRENT", "../data/node/CURRENT", "link", "sub",
                                    "node.log%00", ".hidden", "nothing.log", "sub%2F..%2Fnode.log"])
async def test_an_id_the_listing_does_not_give_is_a_404_naming_it(client: TokenClient, tmp_path: Path,
                                                                    log_id: str) -> None:
    directory = _logging.configure_file(tmp_path / "logs")
    (directory / ".hidden").write_text("secret\n")
    (directory / "sub").mkdir()
    (directory / "link").symlink_to(tmp_path / "data" / "node" / "CURRENT")
    response = await client.get(f"/api/logs/{log_id}")
    body = await response.get_json()
    assert response.status_code == 404, body
    assert body["detail"].startswith("no log file '") and "(known: node.log)" in body["detail"]
    assert repr(body["log_id"]) in body["detail"]


async def test_without_a_file_handler_there_are_no_log_files(client: TokenClient) -> None:
    _logging.stop_file()
    response = await client.get("/api/logs")
    assert response.status_code == 200 and await response.get_json() == []
    response = await client.get("/api/logs/node.log")
    assert response.status_code == 404
    assert (await response.get_json())["detail"] == "no log file 'node.log' (known: none)"


async def test_post_logs_sets_a_level_through_the_logging_logic(client: TokenClient) -> None:
    logging.getLogger("actors.pump")
    response = await client.post("/api/logs", form={"loglevel": "DEBUG", "logger_name": "actors.pump"})
    assert response.status_code == 200 and await response.get_json() == {"msg": "Log level updated"}
    assert logging.getLogger("actors.pump").level == logging.DEBUG
    response = await client.get("/api/logging")
    assert (await response.get_json())["actors.pump"] == "debug"  # the same levels PUT /logging sets
    response = await client.post("/api/logs", form={"loglevel": "warning"})
    assert response.status_code == 200 and logging.getLogger().level == logging.WARNING  # no name: the root


@pytest.mark.parametrize(("form", "detail"), [
    ({"loglevel": "loud"}, "POST /logs: root: unknown level 'loud'"),
    ({"loglevel": "info", "logger_name": "no.such.logger.here"}, "POST /logs: no.such.logger.here: no such logger"),
    ({}, "POST /logs: the form field 'loglevel' is required"),
])
async def test_post_logs_refuses_a_bad_level_or_logger(client: TokenClient, form: dict[str, str],
                                                       detail: str) -> None:
    before = logging.getLogger().level
    response = await client.post("/api/logs", form=form)
    body = await response.get_json()
    assert response.status_code == 400 and body["detail"].startswith(detail), body
    assert logging.getLogger().level == before


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/logs"), ("GET", "/api/logs/node.log"),
                                              ("POST", "/api/logs")])
async def test_the_log_routes_are_for_admins(client: TokenClient, method: str, path: str) -> None:
    developer = TokenClient(client.app, "developer")
    response = await developer.open(path, method=method, form={"loglevel": "debug"} if method == "POST" else None)
    assert response.status_code == 403
    response = await TokenClient(client.app, None).open(path, method=method)
    assert response.status_code == 401


def test_a_served_node_writes_node_log_and_lists_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with serve_process(tmp_path / "data", "--log-dir", str(logs), "--log-format", "json") as daemon:
        listing: Any = httpx.get(daemon.url + "/logs", headers=daemon.headers).json()
        assert [entry["_id"] for entry in listing] == ["node.log"], listing
        assert httpx.post(daemon.url + "/logs", data={"loglevel": "debug"}, headers=daemon.headers).status_code == 200
        assert daemon.terminate() == 0
    lines = (logs / "node.log").read_text().splitlines()
    assert any('"msg":"stopped"' in line for line in lines), lines
    with serve_process(tmp_path / "data2", "--log-dir", "off") as daemon:
        assert httpx.get(daemon.url + "/logs", headers=daemon.headers).json() == []
        assert daemon.terminate() == 0
    assert not (tmp_path / "data2" / "logs").exists()
