"""The node's open datasets, shared by its pipes, and the storage-backed DTL lookup over them.

Datasets are opened once and cached. Writes are described as :class:`DatasetWrite` values and applied by
the dataset's single writer: in the node its :class:`~actors.DatasetActor`, elsewhere (tests, tools)
:meth:`Datasets.apply`. Either way the write runs under the dataset's lock, which the few out-of-band
writers (index definitions, a merge source's id mapping) take too; readers use snapshots and need none.
All methods are synchronous: call them from worker threads.

A dataset whose files are found damaged (opening it, or a read or write of it, met LevelDB's corruption) is
listed by :meth:`Datasets.damaged` and refused from then on: opening it raises
:class:`storage.DatasetDamaged`, which names it and what is wrong, until the node restarts. The other datasets
are served as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import storage
from dtl import IndexExpression

__all__ = ["DatasetWrite", "Datasets", "StorageLookup", "index_token"]


@dataclass(frozen=True)
class DatasetWrite:
    """One write to one dataset, as a value: ``apply(dataset)`` commits it (one LevelDB batch) and returns
    what the caller wants back (e.g. the number of new versions)."""

    dataset: str
    apply: Callable[[storage.Dataset], Any]

    @classmethod
    def sequence(cls, writes: Sequence[DatasetWrite]) -> DatasetWrite:
        """One write applying ``writes`` (all to the same dataset) in order, each its own commit; it returns
        the list of what they returned. A failing write ends the sequence; those before it stay committed."""
        if not writes:
            raise ValueError("a sequence of writes needs at least one write")
        names = {write.dataset for write in writes}
        if len(names) != 1:
            raise ValueError(f"a sequence of writes needs exactly one dataset, not {sorted(names)}")

        def apply(dataset: storage.Dataset) -> list[Any]:
            return [write.apply(dataset) for write in writes]

        return cls(writes[0].dataset, apply)


class Datasets:
    """Open datasets of one data directory (thread-safe)."""

    def __init__(self, data_dir: storage.DataDir | str) -> None:
        self.data_dir = data_dir if isinstance(data_dir, storage.DataDir) else storage.DataDir(data_dir)
        self._open: dict[str, storage.Dataset] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._damaged: dict[str, str] = {}  # name -> why it cannot be opened or read
        self.lookup = StorageLookup(self)

    def damaged(self) -> dict[str, str]:
        """The datasets found damaged (name -> what is wrong), which are refused until repaired."""
        with self._guard:
            found = {name: d.damage for name, d in self._open.items() if d.damage is not None}
            return {**found, **self._damaged}

    def _refuse(self, name: str) -> None:
        detail = self._damaged.get(name)
        if detail is None:
            dataset = self._open.get(name)
            detail = dataset.damage if dataset is not None else None
        if detail is not None:
            raise storage.DatasetDamaged(name, detail)

    def exists(self, name: str) -> bool:
        return name in self._open or self.data_dir.exists(name)

    def open(self, name: str, create: bool = True) -> storage.Dataset:
        """The open dataset ``name``; raises KeyError if missing and ``create`` is false."""
        with self._guard:
            self._refuse(name)
            dataset = self._open.get(name)
            if dataset is None:
                try:
                    dataset = self.data_dir.open_dataset(name, create=create)
                except storage.DatasetDamaged as exc:
                    self._damaged[name] = exc.detail
                    raise
                self._open[name] = dataset
                self._locks[name] = threading.RLock()
            return dataset

    def get(self, name: str) -> storage.Dataset | None:
        """The dataset if it exists (opened on demand), else None."""
        if not self.exists(name):
            return None
        return self.open(name, create=False)

    @contextmanager
    def writing(self, name: str) -> Iterator[storage.Dataset]:
        """Hold the dataset's writer lock (creating the dataset if needed)."""
        dataset = self.open(name)
        with self._locks[name]:
            yield dataset

    def apply(self, write: DatasetWrite) -> Any:
        """Apply a write under the dataset's lock (creating the dataset if needed); LevelDB's errors come as
        storage errors (:meth:`storage.Dataset.writes`)."""
        with self.writing(write.dataset) as dataset, dataset.writes():
            return write.apply(dataset)

    @contextmanager
    def paused(self, poll: float = 0.01) -> Iterator[dict[str, storage.Dataset]]:
        """Hold off every writer (all writer locks, and no dataset opened or created) for a consistent view
        across datasets, e.g. snapshots for a backup; yields the datasets. Keep the block short. Locks that
        are busy are retried after releasing the rest, so a writer holding one lock while wanting another
        cannot deadlock with this."""
        while True:
            damaged = set(self.damaged())  # refused: not opened, not held
            for name in set(self.data_dir.dataset_names()) - damaged:
                self.open(name, create=False)
            with self._guard:
                locks = sorted(self._locks.items())
            held: list[threading.RLock] = []
            for _name, lock in locks:
                if not lock.acquire(timeout=poll):
                    break
                held.append(lock)
            else:
                self._guard.acquire()
                if set(self._open) == {name for name, _ in locks} \
                        and set(self.data_dir.dataset_names()) - damaged <= set(self._open):
                    try:
                        yield dict(self._open)
                        return
                    finally:
                        self._guard.release()
                        for lock in reversed(held):
                            lock.release()
                self._guard.release()
            for lock in reversed(held):
                lock.release()

    def names(self) -> list[str]:
        with self._guard:
            names = set(self._open)
        return sorted(names | set(self.data_dir.dataset_names()))

    def delete(self, name: str) -> None:
        """Close and remove a dataset with all its data."""
        with self._guard:
            dataset = self._open.pop(name, None)
            lock = self._locks.pop(name, None)
            self._damaged.pop(name, None)  # (deleting a damaged dataset is its repair)
        if dataset is not None:
            with lock or threading.RLock():
                dataset.close()
        if self.data_dir.exists(name):
            self.data_dir.delete_dataset(name)

    def close_all(self) -> None:
        with self._guard:
            datasets = list(self._open.items())
            self._open.clear()
        for name, dataset in datasets:
            with self._locks.get(name) or threading.RLock():
                dataset.close()

    def ensure_index(self, name: str, index: IndexExpression) -> None:
        """Define (and build, if needed) the secondary index of ``index`` on dataset ``name``."""
        with self.writing(name) as dataset, dataset.writes():
            if index.key not in dataset._indexes:
                dataset.define_index(index.key, _index_function(index), index.expression)


