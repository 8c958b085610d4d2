"""Storage errors: what LevelDB's errors mean for a dataset, the node store and the data directory.

:class:`StorageError` is the base. ``transient`` says whether the same operation may succeed later without
anyone repairing anything (a full disk: once there is room), or not (a damaged dataset, a data directory
another process holds). :func:`translate` turns a plyvel error on a database into one of these, naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import plyvel

__all__ = ["DataDirInUse", "DatasetDamaged", "StorageError", "StorageIOError", "StorageWriteError", "lock_holder",
           "plyvel_message", "translate"]


class StorageError(Exception):
    """Base of the storage errors (see the module docstring)."""

    transient: ClassVar[bool] = False


class StorageIOError(StorageError):
    """LevelDB could not read or write a database's files (no space left, too many open files, ...)."""

    transient = True
    doing = "an I/O error"

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {self.doing}: {detail}")
        self.what = what
        self.detail = detail


class StorageWriteError(StorageIOError):
    """A write to a database failed (typically: no space left on device); nothing of it was committed.

    The database takes writes again once there is room (see :mod:`storage._recovery`)."""

    doing = "a write failed"

    @property
    def no_space(self) -> bool:
        return "No space left on device" in self.detail or "Disk quota exceeded" in self.detail


class DatasetDamaged(StorageError):
    """A dataset's LevelDB files are damaged (a corrupt or missing table, a truncated MANIFEST): the node
    refuses the dataset until it is repaired or restored."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"dataset '{name}' is damaged: {detail}; run `sesamd dataset check {name}`")
        self.name = name
        self.detail = detail


class DataDirInUse(StorageError):
    """Another process (a running node) holds the data directory's LevelDB locks."""

    def __init__(self, root: str | Path, pid: int | None) -> None:
        who = f" (pid {pid})" if pid is not None else ""
        super().__init__(f"the data directory {root} is in use by a running node{who}; stop it first, or read "
                         "through its API: GET /api/datasets, GET /api/datasets/NAME/entities")
        self.root = Path(root)
        self.pid = pid


def plyvel_message(exc: BaseException) -> str:
    """plyvel's message as text (plyvel gives bytes)."""
    arg = exc.args[0] if exc.args else ""
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def _is_lock(message: str) -> bool:
    return message.startswith("IO error: lock ")


def _is_damage(message: str) -> bool:
    return message.startswith("Corruption:") or "No such file or directory" in message


def translate(exc: plyvel.Error, *, what: str, dataset: str | None = None, root: str | Path | None = None,
              writing: bool = False) -> StorageError:
    """The storage error a plyvel error on ``what`` (e.g. ``dataset 'x'``) means.

    ``dataset``: the dataset's name, if it is one (damage is then :class:`DatasetDamaged`); ``root``: the data
    directory (a held lock is then :class:`DataDirInUse`); ``writing``: the error came from a write."""
    message = plyvel_message(exc)
    if _is_lock(message) and root is not None:
        return DataDirInUse(root, lock_holder(message))
    if dataset is not None and (isinstance(exc, plyvel.CorruptionError) or (_is_damage(message) and not writing)):
        return DatasetDamaged(dataset, message)
    return StorageWriteError(what, message) if writing else StorageIOError(what, message)


def lock_holder(message: str) -> int | None:
    """The pid holding the LOCK file named in LevelDB's lock error, from ``/proc/locks`` (Linux), if found."""
    path = message.removeprefix("IO error: lock ").rsplit(": ", 1)[0]
    try:
        stat = os.stat(path)
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in lines:
        fields = line.split()
        if device in fields:
            pid = fields[fields.index(device) - 1]
            if pid.isdigit() and int(pid) != os.getpid():
                return int(pid)
    return None
