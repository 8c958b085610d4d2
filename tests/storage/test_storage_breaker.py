"""Circuit breakers in storage (``storage._staging``): staging, tripping, commit, rollback, uncommitted reads,
and crash recovery (a reopen after a partial commit or rollback)."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from storage import CircuitBreakerTripped, Dataset, check_dataset

KEY = "pipe:p"


def _entities(n: int, value: str = "a", start: int = 0) -> list[dict]:
    return [{"_id": f"e{i}", "v": value} for i in range(start, start + n)]


@pytest.fixture
def populated(ds: Dataset) -> Dataset:
    ds.write(_entities(10), offset_key=KEY, offset={"offset": 9})
    ds.set_populated()
    return ds


def _latest(ds: Dataset) -> dict[str, str]:
    return {e["_id"]: e.get("v") for e in ds.iter_entities(history=False) if not e["_deleted"]}


def test_staged_writes_are_invisible_until_committed(populated: Dataset) -> None:
    ds = populated
    before = ds.counts()
    ds.arm_breaker(KEY, 5)
    assert ds.stage([*_entities(3, "b"), {"_id": "new", "v": 1}], offset_key=KEY, offset={"offset": 20}) == 4
    assert ds.counts() == before
    assert ds.get("e0")["v"] == "a"
    assert ds.get("new") is None
    assert ds.get_offset(KEY) == {"offset": 9}
    assert ds.breaker is not None and ds.breaker.written == 4 and not ds.breaker.tripped
    appended = ds.commit_staged()
    assert appended == 4
    assert ds.breaker is None
    assert ds.get("e0")["v"] == "b" and ds.get("e0")["_previous"] == 0
    assert ds.get("new")["v"] == 1
    assert ds.get_offset(KEY) == {"offset": 20}
    assert ds.counts()["entities"] == 11 and ds.counts()["log"] == 14
    assert check_dataset(ds) == []


def test_unchanged_entities_do_not_count(populated: Dataset) -> None:
    ds = populated
    ds.arm_breaker(KEY, 2)
    assert ds.stage(_entities(10), offset_key=KEY, offset={"offset": 19}) == 0  # all unchanged
    assert ds.stage(_entities(2, "b"), offset_key=KEY, offset={"offset": 21}) == 2
    assert ds.stage(_entities(2, "b"), offset_key=KEY, offset={"offset": 23}) == 0  # unchanged against the staging
    assert ds.breaker.written == 2 and not ds.breaker.tripped


def test_trips_over_the_limit_and_rollback_forgets(populated: Dataset) -> None:
    ds = populated
    ds.arm_breaker(KEY, 3)
    with pytest.raises(CircuitBreakerTripped, match=r"dataset 'test'.*wrote 4 entities.*limit of 3"):
        ds.stage(_entities(4, "b"), offset_key=KEY, offset={"offset": 30})
    assert ds.breaker_tripped
    assert _latest(ds) == {f"e{i}": "a" for i in range(10)}
    with pytest.raises(CircuitBreakerTripped):  # a tripped dataset stages no more
        ds.stage(_entities(1, "c"), offset_key=KEY, offset={"offset": 31})
    with pytest.raises(CircuitBreakerTripped):  # nor arms again
        ds.arm_breaker(KEY, 3)
    assert ds.rollback_staged() == 4
    assert ds.breaker is None
    assert ds.get_offset(KEY) == {"offset": 9}
    assert _latest(ds) == {f"e{i}": "a" for i in range(10)}
    assert list(ds._db.iterator(prefix=b"u")) == [] and list(ds._db.iterator(prefix=b"v")) == []
    assert check_dataset(ds) == []


def test_uncommitted_reads(populated: Dataset) -> None:
    ds = populated
    ds.arm_breaker(KEY, 1)
    with pytest.raises(CircuitBreakerTripped):
        ds.stage([{"_id": "e1", "v": "b"}, {"_id": "e1", "v": "c"}, {"_id": "x", "v": 0}], offset_key=KEY,
                 offset={"offset": 12})
    versions = [storage.loads(b) for _seq, b in ds.iter_uncommitted()]
    assert [(v["_id"], v["_updated"]) for v in versions[-3:]] == [("e1", 10), ("e1", 11), ("x", 12)]
    assert versions[-2]["_previous"] == 10 and versions[-3]["_previous"] == 1
    latest = [storage.loads(b) for _seq, b in ds.iter_uncommitted(history=False)]
    assert [v["_id"] for v in latest] == [f"e{i}" for i in range(10) if i != 1] + ["e1", "x"]
    assert latest[-2]["v"] == "c"
    assert [storage.loads(b)["_updated"] for _s, b in ds.iter_uncommitted(reverse=True, limit=2)] == [12, 11]
    assert [s for s, _b in ds.iter_uncommitted(since=10)] == [11, 12]
    assert storage.loads(ds.get_stored_uncommitted("e1"))["v"] == "c"
    assert storage.loads(ds.get_stored_uncommitted("e2"))["v"] == "a"
    assert len(list(ds.iter_stored())) == 10  # normal readers: the committed log only


def test_commit_of_a_tripped_run_matches_plain_writes(populated: Dataset, tmp_path: Path) -> None:
    ds = populated
    plain = Dataset(tmp_path / "plain", "plain")
    plain.write(_entities(10), offset_key=KEY, offset={"offset": 9})
    index = lambda entity: entity.get("v")  # noqa: E731
    ds.define_index("v", index)
    plain.define_index("v", index)
    batch = [{"_id": "e1", "v": "b"}, {"_id": "e2", "_deleted": True, "v": "a"}, {"_id": "e3", "_filtered": True}]
    ds.arm_breaker(KEY, 1)
    with pytest.raises(CircuitBreakerTripped):
        ds.stage(batch, offset_key=KEY, offset={"offset": 40})
    assert ds.lookup("v", "b") == []
    ds.commit_staged()
    plain.write(batch, offset_key=KEY, offset={"offset": 40})
    for entity_id in ("e1", "e2", "e3"):
        mine, theirs = ds.get(entity_id), plain.get(entity_id)
        assert {k: v for k, v in mine.items() if k != "_ts"} == {k: v for k, v in theirs.items() if k != "_ts"}
    assert ds.counts() == plain.counts()
    assert ds.lookup("v", "b") == ["e1"] and sorted(ds.lookup("v", "a")) == sorted(plain.lookup("v", "a"))
    assert ds.get_offset(KEY) == {"offset": 40}
    assert check_dataset(ds) == []
    plain.close()


def test_deletion_tracking_deletes_count(populated: Dataset) -> None:
    ds = populated
    run = ds.begin_full_run()
    ds.arm_breaker(KEY, 3)
    assert ds.stage(_entities(7), offset_key=KEY, offset={"offset": None}, full_run=run) == 0  # unchanged, seen
    assert ds.stage(_entities(1, "b", 7), offset_key=KEY, full_run=run) == 1
    assert ds.stage_deletes(run, offset_key=KEY, offset={"offset": None}) == 2  # e8, e9
    assert ds.breaker.written == 3 and not ds.breaker_tripped  # 3 is not over the limit
    assert ds.get("e9")["_deleted"] is False
    ds.commit_staged()
    assert _latest(ds) == {**{f"e{i}": "a" for i in range(7)}, "e7": "b"}
    assert check_dataset(ds) == []


def test_deletion_tracking_trips_then_commit_deletes(populated: Dataset) -> None:
    ds = populated
    run = ds.begin_full_run()
    ds.arm_breaker(KEY, 2)
    ds.stage(_entities(7), offset_key=KEY, full_run=run)
    with pytest.raises(CircuitBreakerTripped, match="wrote 3 entities, more than the limit of 2"):
        ds.stage_deletes(run, offset_key=KEY, offset={"offset": 3}, mark_deletion_tracked=True)
    assert _latest(ds) == {f"e{i}": "a" for i in range(10)}
    ds.commit_staged()
    assert _latest(ds) == {f"e{i}": "a" for i in range(7)}
    assert ds.get("e9")["_deleted"] is True and ds.get("e9")["$deletion_tracked"] is True
    assert ds.get_offset(KEY) == {"offset": 3}
    assert check_dataset(ds) == []


def _tripped(ds: Dataset, n: int) -> None:
    ds.arm_breaker(KEY, 0)
    with pytest.raises(CircuitBreakerTripped):
        ds.stage(_entities(n, "b"), offset_key=KEY, offset={"offset": 99})


@pytest.mark.parametrize("operation", ["commit", "rollback"])
def test_a_crash_part_way_is_resumed_at_open(populated: Dataset, ds_path: Path, operation: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ds = populated
    _tripped(ds, 5)
    monkeypatch.setattr(storage._staging, "CHUNK", 2)
    calls = 0
    original = Dataset.write if operation == "commit" else storage._staging._chunk

    class Crash(Exception):
        pass

    def chunk_then_crash(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Crash
        return original(*args, **kwargs)  # type: ignore[operator]

    if operation == "commit":
        monkeypatch.setattr(Dataset, "write", chunk_then_crash)
        with pytest.raises(Crash):
            storage._staging.commit(ds, None, chunk=2)
    else:
        monkeypatch.setattr(storage._staging, "_chunk", chunk_then_crash)
        with pytest.raises(Crash):
            storage._staging.rollback(ds, chunk=2)
    monkeypatch.undo()
    ds.close()
    reopened = Dataset(ds_path, "test")
    assert reopened.breaker is None
    expected = "b" if operation == "commit" else "a"
    assert _latest(reopened) == {f"e{i}": expected if i < 5 else "a" for i in range(10)}
    assert reopened.get_offset(KEY) == ({"offset": 99} if operation == "commit" else {"offset": 9})
    assert reopened.counts()["log"] == (15 if operation == "commit" else 10)
    assert check_dataset(reopened) == []
    reopened.close()


def test_a_tripped_breaker_survives_a_reopen(populated: Dataset, ds_path: Path) -> None:
    _tripped(populated, 2)
    populated.close()
    reopened = Dataset(ds_path, "test")
    assert reopened.breaker_tripped and reopened.breaker.written == 2
    assert storage.loads(reopened.get_stored_uncommitted("e0"))["v"] == "b"
    reopened.commit_staged()
    assert reopened.get("e0")["v"] == "b"
    reopened.close()


def test_the_next_armed_run_drops_what_an_unfinished_run_staged(populated: Dataset, ds_path: Path) -> None:
    ds = populated
    ds.arm_breaker(KEY, 100)
    ds.stage(_entities(3, "b"), offset_key=KEY, offset={"offset": 50})
    ds.close()  # a crash while staging
    reopened = Dataset(ds_path, "test")
    assert reopened.breaker is not None and not reopened.breaker_tripped
    reopened.arm_breaker(KEY, 100)
    assert reopened.breaker.written == 0
    assert list(reopened.iter_uncommitted(since=9)) == []
    assert reopened.get_offset(KEY) == {"offset": 9}
    reopened.close()


def test_compaction_skips_a_tripped_dataset(populated: Dataset) -> None:
    ds = populated
    ds.write(_entities(10, "z"))
    ds.write(_entities(10, "y"))
    _tripped(ds, 1)
    assert ds.compact(keep_versions=1) == 0
    ds.rollback_staged()
    assert ds.compact(keep_versions=1) == 20
