"""Damaged LevelDB files in storage: named errors, ``check_dataset``, and ``Datasets.damaged()``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import plyvel
import pytest

import storage
from actors import DatasetWrite
from actors._datasets import Datasets

SMALL = storage.LevelDBOptions.NODE.replace(write_buffer_size=1 << 20)


def entity(i: int) -> dict[str, str]:
    return {"_id": str(i), "v": hashlib.sha256(str(i).encode()).hexdigest()}


def make(data_dir: storage.DataDir, name: str) -> Path:
    with data_dir.open_dataset(name) as dataset:
        for k in range(5):
            dataset.write([entity(i) for i in range(k * 2000, (k + 1) * 2000)])
    return data_dir.dataset_path(name)


def damage_table(path: Path) -> None:
    """Bytes overwritten in the middle of every table file (whichever LevelDB reads first meets them)."""
    tables = list(path.glob("*.ldb"))
    assert tables
    for table in tables:
        with table.open("r+b") as f:
            f.seek(table.stat().st_size // 2)
            f.write(b"\xff" * 4096)  # (not random: the same damage every time)


def test_a_truncated_manifest_is_a_named_damage_on_open(tmp_path: Path) -> None:
    data_dir = storage.DataDir(tmp_path, options=SMALL)
    path = make(data_dir, "bad")
    with next(path.glob("MANIFEST-*")).open("r+b") as f:
        f.truncate(20)
    with pytest.raises(storage.DatasetDamaged) as caught:
        data_dir.open_dataset("bad")
    assert caught.value.name == "bad" and caught.value.detail.startswith("Corruption:")
    assert str(caught.value).endswith("; run `sesamd dataset check bad`")
    assert not caught.value.transient


def test_a_damaged_table_is_found_by_reads_and_by_the_check(tmp_path: Path) -> None:
    data_dir = storage.DataDir(tmp_path, options=SMALL)
    damage_table(make(data_dir, "bad"))
    with data_dir.open_dataset("bad") as dataset:
        assert dataset.damage is None
        problems = storage.check_dataset(dataset)
        assert len(problems) == 1 and problems[0].startswith("damaged: Corruption"), problems
        assert dataset.damage is not None
    with data_dir.open_dataset("bad") as dataset, pytest.raises(storage.DatasetDamaged, match="dataset 'bad'"):
        list(dataset.iter_stored())


def test_datasets_records_the_damaged_one_and_refuses_it(tmp_path: Path) -> None:
    data_dir = storage.DataDir(tmp_path, options=SMALL)
    damage_table(make(data_dir, "bad"))
    make(data_dir, "good")
    datasets = Datasets(data_dir)
    assert datasets.damaged() == {}
    with pytest.raises(storage.DatasetDamaged):
        list(datasets.open("bad").iter_stored())
    assert list(datasets.damaged()) == ["bad"] and datasets.damaged()["bad"].startswith("Corruption")
    with pytest.raises(storage.DatasetDamaged, match="dataset 'bad' is damaged"):
        datasets.get("bad")
    with pytest.raises(storage.DatasetDamaged):
        datasets.apply(DatasetWrite("bad", lambda d: d.write([{"_id": "x"}])))
    assert datasets.open("good").counts()["entities"] == 10000
    datasets.delete("bad")  # deleting it is a repair
    assert datasets.damaged() == {}
    datasets.close_all()


def test_corruption_met_by_a_write_marks_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = Datasets(tmp_path)

    def corrupt(dataset: storage.Dataset) -> None:
        raise plyvel.CorruptionError(b"Corruption: block checksum mismatch: x/000005.ldb")

    with pytest.raises(storage.DatasetDamaged, match="block checksum mismatch"):
        datasets.apply(DatasetWrite("d", corrupt))
    assert datasets.damaged() == {"d": "Corruption: block checksum mismatch: x/000005.ldb"}
    datasets.close_all()


def test_a_lock_error_names_the_data_directory(tmp_path: Path) -> None:
    data_dir = storage.DataDir(tmp_path)
    with data_dir.open_dataset("d"), pytest.raises(storage.DataDirInUse) as caught:
        storage.DataDir(tmp_path).open_dataset("d")
    assert caught.value.root == tmp_path and caught.value.pid is None  # (held by this very process)
    assert str(caught.value).startswith(f"the data directory {tmp_path} is in use by a running node; stop it")
    with data_dir.open_node_store(), pytest.raises(storage.DataDirInUse):
        data_dir.open_node_store()
