"""Reads verify LevelDB block checksums: a byte changed inside a data block of a table file is reported as
damage to the dataset, by name, instead of being read back as a wrong entity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import plyvel
import pytest

import storage
from storage import Dataset, DatasetDamaged, NodeStore


def entity(i: int) -> dict[str, str]:
    return {"_id": f"e{i}", "v": hashlib.sha256(str(i).encode()).hexdigest()}


def tabled(path: Path, count: int = 500) -> None:
    """A dataset of ``count`` entities whose versions are in a table file (the reopen writes the log's)."""
    with Dataset(path, "people") as dataset:
        dataset.write([entity(i) for i in range(count)])
    Dataset(path, "people").close()


def flip_inside_a_value(path: Path, count: int = 500) -> str:
    """Change one hex digit of an entity's value where a table file holds it verbatim (inside a data block,
    not the footer); returns the entity's id."""
    for table in sorted(path.glob("*.ldb")):
        data = bytearray(table.read_bytes())
        for i in range(count):
            value = entity(i)["v"].encode()
            at = data.find(value)
            if at >= 0 and data.count(value) == 1 and at + len(value) < len(data) - 48:  # 48: the footer
                middle = at + len(value) // 2
                data[middle] = ord("0") if data[middle] != ord("0") else ord("1")  # still a hex digit
                table.write_bytes(bytes(data))
                return f"e{i}"
    raise AssertionError(f"no value found verbatim in the table files of {path}")


def test_a_flipped_byte_in_a_table_is_damage_not_wrong_data(tmp_path: Path) -> None:
    path = tmp_path / "people"
    tabled(path)
    changed = flip_inside_a_value(path)
    expected = entity(int(changed[1:]))["v"]

    raw = plyvel.DB(str(path))  # what reads without checksums (plyvel's default) would give
    try:
        values = [value for _key, value in raw.iterator(prefix=b"l") if f'"{changed}"'.encode() in value]
        assert len(values) == 1 and expected.encode() not in values[0]  # wrong data, silently
    finally:
        raw.close()

    with Dataset(path, "people") as dataset:
        with pytest.raises(DatasetDamaged) as caught:
            dataset.get(changed)
        assert caught.value.name == "people" and "checksum" in str(caught.value)
        assert dataset.damage is not None and "checksum" in dataset.damage
        with pytest.raises(DatasetDamaged, match="people"):
            list(dataset.iter_entities())
        with pytest.raises(DatasetDamaged, match="people"), dataset.snapshot() as view:
            list(dataset.iter_entities(snapshot=view))
        assert storage.check_dataset(dataset)[0].startswith("damaged: ")


def test_an_undamaged_dataset_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "people"
    tabled(path)
    with Dataset(path, "people") as dataset:
        assert dataset.get("e7")["v"] == entity(7)["v"]
        assert [e["_id"] for e in dataset.iter_entities()] == [f"e{i}" for i in range(500)]
        assert storage.check_dataset(dataset) == []


def test_the_node_store_verifies_checksums_too(tmp_path: Path) -> None:
    with NodeStore(tmp_path / "node") as store:
        store.put_many("config", [(f"pipe{i}", entity(i)) for i in range(500)])
    NodeStore(tmp_path / "node").close()  # the reopen writes the log into a table file
    changed = flip_inside_a_value(tmp_path / "node")
    with NodeStore(tmp_path / "node") as store:
        with pytest.raises(storage.StorageError, match=r"the node store.*checksum"):
            store.get("config", f"pipe{changed[1:]}")
        with pytest.raises(storage.StorageError, match=r"the node store.*checksum"):
            list(store.items("config"))


async def test_the_api_answers_503_naming_the_dataset(tmp_path: Path) -> None:
    from sesamd._node import open_node
    from sesamd.api import create_app
    from sesamd.testing import TokenClient

    async with open_node(tmp_path) as node:
        node.datasets.open("people").write([entity(i) for i in range(500)])
        path = node.data_dir.dataset_path("people")
    Dataset(path, "people").close()  # the reopen writes the log into a table file
    changed = flip_inside_a_value(path)
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        response = await client.get(f"/api/datasets/people/entity?entity_id={changed}")
        body = await response.get_json()
        assert response.status_code == 503, body
        assert body["dataset"] == "people" and "checksum" in body["damaged"]
        response = await client.get("/api/datasets/people/entities")
        assert response.status_code == 503
