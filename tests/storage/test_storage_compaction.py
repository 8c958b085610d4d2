"""Compaction: versions kept per id, the time threshold, and registered readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Dataset, check_dataset


def _versions(dataset: Dataset, entity_id: str) -> list[int]:
    return [v["v"] for v in dataset.versions(entity_id)]


@pytest.fixture
def history(ds: Dataset) -> Dataset:
    """Ids a (5 versions), b (2 versions, the last a delete), c (1 version)."""
    for v in range(5):
        ds.write([{"_id": "a", "v": v}])
    ds.write([{"_id": "b", "v": 0}, {"_id": "c", "v": 0}])
    ds.write([{"_id": "b", "v": 0, "_deleted": True}])
    return ds


def test_keep_versions(history: Dataset) -> None:
    assert history.compact(keep_versions=2) == 3
    assert _versions(history, "a") == [3, 4]
    assert len(history.versions("b")) == 2
    assert _versions(history, "c") == [0]
    assert history.counts()["log"] == 5
    assert history.counts()["next_offset"] == 8  # offsets are never reused
    assert [e["_updated"] for e in history.iter_entities()] == [3, 4, 5, 6, 7]
    assert history.compact(keep_versions=2) == 0  # idempotent


def test_keep_one_keeps_latest_including_deletes(history: Dataset) -> None:
    assert history.compact(keep_versions=1) == 5
    assert _versions(history, "a") == [4]
    assert [v["_deleted"] for v in history.versions("b")] == [True]
    assert history.counts() == {"entities": 2, "deleted": 1, "total": 3, "log": 3, "log_exists": 2, "log_deleted": 1,
                                "next_offset": 8}
    assert [e["_id"] for e in history.iter_entities(history=False)] == ["a", "c", "b"]


def test_writing_after_compaction(history: Dataset) -> None:
    history.compact(keep_versions=1)
    assert history.write([{"_id": "a", "v": 4}]).appended == 0
    history.write([{"_id": "a", "v": 5}])
    latest = history.get("a")
    assert latest is not None and latest["_previous"] == 4 and latest["_updated"] == 8
    assert _versions(history, "a") == [4, 5]


def test_time_threshold(ds: Dataset) -> None:
    for v in range(3):
        ds.write([{"_id": "a", "v": v}])
    cutoff = ds.get("a")["_ts"]  # type: ignore[index]  # only versions before the latest's write
    for v in range(3, 5):
        ds.write([{"_id": "a", "v": v}])
    versions = ds.versions("a")
    old = [v["v"] for v in versions if v["_ts"] < cutoff]
    assert ds.compact(keep_versions=0, older_than_us=cutoff) == len(old)
    assert _versions(ds, "a") == [v["v"] for v in versions if v["_ts"] >= cutoff]
    remaining = len(ds.versions("a"))
    assert ds.compact(keep_versions=0, older_than_us=10**18) == remaining - 1
    assert _versions(ds, "a") == [4]


def test_time_threshold_and_keep_versions(ds: Dataset) -> None:
    for v in range(5):
        ds.write([{"_id": "a", "v": v}])
    assert ds.compact(keep_versions=3, older_than_us=0) == 0  # nothing is old enough
    assert ds.compact(keep_versions=3, older_than_us=10**18) == 2
    assert _versions(ds, "a") == [2, 3, 4]


def test_keep_zero_needs_a_time(ds: Dataset) -> None:
    with pytest.raises(ValueError):
        ds.compact(keep_versions=0)


def test_registered_readers_hold_versions(history: Dataset) -> None:
    history.register_reader("pipe-1", 1)
    history.register_reader("pipe-2", 3)
    assert history.readers() == {"pipe-1": 1, "pipe-2": 3}
    # only offset 0: offset 1 was still a's latest at the lowest reader's offset (its next change names it)
    assert history.compact(keep_versions=1) == 1
    assert _versions(history, "a") == [1, 2, 3, 4]
    history.register_reader("pipe-1", 5)  # the reader moved on
    history.register_reader("pipe-2", 4)
    assert history.compact(keep_versions=1) == 3  # offsets 1, 2 and 3
    assert _versions(history, "a") == [4]
    history.register_reader("pipe-2", 4)
    assert history.compact(keep_versions=1) == 0  # b's first version (5) is after pipe-2's offset
    history.unregister_reader("pipe-2")
    history.unregister_reader("pipe-1")
    assert history.readers() == {}
    assert history.compact(keep_versions=1) == 1
    assert [v["_deleted"] for v in history.versions("b")] == [True]


def test_a_reader_sees_everything_after_its_offset(history: Dataset) -> None:
    history.register_reader("tracker", 2)
    before = [e["_updated"] for e in history.iter_entities(2)]
    history.compact(keep_versions=1)
    assert [e["_updated"] for e in history.iter_entities(2)] == before


def test_compaction_keeps_indexes_and_reads_right(history: Dataset) -> None:
    history.define_index("v", lambda e: e.get("v"))
    history.compact(keep_versions=1)
    assert history.lookup("v", 4) == ["a"]
    assert history.lookup("v", 0) == ["c"]
    assert [e["_updated"] for e in history.iter_entities(history=False, deleted=False)] == [4, 6]


def test_compaction_persists(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        for v in range(4):
            dataset.write([{"_id": "a", "v": v}, {"_id": f"x{v}"}])
        dataset.register_reader("r", 2)
        dataset.compact(keep_versions=1)
        counts = dataset.counts()
    with Dataset(ds_path) as dataset:
        assert dataset.counts() == counts
        assert dataset.readers() == {"r": 2}
        assert check_dataset(dataset) == []


def test_many_ids(ds: Dataset) -> None:
    for round_ in range(4):
        ds.write({"_id": str(i), "r": round_} for i in range(500))
    assert ds.compact(keep_versions=2) == 1000
    assert ds.counts()["log"] == 1000
    assert all(len(ds.versions(str(i))) == 2 for i in range(0, 500, 50))
