"""storage._compaction: the planner, chunked passes, what readers need, and crashes between chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import Dataset, check_dataset, loads
from storage._compaction import CompactionPolicy, Compactor, Version, compact, compaction_meta, plan_id


def chain(*pairs: tuple[int, int]) -> list[Version]:
    return [Version(seq, ts) for seq, ts in pairs]


def test_plan_keeps_the_newest_and_never_the_latest() -> None:
    versions = chain((0, 10), (3, 20), (5, 30), (9, 40))
    assert plan_id(versions, CompactionPolicy(keep_versions=2)) == 2
    assert plan_id(versions, CompactionPolicy(keep_versions=1)) == 3
    assert plan_id(versions, CompactionPolicy(keep_versions=4)) == 0
    assert plan_id(versions, CompactionPolicy(keep_versions=0, older_than_us=10**9)) == 3  # the latest stays
    assert plan_id(chain((4, 1)), CompactionPolicy(keep_versions=1)) == 0


def test_plan_age_and_protected_offset_stop_at_the_first_kept_version() -> None:
    versions = chain((0, 10), (3, 20), (5, 30), (9, 40))
    assert plan_id(versions, CompactionPolicy(keep_versions=1, older_than_us=25)) == 2  # ts 10 and 20
    assert plan_id(versions, CompactionPolicy(keep_versions=1, older_than_us=10)) == 0
    # a reader at 4: the version at 3 was the latest there (the change at 5 names it as _previous)
    assert plan_id(versions, CompactionPolicy(keep_versions=1), protected=4) == 1
    assert plan_id(versions, CompactionPolicy(keep_versions=1), protected=5) == 2
    assert plan_id(versions, CompactionPolicy(keep_versions=1), protected=-1) == 0
    assert plan_id(chain((0, 30), (1, 10), (2, 40)), CompactionPolicy(keep_versions=1, older_than_us=20)) == 0


def test_policy_checks_its_values() -> None:
    with pytest.raises(ValueError, match="needs a time threshold"):
        CompactionPolicy(keep_versions=0)
    with pytest.raises(ValueError, match="integer >= 0"):
        CompactionPolicy(keep_versions=-1)


def write_history(dataset: Dataset, rounds: int = 5, ids: int = 30) -> None:
    """``ids`` ids over ``rounds`` rounds; id n also changes in round r only if n % (r + 1) == 0, and every
    fifth id is deleted in the last round."""
    for r in range(rounds):
        batch: list[dict[str, Any]] = [{"_id": f"e{n}", "r": r} for n in range(ids) if r == 0 or n % (r + 1) == 0]
        dataset.write(batch)
    dataset.write([{"_id": f"e{n}", "_deleted": True} for n in range(0, ids, 5)])


def log_of(dataset: Dataset, since: int | None = None) -> list[tuple[str, int, Any, bool]]:
    return [(e["_id"], e["_updated"], e.get("r"), e["_deleted"]) for e in dataset.iter_entities(since)]


def latest_of(dataset: Dataset) -> list[dict[str, Any]]:
    return sorted(dataset.iter_entities(history=False), key=lambda e: e["_id"])


def test_a_pass_keeps_versions_as_configured(ds: Dataset, tmp_path: Path) -> None:
    write_history(ds)
    latest = latest_of(ds)
    counts = ds.counts()
    result = compact(ds, CompactionPolicy(keep_versions=2), chunk_versions=7)
    assert result.removed == counts["log"] - sum(min(2, len(ds.versions(e["_id"]))) for e in latest)
    assert result.chunks >= result.removed // 7 and result.bytes_freed > result.removed * 18
    assert all(1 <= len(ds.versions(e["_id"])) <= 2 for e in latest)
    assert latest_of(ds) == latest  # latest versions (deletes included) untouched
    log_removed = {"log": counts["log"] - result.removed, "log_exists": 0, "log_deleted": 0}
    assert {**ds.counts(), "log_exists": 0, "log_deleted": 0} == {**counts, **log_removed}
    assert check_dataset(ds) == []  # (it checks the log's live and deleted version counters too)
    meta = compaction_meta(ds)
    assert meta["resume"] is None and meta["removed"] == result.removed and meta["log_after"] == ds.counts()["log"]
    assert compact(ds, CompactionPolicy(keep_versions=2)).removed == 0  # idempotent
    assert compaction_meta(ds)["passes"] == 2


def test_a_kept_chain_has_no_holes_and_history_reads_follow_it(ds: Dataset) -> None:
    for v in range(6):
        ds.write([{"_id": "a", "v": v}])
    compact(ds, CompactionPolicy(keep_versions=3))
    versions = ds.versions("a")
    assert [v["v"] for v in versions] == [3, 4, 5]
    assert versions[0]["_previous"] == 2  # names a removed version, as node-spec allows
    assert [v["_previous"] for v in versions[1:]] == [v["_updated"] for v in versions[:-1]]
    ds.write([{"_id": "a", "v": 6}])
    assert ds.get("a")["_previous"] == 5  # type: ignore[index]


def test_age_threshold(ds: Dataset) -> None:
    for v in range(3):
        ds.write([{"_id": "a", "v": v}, {"_id": "b", "v": v}])
    cutoff = ds.get("a")["_ts"]  # type: ignore[index]  # the versions before the last round's
    for v in range(3, 5):
        ds.write([{"_id": "a", "v": v}])
    result = compact(ds, CompactionPolicy(keep_versions=1, older_than_us=cutoff))
    assert [v["v"] for v in ds.versions("a")] == [2, 3, 4]
    assert [v["v"] for v in ds.versions("b")] == [2]
    assert result.removed == 4


def test_a_reader_gets_every_version_it_must_see(tmp_path: Path) -> None:
    """A reader at an offset reads the same after compaction as from an uncompacted copy, and each version
    it reads still has the version it replaced (what dependency tracking reads)."""
    with Dataset(tmp_path / "a") as compacted, Dataset(tmp_path / "b") as copy:
        for dataset in (compacted, copy):
            write_history(dataset, rounds=4)
        reader = 41  # inside the third round
        for dataset in (compacted, copy):
            for r in range(4, 7):  # later changes, some of ids the reader saw in their latest form
                dataset.write([{"_id": f"e{n}", "r": r} for n in range(0, 30, r)])
        result = compact(compacted, CompactionPolicy(keep_versions=1, protected=reader), chunk_versions=5)
        assert result.removed > 0 and result.protected == reader
        assert log_of(compacted, reader) == log_of(copy, reader)
        for entity in compacted.iter_entities(reader):
            previous = entity["_previous"]
            if previous is not None:
                assert [v["_updated"] for v in compacted.iter_entities(previous - 1, limit=1)] == [previous]
        assert check_dataset(compacted) == []
        assert compact(compacted, CompactionPolicy(keep_versions=1)).removed > 0  # the reader left


def test_registered_readers_and_the_callers_offset_both_count(ds: Dataset) -> None:
    for v in range(5):
        ds.write([{"_id": "a", "v": v}])
    ds.register_reader("r", 3)
    assert Compactor(ds, CompactionPolicy(keep_versions=1, protected=1)).protected == 1
    assert Compactor(ds, CompactionPolicy(keep_versions=1, protected=4)).protected == 3
    assert compact(ds, CompactionPolicy(keep_versions=1)).removed == 3  # 0, 1, 2 (3 was latest at 3)


def test_an_id_with_more_versions_than_a_chunk(ds: Dataset) -> None:
    for v in range(25):
        ds.write([{"_id": "a", "v": v}])
    result = compact(ds, CompactionPolicy(keep_versions=2), chunk_versions=4)
    assert result.removed == 23 and result.chunks == 6
    assert [v["v"] for v in ds.versions("a")] == [23, 24]


def test_a_chunk_applied_twice_removes_nothing_twice(ds: Dataset) -> None:
    write_history(ds)
    chunk = Compactor(ds, CompactionPolicy(keep_versions=1), chunk_versions=10).next_chunk()
    assert chunk is not None
    with ds.writes():
        assert chunk.apply(ds)[0] == 10
        assert chunk.apply(ds) == (0, 0)
    assert check_dataset(ds) == []


def test_a_chunk_for_a_replaced_dataset_is_refused(tmp_path: Path) -> None:
    with Dataset(tmp_path / "a") as first, Dataset(tmp_path / "b") as second:
        for dataset in (first, second):
            write_history(dataset)
        chunk = Compactor(first, CompactionPolicy(keep_versions=1)).next_chunk()
        assert chunk is not None
        with pytest.raises(ValueError, match="was replaced"):
            chunk.apply(second)
        assert check_dataset(second) == []


class Crash(Exception):
    pass


def test_a_crash_between_chunks_leaves_a_valid_dataset_and_a_rerun_finishes(tmp_path: Path) -> None:
    path, reference_path = tmp_path / "crashed", tmp_path / "reference"
    with Dataset(reference_path) as reference:
        write_history(reference)
        compact(reference, CompactionPolicy(keep_versions=2))
        expected = log_of(reference)
    with Dataset(path) as dataset:
        write_history(dataset)
        held = 0

        def holding() -> Any:
            nonlocal held
            held += 1
            if held == 2:
                raise Crash("the process died here")
            return dataset.writes()

        with pytest.raises(Crash):
            compact(dataset, CompactionPolicy(keep_versions=2), chunk_versions=6, holding=holding)
        after_one = dataset.counts()["log"]
    with Dataset(path) as dataset:  # reopened, as after a restart
        assert check_dataset(dataset) == []
        assert dataset.counts()["log"] == after_one == len(log_of(dataset))
        assert compaction_meta(dataset)["resume"] is not None  # the pass goes on from there
        assert compact(dataset, CompactionPolicy(keep_versions=2)).removed > 0
        assert log_of(dataset) == expected
        assert check_dataset(dataset) == []
        assert compaction_meta(dataset)["resume"] is None


def test_the_latest_versions_of_deleted_ids_stay_with_deletion_tracking(ds: Dataset) -> None:
    write_history(ds, rounds=3, ids=10)
    compact(ds, CompactionPolicy(keep_versions=1))
    deleted = sorted(e["_id"] for e in ds.iter_entities(history=False) if e["_deleted"])
    assert deleted == ["e0", "e5"]
    assert all(len(ds.versions(i)) == 1 for i in deleted)
    run = ds.begin_full_run()  # a full run that sees only e1: the others are deleted by it
    ds.write([{"_id": "e1", "r": 2}], full_run=run)
    assert ds.end_full_run(run) == 7
    assert loads(ds.get_stored("e2") or b"{}")["_deleted"] is True
    assert check_dataset(ds) == []
