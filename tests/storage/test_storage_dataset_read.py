"""Dataset reads: since (exclusive), limit, history, deleted, reverse, snapshots, counts."""

from __future__ import annotations

from typing import Any

import pytest

from storage import Dataset, loads


@pytest.fixture
def filled(ds: Dataset) -> Dataset:
    """Offsets: 0 a1, 1 b1, 2 c1, 3 a2, 4 b-deleted, 5 d1, 6 c2."""
    ds.write([{"_id": "a", "v": 1}, {"_id": "b", "v": 1}, {"_id": "c", "v": 1}])
    ds.write([{"_id": "a", "v": 2}, {"_id": "b", "v": 1, "_deleted": True}])
    ds.write([{"_id": "d", "v": 1}, {"_id": "c", "v": 2}])
    return ds


def _offsets(dataset: Dataset, since: int | None = None, **options: Any) -> list[int]:
    return [e["_updated"] for e in dataset.iter_entities(since, **options)]


def test_everything_in_log_order(filled: Dataset) -> None:
    assert _offsets(filled) == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("since", "expected"), [(None, [0, 1, 2, 3, 4, 5, 6]), (-1, [0, 1, 2, 3, 4, 5, 6]), (0, [1, 2, 3, 4, 5, 6]),
                            (3, [4, 5, 6]), (5, [6]), (6, []), (100, [])]
)
def test_since_is_exclusive(filled: Dataset, since: int | None, expected: list[int]) -> None:
    assert _offsets(filled, since) == expected


def test_limit(filled: Dataset) -> None:
    assert _offsets(filled, limit=2) == [0, 1]
    assert _offsets(filled, 4, limit=10) == [5, 6]
    assert _offsets(filled, limit=0) == []
    assert _offsets(filled, history=False, limit=2) == [3, 4]


def test_paging_with_since_and_limit(filled: Dataset) -> None:
    pages, since = [], None
    while True:
        page = _offsets(filled, since, limit=3)
        if not page:
            break
        pages.append(page)
        since = page[-1]
    assert pages == [[0, 1, 2], [3, 4, 5], [6]]


def test_latest_versions_only(filled: Dataset) -> None:
    assert _offsets(filled, history=False) == [3, 4, 5, 6]
    assert _offsets(filled, 3, history=False) == [4, 5, 6]
    assert _offsets(filled, history=False, deleted=False) == [3, 5, 6]


def test_without_deletes(filled: Dataset) -> None:
    assert _offsets(filled, deleted=False) == [0, 1, 2, 3, 5, 6]


def test_reverse(filled: Dataset) -> None:
    assert _offsets(filled, reverse=True) == [6, 5, 4, 3, 2, 1, 0]
    assert _offsets(filled, 4, reverse=True) == [3, 2, 1, 0]  # since pages backwards, exclusive
    assert _offsets(filled, 0, reverse=True) == []
    assert _offsets(filled, reverse=True, limit=2) == [6, 5]
    assert _offsets(filled, reverse=True, history=False) == [6, 5, 4, 3]
    assert _offsets(filled, reverse=True, history=False, deleted=False) == [6, 5, 3]
    assert _offsets(filled, 5, reverse=True, history=False, limit=1) == [4]


def test_stored_bytes_are_the_entities(filled: Dataset) -> None:
    for seq, value in filled.iter_stored():
        entity = loads(value)
        assert entity["_updated"] == seq
        assert list(entity)[:6] == ["_deleted", "_updated", "_previous", "_ts", "_hash", "_id"]


def test_iteration_is_isolated_from_later_writes(filled: Dataset) -> None:
    iterator = filled.iter_entities()
    filled.write([{"_id": "e"}])  # after the call, before iteration starts
    first = next(iterator)
    filled.write([{"_id": "f"}, {"_id": "a", "v": 3}])  # during iteration
    rest = list(iterator)
    assert [e["_updated"] for e in [first, *rest]] == [0, 1, 2, 3, 4, 5, 6]
    latest = filled.iter_entities(history=False)
    filled.write([{"_id": "c", "v": 3}])
    assert [e["_updated"] for e in latest] == [4, 5, 6, 7, 8, 9]
    assert _offsets(filled, 6) == [7, 8, 9, 10]


def test_explicit_snapshot(filled: Dataset) -> None:
    with filled.snapshot() as view:
        filled.write([{"_id": "a", "v": 9}, {"_id": "z"}])
        assert _offsets(filled, snapshot=view) == [0, 1, 2, 3, 4, 5, 6]
        assert filled.get("a", snapshot=view)["v"] == 2  # type: ignore[index]
        assert filled.get("z", snapshot=view) is None
    assert filled.get("a")["v"] == 9  # type: ignore[index]
    assert _offsets(filled, 6) == [7, 8]


def test_abandoned_iterators_release_their_snapshot(filled: Dataset) -> None:
    for _ in range(200):
        iterator = filled.iter_entities(history=False)
        next(iterator)
        iterator.close()
    unstarted = filled.iter_stored()
    del unstarted
    filled.write([{"_id": "x"}])
    assert filled.get("x") is not None


def test_counts(filled: Dataset) -> None:
    assert filled.counts() == {"entities": 3, "deleted": 1, "total": 4, "log": 7, "log_exists": 6, "log_deleted": 1,
                               "next_offset": 7}


def test_latest_offsets(filled: Dataset) -> None:
    assert filled.latest_offsets(["a", "b", "missing", "d"]) == {"a": 3, "b": 4, "d": 5}


def test_empty_dataset(ds: Dataset) -> None:
    assert _offsets(ds) == []
    assert _offsets(ds, reverse=True) == []
    assert _offsets(ds, history=False) == []
    assert ds.counts() == {"entities": 0, "deleted": 0, "total": 0, "log": 0, "log_exists": 0, "log_deleted": 0,
                           "next_offset": 0}


def test_history_false_on_a_large_log(ds: Dataset) -> None:
    for round_ in range(5):
        ds.write({"_id": str(i), "r": round_} for i in range(round_ * 100, 1000))
    latest = list(ds.iter_entities(history=False))
    assert len(latest) == 1000
    assert {e["_id"]: e["r"] for e in latest} == {str(i): min(i // 100, 4) for i in range(1000)}
    offsets = [e["_updated"] for e in latest]
    assert offsets == sorted(offsets)
    assert [e["_updated"] for e in ds.iter_entities(history=False, reverse=True)] == offsets[::-1]
