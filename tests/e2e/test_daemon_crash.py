"""Crash safety of the daemon: ``sesamd serve`` killed with SIGKILL mid-run loses and duplicates nothing.

A source dataset is seeded with ``sesamd dataset import``; two manual pipes read it in small batches, one
through a DTL transform, the other through a DTL transform with a hop to a second dataset. The test starts
both pumps over HTTP and SIGKILLs the daemon once the sinks' LevelDB write-ahead logs have grown by a random
amount (so kills land while batches are being written, some inside a batch's log record), several times.
After each kill, with the daemon down, each sink must be consistent and hold exactly the transformed
source entities up to the offset the pipe committed, each once. Finally the pumps run to completion and
each sink must hold every expected entity exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import storage
from sesamd._auth import Authenticator
from sesamd.testing import started_process

ROOT = Path(__file__).resolve().parents[2]
ENTITIES = 40_000
GROUPS = 37
BATCH = 500
KILLS = 8

PIPES: list[dict[str, Any]] = [
    {"_id": "people-out", "type": "pipe", "batch_size": BATCH, "pump": {"mode": "manual"},
     "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [
         ["copy", "_id"],
         ["copy", "n"],
         ["add", "title", ["upper", "_S.name"]],
         ["add", "key", ["concat", ["list", "_S.group", "/", "_S._id"]]],
         ["add", "size", ["length", "_S.text"]],
     ]}}},
    {"_id": "people-grouped", "type": "pipe", "batch_size": BATCH, "pump": {"mode": "manual"},
     "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [
         ["copy", "_id"],
         ["add", "group", ["first", ["path", "label", ["hops", {
             "datasets": ["groups g"], "where": [["eq", "_S.group", "g._id"]]}]]]],
         ["add", "text", "_S.text"],
     ]}}},
]
SINKS = {pipe["_id"]: pipe["_id"] for pipe in PIPES}  # pipe id -> sink dataset (named after the pipe)
TRACKING = {"people-out": {}, "people-grouped": {"groups": GROUPS - 1}}  # dependency tracking: end of `groups`


def _person(i: int) -> dict[str, Any]:
    return {"_id": f"p{i:06d}", "name": f"person {i}", "n": i, "group": f"g{i % GROUPS:02d}",
            "text": "y" * (i % 61)}


def _group(g: int) -> dict[str, Any]:
    return {"_id": f"g{g:02d}", "label": f"Group {g}"}


def _expected(pipe_id: str, person: dict[str, Any]) -> dict[str, Any]:
    """What the pipe's DTL makes of a source entity (written out by hand)."""
    if pipe_id == "people-out":
        return {"_id": person["_id"], "n": person["n"], "title": person["name"].upper(),
                "key": f"{person['group']}/{person['_id']}", "size": len(person["text"])}
    return {"_id": person["_id"], "group": f"Group {int(person['group'][1:])}", "text": person["text"]}


def _strip(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if not k.startswith("_") or k == "_id"}


