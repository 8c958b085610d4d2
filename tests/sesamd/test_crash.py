"""Crash safety: ``sesamd dataset import`` killed with SIGKILL at random moments leaves all of the file or none."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import storage

ENTITIES = 40_000
KILLS = 20


def _entity(i: int, generation: int) -> dict:
    return {"_id": f"e{i:06d}", "name": f"entity {i}", "generation": generation, "value": f"~f{i}.50",
            "tags": ["a", f"t{i % 7}"], "nested": {"n": i, "text": "x" * (i % 40)}}


def _write_file(path: Path, generation: int) -> list[dict]:
    entities = [_entity(i, generation) for i in range(ENTITIES)]
    with path.open("w") as out:
        out.write("[\n" + ",\n".join(json.dumps(e) for e in entities) + "\n]\n")
    return entities


def _start_import(data_dir: Path, file: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "sesamd._cli", "dataset", "import", "crash", str(file),
               "--data-dir", str(data_dir)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _import(data_dir: Path, file: Path) -> None:
    process = _start_import(data_dir, file)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


def _size(path: Path) -> int:
    total = 0
    for file in path.rglob("*") if path.exists() else ():
        try:
            total += file.stat().st_size
        except FileNotFoundError:  # LevelDB removed it meanwhile
            pass
    return total


def _kill_after(data_dir: Path, file: Path, delay: float, grown_by: int | None = None) -> None:
    """SIGKILL the import after ``delay`` seconds, or once the data dir has grown by ``grown_by`` bytes."""
    before = _size(data_dir)
    process = _start_import(data_dir, file)
    deadline = time.monotonic() + delay
    while process.poll() is None and time.monotonic() < deadline:
        if grown_by is not None and _size(data_dir) - before >= grown_by:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _latest(dataset: storage.Dataset) -> dict[str, dict]:
    return {e["_id"]: e for e in dataset.iter_entities(history=False)}


def _strip(entity: dict) -> dict:
    return {k: v for k, v in entity.items() if not k.startswith("_") or k == "_id"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("crash-files")
    first, second = root / "first.json", root / "second.json"
    return {"first": (first, _write_file(first, 1)), "second": (second, _write_file(second, 2))}


@pytest.mark.slow
def test_sigkill_during_fresh_import_leaves_all_or_nothing(tmp_path: Path, files: dict) -> None:
    file, entities = files["first"]
    started = time.monotonic()
    _import(tmp_path / "timing", file)
    duration = time.monotonic() - started
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261122")))
    expected = [storage.parse_json(json.dumps(e)) for e in entities]
    mid_write = 0
    for attempt in range(KILLS):
        data_dir = tmp_path / f"kill{attempt}"
        # half the kills at a random time, half once a random amount of data is written
        grown_by = rng.randint(1, 8_000_000) if attempt % 2 else None
        _kill_after(data_dir, file, rng.uniform(0.05, duration * 1.1) if grown_by is None else 60, grown_by)
        data = storage.DataDir(data_dir)
        if not data.exists("crash"):
            continue  # killed before the dataset was created
        with data.open_dataset("crash", create=False) as dataset:
            assert storage.check_dataset(dataset) == []
            offset = dataset.get_offset("import")
            count = dataset.counts()["log"]
            latest = _latest(dataset)
            # the import is one batch: all of the file, each entity once, with its offset, or nothing at all
            assert count in (0, ENTITIES)
            assert (offset is not None) == (count == ENTITIES) == (len(latest) == ENTITIES)
            assert sorted(latest) == ([e["_id"] for e in expected] if count else [])
            mid_write += count == 0
    assert mid_write >= KILLS // 4, "too few kills landed while the import was writing"
    # re-running the import on the last killed store completes it exactly once
    _import(data_dir, file)
    with storage.DataDir(data_dir).open_dataset("crash", create=False) as dataset:
        assert storage.check_dataset(dataset) == []
        assert dataset.counts() == {"entities": ENTITIES, "deleted": 0, "total": ENTITIES, "log": ENTITIES,
                                    "log_exists": ENTITIES, "log_deleted": 0, "next_offset": ENTITIES}
        latest = _latest(dataset)
        assert all(_strip(latest[e["_id"]]) == e for e in expected)


@pytest.mark.slow
def test_sigkill_during_update_import_leaves_old_or_new_versions(tmp_path: Path, files: dict) -> None:
    first, _ = files["first"]
    second, _entities = files["second"]
    rng = random.Random(7)
    base = tmp_path / "base"
    _import(base, first)
    subprocess.run(["cp", "-a", str(base), str(tmp_path / "timing")], check=True)
    started = time.monotonic()
    _import(tmp_path / "timing", second)
    duration = time.monotonic() - started
    kept_old = 0
    for attempt in range(KILLS // 2):
        data_dir = tmp_path / f"update{attempt}"
        subprocess.run(["cp", "-a", str(base), str(data_dir)], check=True)
        storage.DataDir(data_dir).open_dataset("crash", create=False).close()  # recover the log now
        _kill_after(data_dir, second, rng.uniform(0.05, duration * 1.1))
        with storage.DataDir(data_dir).open_dataset("crash", create=False) as dataset:
            assert storage.check_dataset(dataset) == []
            new = dataset.get_offset("import")["source"].endswith("second.json")
            generations = {e["generation"] for e in _latest(dataset).values()}
            assert generations == ({2} if new else {1})  # every entity's new version, or none
            assert dataset.counts()["log"] == ENTITIES * (2 if new else 1)
            kept_old += not new
    assert kept_old >= 2, "too few kills landed while the import was writing"
