"""A node over a dataset with damaged LevelDB files: the damaged one is named and refused, the rest served.

Datasets are written by a real node, which is then stopped; the test damages files (random bytes in the middle
of a table, a truncated MANIFEST) and starts a node again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sesamd.testing import Daemon, run_pipe_over_http, serve_process

SMALL_BUFFER = ("--dataset-write-buffer-mb", "1")  # so that the entities reach table files
COPY = {"_id": "copy", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "bad"}}


def entity(i: int) -> dict[str, str]:
    return {"_id": str(i), "v": hashlib.sha256(str(i).encode()).hexdigest()}


def seed(data_dir: Path) -> None:
    with serve_process(data_dir, *SMALL_BUFFER) as daemon:
        client = httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30)
        for name in ("good", "bad"):
            for k in range(5):
                batch = [entity(i) for i in range(k * 2000, (k + 1) * 2000)]
                response = client.post(f"/datasets/{name}/entities", json=batch)
                assert response.status_code == 200, response.text
        assert client.put("/config", json=[COPY]).status_code == 200
        client.close()
        assert daemon.terminate() == 0


def damage_table(path: Path) -> None:
    """Bytes overwritten in the middle of every table file (whichever LevelDB reads first meets them)."""
    tables = list(path.glob("*.ldb"))
    assert tables, f"no table file in {path}: {sorted(os.listdir(path))}"
    for table in tables:
        with table.open("r+b") as f:
            f.seek(table.stat().st_size // 2)
            f.write(b"\xff" * 4096)  # (not random: the same damage every time)


def truncate_manifest(path: Path) -> None:
    manifest = next(path.glob("MANIFEST-*"))
    with manifest.open("r+b") as f:
        f.truncate(20)  # into its first record


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    seed(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def client_of() -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def make(daemon: Daemon) -> httpx.Client:
        clients.append(httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def check(data_dir: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sesamd._cli", "dataset", "check", name, "--data-dir",
                           str(data_dir)], capture_output=True, text=True)


def test_a_damaged_table_breaks_the_stream_detectably_and_the_dataset_is_refused(seeded: Path,
                                                                                client_of: Any) -> None:
    damage_table(seeded / "datasets" / "bad")
    with serve_process(seeded) as daemon:
        client = client_of(daemon)
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", "/datasets/bad/entities") as response:
            assert response.status_code == 200  # the headers went out before the damage was met
            body = b"".join(response.iter_bytes())
            json.loads(body)  # (not reached: the body is cut off)
        listed = {d["_id"]: d["runtime"] for d in client.get("/datasets").json()}
        assert listed["bad"]["damaged"] is True and "Corruption" in listed["bad"]["error"]
        assert listed["good"]["count-index-exists"] == 10000
        for path in ("/datasets/bad", "/datasets/bad/entities", "/datasets/bad/entity?entity_id=1"):
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["detail"].startswith("dataset 'bad' is damaged: Corruption")
            assert "sesamd dataset check bad" in response.json()["detail"]
        response = client.post("/datasets/bad/entities", json=[{"_id": "new"}])
        assert response.status_code == 503 and "dataset 'bad' is damaged" in response.json()["detail"]
        runtime = run_pipe_over_http(client, "copy")
        assert runtime["success"] is False and "dataset 'bad' is damaged" in runtime["last-original-error-message"]
        assert len(client.get("/datasets/good/entities").json()) == 10000
        assert daemon.terminate() == 0
    done = check(seeded, "bad")
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert done.stdout.startswith("bad: damaged: Corruption"), done.stdout
    assert check(seeded, "good").returncode == 0


def test_a_truncated_manifest_names_the_dataset_and_the_rest_is_served(seeded: Path, client_of: Any) -> None:
    truncate_manifest(seeded / "datasets" / "bad")
    with serve_process(seeded) as daemon:
        client = client_of(daemon)
        response = client.get("/datasets")
        assert response.status_code == 200, response.text
        listed = {d["_id"]: d["runtime"] for d in response.json()}
        assert listed["bad"] == {"damaged": True, "origin": "user",
                                 "error": "dataset 'bad' is damaged: Corruption: no meta-nextfile entry in descriptor"}
        assert listed["good"]["count-index-exists"] == 10000
        response = client.get("/datasets/bad/entities")
        assert response.status_code == 503 and response.json()["dataset"] == "bad"
        runtime = run_pipe_over_http(client, "copy")
        assert runtime["success"] is False and "dataset 'bad' is damaged" in runtime["last-original-error-message"]
        # the damaged dataset is not held by the node: it can be checked while the node runs
        done = check(seeded, "bad")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stdout.strip() == "bad: damaged: Corruption: no meta-nextfile entry in descriptor"
        assert daemon.terminate() == 0
    listing = subprocess.run([sys.executable, "-m", "sesamd._cli", "dataset", "list", "--data-dir", str(seeded)],
                             capture_output=True, text=True)
    assert listing.returncode == 1 and "Traceback" not in listing.stderr
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in listing.stdout.splitlines()[1:]}
    assert rows["bad"].startswith("damaged: Corruption") and rows["good"].split()[0] == "10000"