def index_token(value: Any) -> Any:
    """A JSON value under which storage indexes a typed DTL value: equal exactly when DTL ``eq`` holds."""
    kind = type(value)
    if kind is bool or kind is str:
        return storage.encode(value)
    if kind is int or kind is float or kind is Decimal:
        number = Decimal(value)
        if not number.is_finite():
            return ["n", str(number)]
        if number == number.to_integral_value():
            return int(number)
        return ["n", str(number.normalize())]
    if kind is list or kind is dict:
        return ["j", storage.canonical(storage.encode(value)).decode()]
    return storage.encode(value)


def _index_function(index: IndexExpression) -> Any:
    def values(entity: dict[str, Any]) -> list[Any]:
        return [index_token(v) for v in index.values(storage.decode(entity))]

    return values


class StorageLookup:
    """The DTL ``Lookup`` protocol over stored datasets, through their secondary indexes."""

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    def lookup(self, dataset_id: str, index: IndexExpression, values: Sequence[Any]) -> list[dict[str, Any]]:
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            return []
        if index.key not in dataset._indexes:
            self._datasets.ensure_index(dataset_id, index)
        ids: set[str] = set()
        for value in values:
            ids.update(dataset.lookup(index.key, index_token(value)))
        found = []
        for entity_id in sorted(ids):
            entity = dataset.get(entity_id)
            if entity is not None and entity.get("_deleted") is not True:
                found.append(storage.decode(entity))
        return found

    def get(self, dataset_id: str, entity_id: str) -> dict[str, Any] | None:
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            return None
        entity = dataset.get(entity_id)
        if entity is None or entity.get("_deleted") is True:
            return None
        return storage.decode(entity)
