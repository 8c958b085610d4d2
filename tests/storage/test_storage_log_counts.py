"""The log's live and deleted version counters (``count-log-exists``/``count-log-deleted``): kept by every
write path and by compaction, stored with the state, and counted once for a dataset stored before them."""

from __future__ import annotations

from pathlib import Path

import orjson
import plyvel

from storage import Dataset, check_dataset


def log_counts(dataset: Dataset) -> tuple[int, int, int]:
    counts = dataset.counts()
    return counts["log"], counts["log_exists"], counts["log_deleted"]


def by_scan(dataset: Dataset) -> tuple[int, int, int]:
    versions = list(dataset.iter_entities())
    deleted = sum(v["_deleted"] for v in versions)
    return len(versions), len(versions) - deleted, deleted


def test_writes_updates_and_deletes_are_counted(ds: Dataset) -> None:
    ds.write([{"_id": "a", "v": 1}, {"_id": "b", "v": 1}, {"_id": "c", "v": 1}])
    assert log_counts(ds) == (3, 3, 0)
    ds.write([{"_id": "a", "v": 2}, {"_id": "b", "v": 1, "_deleted": True}])  # an update and a delete
    assert log_counts(ds) == (5, 4, 1)
    ds.write([{"_id": "b", "v": 1, "_deleted": True}])  # unchanged: nothing appended
    ds.write([{"_id": "b", "v": 3}, {"_id": "new", "_deleted": True}])  # back again; a first version deleted
    assert log_counts(ds) == (7, 5, 2) == by_scan(ds)
    ds.write([{"_id": "c", "_filtered": True}])  # a filtered entity is a delete
    assert log_counts(ds) == (8, 5, 3) == by_scan(ds)
    assert ds.counts()["entities"] == 2 and ds.counts()["deleted"] == 2  # the index: latest versions only


def test_the_general_path_and_full_runs_count_alike(ds: Dataset) -> None:
    ds.define_index("v", lambda entity: [entity.get("v")])  # with an index, writes take the general path
    ds.write([{"_id": str(i), "v": i} for i in range(10)])
    ds.write([{"_id": "1", "_deleted": True}])
    run = ds.begin_full_run()
    ds.write([{"_id": str(i), "v": i} for i in range(5)], full_run=run)
    assert ds.end_full_run(run) == 5  # ids 5..9 deleted by deletion tracking
    assert log_counts(ds) == (17, 11, 6) == by_scan(ds)  # ("1" came back in the full run)


def test_compaction_takes_removed_deletes_off(ds: Dataset) -> None:
    ds.write([{"_id": "a", "v": 1}])
    ds.write([{"_id": "a", "v": 1, "_deleted": True}])
    ds.write([{"_id": "a", "v": 2}])
    ds.write([{"_id": "b", "v": 1, "_deleted": True}])
    assert log_counts(ds) == (4, 2, 2)
    assert ds.compact(keep_versions=1) == 2  # a's first version and its delete go; b's delete is its latest
    assert log_counts(ds) == (2, 1, 1) == by_scan(ds)
    assert check_dataset(ds) == []


def test_the_counters_survive_reopening(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        dataset.write([{"_id": "a"}, {"_id": "b", "_deleted": True}])
    with Dataset(ds_path) as dataset:
        assert log_counts(dataset) == (2, 1, 1)


def test_a_dataset_stored_before_the_counter_is_counted_once_when_opened(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        dataset.write([{"_id": "a", "v": 1}, {"_id": "b"}])
        dataset.write([{"_id": "a", "_deleted": True}, {"_id": "b", "_deleted": True}])
        dataset.write([{"_id": "a", "v": 2}])
    db = plyvel.DB(str(ds_path))
    try:
        next_seq, live, deleted, log, _log_deleted = orjson.loads(db.get(b"mstate"))
        db.put(b"mstate", orjson.dumps([next_seq, live, deleted, log]))  # the state as stored before
    finally:
        db.close()
    with Dataset(ds_path) as dataset:
        assert log_counts(dataset) == (5, 3, 2)
        assert check_dataset(dataset) == []
    db = plyvel.DB(str(ds_path))
    try:
        assert orjson.loads(db.get(b"mstate")) == [5, 1, 1, 5, 2]  # stored: not counted again
    finally:
        db.close()


def test_the_checker_finds_a_wrong_counter(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        dataset.write([{"_id": "a"}, {"_id": "b", "_deleted": True}])
    db = plyvel.DB(str(ds_path))
    try:
        db.put(b"mstate", orjson.dumps([2, 1, 1, 2, 0]))
    finally:
        db.close()
    with Dataset(ds_path) as dataset:
        assert check_dataset(dataset) == ["the log holds 1 deleted versions, the counter says 0"]
