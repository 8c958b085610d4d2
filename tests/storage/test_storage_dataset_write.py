"""Dataset writes: change detection, version chains, deletes, filtered entities, offsets, atomicity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import storage
from storage import Dataset, EntityError, check_dataset


def _body(version: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in version.items() if not k.startswith("_") or k == "_id"}


def test_first_write(ds: Dataset) -> None:
    result = ds.write([{"_id": "a", "x": 1}, {"_id": "b", "y": "~f2.50"}])
    assert (result.appended, result.seen) == (2, 2)
    a = ds.get("a")
    assert a is not None
    assert a["_updated"] == 0
    assert a["_previous"] is None
    assert a["_deleted"] is False
    assert isinstance(a["_ts"], int) and a["_ts"] > 1_600_000_000_000_000  # microseconds
    assert len(a["_hash"]) == 32 and int(a["_hash"], 16) >= 0
    assert _body(a) == {"_id": "a", "x": 1}
    assert ds.get("b")["y"] == "~f2.50"  # type: ignore[index]
    assert ds.next_offset == 2
    assert ds.get("missing") is None


def test_unchanged_entities_are_not_appended(ds: Dataset) -> None:
    ds.write([{"_id": "a", "x": 1, "y": {"p": 1, "q": 2}}])
    result = ds.write([{"y": {"q": 2, "p": 1}, "x": 1, "_id": "a", "_updated": 99, "_ts": 5, "_hash": "x"}])
    assert (result.appended, result.seen) == (0, 1)
    assert ds.next_offset == 1
    assert ds.write([{"_id": "a", "x": 2, "y": {"p": 1, "q": 2}}]).appended == 1
    assert ds.write([{"_id": "a", "x": 2, "y": {"p": 1, "q": 2}, "_deleted": False}]).appended == 0


def test_previous_chain(ds: Dataset) -> None:
    for value in range(4):
        ds.write([{"_id": "a", "v": value}, {"_id": f"other{value}"}])
    versions = ds.versions("a")
    assert [v["v"] for v in versions] == [0, 1, 2, 3]
    assert [v["_updated"] for v in versions] == [0, 2, 4, 6]
    assert [v["_previous"] for v in versions] == [None, 0, 2, 4]
    assert ds.versions("missing") == []


def test_root_underscore_keys_are_dropped(ds: Dataset) -> None:
    ds.write([{"_id": "a", "_updated": 55, "_previous": 3, "_ts": 1, "_hash": "bad", "_foo": 1,
               "_tracked": True, "x": {"_nested": 1}, "$ids": ["~:a:1"]}])
    stored = ds.get("a")
    assert stored is not None
    assert stored["_updated"] == 0 and stored["_previous"] is None and stored["_hash"] != "bad"
    assert "_foo" not in stored and "_tracked" not in stored
    assert stored["x"] == {"_nested": 1}
    assert stored["$ids"] == ["~:a:1"]


def test_stored_hash_matches_content_hash(ds: Dataset) -> None:
    ds.write([{"_id": "a", "x": [1, "~f1.0"]}, {"_id": "b", "_deleted": True, "y": 1}])
    for entity_id in ("a", "b"):
        stored = ds.get(entity_id)
        assert stored is not None
        assert stored["_hash"] == storage.prepare(stored).digest.hex()


def test_deletes(ds: Dataset) -> None:
    ds.write([{"_id": "a", "x": 1}])
    result = ds.write([{"_id": "a", "x": 1, "_deleted": True}])
    assert result.appended == 1
    deleted = ds.get("a")
    assert deleted is not None and deleted["_deleted"] is True and deleted["_previous"] == 0
    assert deleted["_hash"] != ds.versions("a")[0]["_hash"]
    assert ds.counts()["entities"] == 0 and ds.counts()["deleted"] == 1
    assert ds.write([{"_id": "a", "x": 1, "_deleted": True}]).appended == 0  # same delete again
    assert ds.write([{"_id": "a", "x": 1}]).appended == 1  # undelete
    assert ds.get("a")["_deleted"] is False  # type: ignore[index]
    assert ds.counts()["entities"] == 1 and ds.counts()["deleted"] == 0


def test_a_first_version_may_be_a_delete(ds: Dataset) -> None:
    result = ds.write([{"_id": "a", "_deleted": True}])
    assert result.appended == 1
    assert ds.get("a")["_deleted"] is True  # type: ignore[index]
    assert ds.counts() == {"entities": 0, "deleted": 1, "total": 1, "log": 1, "log_exists": 0, "log_deleted": 1,
                           "next_offset": 1}


@pytest.mark.parametrize("not_true", ["true", 1, None, "yes"])
def test_only_literal_true_deletes(ds: Dataset, not_true: Any) -> None:
    ds.write([{"_id": "a", "_deleted": not_true}])
    assert ds.get("a")["_deleted"] is False  # type: ignore[index]


def test_filtered(ds: Dataset) -> None:
    # Filtered with no existing version: dropped.
    assert ds.write([{"_id": "a", "x": 1, "_filtered": True}]).appended == 0
    assert ds.get("a") is None
    # Filtered with a live version: a delete (of the filtered entity's body).
    ds.write([{"_id": "a", "x": 1}])
    assert ds.write([{"_id": "a", "x": 2, "_filtered": True}]).appended == 1
    stored = ds.get("a")
    assert stored is not None and stored["_deleted"] is True and stored["x"] == 2 and "_filtered" not in stored
    # Filtered again while deleted: nothing.
    assert ds.write([{"_id": "a", "x": 3, "_filtered": True}]).appended == 0
    # _filtered other than true is ignored.
    assert ds.write([{"_id": "a", "x": 3, "_filtered": "true"}]).appended == 1
    assert ds.get("a")["_deleted"] is False  # type: ignore[index]


def test_duplicate_ids_in_one_batch(ds: Dataset) -> None:
    result = ds.write([{"_id": "a", "v": 1}, {"_id": "a", "v": 2}, {"_id": "a", "v": 2}, {"_id": "a", "v": 1}])
    assert (result.appended, result.seen) == (3, 4)
    assert [v["v"] for v in ds.versions("a")] == [1, 2, 1]
    assert [v["_previous"] for v in ds.versions("a")] == [None, 0, 1]
    assert ds.counts()["entities"] == 1
    result = ds.write([{"_id": "b"}, {"_id": "b", "_deleted": True}, {"_id": "b"}])
    assert result.appended == 3
    assert ds.counts() == {"entities": 2, "deleted": 0, "total": 2, "log": 6, "log_exists": 5, "log_deleted": 1,
                           "next_offset": 6}


def test_force_appends_unchanged(ds: Dataset) -> None:
    ds.write([{"_id": "a"}])
    assert ds.write([{"_id": "a"}], force=True).appended == 1
    versions = ds.versions("a")
    assert len(versions) == 2 and versions[0]["_hash"] == versions[1]["_hash"]
    # (check_dataset would flag equal consecutive hashes; force is the documented exception.)
    assert any("same hash" in p for p in check_dataset(ds))
    ds.close()


def test_offsets_commit_with_the_batch(ds: Dataset) -> None:
    assert ds.get_offset("pipe") is None
    assert ds.get_offset("pipe", 7) == 7
    ds.write([{"_id": "a"}], offset_key="pipe", offset={"since": "abc", "n": 10**30})
    assert ds.get_offset("pipe") == {"since": "abc", "n": 10**30}
    ds.write([], offset_key="pipe", offset=5)  # an empty batch still moves the offset
    assert ds.get_offset("pipe") == 5
    ds.write([{"_id": "a"}], offset_key="other", offset=None)
    assert ds.offsets() == {"pipe": 5, "other": None}
    ds.write([{"_id": "b"}], offset_key="pipe")  # no offset given: unchanged
    assert ds.get_offset("pipe") == 5


def test_a_bad_entity_writes_nothing(ds: Dataset) -> None:
    ds.write([{"_id": "a", "v": 1}], offset_key="pipe", offset=1)
    bad_batches: list[list[Any]] = [
        [{"_id": "b"}, {"_id": 5}],
        [{"_id": "b"}, {"x": 1}],
        [{"_id": "b"}, ["not", "an", "entity"]],
        [{"_id": "b"}, {"_id": "c", "x": {1: 2}}],
        [{"_id": "b"}, {"_id": "c", "x": b"bytes"}],
        [{"_id": "b"}, {"_id": "c", "x": {"y": object()}}],
        [{"_id": "a", "v": 2}, {"_id": "\ud800"}],
    ]
    for batch in bad_batches:
        with pytest.raises(EntityError):
            ds.write(batch, offset_key="pipe", offset=2)
        assert ds.next_offset == 1
        assert ds.get("b") is None
        assert ds.get("a")["v"] == 1  # type: ignore[index]
        assert ds.get_offset("pipe") == 1
        assert ds.counts()["log"] == 1
    assert check_dataset(ds) == []
    assert ds.write([{"_id": "b"}], offset_key="pipe", offset=2).appended == 1
    assert ds.next_offset == 2


def test_an_entity_error_names_the_problem() -> None:
    with pytest.raises(EntityError, match="no _id"):
        storage.prepare({"x": 1})
    with pytest.raises(EntityError, match="must be a string"):
        storage.prepare({"_id": 1})
    with pytest.raises(EntityError, match="JSON object"):
        storage.prepare([1])


def test_ids_with_odd_characters(ds: Dataset) -> None:
    ids = ["", "a:b:c", "ü", "with space", "a\x00b", "a\nb", "🙂", "x" * 5000, '"quoted"', "\\"]
    ds.write([{"_id": i, "v": n} for n, i in enumerate(ids)])
    for n, entity_id in enumerate(ids):
        assert ds.get(entity_id)["v"] == n  # type: ignore[index]
    assert ds.get("a") is None  # a prefix of "a\x00b" and "a:b:c" is not an id
    assert sorted(e["_id"] for e in ds.iter_entities()) == sorted(ids)


def test_empty_body_and_big_values(ds: Dataset) -> None:
    ds.write([{"_id": "a"}, {"_id": "b", "n": 10**50, "s": "é" * 10000}])
    assert _body(ds.get("a")) == {"_id": "a"}  # type: ignore[arg-type]
    assert ds.get("b")["n"] == 10**50  # type: ignore[index]


def test_populated(ds: Dataset) -> None:
    assert not ds.populated
    ds.write([{"_id": "a"}], populated=True)
    assert ds.populated
    ds.set_populated(False)
    assert not ds.populated
    ds.set_populated()
    assert ds.populated


def test_reopen_keeps_everything(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        generation = dataset.generation
        dataset.write([{"_id": "a", "v": 1}, {"_id": "b"}], offset_key="p", offset=3, populated=True)
        dataset.write([{"_id": "a", "v": 2}, {"_id": "b", "_deleted": True}])
        counts = dataset.counts()
    with Dataset(ds_path) as dataset:
        assert dataset.generation == generation
        assert dataset.counts() == counts
        assert dataset.populated
        assert dataset.get_offset("p") == 3
        assert [v["v"] for v in dataset.versions("a")] == [1, 2]
        assert dataset.write([{"_id": "a", "v": 2}]).appended == 0
        assert dataset.write([{"_id": "c"}]).appended == 1
        assert dataset.get("c")["_updated"] == 4  # type: ignore[index]
        assert check_dataset(dataset) == []


def test_generation_is_new_for_a_new_dataset(tmp_path: Path) -> None:
    with Dataset(tmp_path / "a") as a, Dataset(tmp_path / "b") as b:
        assert a.generation != b.generation


def test_open_without_create(tmp_path: Path) -> None:
    with pytest.raises(storage.StorageError, match="does not exist"):
        Dataset(tmp_path / "missing", create=False)


def test_write_accepts_any_iterable(ds: Dataset) -> None:
    result = ds.write({"_id": str(i)} for i in range(100))
    assert result.appended == 100
    assert ds.counts()["entities"] == 100


def test_nesting(ds: Dataset) -> None:
    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = {"k": [value]}
        return value

    ds.write([{"_id": "deep", "v": nested(200)}])  # beyond orjson's depth limit (a slower path)
    assert ds.get("deep")["v"] == nested(200)  # type: ignore[index]
    assert ds.write([{"_id": "deep", "v": nested(200)}]).appended == 0
    with pytest.raises(EntityError):
        ds.write([{"_id": "too-deep", "v": nested(5000)}])
    assert ds.get("too-deep") is None


def test_offsets_must_be_json(ds: Dataset) -> None:
    with pytest.raises(TypeError):
        ds.write([{"_id": "a"}], offset_key="p", offset={1, 2})
    assert ds.get("a") is None
