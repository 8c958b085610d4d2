"""Taking writes again after a failed write (a full disk), without losing later ones.

A LevelDB write that fails part-way (``No space left on device`` while appending to the write-ahead log)
commits nothing, but it can leave a torn record at the end of the log; LevelDB goes on appending later writes
behind it, and the next open drops everything after the tear: writes it acknowledged would be lost. So after
a failure :class:`WriteGuard` refuses writes until there is room to flush the memtable into a table (the log's
size and a margin), then flushes it, which starts a new log: the torn one is no longer read. A flush that
fails leaves LevelDB refusing every write until the database is reopened (a node restart).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plyvel

from ._errors import StorageWriteError, plyvel_message, translate

__all__ = ["WriteGuard"]

MARGIN = 1 << 20  # bytes beyond the logs' size a flush needs (the table's overhead, a MANIFEST record)
_PAST_EVERY_KEY = (b"\xff" * 8, b"\xff" * 8 + b"\x00")  # compact_range over no key: only the memtable flush


class WriteGuard:
    """The write state of one LevelDB database at ``path`` (see the module docstring)."""

    def __init__(self, path: Path, what: str, dataset: str | None = None) -> None:
        self.path = path
        self.what = what
        self.dataset = dataset
        self.failure: str | None = None
        """plyvel's message of the write that failed, until writes are taken again."""
        self._stuck = False

    @contextmanager
    def writing(self, db: Any) -> Iterator[None]:
        """Around writes: first recovers from an earlier failure (or raises :class:`StorageWriteError` while it
        cannot); a plyvel error in the block is raised as a storage error and remembered."""
        if self.failure is not None:
            self._recover(db)
        try:
            yield
        except plyvel.Error as exc:
            error = translate(exc, what=self.what, dataset=self.dataset, writing=True)
            if isinstance(error, StorageWriteError):
                self.failure = plyvel_message(exc)
            raise error from exc

    def room(self) -> tuple[int, int]:
        """Free bytes on the database's file system, and the bytes a flush needs."""
        logs = sum(p.stat().st_size for p in self.path.glob("*.log"))
        return shutil.disk_usage(self.path).free, logs + MARGIN

    def _recover(self, db: Any) -> None:
        assert self.failure is not None
        if self._stuck:
            raise StorageWriteError(self.what, f"{self.failure}; LevelDB refuses writes to it since, until the "
                                               "node is restarted (it recovers on open)")
        free, needed = self.room()
        if free < needed:
            raise StorageWriteError(self.what, f"{self.failure} (writes resume once {needed} bytes are free on "
                                               f"its file system; {free} are)")
        db.compact_range(start=_PAST_EVERY_KEY[0], stop=_PAST_EVERY_KEY[1])  # flushes the memtable: a new log
        try:
            with db.write_batch() as batch:  # an empty write: raises the error a failed flush left
                batch.clear()
        except plyvel.Error as exc:
            self._stuck = True
            self.failure = plyvel_message(exc)
            raise StorageWriteError(self.what, f"{self.failure}; LevelDB refuses writes to it since, until the "
                                               "node is restarted (it recovers on open)") from exc
        self.failure = None
