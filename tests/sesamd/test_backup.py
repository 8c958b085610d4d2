"""Backup during a pump, restore, a clean check of every dataset, and the restored node resuming each pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import storage
from sesamd._backup import MANIFEST
from sesamd.testing import serve_process

SOURCE_ENTITIES = 100_000


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sesamd._cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _config(path: Path) -> Path:
    """A long pipe: dataset 'src' into 'copy', ten entities a batch (each batch a commit with its offset)."""
    path.write_text(json.dumps([
        {"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "src"}, "batch_size": 10,
         "pump": {"schedule_interval": 86400}},
    ]))
    return path


def _seed(data_dir: Path, file: Path) -> None:
    with file.open("w") as out:
        for i in range(SOURCE_ENTITIES):
            out.write(json.dumps({"_id": f"e{i:05d}", "n": i, "text": "x" * (i % 50)}) + "\n")
    result = _cli("dataset", "import", "src", str(file), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr


def _pump(daemon: Any, client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{daemon.url}/pipes/copy/pump", headers=daemon.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["runtime"])


def _wait_idle(daemon: Any, client: httpx.Client, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _pump(daemon, client)["is-running"]:
        assert time.monotonic() < deadline, "the pump did not finish"
        time.sleep(0.05)


def _copied_so_far(daemon: Any, client: httpx.Client) -> int:
    response = client.get(f"{daemon.url}/datasets/copy", headers=daemon.headers)
    return int(response.json()["runtime"]["count-log-exists"]) if response.status_code == 200 else 0


def _copied(dataset: storage.Dataset) -> list[str]:
    return [e["_id"] for e in dataset.iter_entities()]


@pytest.mark.slow
def test_backup_during_a_pump_restores_and_resumes(tmp_path: Path) -> None:
    data_dir, backup, restored = tmp_path / "node", tmp_path / "backup", tmp_path / "restored"
    _seed(data_dir, tmp_path / "src.ndjson")
    config = _config(tmp_path / "config.json")
    with serve_process(data_dir, "--config", str(config)) as daemon, httpx.Client(timeout=60) as client:
        started = client.post(f"{daemon.url}/pipes/copy/pump", data={"operation": "start"},
                              headers=daemon.headers)
        assert started.status_code == 200, started.text
        deadline = time.monotonic() + 60
        while _copied_so_far(daemon, client) == 0:  # until the run's first batches commit
            assert time.monotonic() < deadline, "the run wrote nothing"
            time.sleep(0.01)
        response = client.post(f"{daemon.url}/admin/backup", json={"destination": str(backup)},
                               headers=daemon.headers)
        assert response.status_code == 200, response.text
        running_after_backup = _pump(daemon, client)["is-running"]
        _wait_idle(daemon, client)
        assert daemon.terminate() == 0

    manifest = json.loads((backup / MANIFEST).read_text())
    datasets = {entry["name"]: entry for entry in manifest["datasets"]}
    assert {"src", "copy"} <= set(datasets)
    assert datasets["src"]["counts"]["entities"] == SOURCE_ENTITIES
    copied = datasets["copy"]["counts"]["entities"]
    assert 0 < copied < SOURCE_ENTITIES and running_after_backup  # the snapshot landed inside the run
    offset = datasets["copy"]["offsets"]["pipe:copy"]["offset"]

    # the restore refuses a non-empty target, then fills an empty one
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    refused = _cli("restore", str(backup), "--data-dir", str(tmp_path / "busy"))
    assert refused.returncode == 2 and "not empty" in refused.stderr and "Traceback" not in refused.stderr
    result = _cli("restore", str(backup), "--data-dir", str(restored))
    assert result.returncode == 0, result.stderr
    for name in storage.DataDir(restored).dataset_names():
        check = _cli("dataset", "check", name, "--data-dir", str(restored))
        assert check.returncode == 0, (name, check.stdout, check.stderr)

    # the restored copy holds exactly the source entities up to the backup's offset, each once
    with storage.DataDir(restored).open_dataset("src", create=False) as src:
        source_ids = [e["_id"] for e in src.iter_entities()]
        before_offset = [e["_id"] for e in src.iter_entities() if e["_updated"] <= offset]
    with storage.DataDir(restored).open_dataset("copy", create=False) as copy:
        assert _copied(copy) == before_offset
        assert copy.counts()["log"] == copied == len(before_offset)

    # a node on the restored directory resumes there: the rest, no duplicates, no gaps
    with serve_process(restored, "--config", str(config)) as daemon, httpx.Client(timeout=60) as client:
        assert _pump(daemon, client)["last-seen"] is not None
        started = client.post(f"{daemon.url}/pipes/copy/pump", data={"operation": "start"},
                              headers=daemon.headers)
        assert started.status_code == 200, started.text
        time.sleep(0.2)
        _wait_idle(daemon, client)
        assert daemon.terminate() == 0
    with storage.DataDir(restored).open_dataset("copy", create=False) as copy:
        assert _copied(copy) == source_ids
        assert copy.counts() == {"entities": SOURCE_ENTITIES, "deleted": 0, "total": SOURCE_ENTITIES,
                                 "log": SOURCE_ENTITIES, "log_exists": SOURCE_ENTITIES, "log_deleted": 0,
                                 "next_offset": SOURCE_ENTITIES}
        assert storage.check_dataset(copy) == []


def test_offline_backup_and_its_refusals(tmp_path: Path) -> None:
    data_dir, backup = tmp_path / "node", tmp_path / "backup"
    file = tmp_path / "a.json"
    file.write_text('[{"_id": "a", "v": 1}, {"_id": "b"}]')
    assert _cli("dataset", "import", "people", str(file), "--data-dir", str(data_dir)).returncode == 0
    result = _cli("backup", str(backup), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((backup / MANIFEST).read_text())
    assert [(e["name"], e["counts"]["entities"]) for e in manifest["datasets"]] == [("people", 2)]
    assert manifest["datasets"][0]["offsets"]["import"]["complete"] is True
    again = _cli("backup", str(backup), "--data-dir", str(data_dir))
    assert again.returncode == 2 and "not an empty directory" in again.stderr
    no_manifest = tmp_path / "partial"
    no_manifest.mkdir()
    bad = _cli("restore", str(no_manifest), "--data-dir", str(tmp_path / "r1"))
    assert bad.returncode == 2 and "no sesamd-backup.json" in bad.stderr
    restored = tmp_path / "r2"
    assert _cli("restore", str(backup), "--data-dir", str(restored)).returncode == 0
    with storage.DataDir(restored).open_dataset("people", create=False) as dataset:
        assert dataset.get("a")["v"] == 1 and dataset.counts()["entities"] == 2
    with serve_process(data_dir) as daemon:  # a running node holds the files: say so, offer the API
        locked = _cli("backup", str(tmp_path / "b2"), "--data-dir", str(data_dir))
        assert locked.returncode == 2 and "running node" in locked.stderr and "Traceback" not in locked.stderr
        no_token = _cli("backup", str(tmp_path / "b3"), "--node", daemon.url, env={"SESAMD_TOKEN": ""})
        assert no_token.returncode == 2 and "token" in no_token.stderr
        relative = _cli("backup", str(tmp_path / "b4"), "--node", daemon.url, "--token", daemon.token)
        assert relative.returncode == 0, relative.stderr
        assert (tmp_path / "b4" / MANIFEST).exists() and (tmp_path / "b4" / "auth").is_dir()