def _import(data_dir: Path, name: str, entities: list[dict[str, Any]], file: Path) -> None:
    file.write_text("[\n" + ",\n".join(json.dumps(e) for e in entities) + "\n]\n")
    command = [sys.executable, "-m", "sesamd._cli", "dataset", "import", name, str(file), "--data-dir", str(data_dir)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


class WalMeter:
    """Bytes appended to the sinks' LevelDB write-ahead logs (``*.log``): every committed batch goes there
    first, so this grows steadily with the entities written, unlike the directories' size, which compactions
    shrink. Files are summed by name (a log is replaced when its memtable is flushed); files vanishing
    while we look are fine."""

    def __init__(self, directories: list[Path]) -> None:
        self.directories = directories
        self.sizes: dict[Path, int] = {}
        self.written = 0
        self.measure()
        self.written = 0

    def measure(self) -> int:
        for directory in self.directories:
            for file in directory.glob("*.log") if directory.exists() else ():
                try:
                    size = file.stat().st_size
                except FileNotFoundError:  # LevelDB removed it meanwhile
                    continue
                self.written += max(0, size - self.sizes.get(file, 0))
                self.sizes[file] = size
        return self.written


class Daemon:
    """A ``sesamd serve`` subprocess (stderr goes to ``log``) and a client for its API."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, data_dir: Path) -> None:
        self.process, self.url = process, url
        token = Authenticator(data_dir).mint("admin")
        self.client = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})

    def put_config(self, config: list[dict[str, Any]]) -> None:
        response = self.client.put("/config", content=json.dumps(config), headers={"Content-Type": "application/json"})
        assert response.status_code == 200 and response.json() == {"validation_errors": []}, response.text

    def start(self, pipe_id: str) -> None:
        response = self.client.post(f"/pipes/{pipe_id}/pump", data={"operation": "start"})
        assert response.status_code == 200, response.text

    def runtime(self, pipe_id: str) -> dict[str, Any]:
        response = self.client.get(f"/pipes/{pipe_id}/pump")
        assert response.status_code == 200, response.text
        runtime: dict[str, Any] = response.json()["runtime"]
        return runtime

    def wait_idle(self, pipe_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (runtime := self.runtime(pipe_id))["is-running"]:
            assert time.monotonic() < deadline, f"pipe {pipe_id} still running after {timeout} s"
            time.sleep(0.05)
        return runtime

    def terminate(self) -> int:
        """SIGTERM; returns the exit code (our keep-alive connection is closed first so the server need not
        wait for it)."""
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def daemon(data_dir: Path, log: Path) -> Iterator[Daemon]:
    argv = [sys.executable, "-m", "sesamd._cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
    server = None
    with started_process(argv, log, "sesamd: serving ") as (process, line):  # (log lines on stdout go to log)
        try:
            server = Daemon(process, line.split()[2], data_dir)
            yield server
        finally:
            if server is not None:
                server.client.close()


def _check_sink(data: storage.DataDir, pipe_id: str, expected: list[dict[str, Any]]) -> int:
    """Check the sink against the pipe's committed offset, with the daemon down: the sink holds exactly the
    outputs (``expected``, in source order) of the source entities up to that offset, each once. Returns how
    many source entities that is."""
    if not data.exists(SINKS[pipe_id]):
        return 0
    with data.open_dataset(SINKS[pipe_id], create=False) as sink:
        assert storage.check_dataset(sink) == [], pipe_id
        state = sink.get_offset(f"pipe:{pipe_id}") or {}  # committed in the same write batch as the data
        offset = state.get("offset")
        # the source was imported in one go, entity i with offset (_updated) i
        covered = 0 if offset is None else offset + 1
        if offset is not None:
            assert state["tracking"] == TRACKING[pipe_id], state
        assert sink.counts() == {"entities": covered, "deleted": 0, "total": covered, "log": covered,
                                 "log_exists": covered, "log_deleted": 0, "next_offset": covered}, (pipe_id, offset)
        versions = [_strip(e) for e in sink.iter_entities(history=True, deleted=True)]
        assert len({v["_id"] for v in versions}) == len(versions), f"{pipe_id}: an id has two versions"
        assert versions == expected[:covered], f"{pipe_id}: the sink does not hold the outputs of source 0..{offset}"
        return covered


@pytest.mark.slow
def test_sigkill_of_the_daemon_mid_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261123")))
    data_dir, log = tmp_path / "data", tmp_path / "sesamd.log"
    people = [_person(i) for i in range(ENTITIES)]
    expected = {pipe_id: [_expected(pipe_id, p) for p in people] for pipe_id in SINKS}
    _import(data_dir, "people", people, tmp_path / "people.json")
    _import(data_dir, "groups", [_group(g) for g in range(GROUPS)], tmp_path / "groups.json")
    with daemon(data_dir, log) as node:
        node.put_config(PIPES)
        node.kill()  # the config is in the node store: every restart runs it

    sink_dirs = [storage.DataDir(data_dir).dataset_path(name) for name in SINKS.values()]
    bytes_per_write = 250.0  # how much the write-ahead logs grow per entity written; refined below
    covered = dict.fromkeys(SINKS, 0)
    mid_run = 0
    for _attempt in range(KILLS):
        remaining = sum(ENTITIES - c for c in covered.values())
        # kill once the sinks' logs have grown by a random part of what the rest of the runs would write
        grow_by = int(bytes_per_write * remaining * rng.uniform(0.02, 0.6))
        with daemon(data_dir, log) as node:
            meter = WalMeter(sink_dirs)
            for pipe_id in SINKS:
                node.start(pipe_id)
            deadline = time.monotonic() + 30
            polls = 0
            while meter.measure() < grow_by:
                polls += 1
                if polls % 50 == 0 and not any(node.runtime(p)["is-running"] for p in SINKS):
                    break  # the runs ended first: this kill is not mid-run
                assert time.monotonic() < deadline, "the sinks stopped growing"
                time.sleep(0.002)
            node.kill()
            grown = meter.measure()
        data = storage.DataDir(data_dir)
        now = {pipe_id: _check_sink(data, pipe_id, expected[pipe_id]) for pipe_id in SINKS}
        assert all(now[p] >= covered[p] for p in SINKS), "a committed batch was lost"
        mid_run += any(covered[p] < now[p] < ENTITIES for p in SINKS)
        written = sum(now[p] - covered[p] for p in SINKS)
        if written >= 2 * BATCH and grown > 0:
            bytes_per_write = (bytes_per_write + grown / written) / 2
        covered = now
        print(f"killed after {grown} of {grow_by} bytes: {covered}")  # shown when the test fails
    assert mid_run >= KILLS // 2, f"only {mid_run} of {KILLS} kills landed while batches were being written"

    with daemon(data_dir, log) as node:
        for pipe_id in SINKS:
            node.start(pipe_id)
        for pipe_id in SINKS:
            runtime = node.wait_idle(pipe_id)
            assert runtime["success"] is True, runtime
        assert node.terminate() == 0
    data = storage.DataDir(data_dir)
    for pipe_id in SINKS:  # every source entity's output, once, with nothing else
        assert _check_sink(data, pipe_id, expected[pipe_id]) == ENTITIES
