"""``Dataset.write``'s inlined fast path writes exactly what the general path writes.

A dataset with a secondary index takes the general path (``prepare``, ``_append``, ``stored_bytes``)
for every entity; one without takes the fast path for most. The same writes must leave the same keys and
values (but the index's own), and return the same results.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import storage
from storage import Dataset, EntityError, check_dataset


@pytest.fixture(params=[0, 10**9], ids=["range-check", "no-range-check"])
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: Any) -> Iterator[tuple[Dataset, Dataset]]:
    """(fast, general): two empty datasets, with the same clock; the fast one checks id ranges or not."""
    monkeypatch.setattr(storage._dataset, "_RANGE_CHECK_MIN", request.param)
    clock = itertools.count(1_700_000_000_000_000, 1000)
    now = 0

    def tick() -> int:
        return now

    monkeypatch.setattr(storage._dataset, "now_us", tick)
    fast = Dataset(tmp_path / "fast", "fast")
    general = Dataset(tmp_path / "general", "general")
    general.define_index("none", lambda entity: None)  # maintaining an index: never the fast path

    def advance() -> None:
        nonlocal now
        now = next(clock)

    fast._advance = general._advance = advance  # type: ignore[attr-defined]
    yield fast, general
    for dataset in (fast, general):
        dataset.close()


def _contents(dataset: Dataset) -> dict[bytes, bytes]:
    skip = (b"mgeneration", b"mindex:")
    return {k: v for k, v in dataset._db.iterator() if not k.startswith(skip)}


def _write_both(pair: tuple[Dataset, Dataset], entities: list[Any], **options: Any) -> storage.WriteResult:
    fast, general = pair
    fast._advance()  # type: ignore[attr-defined]
    runs = options.pop("full_run", (None, None))
    results = [dataset.write([dict(e) for e in entities], full_run=run, **options)
               for dataset, run in zip(pair, runs, strict=True)]
    assert results[0] == results[1]
    assert _contents(fast) == _contents(general)
    return results[0]


BATCHES: list[list[dict[str, Any]]] = [
    # new plain entities, nested "_" keys, an empty body, a non-ASCII id, a duplicate in the batch
    [{"_id": "a", "x": 1, "y": {"q": [1, {"_n": 2}], "p": "~f2.50"}}, {"_id": "b"}, {"_id": "ø\u2603", "v": "é"},
     {"_id": "c", "$ids": ["~:c:1"], "n": None, "t": True}, {"_id": "a", "x": 2}, {"_id": "h", "v": '_"_'},
     {"_id": "i", "Z": 1, "_": 2, "`": 3, "^": 4}],
    # unchanged (in another key order, with the fields of a stored version), changed, and a new one
    [{"y": 1, "_id": "c"}, {"_id": "a", "_updated": 5, "_ts": 3, "_hash": "x", "x": 2}, {"_id": "b", "z": []},
     {"_id": "d", "_foo": 1, "k": "v"}],
    # deletes: of an existing id, of a new id, twice in a batch, explicit _deleted false
    [{"_id": "a", "_deleted": True, "x": 2}, {"_id": "e", "_deleted": True}, {"_id": "b", "_deleted": True},
     {"_id": "b", "_deleted": True, "w": 1}, {"_id": "c", "_deleted": False, "y": 1}],
    # undelete, filtered (existing, deleted, new), a changed then unchanged duplicate
    [{"_id": "a", "x": 3}, {"_id": "c", "_filtered": True}, {"_id": "e", "_filtered": True},
     {"_id": "f", "_filtered": True, "v": 1}, {"_id": "d", "k": "w"}, {"_id": "d", "k": "w"}],
    # big ints (not orjson's), and values orjson would write but are not wire form in the general path
    [{"_id": "g", "big": 2**70, "n": [-(2**80)]}, {"_id": "a", "x": 3, "_deleted": "yes"}],
    # the same again: all unchanged
    [{"_id": "g", "big": 2**70, "n": [-(2**80)]}, {"_id": "a", "x": 3}, {"_id": "b", "_deleted": True, "w": 1}],
]


def test_same_writes_same_store(pair: tuple[Dataset, Dataset]) -> None:
    for entities in BATCHES:
        _write_both(pair, entities)
    assert check_dataset(pair[0]) == check_dataset(pair[1]) == []
    for entities in BATCHES:
        _write_both(pair, entities, force=True)
    result = _write_both(pair, [{"_id": f"n{i:03d}", "i": i, "s": "x" * i} for i in range(300)])
    assert (result.appended, result.seen) == (300, 300)


def test_same_full_runs(pair: tuple[Dataset, Dataset]) -> None:
    _write_both(pair, BATCHES[0] + BATCHES[1])
    fast, general = pair
    runs = (fast.begin_full_run(), general.begin_full_run())
    _write_both(pair, BATCHES[1], full_run=runs)
    _write_both(pair, [{"_id": "a", "x": 2}, {"_id": "c", "_filtered": True}], full_run=runs)
    _write_both(pair, [{"_id": "x", "v": 1}])  # an incremental write during the run
    assert fast.end_full_run(runs[0]) == general.end_full_run(runs[1])
    assert _contents(fast) == _contents(general)
    assert check_dataset(fast) == check_dataset(general) == []


@pytest.mark.parametrize("entity", [
    [1], "a", None, {"x": 1}, {"_id": 1}, {"_id": None}, {"_id": "a", 1: 2}, {"_id": "a", "v": {1: 2}},
    {"_id": "a", "v": 1.5j}, {"_id": "\ud800"}, {"_id": "a", "v": "\udc00"}, {"_id": "a", "v": b"x"},
])
def test_bad_entities_fail_the_same_way(pair: tuple[Dataset, Dataset], entity: Any) -> None:
    _write_both(pair, [{"_id": "ok", "v": 1}])
    errors = []
    for dataset in pair:
        with pytest.raises(ValueError) as info:  # EntityError (or UnicodeEncodeError for a lone surrogate)
            dataset.write([{"_id": "ok", "v": 2}, entity])
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    assert errors[0][0] in (EntityError, UnicodeEncodeError)
    assert pair[0].get("ok")["v"] == 1  # type: ignore[index]
    assert _contents(pair[0]) == _contents(pair[1])
    assert check_dataset(pair[0]) == check_dataset(pair[1]) == []


def test_id_ranges(pair: tuple[Dataset, Dataset]) -> None:
    fast, _general = pair
    in_range = fast._stored_in_range
    assert (in_range([{"_id": "b"}, {"_id": "a"}]) == {}) is (storage._dataset._RANGE_CHECK_MIN <= 2)
    _write_both(pair, [{"_id": f"k{i:02d}", "v": i} for i in range(0, 40, 2)])  # k00, k02, ..., k38
    if storage._dataset._RANGE_CHECK_MIN > 0:
        return
    assert in_range([{"_id": "a"}, {"_id": "k"}]) == {}  # before every stored id
    assert in_range([{"_id": "k39"}, {"_id": "z"}]) == {}  # after
    assert in_range([{"_id": "k03"}, {"_id": "k03x"}]) == {}  # between two
    assert set(in_range([{"_id": "k03"}, {"_id": "k04"}]) or ()) == {b"ik04"}  # k04 is stored
    assert set(in_range([{"_id": "k04"}, {"_id": "k06"}, {"_id": "k07"}]) or ()) == {b"ik04", b"ik06"}
    assert in_range([{"_id": "a"}, {"_id": "z"}]) is None  # 20 stored ids in range: too sparse, then a pause
    assert in_range([{"_id": "k03"}, {"_id": "k04"}]) is None  # paused
    fast._scan_pause = 0
    assert in_range([{"_id": "a"}, {"_id": 1}]) is None
    assert in_range([{"_id": "a"}, ["_id"]]) is None
    assert in_range([{"_id": "a"}, {"x": 1}]) is None
    assert in_range([{"_id": "\ud800"}, {"_id": "z"}]) is None
    assert in_range(iter([{"_id": "a"}])) is None
    # new ids, with one stored id among them (changed, then unchanged): found all the same
    _write_both(pair, [{"_id": "k03", "v": 3}, {"_id": "k04", "v": 5}, {"_id": "k05", "v": 5}])
    _write_both(pair, [{"_id": "k04", "v": 5}, {"_id": "k041", "v": 5}, {"_id": "k04", "v": 5}])
    assert [v["v"] for v in fast.versions("k04")] == [4, 5]
