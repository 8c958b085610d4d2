"""Compaction of a dataset (node-spec 2.7): old versions removed in chunks, never what a reader needs.

What goes: for each id, the oldest versions while every one of them

- is not among the newest ``keep_versions`` of the id (the latest always stays, deletes included:
  deletion tracking, ``_previous`` and the id index refer to it),
- was written before ``older_than_us`` (when a time threshold is given), and
- was already replaced at or before the **protected offset**, the lowest offset a reader still needs (the
  least of the dataset's registered readers and the caller's ``protected``): a reader at offset ``T`` reads
  the versions after ``T``, and dependency tracking also reads the version each of them replaced
  (``_previous``), so every version after ``T`` stays and so does each id's version as it stood at ``T``.

Only a run of the *oldest* versions of an id is removed, so what stays of an id is an unbroken ``_previous``
chain back from its latest version (the oldest kept one may name a removed version, as node-spec allows);
the id index, secondary indexes and live/deleted counts are untouched (they concern latest versions only).

The planner (:func:`plan_id`) is pure. :class:`Compactor` reads a chunk of removals from a snapshot
(:meth:`Compactor.next_chunk`, no lock needed) and a :class:`Chunk` is applied by the dataset's writer
(:meth:`Chunk.apply`): one WriteBatch deletes its versions and their superseded markers and updates the log
counter and the compaction meta (``mcompaction``: the scan position of an unfinished pass, totals, the log
size after the last finished pass) together, so a crash between chunks leaves a consistent dataset and the
next pass goes on from the stored position. Applying re-checks every version, so a chunk applied twice, or
after another compaction, removes and counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import orjson

from ._dataset import _COMPACTION, _SEQ, Dataset, _latest_of, _log_key, now_us
from ._json import loads

__all__ = ["Chunk", "CompactionPolicy", "CompactionResult", "Compactor", "Version", "compact", "compaction_meta",
           "plan_id"]

CHUNK_VERSIONS = 1000  # versions removed per WriteBatch
_KEYS = 18  # bytes of a version's log key and its superseded marker's key (which has no value)


@dataclass(frozen=True)
class CompactionPolicy:
    """What a pass may remove (see the module docstring)."""

    keep_versions: int = 2
    older_than_us: int | None = None
    """Only versions written (``_ts``) before this time go; None: any age."""
    protected: int | None = None
    """The lowest offset a reader still needs (with the dataset's registered readers); None: no reader."""

    def __post_init__(self) -> None:
        if type(self.keep_versions) is not int or self.keep_versions < 0:
            raise ValueError(f"keep_versions must be an integer >= 0, not {self.keep_versions!r}")
        if self.keep_versions == 0 and self.older_than_us is None:
            raise ValueError("keep_versions 0 needs a time threshold")


@dataclass(frozen=True)
class Version:
    """One stored version of an id, as the planner sees it."""

    seq: int
    ts: int
    size: int = 0


def plan_id(chain: Sequence[Version], policy: CompactionPolicy, protected: int | None = None) -> int:
    """How many of the oldest versions of an id's ``chain`` (oldest first, the latest last) may go."""
    keep = max(policy.keep_versions, 1)
    older_than = policy.older_than_us
    count = 0
    for position in range(len(chain) - keep):
        version, successor = chain[position], chain[position + 1]
        if older_than is not None and version.ts >= older_than:
            break
        if protected is not None and successor.seq > protected:
            break
        count += 1
    return count


@dataclass(frozen=True)
class CompactionResult:
    """What a pass did."""

    dataset: str
    removed: int
    bytes_freed: int
    """Stored bytes of the removed versions and their markers (keys and values; LevelDB frees the space on
    its own compactions)."""
    chunks: int
    protected: int | None
    """The protected offset the pass honoured (None: no reader)."""

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "removed": self.removed, "bytes_freed": self.bytes_freed,
                "chunks": self.chunks, "protected": self.protected}


@dataclass(frozen=True)
class Chunk:
    """Removals for one WriteBatch, with the scan position after them (None: the pass ends with it)."""

    generation: str
    removals: tuple[tuple[int, int], ...]  # (offset, stored bytes)
    resume: int | None

    def apply(self, dataset: Dataset) -> tuple[int, int]:
        """Remove the versions still there and store the meta, in one batch; returns (removed, bytes)."""
        if dataset.generation != self.generation:
            raise ValueError(f"dataset '{dataset.name}' was replaced since the compaction read it")
        return dataset._remove_versions(self.removals, self._meta)

    def _meta(self, meta: dict[str, Any], removed: int, log: int) -> dict[str, Any]:
        meta = {**meta, "resume": self.resume, "removed": meta.get("removed", 0) + removed}
        if self.resume is None:
            meta.update(passes=meta.get("passes", 0) + 1, finished_us=now_us(), log_after=log)
        return meta


