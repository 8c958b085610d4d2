"""The data directory (dataset naming, LevelDB option profiles) and the node store."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage._leveldb
from storage import DataDir, Dataset, LevelDBOptions, NodeStore, validate_dataset_id

MIB = 1 << 20

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


# -- LevelDB option profiles ---------------------------------------------------------------------------


def test_option_profiles() -> None:
    bulk, node = LevelDBOptions.BULK, LevelDBOptions.NODE
    assert (bulk.write_buffer_size, bulk.lru_cache_size) == (64 * MIB, 32 * MIB)  # the ingest benchmarks' figures
    assert node.write_buffer_size < bulk.write_buffer_size and node.lru_cache_size < bulk.lru_cache_size
    assert node.memory_budget == 2 * node.write_buffer_size + node.lru_cache_size
    assert node.memory_budget <= 48 * MIB  # a pipe with three datasets open stays far below the 300 MB target
    assert node.max_open_files == 74  # LevelDB's minimum: 64 memory-mapped table files per database
    assert bulk.plyvel_kwargs() == {"write_buffer_size": 64 * MIB, "lru_cache_size": 32 * MIB,
                                    "max_open_files": 256, "block_size": 16 << 10, "bloom_filter_bits": 10}
    smaller = node.replace(write_buffer_size=2 * MIB)
    assert smaller.write_buffer_size == 2 * MIB and smaller.lru_cache_size == node.lru_cache_size
    assert node.write_buffer_size == 8 * MIB  # replace copies
    assert smaller.describe() == "write buffer 2 MiB, cache 8 MiB, 74 open files"


@pytest.mark.parametrize("changes", [
    {"write_buffer_size": 0}, {"write_buffer_size": -1}, {"lru_cache_size": 0}, {"max_open_files": 0},
    {"block_size": 1.5}, {"lru_cache_size": "8"}, {"write_buffer_size": True}, {"bloom_filter_bits": -1},
    {"write_buffer_size": (1 << 30) + 1}, {"max_open_files": 73},
])
def test_invalid_options(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        LevelDBOptions.NODE.replace(**changes)  # type: ignore[arg-type]


@pytest.fixture
def plyvel_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, object]]]:
    """Every ``plyvel.DB(path, **kwargs)`` the storage package makes, recorded (the databases really open)."""
    calls: list[tuple[str, dict[str, object]]] = []
    real = storage._leveldb.plyvel.DB

    def recording(path: str, **kwargs: object) -> object:
        calls.append((path, kwargs))
        return real(path, **kwargs)

    monkeypatch.setattr(storage._leveldb.plyvel, "DB", recording)
    return calls


def _sizes(kwargs: dict[str, object]) -> tuple[object, object]:
    return kwargs["write_buffer_size"], kwargs["lru_cache_size"]


def test_datadir_opens_datasets_with_the_node_profile(tmp_path: Path, plyvel_calls: list) -> None:
    data = DataDir(tmp_path)
    assert data.options == LevelDBOptions.NODE
    with data.open_dataset("a") as dataset:
        assert dataset.options == LevelDBOptions.NODE
    with data.open_dataset("a", create=False) as dataset:
        assert dataset.options == LevelDBOptions.NODE
    assert [path for path, _ in plyvel_calls] == [str(data.dataset_path("a"))] * 2
    for _path, kwargs in plyvel_calls:
        assert kwargs == {**LevelDBOptions.NODE.plyvel_kwargs(), "create_if_missing": True}


def test_datadir_with_the_bulk_profile_or_own_options(tmp_path: Path, plyvel_calls: list) -> None:
    with DataDir(tmp_path, options=LevelDBOptions.BULK).open_dataset("a") as dataset:
        assert dataset.options is LevelDBOptions.BULK
        dataset.write([{"_id": "x"}])
    assert _sizes(plyvel_calls[-1][1]) == (64 * MIB, 32 * MIB)
    own = LevelDBOptions(write_buffer_size=3 * MIB, lru_cache_size=5 * MIB, max_open_files=100, block_size=4096)
    with DataDir(tmp_path, options=own).open_dataset("a") as dataset:  # the same data, other options
        assert dataset.options == own
        assert dataset.get("x") is not None
    assert plyvel_calls[-1][1] == {**own.plyvel_kwargs(), "create_if_missing": True}
    with Dataset(tmp_path / "plain") as dataset:  # opened directly: the node profile too
        assert dataset.options == LevelDBOptions.NODE
    assert _sizes(plyvel_calls[-1][1]) == (8 * MIB, 8 * MIB)


def _table_files(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.suffix in (".ldb", ".sst")]


def test_the_write_buffer_size_reaches_leveldb(tmp_path: Path) -> None:
    """About 3 MB of writes: LevelDB flushes memtables to table files with a 256 KiB write buffer, not with 8 MiB."""
    small = LevelDBOptions.NODE.replace(write_buffer_size=256 << 10)
    batches = [[{"_id": f"e{b}-{i}", "text": f"{b}/{i}" * 40} for i in range(200)] for b in range(40)]
    for name, options, flushed in (("small", small, True), ("node", LevelDBOptions.NODE, False)):
        data = DataDir(tmp_path / name, options=options)
        with data.open_dataset("d") as dataset:
            for batch in batches:
                dataset.write(batch)
            assert bool(_table_files(data.dataset_path("d"))) is flushed, name
        with data.open_dataset("d") as dataset:
            assert dataset.counts()["entities"] == 8000
