"""Structured log lines (logfmt, JSON) with pipe and run ids, the feed's log events beside them, and logger
levels changed through ``GET|PUT /api/logging``."""

from __future__ import annotations

import io
import json
import logging
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from sesamd import _logging
from sesamd._feed import FeedFilter
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient, logging_restored, serve_process


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and every logger's level after the test."""
    with logging_restored():
        yield


def logfmt(line: str) -> dict[str, str]:
    """A logfmt line's pairs (shlex reads the quoted values; the escapes are those of shlex's posix mode)."""
    pairs = shlex.split(line)
    return dict(pair.split("=", 1) for pair in pairs)


def test_logfmt_lines_carry_pipe_and_run(root_logging: None) -> None:
    out = io.StringIO()
    _logging.configure(stream=out)
    _logging.runs.observe({"type": "pump-started", "pipe": "orders", "run": "2024-01-31T12:00:00.000001Z"})
    log = logging.getLogger("actors.pump")
    log.info("pump %s: offset %s -> %s", "orders", 3, 9)
    log.warning("no pipe here = \"quoted\"", extra={"batch": 7})
    log.debug("below the level")
    first, second = out.getvalue().splitlines()
    fields = logfmt(first)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["ts"])
    assert fields["level"] == "info" and fields["logger"] == "actors.pump"
    assert fields["msg"] == "pump orders: offset 3 -> 9"
    assert fields["pipe"] == "orders" and fields["run"] == "2024-01-31T12:00:00.000001Z"
    fields = logfmt(second)
    assert fields["msg"] == 'no pipe here = "quoted"' and fields["batch"] == "7" and "pipe" not in fields


def test_json_lines_and_exceptions(root_logging: None) -> None:
    out = io.StringIO()
    _logging.configure("json", "debug", stream=out)
    log = logging.getLogger("sesamd.node")
    log.debug("pipe %s: loaded", "people", extra={"pipe": "people"})
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("it broke")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "debug" and first["pipe"] == "people" and first["msg"] == "pipe people: loaded"
    assert second["level"] == "error" and "ValueError: bad value" in second["exc"]


def test_configure_replaces_its_handler_and_refuses_bad_settings(root_logging: None) -> None:
    _logging.configure(stream=io.StringIO())
    _logging.configure("json", stream=io.StringIO())
    installed = [h for h in logging.getLogger().handlers if h.get_name() == _logging.HANDLER_NAME]
    assert len(installed) == 1 and isinstance(installed[0].formatter, _logging.JsonFormatter)
    with pytest.raises(_logging.LoggingError, match="unknown format 'xml'"):
        _logging.configure("xml")
    with pytest.raises(_logging.LoggingError, match="unknown level 'loud'"):
        _logging.configure(level="loud")


async def test_the_same_records_feed_the_event_feed(tmp_path: Path, root_logging: None) -> None:
    out = io.StringIO()
    _logging.configure(stream=out)
    async with open_node(tmp_path) as node:
        subscription = node.feed.subscribe(FeedFilter(types=frozenset({"log"})))
        logging.getLogger("actors.pump").warning("pump %s: something odd", "people")
        with trio.fail_after(10):
            entry = await subscription.receive()
    assert entry.event["message"] == "pump people: something odd" and entry.event["pipe"] == "people"
    assert 'msg="pump people: something odd" pipe=people' in out.getvalue()


async def test_levels_change_at_run_time_through_the_api(tmp_path: Path, root_logging: None) -> None:
    logging.getLogger().setLevel(logging.INFO)
    async with open_node(tmp_path) as node:
        app = create_app(node)
        client = TokenClient(app)
        response = await client.get("/api/logging")
        assert response.status_code == 200 and (await response.get_json())["root"] == "info"
        response = await client.put("/api/logging", json={"actors.pump": "debug", "sesamd.node": "WARNING"})
        body = await response.get_json()
        assert response.status_code == 200, body
        assert body["actors.pump"] == "debug" and body["sesamd.node"] == "warning"
        assert logging.getLogger("actors.pump").isEnabledFor(logging.DEBUG)
        response = await client.put("/api/logging", json={"actors.pump": None})
        assert "actors.pump" not in await response.get_json()
        assert not logging.getLogger("actors.pump").isEnabledFor(logging.DEBUG)

        response = await client.put("/api/logging", json={"sesamd.pump": "debug", "actors.pump": "debug"})
        body = await response.get_json()
        assert response.status_code == 400 and "sesamd.pump: no such logger" in body["detail"]
        assert body["field"] == "sesamd.pump"
        assert logging.getLogger("actors.pump").level == logging.NOTSET  # all or nothing
        response = await client.put("/api/logging", json={"actors.pump": "loud"})
        body = await response.get_json()
        assert response.status_code == 400 and "actors.pump: unknown level 'loud'" in body["detail"]
        response = await client.put("/api/logging", json=["actors.pump"])
        assert response.status_code == 400
        response = await TokenClient(app, "developer").put("/api/logging", json={"actors.pump": "debug"})
        assert response.status_code == 403


def test_a_served_node_logs_json_lines_with_pipe_and_run(tmp_path: Path) -> None:
    failing = {"_id": "broken", "type": "pipe", "pump": {"mode": "manual"},
               "source": {"type": "embedded", "entities": [{"_id": "x"}]},
               "transform": {"type": "dtl", "rules": {"default": [["fail!", "always broken"]]}}}
    with serve_process(tmp_path / "data", "--log-format", "json") as daemon:
        assert httpx.put(daemon.url + "/config", json=[failing], headers=daemon.headers).status_code == 200
        started = httpx.post(daemon.url + "/pipes/broken/pump", data={"operation": "start"}, headers=daemon.headers)
        assert started.status_code == 200
        deadline = time.monotonic() + 30
        while (runtime := httpx.get(daemon.url + "/pipes/broken/pump", headers=daemon.headers).json()["runtime"]) \
                ["success"] is not False:
            assert time.monotonic() < deadline, runtime
            time.sleep(0.02)
        run = runtime["last-started"]
        assert daemon.terminate() == 0
    lines = [json.loads(line) for line in daemon.log.read_text().splitlines() if line.startswith("{")]
    failed = [line for line in lines if line.get("pipe") == "broken" and "run failed" in line["msg"]]
    assert failed and failed[0]["level"] == "warning" and failed[0]["run"] == run
