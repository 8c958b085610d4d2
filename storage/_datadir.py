"""The node's data directory: one LevelDB database per dataset, plus the node store.

Datasets are opened with the data directory's LevelDB options: by default the node profile
(:attr:`LevelDBOptions.NODE`, small buffers: a node has many datasets open); bulk loads pass
``options=LevelDBOptions.BULK``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ._dataset import Dataset
from ._errors import DataDirInUse
from ._leveldb import LevelDBOptions
from ._nodestore import NodeStore

__all__ = ["DataDir", "validate_dataset_id"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._:=-]")


def validate_dataset_id(name: str) -> str:
    """Check a dataset id (non-empty, no ``/``); returns it."""
    if not isinstance(name, str) or not name or "/" in name or name in {".", ".."}:
        raise ValueError(f"invalid dataset id {name!r}: it must be a non-empty string without '/'")
    return name


def _directory_name(name: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")), name)


def _dataset_name(directory: str) -> str:
    return re.sub(r"(%[0-9A-F]{2})+",
                  lambda m: bytes.fromhex(m.group().replace("%", "")).decode("utf-8", "surrogatepass"), directory)


class DataDir:
    """Where a node keeps its datasets (``datasets/<id>``) and its node store (``node``)."""

    def __init__(self, root: str | Path, *, options: LevelDBOptions | None = None) -> None:
        self.root = Path(root)
        self.options = options or LevelDBOptions.NODE
        """The LevelDB options datasets are opened with."""
        self.datasets_root = self.root / "datasets"
        self.datasets_root.mkdir(parents=True, exist_ok=True)

    def dataset_path(self, name: str) -> Path:
        return self.datasets_root / _directory_name(validate_dataset_id(name))

    def exists(self, name: str) -> bool:
        return (self.dataset_path(name) / "CURRENT").exists()

    def open_dataset(self, name: str, *, create: bool = True) -> Dataset:
        """Open a dataset; raises KeyError if it does not exist and ``create`` is false.

        LevelDB's errors come as :mod:`storage._errors`: :class:`DatasetDamaged`, :class:`DataDirInUse` (a
        running node holds it), :class:`StorageIOError` (e.g. no room to recover its log)."""
        path = self.dataset_path(name)
        if not create and not (path / "CURRENT").exists():
            raise KeyError(f"no dataset {name!r}")
        try:
            return Dataset(path, name, options=self.options)
        except DataDirInUse as exc:
            raise DataDirInUse(self.root, exc.pid) from None

    def dataset_names(self) -> list[str]:
        if not self.datasets_root.exists():
            return []
        return sorted(_dataset_name(p.name) for p in self.datasets_root.iterdir() if (p / "CURRENT").exists())

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset and all its data (it must not be open)."""
        shutil.rmtree(self.dataset_path(name), ignore_errors=False)

    def open_node_store(self) -> NodeStore:
        """The node store; :class:`DataDirInUse` if a running node holds it."""
        try:
            return NodeStore(self.root / "node")
        except DataDirInUse as exc:
            raise DataDirInUse(self.root, exc.pid) from None
