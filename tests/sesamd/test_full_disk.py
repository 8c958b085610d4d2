"""A full disk (ENOSPC): a run fails with the error in the API and the feed, reads are served, SIGTERM stops the
node, and once there is room again a run succeeds with every entity (no partial batch).

The node runs on a small tmpfs the test mounts (the test machines run tests as root); a second test injects
the error into the dataset actor in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import plyvel
import pytest
import trio
from trio_websocket import open_websocket_url

import storage
from actors import DatasetWrite, DatasetWriters
from actors._datasets import Datasets
from actors._runtime import Supervisor
from sesamd.testing import Daemon, run_pipe_over_http, serve_process

ENTITIES = [{"_id": str(i), "payload": "x" * 200 + str(i)} for i in range(3000)]
PIPE = {"_id": "big", "type": "pipe", "pump": {"mode": "manual"},
        "source": {"type": "embedded", "entities": ENTITIES}}
SMALL = {"_id": "small", "type": "pipe", "pump": {"mode": "manual"},
         "source": {"type": "embedded", "entities": [{"_id": "a", "n": 1}]}}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for the test (unmounted after it)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs and needs root (the test machines run tests as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(mount: Path, leave: int) -> Path:
    """A file eating all but ``leave`` bytes of the file system."""
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    filler = mount / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


async def failed_events(daemon: Daemon) -> list[dict[str, Any]]:
    """The pump-failed events the feed kept (``since=0``)."""
    headers = [(b"Authorization", f"Bearer {daemon.token}".encode())]
    found = []
    async with open_websocket_url(daemon.ws_url + "/events?since=0&types=pump-failed,pump-completed",
                                  extra_headers=headers) as ws:
        with trio.move_on_after(2):
            while True:
                event = json.loads(await ws.get_message())
                if event["type"] == "pump-failed":
                    found.append(event)
    return found


def test_a_full_disk_fails_the_run_and_a_later_run_completes(tmpfs: Path) -> None:
    with serve_process(tmpfs / "data") as daemon:
        client = httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30)
        assert client.put("/config", json=[PIPE, SMALL]).status_code == 200
        assert run_pipe_over_http(client, "small")["success"] is True
        filler = fill(tmpfs, 200_000)

        runtime = run_pipe_over_http(client, "big")
        assert runtime["success"] is False
        assert "No space left on device" in runtime["last-original-error-message"]
        assert "dataset 'big'" in runtime["last-original-error-message"]
        events = trio.run(failed_events, daemon)
        assert any("No space left on device" in (e.get("original_error_message") or "") for e in events), events
        # reads are served meanwhile
        assert client.get("/datasets/small/entities").json()[0]["_id"] == "a"
        listed = client.get("/datasets").json()
        assert "small" in {d["_id"] for d in listed}
        big = client.get("/datasets/big/entities")
        if big.status_code == 200:  # what committed before the disk filled: whole batches only
            assert len(big.json()) % 1000 == 0 or len(big.json()) < len(ENTITIES)
        # a run while the disk is still full fails again, at once
        assert run_pipe_over_http(client, "big")["success"] is False

        filler.unlink()
        runtime = run_pipe_over_http(client, "big")
        assert runtime["success"] is True, runtime
        entities = client.get("/datasets/big/entities?history=false").json()
        assert sorted(e["_id"] for e in entities) == sorted(e["_id"] for e in ENTITIES)
        client.close()
        assert daemon.terminate(timeout=60) == 0

    # what the node acknowledged is there after a restart (the torn log was not read again)
    with serve_process(tmpfs / "data") as daemon:
        entities = httpx.get(daemon.url + "/datasets/big/entities?history=false", headers=daemon.headers).json()
        assert len(entities) == len(ENTITIES)
        check = subprocess.run([sys.executable, "-m", "sesamd._cli", "dataset", "check", "small", "--data-dir",
                                str(tmpfs / "data")], capture_output=True, text=True)
        assert "in use by a running node" in check.stderr  # (the node holds it)
        assert daemon.terminate(timeout=60) == 0


def test_sigterm_stops_a_node_whose_disk_is_full(tmpfs: Path) -> None:
    with serve_process(tmpfs / "data", "--grace", "5") as daemon:
        client = httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30)
        assert client.put("/config", json=[PIPE]).status_code == 200
        fill(tmpfs, 150_000)
        response = client.post("/pipes/big/pump", data={"operation": "start"})
        assert response.status_code == 200, response.text
        client.close()
        assert daemon.terminate(timeout=60) == 0
        assert "Traceback" not in daemon.log.read_text()


# -- the dataset actor, with an injected ENOSPC -----------------------------------------------------------


async def test_the_actor_answers_writes_whose_dataset_cannot_be_opened(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = Datasets(tmp_path)
    real_open = datasets.data_dir.open_dataset

    def full(name: str, *, create: bool = True) -> storage.Dataset:
        raise storage.StorageWriteError(f"dataset '{name}'", "IO error: x/MANIFEST-000001: No space left on device")

    monkeypatch.setattr(datasets.data_dir, "open_dataset", full)
    writers = DatasetWriters(datasets)
    async with Supervisor() as supervisor:
        writers.attach(supervisor)
        with pytest.raises(storage.StorageWriteError, match="No space left on device"), trio.fail_after(10):
            await writers.apply(DatasetWrite("d", lambda d: d.write([{"_id": "1"}])))
        monkeypatch.setattr(datasets.data_dir, "open_dataset", real_open)
        with trio.fail_after(10):  # the same actor takes writes again
            result = await writers.apply(DatasetWrite("d", lambda d: d.write([{"_id": "1"}])))
        assert result.appended == 1
    datasets.close_all()


async def test_an_injected_enospc_fails_the_write_and_writes_resume(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = Datasets(tmp_path)
    writers = DatasetWriters(datasets)
    dataset = datasets.open("d")
    room = {"free": 0}

    def failing_write(*args: Any, **kwargs: Any) -> Any:
        raise plyvel.IOError(b"IO error: d/000003.log: No space left on device")

    monkeypatch.setattr(dataset._guard, "room", lambda: (room["free"], 1 << 20))
    original = storage.Dataset.write
    async with Supervisor() as supervisor:
        writers.attach(supervisor)
        monkeypatch.setattr(storage.Dataset, "write", failing_write)
        with pytest.raises(storage.StorageWriteError, match=r"dataset 'd': a write failed: .*No space left"):
            await writers.apply(DatasetWrite("d", lambda d: d.write([{"_id": "1"}])))
        monkeypatch.setattr(storage.Dataset, "write", original)
        assert dataset.write_failure is not None
        # no room yet: refused at once, the dataset untouched
        with pytest.raises(storage.StorageWriteError, match="writes resume once"):
            await writers.apply(DatasetWrite("d", lambda d: d.write([{"_id": "1"}])))
        assert dataset.counts()["log"] == 0
        assert [e["_id"] for e in dataset.iter_entities()] == []  # reads are served
        room["free"] = 2 << 20
        result = await writers.apply(DatasetWrite("d", lambda d: d.write([{"_id": "1"}, {"_id": "2"}])))
        assert result.appended == 2 and dataset.write_failure is None
    datasets.close_all()
    with storage.Dataset(tmp_path / "datasets" / "d", "d") as reopened:
        assert [e["_id"] for e in reopened.iter_entities()] == ["1", "2"]
