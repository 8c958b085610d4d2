"""The node store: config entities, pump state, secrets and environment variables in one LevelDB."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import plyvel

from ._errors import translate
from ._json import dumps, loads
from ._leveldb import open_db
from ._recovery import WriteGuard

__all__ = ["NodeStore"]

KINDS = frozenset({"config", "pump", "secret", "system-secret", "env", "meta"})


def _key(kind: str, name: str) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"unknown node store kind {kind!r}")
    return kind.encode() + b"\x00" + name.encode()


class NodeStore:
    """Small JSON values by kind and name. Several puts can commit together with :meth:`put_many`."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = open_db(path, write_buffer_size=4 << 20)
        except plyvel.Error as exc:  # (DataDirInUse when a running node holds it)
            raise translate(exc, what="the node store", root=path) from None
        self._guard = WriteGuard(Path(path), "the node store")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, kind: str, name: str, default: Any = None) -> Any:
        """The value stored, or ``default``; a damaged block (its checksum is verified) is a storage error."""
        try:
            data = self._db.get(_key(kind, name))
        except plyvel.Error as exc:
            raise translate(exc, what="the node store") from None
        return default if data is None else loads(data)

    def put(self, kind: str, name: str, value: Any) -> None:
        """Store a value; a failed write (a full disk) is a :class:`~storage.StorageWriteError`."""
        data = dumps(value)
        with self._guard.writing(self._db):
            self._db.put(_key(kind, name), data, sync=True)

    def delete(self, kind: str, name: str) -> None:
        with self._guard.writing(self._db):
            self._db.delete(_key(kind, name), sync=True)

    def put_many(self, kind: str, items: Iterable[tuple[str, Any]], *, replace: bool = False) -> None:
        """Store several values in one atomic batch; with ``replace`` the kind holds only these after."""
        prefix = _key(kind, "")
        encoded = [(_key(kind, name), dumps(value)) for name, value in items]  # all checked before writing
        with self._guard.writing(self._db), self._db.write_batch(sync=True, transaction=True) as batch:
            if replace:
                for key in self._db.iterator(prefix=prefix, include_value=False):
                    batch.delete(key)
            for key, data in encoded:
                batch.put(key, data)

    def snapshot(self) -> Any:
        """A consistent read view of the whole store (a plyvel snapshot: ``iterator()``, ``close()``)."""
        return self._db.snapshot()

    def items(self, kind: str) -> Iterator[tuple[str, Any]]:
        prefix = _key(kind, "")
        try:
            for key, value in self._db.iterator(prefix=prefix):
                yield key[len(prefix):].decode(), loads(value)
        except plyvel.Error as exc:
            raise translate(exc, what="the node store") from None
