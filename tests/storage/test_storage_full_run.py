"""Full runs and deletion tracking (node-spec 2.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Dataset, EmptySourceError, check_dataset


def _live(dataset: Dataset) -> set[str]:
    return {e["_id"] for e in dataset.iter_entities(history=False, deleted=False)}


@pytest.fixture
def abc(ds: Dataset) -> Dataset:
    ds.write([{"_id": "a", "name": "A"}, {"_id": "b", "name": "B"}, {"_id": "c", "name": "C"}])
    return ds


def test_ids_not_seen_are_deleted(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=run)  # unchanged, but seen
    abc.write([{"_id": "b", "name": "B2"}, {"_id": "d"}], full_run=run)
    assert (run.seen, run.appended) == (3, 2)
    assert abc.end_full_run(run) == 1
    assert _live(abc) == {"a", "b", "d"}
    deleted = abc.get("c")
    assert deleted is not None
    assert deleted["_deleted"] is True and deleted["name"] == "C"  # a copy of the latest body
    assert deleted["_previous"] == 2
    assert "$deletion_tracked" not in deleted
    assert deleted["_hash"] != abc.versions("c")[0]["_hash"]


def test_mark_deletion_tracked(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=run)
    assert abc.end_full_run(run, mark_deletion_tracked=True) == 2
    for entity_id in ("b", "c"):
        assert abc.get(entity_id)["$deletion_tracked"] is True  # type: ignore[index]


def test_an_empty_run_deletes_everything_by_default(abc: Dataset) -> None:
    run = abc.begin_full_run()
    assert abc.end_full_run(run) == 3
    assert _live(abc) == set()
    assert abc.counts()["deleted"] == 3


def test_an_empty_run_fails_when_asked(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([], full_run=run)
    with pytest.raises(EmptySourceError):
        abc.end_full_run(run, if_empty="fail", offset_key="p", offset=1)
    assert _live(abc) == {"a", "b", "c"}
    assert abc.next_offset == 3
    assert abc.get_offset("p") is None


def test_if_empty_fail_with_entities_deletes_normally(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=run)
    assert abc.end_full_run(run, if_empty="fail") == 2


def test_bad_if_empty(abc: Dataset) -> None:
    run = abc.begin_full_run()
    with pytest.raises(ValueError, match="if_empty"):
        abc.end_full_run(run, if_empty="yes")


def test_already_deleted_ids_stay_as_they_are(abc: Dataset) -> None:
    abc.write([{"_id": "c", "name": "C", "_deleted": True}])
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}, {"_id": "b", "name": "B"}], full_run=run)
    assert abc.end_full_run(run) == 0
    assert len(abc.versions("c")) == 2


def test_deletes_and_filtered_in_the_run_count_as_seen(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A", "_deleted": True}, {"_id": "b", "_filtered": True},
               {"_id": "c", "name": "C"}], full_run=run)
    assert abc.end_full_run(run) == 0
    assert _live(abc) == {"c"}
    # A filtered entity of an already deleted id is also seen (and stays deleted).
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "_filtered": True}, {"_id": "c", "name": "C"}], full_run=run)
    assert abc.end_full_run(run) == 0


def test_offset_is_stored_with_the_deletes(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=run, offset_key="p", offset=1)
    assert abc.get_offset("p") == 1
    abc.end_full_run(run, offset_key="p", offset="done")
    assert abc.get_offset("p") == "done"
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=run)
    abc.end_full_run(run, offset_key="p", offset=7)  # nothing to delete, the offset still moves
    assert abc.get_offset("p") == 7


def test_deletes_in_several_batches(ds: Dataset) -> None:
    ds.write({"_id": f"{i:04d}", "n": i} for i in range(2500))
    run = ds.begin_full_run()
    ds.write(({"_id": f"{i:04d}", "n": i} for i in range(0, 2500, 2)), full_run=run)
    assert ds.end_full_run(run, batch_size=300) == 1250
    assert _live(ds) == {f"{i:04d}" for i in range(0, 2500, 2)}
    assert ds.counts()["entities"] == 1250 and ds.counts()["deleted"] == 1250


def test_incremental_writes_during_a_full_run_survive(abc: Dataset) -> None:
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=run)
    abc.write([{"_id": "e"}, {"_id": "a", "name": "A2"}])  # an incremental run meanwhile
    assert abc.end_full_run(run) == 2
    assert _live(abc) == {"a", "e"}
    # The next full run deletes them normally if it does not see them.
    run = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A2"}], full_run=run)
    assert abc.end_full_run(run) == 1
    assert _live(abc) == {"a"}


def test_a_replaced_full_run_cannot_end(abc: Dataset) -> None:
    first = abc.begin_full_run()
    abc.write([{"_id": "a", "name": "A"}], full_run=first)
    second = abc.begin_full_run()
    abc.write([{"_id": "b", "name": "B"}], full_run=second)
    with pytest.raises(ValueError, match="replaced"):
        abc.end_full_run(first)
    assert abc.end_full_run(second) == 2
    assert _live(abc) == {"b"}


def test_consecutive_full_runs(abc: Dataset) -> None:
    for keep in (["a", "b"], ["b"], ["b", "c"], []):
        run = abc.begin_full_run()
        abc.write(({"_id": i, "name": i.upper()} for i in keep), full_run=run)
        abc.end_full_run(run)
        assert _live(abc) == set(keep)
        assert check_dataset(abc) == []


def test_a_full_run_survives_reopening(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        dataset.write([{"_id": "a"}, {"_id": "b"}])
        run = dataset.begin_full_run()
        dataset.write([{"_id": "a"}], full_run=run)
    with Dataset(ds_path) as dataset:
        assert dataset.end_full_run(run) == 1
        assert _live(dataset) == {"a"}
        second = dataset.begin_full_run()
        assert second.generation == run.generation + 1
        dataset.write([{"_id": "a"}], full_run=second)
        assert dataset.end_full_run(second) == 0
        assert check_dataset(dataset) == []


def test_a_first_load_needs_no_scan(ds: Dataset) -> None:
    """A full run that began on a dataset with no live ids skips the scan: only what it or incremental
    writes put there since can be live, and all of that carries its mark."""
    ds.write([{"_id": "gone", "_deleted": True}])
    run = ds.begin_full_run()
    assert run.stale_possible is False
    ds.write([{"_id": "a"}, {"_id": "b"}], full_run=run, offset_key="p", offset=1)
    ds.write([{"_id": "c"}])  # an incremental write meanwhile
    assert ds.end_full_run(run, offset_key="p", offset=2) == 0
    assert _live(ds) == {"a", "b", "c"}
    assert ds.get_offset("p") == 2
    # The next full run starts on live ids: it scans, and deletes what it did not see.
    run = ds.begin_full_run()
    assert run.stale_possible is True
    ds.write([{"_id": "a"}], full_run=run)
    assert ds.end_full_run(run) == 2
    assert _live(ds) == {"a"}


def test_an_older_full_run_writing_makes_the_scan_needed(ds: Dataset) -> None:
    """Two full runs overlap: the first one's writes after the second began are stale for the second."""
    ds.write([{"_id": "x"}, {"_id": "x", "_deleted": True}])
    older = ds.begin_full_run()
    newer = ds.begin_full_run()
    assert newer.stale_possible is False
    ds.write([{"_id": "old"}], full_run=older)
    assert newer.stale_possible is True
    ds.write([{"_id": "new"}], full_run=newer)
    assert ds.end_full_run(newer) == 1
    assert _live(ds) == {"new"}
