"""The command line on a data directory a running node holds: one line naming the node, no LevelDB traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sesamd.testing import Daemon, serve_process


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    with serve_process(tmp_path / "data") as server:
        response = httpx.post(server.url + "/datasets/people/entities", json=[{"_id": "1"}], headers=server.headers)
        assert response.status_code == 200, response.text
        yield server
        assert server.terminate() == 0


def sesamd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sesamd._cli", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["dataset", "list"], ["dataset", "check", "people"],
                                     ["dataset", "export", "people"], ["serve", "--port", "0"]])
def test_a_held_data_directory_is_named_with_the_nodes_pid(daemon: Daemon, command: list[str]) -> None:
    done = sesamd(*command, "--data-dir", str(daemon.data_dir))
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"sesamd: error: the data directory {daemon.data_dir} is in use by a running node (pid {daemon.process.pid});"
        " stop it first, or read through its API: GET /api/datasets, GET /api/datasets/NAME/entities")
    assert done.stdout == ""
