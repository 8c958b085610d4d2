"""The node store: config entities, pump state, secrets and environment variables in one LevelDB."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ._json import dumps, loads
from ._leveldb import open_db

__all__ = ["NodeStore"]

KINDS = frozenset({"config", "pump", "secret", "system-secret", "env", "meta"})


def _key(kind: str, name: str) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"unknown node store kind {kind!r}")
    return kind.encode() + b"\x00" + name.encode()


class NodeStore:
    """Small JSON values by kind and name. Several puts can commit together with :meth:`put_many`."""

    def __init__(self, path: str | Path) -> None:
        self._db = open_db(path, write_buffer_size=4 << 20)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, kind: str, name: str, default: Any = None) -> Any:
        data = self._db.get(_key(kind, name))
        return default if data is None else loads(data)

    def put(self, kind: str, name: str, value: Any) -> None:
        self._db.put(_key(kind, name), dumps(value), sync=True)

    def delete(self, kind: str, name: str) -> None:
        self._db.delete(_key(kind, name), sync=True)

    def put_many(self, kind: str, items: Iterable[tuple[str, Any]], *, replace: bool = False) -> None:
        """Store several values in one atomic batch; with ``replace`` the kind holds only these after."""
        prefix = _key(kind, "")
        encoded = [(_key(kind, name), dumps(value)) for name, value in items]  # all checked before writing
        with self._db.write_batch(sync=True, transaction=True) as batch:
            if replace:
                for key in self._db.iterator(prefix=prefix, include_value=False):
                    batch.delete(key)
            for key, data in encoded:
                batch.put(key, data)

    def items(self, kind: str) -> Iterator[tuple[str, Any]]:
        prefix = _key(kind, "")
        for key, value in self._db.iterator(prefix=prefix):
            yield key[len(prefix):].decode(), loads(value)