def compaction_meta(dataset: Dataset) -> dict[str, Any]:
    """The stored compaction meta: ``resume`` (the scan position of an unfinished pass, else None),
    ``removed`` (versions, all passes), ``passes``, and ``finished_us`` and ``log_after`` (the log's size)
    of the last finished pass."""
    data = dataset._db.get(_COMPACTION)
    return orjson.loads(data) if data else {}


class Compactor:
    """One pass over a dataset: :meth:`next_chunk` until it returns a chunk whose ``resume`` is None."""

    def __init__(self, dataset: Dataset, policy: CompactionPolicy, *, chunk_versions: int = CHUNK_VERSIONS) -> None:
        self.dataset = dataset
        self.policy = policy
        self.chunk_versions = max(1, chunk_versions)
        readers = list(dataset.readers().values())
        if policy.protected is not None:
            readers.append(policy.protected)
        self.protected: int | None = min(readers) if readers else None
        self.position: int | None = compaction_meta(dataset).get("resume") or 0
        """Where the scan of superseded markers goes on (None once the last chunk was read)."""

    def next_chunk(self) -> Chunk | None:
        """The next removals (read from a fresh snapshot), or None once the pass has read everything (at
        once on a dataset whose circuit breaker has tripped: node-spec 2.7)."""
        if self.position is None or self.dataset.breaker_tripped:
            return None
        removals: list[tuple[int, int]] = []
        resume: int | None = None
        with self.dataset.snapshot() as view:
            start = b"s" + _SEQ.pack(self.position)
            for key in view.iterator(start=start, stop=b"t", include_value=False):
                seq = _SEQ.unpack(key[1:])[0]
                if self.protected is not None and seq > self.protected:
                    break  # an id whose oldest version comes later keeps all of its versions
                chain = self._chain(view, seq)
                if not chain:
                    continue
                versions = chain[:plan_id(chain, self.policy, self.protected)]
                room = self.chunk_versions - len(removals)
                removals.extend((v.seq, v.size) for v in versions[:room])
                if len(removals) >= self.chunk_versions:
                    resume = seq if len(versions) > room else seq + 1  # (an id cut short: again from here)
                    break
        self.position = resume
        return Chunk(self.dataset.generation, tuple(removals), resume)

    def _chain(self, view: Any, seq: int) -> list[Version]:
        """The versions of the id whose oldest stored version is at ``seq``, oldest first (empty if the
        version at ``seq`` is gone or is not its id's oldest: the id was met at an earlier marker)."""
        stored = view.get(_log_key(seq))
        if stored is None:
            return []
        oldest = loads(stored)
        previous = oldest.get("_previous")
        if isinstance(previous, int) and view.get(_log_key(previous)) is not None:
            return []
        latest = view.get(b"i" + oldest["_id"].encode())
        if latest is None:
            return []
        chain: list[Version] = []
        at: Any = _latest_of(latest).seq
        while isinstance(at, int) and at >= seq:
            data = stored if at == seq else view.get(_log_key(at))
            if data is None:
                break
            version = loads(data)
            chain.append(Version(at, version["_ts"], len(data) + _KEYS))
            at = version.get("_previous")
        chain.reverse()
        return chain if chain and chain[0].seq == seq else []


def compact(
    dataset: Dataset,
    policy: CompactionPolicy,
    *,
    chunk_versions: int = CHUNK_VERSIONS,
    holding: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> CompactionResult:
    """A whole pass in this thread; each chunk is applied inside ``holding()`` (the node's writer lock) and
    :meth:`Dataset.writes`."""
    compactor = Compactor(dataset, policy, chunk_versions=chunk_versions)
    removed = freed = chunks = 0
    while (chunk := compactor.next_chunk()) is not None:
        with holding(), dataset.writes():
            count, size = chunk.apply(dataset)
        removed += count
        freed += size
        chunks += 1 if count else 0
    return CompactionResult(dataset.name, removed, freed, chunks, compactor.protected)

