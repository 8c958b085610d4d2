"""Secondary indexes: maintenance on every write, building, catching up, reopening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import Dataset, EntityError, check_dataset


def by_ref(entity: dict[str, Any]) -> Any:
    return entity.get("ref")


def _index_rows(dataset: Dataset, name: str) -> set[tuple[bytes, str]]:
    """Every (value, id) entry of an index, straight from the store."""
    prefix = b"x" + name.encode() + b"\x00"
    rows = set()
    with dataset.snapshot() as view:
        for key in view.iterator(prefix=prefix, include_value=False):
            value, _, entity_id = key[len(prefix):].partition(b"\x00")
            rows.add((value, entity_id.decode()))
    return rows


def _expected_rows(dataset: Dataset, function: Any) -> set[tuple[bytes, str]]:
    """The entries the index should have: the values of every live latest version."""
    from storage import canonical

    rows = set()
    for entity in dataset.iter_entities(history=False, deleted=False):
        values = function(entity)
        values = values if isinstance(values, list) else [values]
        rows.update((canonical(v), entity["_id"]) for v in values if v is not None)
    return rows


def test_lookup_after_writes(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": "x"}, {"_id": "b", "ref": "x"}, {"_id": "c", "ref": "y"}, {"_id": "d"}])
    assert ds.lookup("ref", "x") == ["a", "b"]
    assert ds.lookup("ref", "y") == ["c"]
    assert ds.lookup("ref", "z") == []
    assert ds.lookup("ref", None) == []


def test_values_keep_their_types(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "int", "ref": 1}, {"_id": "str", "ref": "1"}, {"_id": "dec", "ref": "~f1"},
              {"_id": "bool", "ref": True}, {"_id": "dict", "ref": {"b": 1, "a": 2}}])
    assert ds.lookup("ref", 1) == ["int"]
    assert ds.lookup("ref", "1") == ["str"]
    assert ds.lookup("ref", "~f1") == ["dec"]
    assert ds.lookup("ref", True) == ["bool"]
    assert ds.lookup("ref", {"a": 2, "b": 1}) == ["dict"]


def test_several_values_and_duplicates(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": ["x", "y", "x", None]}, {"_id": "b", "ref": ("y",)}])
    assert ds.lookup("ref", "x") == ["a"]
    assert ds.lookup("ref", "y") == ["a", "b"]
    assert _index_rows(ds, "ref") == {(b'"x"', "a"), (b'"y"', "a"), (b'"y"', "b")}


def test_updates_and_deletes_move_entries(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": ["x", "y"]}, {"_id": "b", "ref": "x"}])
    ds.write([{"_id": "a", "ref": ["y", "z"]}])
    assert ds.lookup("ref", "x") == ["b"]
    assert ds.lookup("ref", "z") == ["a"]
    ds.write([{"_id": "b", "ref": "x", "_deleted": True}])
    assert ds.lookup("ref", "x") == []  # deleted entities are not indexed
    ds.write([{"_id": "a", "ref": "y", "_filtered": True}])
    assert ds.lookup("ref", "y") == []
    ds.write([{"_id": "b", "ref": "x"}])  # undeleted
    assert ds.lookup("ref", "x") == ["b"]
    ds.write([{"_id": "b"}])  # no value any more
    assert ds.lookup("ref", "x") == []
    assert _index_rows(ds, "ref") == set()


def test_same_id_twice_in_one_batch(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": "x"}])
    ds.write([{"_id": "a", "ref": "y"}, {"_id": "a", "ref": "z"}, {"_id": "b", "ref": "y"}])
    assert ds.lookup("ref", "x") == []
    assert ds.lookup("ref", "y") == ["b"]
    assert ds.lookup("ref", "z") == ["a"]
    ds.write([{"_id": "c", "ref": "q"}, {"_id": "c", "ref": "q", "_deleted": True}, {"_id": "c", "ref": "w"}])
    assert ds.lookup("ref", "q") == []
    assert ds.lookup("ref", "w") == ["c"]
    assert _index_rows(ds, "ref") == _expected_rows(ds, by_ref)


def test_building_for_an_existing_dataset(ds: Dataset) -> None:
    ds.write([{"_id": str(i), "ref": i % 7} for i in range(5000)])
    ds.write([{"_id": str(i), "ref": "changed"} for i in range(0, 5000, 10)])
    ds.write([{"_id": str(i), "_deleted": True} for i in range(5, 5000, 10)])
    ds.define_index("ref", by_ref)
    assert ds.index_names()["ref"]["built_through"] == ds.next_offset
    assert len(ds.lookup("ref", "changed")) == 500
    assert _index_rows(ds, "ref") == _expected_rows(ds, by_ref)


def test_catching_up_after_writes_without_the_index(ds_path: Path) -> None:
    with Dataset(ds_path) as dataset:
        dataset.define_index("ref", by_ref, expression="_S.ref")
        dataset.write([{"_id": "a", "ref": "x"}, {"_id": "b", "ref": "x"}, {"_id": "c", "ref": "y"}])
    with Dataset(ds_path) as dataset:  # the index is not registered in this session
        dataset.write([{"_id": "a", "ref": "z"}, {"_id": "b", "_deleted": True}, {"_id": "d", "ref": "x"}])
        with pytest.raises(KeyError):
            dataset.lookup("ref", "x")
        assert dataset.index_names()["ref"]["built_through"] == 3
    with Dataset(ds_path) as dataset:
        dataset.define_index("ref", by_ref, expression="_S.ref")
        assert dataset.lookup("ref", "x") == ["d"]
        assert dataset.lookup("ref", "z") == ["a"]
        assert dataset.lookup("ref", "y") == ["c"]
        assert _index_rows(dataset, "ref") == _expected_rows(dataset, by_ref)
        assert check_dataset(dataset) == []


def test_reopening_keeps_the_index(ds_path: Path) -> None:
    calls = []

    def counting(entity: dict[str, Any]) -> Any:
        calls.append(entity["_id"])
        return entity.get("ref")

    with Dataset(ds_path) as dataset:
        dataset.define_index("ref", counting, expression=["_S.ref", 1])
        dataset.write([{"_id": "a", "ref": "x"}])
    calls.clear()
    with Dataset(ds_path) as dataset:
        dataset.define_index("ref", counting, expression=("_S.ref", 1))  # same expression (tuple/list)
        assert calls == []  # nothing to rebuild
        assert dataset.lookup("ref", "x") == ["a"]


def test_a_changed_expression_rebuilds(ds: Dataset) -> None:
    ds.define_index("i", by_ref, expression="_S.ref")
    ds.write([{"_id": "a", "ref": "x", "other": "o"}])
    ds.define_index("i", lambda e: e.get("other"), expression="_S.other")
    assert ds.lookup("i", "x") == []
    assert ds.lookup("i", "o") == ["a"]


def test_several_indexes_and_dropping(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.define_index("ref2", lambda e: e.get("ref2"))
    ds.write([{"_id": "a", "ref": "x", "ref2": "x"}])
    assert ds.lookup("ref", "x") == ["a"] and ds.lookup("ref2", "x") == ["a"]
    ds.drop_index("ref")
    with pytest.raises(KeyError):
        ds.lookup("ref", "x")
    assert _index_rows(ds, "ref") == set()
    assert set(ds.index_names()) == {"ref2"}
    ds.write([{"_id": "a", "ref": "y", "ref2": "y"}])
    assert ds.lookup("ref2", "y") == ["a"]


def test_index_names_may_be_prefixes_of_each_other(ds: Dataset) -> None:
    ds.define_index("a", lambda e: e.get("p"))
    ds.define_index("ab", lambda e: e.get("q"))
    ds.write([{"_id": "1", "p": "v"}, {"_id": "2", "q": "v"}])
    assert ds.lookup("a", "v") == ["1"]
    assert ds.lookup("ab", "v") == ["2"]
    with pytest.raises(ValueError):
        ds.define_index("bad\x00name", by_ref)


def test_ids_with_separators(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a\x00b", "ref": "x"}, {"_id": "a", "ref": "x\x00"}, {"_id": "é:ü", "ref": "x"}])
    assert ds.lookup("ref", "x") == ["a\x00b", "é:ü"]
    assert ds.lookup("ref", "x\x00") == ["a"]


def test_a_failed_batch_leaves_the_index_right(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": "x"}])
    with pytest.raises(EntityError):
        ds.write([{"_id": "b", "ref": "y"}, {"_id": "a", "ref": "z"}, {"bad": 1}])
    ds.write([{"_id": "b", "ref": "y"}])  # the same values as the failed batch recorded
    ds.write([{"_id": "a", "ref": "x"}])
    assert ds.lookup("ref", "y") == ["b"]
    assert ds.lookup("ref", "x") == ["a"]
    assert _index_rows(ds, "ref") == _expected_rows(ds, by_ref)


def test_an_index_function_error_writes_nothing(ds: Dataset) -> None:
    def fragile(entity: dict[str, Any]) -> Any:
        if entity.get("ref") == "boom":
            raise RuntimeError("boom")
        return entity.get("ref")

    ds.define_index("ref", fragile)
    ds.write([{"_id": "a", "ref": "x"}])
    with pytest.raises(RuntimeError):
        ds.write([{"_id": "b", "ref": "y"}, {"_id": "c", "ref": "boom"}], offset_key="p", offset=1)
    assert ds.get("b") is None and ds.get_offset("p") is None
    ds.write([{"_id": "b", "ref": "y"}])
    assert ds.lookup("ref", "y") == ["b"]


def test_deletion_tracking_removes_index_entries(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": "x"}, {"_id": "b", "ref": "x"}])
    run = ds.begin_full_run()
    ds.write([{"_id": "a", "ref": "x"}], full_run=run)
    ds.end_full_run(run)
    assert ds.lookup("ref", "x") == ["a"]


def test_lookup_in_a_snapshot(ds: Dataset) -> None:
    ds.define_index("ref", by_ref)
    ds.write([{"_id": "a", "ref": "x"}])
    with ds.snapshot() as view:
        ds.write([{"_id": "b", "ref": "x"}, {"_id": "a", "ref": "y"}])
        assert ds.lookup("ref", "x", snapshot=view) == ["a"]
    assert ds.lookup("ref", "x") == ["b"]


def test_index_values_must_be_wire_form(ds: Dataset) -> None:
    from decimal import Decimal

    ds.define_index("ref", lambda e: Decimal(1) if e.get("typed") else e.get("ref"))
    with pytest.raises(TypeError):
        ds.write([{"_id": "a", "typed": True}])
    assert ds.get("a") is None


def test_an_index_is_known_while_defined_and_once_stored(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "d", "d")
    dataset.write([{"_id": "1", "ref": "a"}])
    assert not dataset.has_index("ref") and dataset.defined_indexes() == set()
    dataset.define_index("ref", by_ref)
    assert dataset.has_index("ref") and dataset.defined_indexes() == {"ref"}
    dataset.close()
    reopened = Dataset(tmp_path / "d", "d")  # stored by the earlier process, not defined in this one
    assert reopened.has_index("ref") and reopened.defined_indexes() == set()
    reopened.close()
