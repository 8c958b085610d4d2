"""``sesamd top``: the view's model (pipes and events in, rows out), its table, and the command against a real
``sesamd serve`` (``--once``, the live loop on a captured terminal, errors)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from rich.console import Console

from sesamd._top import Row, TopModel, render, watch
from sesamd.testing import Daemon, serve_with_config

PIPES = [
    {"_id": "people", "runtime": {"is-running": False, "is-disabled": False, "is-valid-config": True,
                                  "success": True, "last-run": "2024-01-31T12:00:00.000000Z",
                                  "queues": {"source": 0, "dependencies": {}}}},
    {"_id": "shout", "runtime": {"is-running": False, "is-disabled": False, "is-valid-config": True,
                                 "success": None, "last-run": None, "queues": {"source": 5, "dependencies": {}}}},
    {"_id": "bad", "runtime": {"is-running": False, "is-disabled": False, "is-valid-config": True, "success": False,
                               "last-original-error-message": "DTL fail!: no b\nmore", "queues": {"source": 0}}},
]


def test_the_model_turns_pipes_and_events_into_rows() -> None:
    model = TopModel()
    model.load_pipes(PIPES)
    assert not model.stale
    assert [(r.pipe, r.state, r.lag, r.last_error) for r in model.rows()] == [
        ("bad", "failed", 0, "DTL fail!: no b"), ("people", "ok", 0, None), ("shout", "never run", 5, None)]
    model.apply({"type": "pump-started", "pipe": "shout", "seq": 4})
    model.apply({"type": "pump-progress", "pipe": "shout", "rate": 250.0, "seq": 5})
    assert model.row("shout") == Row("shout", "running", 250.0, 5, running=True)
    model.apply({"type": "pump-completed", "pipe": "shout", "processed": 5, "total_time": 0.5,
                 "end_time": "2024-01-31T12:01:00.000000Z", "seq": 7})
    shout = model.row("shout")
    assert shout is not None and (shout.state, shout.rate, shout.lag, shout.last_run) == (
        "ok", 10.0, 0, "2024-01-31T12:01:00.000000Z")
    assert model.stale and model.seq == 7  # the lag after a run comes with the next read of the pipes
    model.apply({"type": "pump-failed", "pipe": "people", "error": "Pump failed: boom", "total_time": 0.1,
                 "end_time": "2024-01-31T12:02:00.000000Z"})
    model.apply({"type": "pump-disabled", "pipe": "bad"})
    states = {r.pipe: (r.state, r.last_error) for r in model.rows()}
    assert states == {"bad": ("disabled", "DTL fail!: no b"), "people": ("failed", "Pump failed: boom"),
                      "shout": ("ok", None)}
    model.load_pipes(PIPES[:2])  # a pipe removed, a lag read again; what the events said stays
    assert [r.pipe for r in model.rows()] == ["people", "shout"] and model.row("shout").rate == 10.0
    model.apply({"type": "pump-started", "pipe": "new"})
    assert model.stale and model.row("new").state == "running"
    model.stale = False
    model.apply({"type": "config-applied", "added": ["other"]})
    assert model.stale


def test_the_table_shows_each_row() -> None:
    model = TopModel()
    model.load_pipes(PIPES)
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(render(model.rows(), node="http://n/api", now=datetime(2024, 1, 31, 12, 0, 30, tzinfo=UTC)))
    text = console.file.getvalue()
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│")}
    assert "sesamd top http://n/api" in text
    assert "ok" in lines["people"] and "30s ago" in lines["people"]
    assert "never run" in lines["shout"] and " 5 " in lines["shout"]
    assert "failed" in lines["bad"] and "DTL fail!: no b" in lines["bad"]


CONFIG = [
    {"_id": "people", "type": "pipe", "pump": {"mode": "manual"},
     "source": {"type": "embedded", "entities": [{"_id": str(i)} for i in range(5)]}},
    {"_id": "shout", "type": "pipe", "pump": {"mode": "manual"},
     "source": {"type": "dataset", "dataset": "people", "supports_signalling": False}},
    {"_id": "broken", "type": "pipe", "pump": {"mode": "manual"},
     "source": {"type": "embedded", "entities": [{"_id": "x"}]},
     "transform": {"type": "dtl", "rules": {"default": [["fail!", "always broken"]]}}},
]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with serve_with_config(tmp_path / "data", CONFIG) as server:
        yield server


def run(daemon: Daemon, pipe_id: str) -> None:
    response = httpx.post(f"{daemon.url}/pipes/{pipe_id}/pump", data={"operation": "start"}, headers=daemon.headers)
    assert response.status_code == 200, response.text
    while httpx.get(f"{daemon.url}/pipes/{pipe_id}/pump", headers=daemon.headers).json()["runtime"]["is-running"]:
        time.sleep(0.02)


def top(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("SESAMD_TOKEN", "SESAMD_NODE")}
    return subprocess.run([sys.executable, "-m", "sesamd._cli", "top", *args], capture_output=True, text=True,
                          timeout=60, env={**environ, "COLUMNS": "150", **(env or {})})


def test_once_prints_a_snapshot_of_a_real_node(daemon: Daemon) -> None:
    run(daemon, "people")
    run(daemon, "broken")
    done = top("--once", "--node", daemon.url, env={"SESAMD_TOKEN": daemon.token})
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│")}
    assert set(lines) == {"people", "shout", "broken"}
    assert "ok" in lines["people"] and "s ago" in lines["people"]
    assert "never run" in lines["shout"] and " 5 " in lines["shout"]  # five entities to read
    assert "failed" in lines["broken"] and "always broken" in lines["broken"]


def test_errors_are_one_line(daemon: Daemon, tmp_path: Path) -> None:
    bad = top("--once", "--node", daemon.url, "--token", "not-a-token")
    assert bad.returncode == 2 and bad.stderr.startswith("sesamd: error: the node at ")
    assert "refused the token (401)" in bad.stderr and len(bad.stderr.splitlines()) == 1
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    refused = top("--once", "--node", f"http://127.0.0.1:{port}/api", "--token", daemon.token)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert refused.stderr.startswith(f"sesamd: error: cannot reach the node at http://127.0.0.1:{port}/api")
    missing = top("--once", "--node", daemon.url)
    assert missing.returncode == 2 and "no token: give --token or set SESAMD_TOKEN" in missing.stderr


async def test_the_live_view_updates_in_place(daemon: Daemon) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system=None)

    def shout_ran(model: TopModel) -> bool:
        row = model.row("shout")
        return row is not None and row.state == "ok" and row.lag == 0

    async def start_runs() -> None:
        async with httpx.AsyncClient(headers=daemon.headers) as client:
            for pipe_id in ("people", "shout"):
                await trio.sleep(0.2)
                response = await client.post(f"{daemon.url}/pipes/{pipe_id}/pump", data={"operation": "start"})
                assert response.status_code == 200, response.text

    model: Any = None
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(start_runs)
            model = await watch(daemon.url, daemon.token, console, refresh=0.2, until=shout_ran)
    assert shout_ran(model)
    text = out.getvalue()
    assert "\x1b[" in text  # drawn in place on a terminal (cursor movements)
    assert text.count("sesamd top") >= 2  # redrawn
    last = text.rsplit("sesamd top", 1)[1]
    assert "shout" in last and "ok" in last
