"""Opening LevelDB databases with options tuned for the node's write pattern: two option profiles.

Each open database costs memory of its own: a memtable of up to ``write_buffer_size`` (two while one is
being flushed) and a block cache of up to ``lru_cache_size`` (both anonymous memory), plus the table files
its table cache keeps open, ``max_open_files - 10`` of them (about 2 MiB each): LevelDB maps them into
memory, so every page a read touches, a scan all of them, counts in the process's RSS (file-backed) until
the table leaves the cache.

:attr:`LevelDBOptions.BULK`
    For bulk loads into one database at a time (``sesamd dataset import``, the storage benchmark): a
    64 MiB write buffer, which measured about 5x faster than LevelDB's default 4 MiB on bulk appends of log
    and index entries (these throttle on LevelDB's level-0 limits; 500k entities: about 150k/s against
    55-60k/s with the node profile), a 32 MiB cache and 256 open files: up to 160 MiB of buffers and about
    500 MiB of mapped tables per database.
:attr:`LevelDBOptions.NODE`
    For the running node, where a pipe has two or three datasets open (source, sink, the datasets it
    hops into) and the node many: an 8 MiB write buffer, an 8 MiB cache and 74 open files (LevelDB's
    minimum: 64 cached tables): up to 24 MiB of buffers and about 150 MiB of mapped tables per database.
    Measured with ``scripts/bench/pipe.py`` (1M source entities, hop pipe run by the node's pump), peak
    RSS 437 MB with the bulk profile, 279 MB with a 16 MiB buffer and 257 MB with this one, at the same
    throughput: pipes write far slower than even the small buffer absorbs. The cost: random reads in a
    dataset of more than 64 table files (about 150 MB on disk) reopen tables, measured 118 -> 195 us per
    ``Dataset.get`` in a 1M-entity dataset. ``sesamd serve --dataset-write-buffer-mb/--dataset-cache-mb``
    change the buffers.

Both use a bloom filter (10 bits per key), which makes index misses (new ids) cheap.

:func:`open_db` returns a :class:`VerifiedDB`: its reads (``get``, ``iterator``, and those of its snapshots)
verify each block's checksum, which plyvel does not by default, so a flipped bit in a table file raises
``plyvel.CorruptionError`` (a :class:`~storage.DatasetDamaged` for a dataset) instead of coming back as
wrong data. (``paranoid_checks`` would not do it: it checks compactions and recovery, not reads; and it
would refuse a log with a record torn by a full disk that :mod:`storage._recovery` already handles.)
Measured with ``scripts/bench/storage.py --n 100000``: see the report of the change (``store unchanged
re-ingest`` and ``store export`` are the reads).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, ClassVar

import plyvel

__all__ = ["open_db", "LevelDBOptions", "MIB", "TUNED_OPTIONS", "VerifiedDB", "VerifiedSnapshot"]

MIB = 1 << 20
MAX_WRITE_BUFFER = 1 << 30  # LevelDB clips larger write buffers to 1 GiB
MIN_OPEN_FILES = 74  # LevelDB raises smaller max_open_files to this (64 table files + 10 others)


@dataclasses.dataclass(frozen=True, slots=True)
class LevelDBOptions:
    """The memory-relevant LevelDB options a database is opened with (sizes in bytes).

    Use the profiles :attr:`BULK` and :attr:`NODE`, or derive one: ``LevelDBOptions.NODE.replace(...)``.
    """

    write_buffer_size: int
    """The memtable's size before it is written to a table file; up to two per database live at once."""
    lru_cache_size: int
    """The block cache (uncompressed table blocks) of the database."""
    max_open_files: int = 256
    """Files the database keeps open: ``max_open_files - 10`` table files, memory-mapped (at least 74)."""
    block_size: int = 16 << 10
    bloom_filter_bits: int = 10

    BULK: ClassVar[LevelDBOptions]
    NODE: ClassVar[LevelDBOptions]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            minimum = {"bloom_filter_bits": 0, "max_open_files": MIN_OPEN_FILES}.get(f.name, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"LevelDB option {f.name} must be an integer >= {minimum}, not {value!r}")
        if self.write_buffer_size > MAX_WRITE_BUFFER:
            raise ValueError(f"LevelDB option write_buffer_size must be at most {MAX_WRITE_BUFFER} (1 GiB), "
                             f"not {self.write_buffer_size}")

    def replace(self, **changes: int) -> LevelDBOptions:
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)

    def plyvel_kwargs(self) -> dict[str, int]:
        """The keyword arguments of ``plyvel.DB`` for these options."""
        return dataclasses.asdict(self)

    @property
    def memory_budget(self) -> int:
        """The most memory a database opened with these options buffers: two memtables and the cache."""
        return 2 * self.write_buffer_size + self.lru_cache_size

    def describe(self) -> str:
        """E.g. ``write buffer 8 MiB, cache 8 MiB, 74 open files``."""
        return (f"write buffer {_mib(self.write_buffer_size)}, cache {_mib(self.lru_cache_size)}, "
                f"{self.max_open_files} open files")


def _mib(size: int) -> str:
    return f"{size / MIB:g} MiB"


LevelDBOptions.BULK = LevelDBOptions(write_buffer_size=64 * MIB, lru_cache_size=32 * MIB)
LevelDBOptions.NODE = LevelDBOptions(write_buffer_size=8 * MIB, lru_cache_size=8 * MIB,
                                     max_open_files=MIN_OPEN_FILES)

TUNED_OPTIONS: dict[str, Any] = LevelDBOptions.BULK.plyvel_kwargs()
"""The bulk profile as ``plyvel.DB`` keyword arguments (for code that opens plyvel directly)."""


class VerifiedSnapshot:
    """A plyvel snapshot whose ``get`` and ``iterator`` verify block checksums (a context manager too)."""

    __slots__ = ("close", "get", "iterator", "snapshot")

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.get = functools.partial(snapshot.get, verify_checksums=True)
        self.iterator = functools.partial(snapshot.iterator, verify_checksums=True)
        self.close = snapshot.close

    def __enter__(self) -> VerifiedSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.snapshot.close()


class VerifiedDB:
    """A plyvel database whose reads verify block checksums: ``get``, ``iterator`` and :meth:`snapshot`
    (a caller may still pass ``verify_checksums=False``). Writes are plyvel's own methods."""

    __slots__ = ("close", "compact_range", "db", "delete", "get", "iterator", "put", "write_batch")

    def __init__(self, db: plyvel.DB) -> None:
        self.db = db
        self.get = functools.partial(db.get, verify_checksums=True)
        self.iterator = functools.partial(db.iterator, verify_checksums=True)
        self.put, self.delete, self.write_batch = db.put, db.delete, db.write_batch
        self.compact_range, self.close = db.compact_range, db.close

    @property
    def closed(self) -> bool:
        return bool(self.db.closed)

    def snapshot(self) -> VerifiedSnapshot:
        return VerifiedSnapshot(self.db.snapshot())


def open_db(path: str | Path, *, create: bool = True, options: LevelDBOptions | None = None,
            **overrides: Any) -> VerifiedDB:
    """Open (and by default create) the LevelDB database at ``path`` (``options``: the node profile), its
    reads verifying checksums."""
    kwargs = {**(options or LevelDBOptions.NODE).plyvel_kwargs(), **overrides}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return VerifiedDB(plyvel.DB(str(path), create_if_missing=create, **kwargs))
