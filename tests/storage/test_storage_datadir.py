"""The data directory (dataset naming) and the node store."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import DataDir, NodeStore, validate_dataset_id

ODD_IDS = [
    "system:pump_execution:my-pipe",
    "system:config",
    "with space",
    "ümlaut-ø",
    "per%cent",
    "a%3A",
    "dots.and_under-score=eq",
    "...",
    "🙂",
    "tab\there",
    "back\\slash",
    "CaseSensitive",
    "casesensitive",
]


def test_dataset_names_round_trip(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    for n, name in enumerate(ODD_IDS):
        with data.open_dataset(name) as dataset:
            dataset.write([{"_id": "x", "n": n}])
    assert data.dataset_names() == sorted(ODD_IDS)
    paths = {data.dataset_path(name) for name in ODD_IDS}
    assert len(paths) == len(ODD_IDS)
    for path in paths:
        assert path.parent == data.datasets_root
    for n, name in enumerate(ODD_IDS):
        assert data.exists(name)
        with data.open_dataset(name, create=False) as dataset:
            assert dataset.name == name
            assert dataset.get("x")["n"] == n  # type: ignore[index]


def test_directory_names_are_safe(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert data.dataset_path("system:config").name == "system:config"
    assert data.dataset_path("a b").name == "a%20b"
    assert data.dataset_path("%").name == "%25"
    assert data.dataset_path("..x").name == "..x"
    for name in ODD_IDS:
        assert "/" not in data.dataset_path(name).name


@pytest.mark.parametrize("bad", ["", "a/b", "/", ".", "..", None, 5])
def test_invalid_ids(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError):
        validate_dataset_id(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DataDir(tmp_path).open_dataset(bad)  # type: ignore[arg-type]


def test_missing_and_deleted_datasets(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert not data.exists("x")
    with pytest.raises(KeyError):
        data.open_dataset("x", create=False)
    assert data.dataset_names() == []
    with data.open_dataset("x") as dataset:
        generation = dataset.generation
        dataset.write([{"_id": "a"}])
    data.delete_dataset("x")
    assert not data.exists("x")
    assert data.dataset_names() == []
    with data.open_dataset("x") as dataset:
        assert dataset.generation != generation
        assert dataset.counts()["log"] == 0


def test_node_store(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    with data.open_node_store() as store:
        assert store.get("config", "pipe-a") is None
        assert store.get("config", "pipe-a", {}) == {}
        store.put("config", "pipe-a", {"_id": "pipe-a", "type": "pipe", "n": 10**30, "f": "~f1.50"})
        store.put("config", "pipe-b", {"_id": "pipe-b"})
        store.put("pump", "pipe-a", {"last_run": 5})
        store.put("secret", "k", "v")
        store.put("env", "e:x", [1, 2])
        store.delete("config", "pipe-b")
        store.delete("config", "never-there")
    with NodeStore(tmp_path / "node") as store:
        assert store.get("config", "pipe-a") == {"_id": "pipe-a", "type": "pipe", "n": 10**30, "f": "~f1.50"}
        assert dict(store.items("config")) == {"pipe-a": store.get("config", "pipe-a")}
        assert dict(store.items("pump")) == {"pipe-a": {"last_run": 5}}
        assert store.get("secret", "k") == "v"
        assert dict(store.items("env")) == {"e:x": [1, 2]}


def test_node_store_put_many(tmp_path: Path) -> None:
    with NodeStore(tmp_path / "node") as store:
        store.put_many("config", [("a", 1), ("b", 2)])
        store.put_many("config", [("c", 3)])
        assert dict(store.items("config")) == {"a": 1, "b": 2, "c": 3}
        store.put("pump", "a", "kept")
        store.put_many("config", [("b", 20), ("d", 4)], replace=True)
        assert dict(store.items("config")) == {"b": 20, "d": 4}
        assert store.get("pump", "a") == "kept"
        store.put_many("config", [], replace=True)
        assert dict(store.items("config")) == {}


def test_node_store_kinds(tmp_path: Path) -> None:
    with NodeStore(tmp_path / "node") as store:
        for bad in (lambda: store.put("nope", "a", 1), lambda: store.get("nope", "a"),
                    lambda: store.put_many("nope", [("a", 1)]), lambda: store.put_many("nope", [], replace=True),
                    lambda: list(store.items("nope"))):
            with pytest.raises(ValueError):
                bad()


def test_node_store_names_do_not_leak_across_kinds(tmp_path: Path) -> None:
    with NodeStore(tmp_path / "node") as store:
        store.put("env", "a", 1)
        store.put("meta", "a", 2)
        store.put("env", "a\x00b", 3)
        assert dict(store.items("env")) == {"a": 1, "a\x00b": 3}
        assert dict(store.items("meta")) == {"a": 2}


def test_node_store_rejects_values_that_are_not_json(tmp_path: Path) -> None:
    from decimal import Decimal

    with NodeStore(tmp_path / "node") as store:
        with pytest.raises(TypeError):
            store.put("config", "a", {"x": Decimal("1.5")})
        with pytest.raises(TypeError):
            store.put_many("config", [("a", 1), ("b", {1, 2})])
        assert store.get("config", "a") is None
