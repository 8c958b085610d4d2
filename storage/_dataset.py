"""A dataset: an append-only log of entity versions in its own LevelDB database, with indexes.

Keys, by their first byte:

====  ==============================  ===============================================================
l     seq (8 bytes, big-endian)       the stored version (see ``_entity``)
i     ``_id`` (UTF-8)                 latest seq, content digest, deleted flag, last full run that saw it
s     seq                             empty: the version at seq is superseded (no longer the latest)
x     index, 0, value, 0, ``_id``     empty: secondary index entry
X     index, 0, ``_id``               the index values last recorded for the id (to remove them later)
m     name                            meta: state counters, offsets, populated, indexes, readers, compaction,
                                      the circuit breaker (``mbreaker``)
u     ordinal (8 bytes, big-endian)   staged (uncommitted) entity of an armed run: write time, raw entity
v     ``_id`` (UTF-8)                 the id's latest staged ordinal, content digest, deleted flag
====  ==============================  ===============================================================

``u`` and ``v`` belong to circuit breakers (:mod:`storage._staging`); normal reads never look at them.

Every write (versions, id index, indexes, counters and the caller's offset) goes into one WriteBatch,
so a crash leaves all of a batch or none of it. One writer per dataset; readers use snapshots.
"""

from __future__ import annotations

import struct
import time
import uuid
from binascii import hexlify
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import plyvel
import xxhash

from ._entity import Prepared, content_hash, prepare, stored_bytes, stored_is_deleted
from ._errors import DatasetDamaged, StorageError, translate
from ._json import _SORTED_STRICT, canonical, dumps, loads
from ._leveldb import LevelDBOptions, open_db
from ._recovery import WriteGuard

if TYPE_CHECKING:
    from ._staging import Breaker

__all__ = ["Dataset", "WriteResult", "FullRun", "EmptySourceError", "IndexFunction"]

IndexFunction = Callable[[dict[str, Any]], Iterable[Any]]
"""Maps a (wire-form) entity to the values it is indexed under; ``None`` values are not indexed."""

_SEQ = struct.Struct(">Q")
_ID_VALUE = struct.Struct(">Q16sBI")  # seq, digest, flags, run
_RUN = struct.Struct(">I")
# The stored form of a version (see _entity.stored_bytes), for the fast path of Dataset.write: the seq,
# ',"_previous":..,"_ts":..,"_hash":"', the hex digest, the _id's JSON and the body (not {}) after its "{".
_STORED_LIVE = b'{"_deleted":false,"_updated":%d%b%b","_id":%b,%b'
_STORED_DELETED = b'{"_deleted":true,"_updated":%d%b%b","_id":%b,%b'
_RANGE_CHECK_MIN = 16  # entities in a write before Dataset._stored_in_range is worth its scan
_SCAN_PAUSE = 8  # writes without a range scan after one found the range too sparse
_DELETED = 1

_STATE = b"mstate"
_GENERATION = b"mgeneration"
_POPULATED = b"mpopulated"
_RUN_GEN = b"mrungen"
_OFFSET = b"moffset:"
_INDEX = b"mindex:"
_READER = b"mreader:"
_COMPACTION = b"mcompaction"  # storage._compaction's progress and totals

_MISSING: Any = object()


class EmptySourceError(RuntimeError):
    """A full run saw no entities and was told to fail rather than delete everything."""


class _Latest(NamedTuple):
    seq: int
    digest: bytes
    deleted: bool
    run: int


@dataclass
class WriteResult:
    """What one write did: versions appended and entities seen."""

    appended: int = 0
    seen: int = 0
    deleted: int = 0


@dataclass
class FullRun:
    """A full run in progress: every id it writes or sees is marked with its generation."""

    generation: int
    seen: int = 0
    appended: int = 0
    stale_possible: bool = True
    """Whether an id may be live without this run's mark at its end: false for a run that began on a
    dataset with no live ids (its first load) until an older full run writes; then there is nothing to
    look for, and the end skips the scan."""


@dataclass
class _State:
    next_seq: int = 0
    live: int = 0
    deleted: int = 0
    log: int = 0
    log_deleted: int = 0  # the deleted versions in the log

    def to_json(self) -> bytes:
        return orjson.dumps([self.next_seq, self.live, self.deleted, self.log, self.log_deleted])

    @classmethod
    def from_json(cls, data: bytes | None) -> _State:
        return cls(*orjson.loads(data)) if data else cls()


@dataclass
class _Index:
    name: str
    function: IndexFunction
    expression: Any
    built_through: int
    prefix: bytes = field(init=False)
    values_prefix: bytes = field(init=False)

    def __post_init__(self) -> None:
        raw = self.name.encode()
        if b"\x00" in raw:
            raise ValueError("index names cannot contain NUL")
        self.prefix = b"x" + raw + b"\x00"
        self.values_prefix = b"X" + raw + b"\x00"

    def keys_of(self, entity: dict[str, Any]) -> list[bytes]:
        keys: list[bytes] = []
        for value in _values(self.function(entity)):
            if value is not None:
                key = canonical(value)
                if key not in keys:
                    keys.append(key)
        return keys


def _values(result: Any) -> Iterable[Any]:
    if result is None:
        return ()
    if isinstance(result, list | tuple | set | frozenset):
        return result
    return (result,)


def _latest_of(data: bytes) -> _Latest:
    """An id index value, unpacked."""
    seq, digest, flags, run = _ID_VALUE.unpack(data)
    return _Latest(seq, digest, bool(flags & _DELETED), run)


def _log_key(seq: int) -> bytes:
    return b"l" + _SEQ.pack(seq)


def now_us() -> int:
    return time.time_ns() // 1000


class Dataset:
    """One dataset, open for reading and (by its single writer) writing."""

    def __init__(self, path: str | Path, name: str | None = None, *, create: bool = True,
                 options: LevelDBOptions | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.options = options or LevelDBOptions.NODE
        """The LevelDB options the dataset's database was opened with (default: the node profile)."""
        self.damage: str | None = None
        """What is wrong with the dataset's files once a read or write found them damaged (else None)."""
        what = f"dataset '{self.name}'"
        self._guard = WriteGuard(self.path, what, dataset=self.name)
        try:
            self._db = open_db(self.path, create=create, options=self.options)
        except plyvel.Error as exc:  # damaged, locked by another process, no room to recover the log
            raise translate(exc, what=what, dataset=self.name, root=self.path) from None
        try:
            stored_state = self._db.get(_STATE)
            self._state = _State.from_json(stored_state)
            if stored_state is not None and len(orjson.loads(stored_state)) < 5:  # stored before log_deleted
                self._count_log_deleted()
            generation = self._db.get(_GENERATION)
            if generation is None:
                generation = str(uuid.uuid4()).encode()
                self._db.put(_GENERATION, generation)
            self._run_gen = int(self._db.get(_RUN_GEN) or b"0")  # the latest full run's generation
        except plyvel.Error as exc:
            self._db.close()
            raise translate(exc, what=what, dataset=self.name, writing=True) from None
        self.generation = generation.decode()
        self._full_run: FullRun | None = None  # the latest full run begun through this object
        self._indexes: dict[str, _Index] = {}
        self._recorded: dict[bytes, list[bytes]] = {}  # index values recorded by the open batch
        self._scan_pause = 0  # writes left before _stored_in_range scans again
        self._closed = False
        from ._staging import recover

        self._breaker = recover(self)  # the circuit breaker's state (storage._staging), None when unarmed

    def _count_log_deleted(self) -> None:
        """Count the deleted versions of a dataset stored before that counter existed (once: it is stored)."""
        with self._db.snapshot() as view:
            found = sum(1 for value in view.iterator(prefix=b"l", include_key=False) if stored_is_deleted(value))
        self._state.log_deleted = found
        self._db.put(_STATE, self._state.to_json(), sync=True)

    # -- life cycle -------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def writes(self) -> Iterator[Dataset]:
        """Around a write by the dataset's single writer: LevelDB's errors come out as storage errors (a
        damaged dataset is remembered in :attr:`damage`), and after a failed write (a full disk) writes are
        refused until there is room again (:mod:`storage._recovery`)."""
        try:
            with self._guard.writing(self._db):
                yield self
        except DatasetDamaged as exc:
            self.damage = exc.detail
            raise

    @property
    def write_failure(self) -> str | None:
        """The error of a failed write while writes are refused (see :meth:`writes`), else None."""
        return self._guard.failure

    def _read_error(self, exc: plyvel.Error) -> StorageError:
        error = translate(exc, what=f"dataset '{self.name}'", dataset=self.name)
        if isinstance(error, DatasetDamaged):
            self.damage = error.detail
        return error

    # -- state ------------------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        """The offset (``_updated``) the next appended version gets."""
        return self._state.next_seq

    def counts(self) -> dict[str, int]:
        """Entity counts: live and deleted latest versions, versions in the log and the deleted ones among them."""
        state = self._state
        return {"entities": state.live, "deleted": state.deleted, "total": state.live + state.deleted,
                "log": state.log, "log_exists": state.log - state.log_deleted, "log_deleted": state.log_deleted,
                "next_offset": state.next_seq}

    @property
    def populated(self) -> bool:
        return self._db.get(_POPULATED) == b"true"

    def set_populated(self, populated: bool = True) -> None:
        self._db.put(_POPULATED, b"true" if populated else b"false")

    def get_offset(self, key: str, default: Any = None) -> Any:
        """The offset a writer stored with its last committed batch."""
        data = self._db.get(_OFFSET + key.encode())
        return default if data is None else loads(data)

    def offsets(self) -> dict[str, Any]:
        return {k[len(_OFFSET):].decode(): loads(v) for k, v in self._db.iterator(prefix=_OFFSET)}

    # -- writing ----------------------------------------------------------------------------------

    def _latest(self, key: bytes, getter: Callable[[bytes], bytes | None]) -> _Latest | None:
        data = getter(key)
        return None if data is None else _latest_of(data)

    def write(
        self,
        entities: Iterable[Any],
        *,
        offset_key: str | None = None,
        offset: Any = _MISSING,
        full_run: FullRun | None = None,
        force: bool = False,
        populated: bool | None = None,
        sync: bool = False,
        _also: dict[bytes, bytes | None] | None = None,
    ) -> WriteResult:
        """Append the new and changed versions of ``entities`` (wire form), all in one batch.

        With ``offset_key``, ``offset`` (any JSON value) is stored in the same batch. Raises
        :class:`storage.EntityError` for a bad entity, before anything is written.

        Outside a full run, appended versions are marked as seen by the latest full run, so that a
        full run in progress does not delete what incremental writes put there meanwhile.
        ``_also`` (:mod:`storage._staging`): more keys to put (a value) or delete (None) in the same batch.
        """
        offset_json = _offset_json(offset_key, offset)
        self._recorded = {}  # a write that failed half-way may have left entries
        state = _State(**vars(self._state))
        run_gen = full_run.generation if full_run is not None else self._run_gen
        if full_run is not None and full_run is not self._full_run and self._full_run is not None:
            self._full_run.stale_possible = True  # an older full run still writes: its marks are stale
        pending: dict[bytes, bytes] = {}  # id key -> the id index value this batch wrote (reads see it)
        batch = self._db.write_batch(sync=sync)
        put = batch.put
        get = self._db.get
        ts = now_us()
        seen = appended = 0
        stored = self._stored_in_range(entities)  # when known, the fast path need not look ids up
        # For the fast path (below): bound functions and the constant parts of what it writes.
        fast = not self._indexes
        skip_unchanged = full_run is None and not force
        dumps = orjson.dumps
        xxh3 = xxhash.xxh3_128_digest
        pack_seq = _SEQ.pack
        unpack_seq = _SEQ.unpack_from
        no_previous = b',"_previous":null,"_ts":%d,"_hash":"' % ts
        run_live = b"\x00" + _RUN.pack(run_gen)  # the id index value's flags and run, after seq+digest
        run_deleted = b"\x01" + _RUN.pack(run_gen)
        for entity in entities:
            seen += 1
            # The fast path: a new or changed entity, not filtered, with no secondary index to maintain.
            # It does what prepare(), stored_bytes() and _append() do (tests/storage/test_storage_fast_path.py
            # holds it to them), inline: no calls of Python functions and no tuples per entity. Anything
            # else (not wire form, a big int, no string _id, _filtered, an empty body, an unchanged entity
            # in a full run or forced) goes to the general path below.
            body = None
            if fast and type(entity) is dict and type(entity_id := entity.get("_id")) is str:
                content = entity.copy()
                del content["_id"]
                try:
                    body = dumps(content, option=_SORTED_STRICT)
                    id_json = dumps(entity_id)
                    deleted = False
                    # A root "_" key (other than _id) would start with '"_' in the body (nested keys and
                    # strings may too); then the body must leave them out. (partition is the cheapest
                    # test for a "_"; "in" would first try the bytes as an int and format an error.)
                    if body.partition(b"_")[1] and body.find(b'"_') >= 0:
                        deleted = entity.get("_deleted") is True
                        body = None if entity.get("_filtered") is True else \
                            dumps({k: v for k, v in entity.items() if not "_" <= k < "`"}, option=_SORTED_STRICT)
                except TypeError:  # not wire form (or a big int): prepare() decides
                    body = None
            if body is not None and len(body) > 2:  # (not {}: _STORED_* put a "," before the body)
                digest = xxh3(body + (b"\x1f1" if deleted else b"\x1f0") + id_json)
                id_key = b"i" + entity_id.encode()
                data = pending.get(id_key)
                if data is None:
                    data = get(id_key) if stored is None else stored.get(id_key)
                if data is None or data[8:24] != digest:  # new or changed (the digest covers deleted)
                    seq = state.next_seq
                    state.next_seq = seq + 1
                    state.log += 1
                    state.log_deleted += deleted
                    seq_bytes = pack_seq(seq)
                    if data is None:
                        previous = no_previous
                        if deleted:
                            state.deleted += 1
                        else:
                            state.live += 1
                    else:
                        previous = b',"_previous":%d,"_ts":%d,"_hash":"' % (unpack_seq(data)[0], ts)
                        put(b"s" + data[:8], b"")
                        was_deleted = data[24] & _DELETED
                        if was_deleted != deleted:
                            state.live += was_deleted - deleted
                            state.deleted += deleted - was_deleted
                    put(b"l" + seq_bytes, (_STORED_DELETED if deleted else _STORED_LIVE) % (
                        seq, previous, hexlify(digest), id_json, body[1:]))
                    value = seq_bytes + digest + (run_deleted if deleted else run_live)
                    put(id_key, value)
                    pending[id_key] = value
                    appended += 1
                    continue
                if skip_unchanged:
                    continue
                prepared = Prepared(entity_id, id_json, deleted, False, body, digest)
            else:
                prepared = prepare(entity)
                id_key = b"i" + prepared.id.encode()
                data = pending.get(id_key) or get(id_key)
            # The general path.
            current = None if data is None else _latest_of(data)
            deleted = prepared.deleted
            if prepared.filtered:
                if current is None or current.deleted:
                    if current is not None and full_run is not None and current.run != run_gen:
                        pending[id_key] = value = _ID_VALUE.pack(current.seq, current.digest, _DELETED, run_gen)
                        put(id_key, value)
                    continue
                deleted = True
            elif current is not None and current.digest == prepared.digest and not force:
                if full_run is not None and current.run != run_gen:
                    pending[id_key] = value = _ID_VALUE.pack(current.seq, current.digest, current.deleted,
                                                             run_gen)
                    put(id_key, value)
                continue
            pending[id_key] = self._append(batch, state, prepared, deleted, current, ts, run_gen, entity)
            appended += 1
        if full_run is not None:
            full_run.seen += seen
            full_run.appended += appended
        if _also:
            for key, also in _also.items():
                if also is None:
                    batch.delete(key)
                else:
                    batch.put(key, also)
        self._commit(batch, state, offset_key, offset_json, populated)
        return WriteResult(appended, seen)

    def _stored_in_range(self, entities: Iterable[Any]) -> dict[bytes, bytes] | None:
        """The id index entries between the least and the greatest id of a batch, found with one scan.

        A first load in id order finds none; re-ingesting a range finds the batch's own ids: either way
        the write needs no LevelDB lookup per entity. None (look ids up one by one) for small or odd
        batches, and when the range holds many more stored ids than the batch (sparse ids), after which
        scanning pauses for a while.
        """
        if type(entities) is not list or len(entities) < _RANGE_CHECK_MIN:
            return None
        if self._scan_pause > 0:
            self._scan_pause -= 1
            return None
        try:
            ids = list(map(dict.get, entities, repeat("_id")))  # TypeError if one is not a dict
            low, high = min(ids), max(ids)  # TypeError if they are not all strings (or alike)
            if type(low) is not str or type(high) is not str:
                return None
            low_key, high_key = b"i" + low.encode(), b"i" + high.encode()
        except (TypeError, ValueError):  # the write rejects or looks up such entities one by one
            return None
        limit = 2 * len(entities)
        found: dict[bytes, bytes] = {}
        with self._db.iterator(start=low_key, stop=high_key + b"\x00") as iterator:
            for key, value in iterator:
                found[key] = value
                if len(found) > limit:
                    self._scan_pause = _SCAN_PAUSE
                    return None
        return found

    def _append(
        self,
        batch: Any,
        state: _State,
        prepared: Prepared,
        deleted: bool,
        current: _Latest | None,
        ts: int,
        run_gen: int,
        entity: dict[str, Any] | None,
    ) -> bytes:
        """Append one version (the general case); returns the id index value it wrote."""
        seq = state.next_seq
        state.next_seq += 1
        state.log += 1
        if deleted:
            state.log_deleted += 1
        previous = None if current is None else current.seq
        digest = prepared.digest
        if deleted != prepared.deleted:
            digest = content_hash(prepared.body, deleted, prepared.id_json)
        batch.put(_log_key(seq), stored_bytes(prepared, seq, previous, ts, deleted))
        id_value = _ID_VALUE.pack(seq, digest, _DELETED if deleted else 0, run_gen)
        batch.put(b"i" + prepared.id.encode(), id_value)
        if current is None:
            if deleted:
                state.deleted += 1
            else:
                state.live += 1
        else:
            batch.put(b"s" + _SEQ.pack(current.seq), b"")
            if current.deleted != deleted:
                if deleted:
                    state.live -= 1
                    state.deleted += 1
                else:
                    state.live += 1
                    state.deleted -= 1
        if self._indexes:
            caught_up = [i for i in self._indexes.values() if i.built_through >= self._state.next_seq]
            self._update_indexes(batch, prepared.id, None if deleted else entity, caught_up)
        return id_value

    def _update_indexes(
        self, batch: Any, entity_id: str, entity: dict[str, Any] | None, indexes: list[_Index]
    ) -> None:
        """Move the id's index entries to the values of ``entity`` (None: remove them)."""
        raw_id = entity_id.encode()
        recorded = self._recorded
        for index in indexes:
            new_keys = index.keys_of(entity) if entity is not None else []
            values_key = index.values_prefix + raw_id
            if values_key in recorded:
                old_keys = recorded[values_key]
            else:
                old = self._db.get(values_key)
                old_keys = [k.encode() for k in loads(old)] if old else []
            recorded[values_key] = new_keys
            for key in old_keys:
                if key not in new_keys:
                    batch.delete(index.prefix + key + b"\x00" + raw_id)
            for key in new_keys:
                if key not in old_keys:
                    batch.put(index.prefix + key + b"\x00" + raw_id, b"")
            if new_keys:
                batch.put(values_key, orjson.dumps([k.decode() for k in new_keys]))
            elif old_keys:
                batch.delete(values_key)

    def _commit(
        self,
        batch: Any,
        state: _State,
        offset_key: str | None,
        offset_json: bytes | None,
        populated: bool | None,
    ) -> None:
        batch.put(_STATE, state.to_json())
        for index in self._indexes.values():
            if index.built_through >= self._state.next_seq:
                index_state = {"expression": index.expression, "built_through": state.next_seq}
                batch.put(_INDEX + index.name.encode(), dumps(index_state))
        if offset_key is not None and offset_json is not None:
            batch.put(_OFFSET + offset_key.encode(), offset_json)
        if populated is not None:
            batch.put(_POPULATED, b"true" if populated else b"false")
        self._recorded = {}
        batch.write()
        for index in self._indexes.values():
            if index.built_through >= self._state.next_seq:
                index.built_through = state.next_seq
        self._state = state

    # -- full runs and deletion tracking ------------------------------------------------------------

    def begin_full_run(self) -> FullRun:
        """Start a full run: ids it does not see are deleted by :meth:`end_full_run`."""
        generation = self._run_gen + 1
        self._db.put(_RUN_GEN, str(generation).encode(), sync=True)
        self._run_gen = generation
        self._full_run = FullRun(generation, stale_possible=self._state.live > 0)
        return self._full_run

    def end_full_run(
        self,
        run: FullRun,
        *,
        if_empty: str = "accept",
        mark_deletion_tracked: bool = False,
        offset_key: str | None = None,
        offset: Any = _MISSING,
        batch_size: int = 1000,
    ) -> int:
        """Delete every live id the run did not see; returns how many were deleted.

        With ``if_empty="fail"`` a run that saw nothing raises :class:`EmptySourceError` and deletes
        nothing. ``offset`` is stored with the last batch. Only the latest full run can end: one that
        another full run has since replaced raises ValueError.
        """
        if if_empty not in ("accept", "fail"):
            raise ValueError(f"if_empty must be 'accept' or 'fail', not {if_empty!r}")
        if run.generation != self._run_gen:
            raise ValueError(f"dataset {self.name}: full run {run.generation} was replaced by a later one")
        offset_json = _offset_json(offset_key, offset)
        if run.seen == 0 and if_empty == "fail":
            raise EmptySourceError(f"dataset {self.name}: the full run saw no entities")
        if not run.stale_possible:  # every live id was written since the run began: all carry its mark
            self._delete_versions([], mark_deletion_tracked, offset_key, offset_json)
            return 0
        deleted = 0
        snapshot = self._db.snapshot()
        try:
            stale: list[tuple[bytes, _Latest]] = []
            for key, value in snapshot.iterator(prefix=b"i"):
                seq, digest, flags, gen = _ID_VALUE.unpack(value)
                if flags & _DELETED or gen == run.generation:
                    continue
                stale.append((key, _Latest(seq, digest, False, gen)))
                if len(stale) >= batch_size:
                    deleted += self._delete_versions(stale, mark_deletion_tracked)
                    stale = []
            deleted += self._delete_versions(stale, mark_deletion_tracked, offset_key, offset_json)
        finally:
            snapshot.close()
        return deleted

    def _delete_versions(
        self,
        stale: list[tuple[bytes, _Latest]],
        mark: bool,
        offset_key: str | None = None,
        offset_json: bytes | None = None,
    ) -> int:
        self._recorded = {}
        state = _State(**vars(self._state))
        batch = self._db.write_batch()
        ts = now_us()
        for _key, latest in stale:
            stored = loads(self._db.get(_log_key(latest.seq)))
            body = {k: v for k, v in stored.items() if k[:1] != "_"}
            if mark:
                body["$deletion_tracked"] = True
            body["_id"] = stored["_id"]
            body["_deleted"] = True
            self._append(batch, state, prepare(body), True, latest, ts, latest.run, None)
        self._commit(batch, state, offset_key, offset_json, None)
        return len(stale)

    # -- circuit breakers (storage._staging) ---------------------------------------------------------

    @property
    def breaker(self) -> Breaker | None:
        """The circuit breaker of the armed (or tripped) run, None when there is none."""
        return self._breaker

    @property
    def breaker_tripped(self) -> bool:
        return self._breaker is not None and self._breaker.tripped

    def arm_breaker(self, offset_key: str, limit: int) -> None:
        """Stage the writes of the run committing under ``offset_key`` until it ends (see :mod:`storage._staging`)."""
        from ._staging import arm

        arm(self, offset_key, limit)

    def stage(self, entities: Iterable[Any], *, offset_key: str, offset: Any = _MISSING,
              full_run: FullRun | None = None) -> int:
        """Stage a batch of the armed run (with its offset); returns the changes it counted."""
        from ._staging import stage

        return stage(self, entities, offset_key, None if offset is _MISSING else offset, full_run)

    def stage_deletes(self, run: FullRun, *, offset_key: str, offset: Any, if_empty: str = "accept",
                      mark_deletion_tracked: bool = False) -> int:
        """Deletion tracking of an armed full run, staged and counted; returns the number of deletes."""
        from ._staging import stage_deletes

        return stage_deletes(self, run, offset_key, offset, if_empty, mark_deletion_tracked)

    def commit_staged(self, offset: Any = _MISSING) -> int:
        """Write the staged entities through the normal write path (the offset with the last chunk); returns
        the versions appended. ``offset`` replaces the staged offset."""
        from ._staging import commit

        return commit(self, None if offset is _MISSING else offset)

    def rollback_staged(self) -> int:
        """Delete the staged entities; returns how many there were."""
        from ._staging import rollback

        return rollback(self)

    def iter_uncommitted(self, since: int | None = None, **options: Any) -> Iterator[tuple[int, bytes]]:
        """Like :meth:`iter_stored`, with the staged versions after the committed ones (``uncommitted=true``)."""
        from ._staging import iter_uncommitted

        return iter_uncommitted(self, since, **options)

    def get_stored_uncommitted(self, entity_id: str) -> bytes | None:
        """Like :meth:`get_stored`, the staged version of the id first."""
        from ._staging import get_uncommitted

        return get_uncommitted(self, entity_id)

    # -- reading ------------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        """A consistent read view; close it when done (or use it as a context manager)."""
        return self._db.snapshot()

    def iter_stored(
        self,
        since: int | None = None,
        *,
        limit: int | None = None,
        history: bool = True,
        deleted: bool = True,
        reverse: bool = False,
        snapshot: Any = None,
    ) -> Iterator[tuple[int, bytes]]:
        """Stored versions after offset ``since`` (exclusive), as ``(offset, stored bytes)``.

        ``history=False`` skips superseded versions (only the latest of each id); ``deleted=False``
        skips deletes. Without ``snapshot`` the view is taken when this is called, so later writes
        are not seen even if iteration starts after them.
        """
        if limit is not None and limit <= 0:
            return iter(())
        if snapshot is not None:
            return self._iter_view(snapshot, since, limit, history, deleted, reverse)
        return self._iter_own(self._db.snapshot(), since, limit, history, deleted, reverse)

    def _iter_own(self, view: Any, *args: Any) -> Iterator[tuple[int, bytes]]:
        try:
            yield from self._iter_view(view, *args)
        finally:
            view.close()

    def _iter_view(
        self, view: Any, since: int | None, limit: int | None, history: bool, deleted: bool, reverse: bool
    ) -> Iterator[tuple[int, bytes]]:
        if reverse:
            stop = _log_key(since) if since is not None and since >= 0 else b"m"
            iterator = view.iterator(start=b"l", stop=stop, reverse=True)
        else:
            start = _log_key(since + 1) if since is not None and since >= 0 else b"l"
            iterator = view.iterator(start=start, stop=b"m")
        superseded = None
        next_superseded = -1
        if not history and not reverse:
            superseded = view.iterator(start=b"s" + start[1:], stop=b"t", include_value=False)
            next_superseded = _next_seq(superseded)
        count = 0
        unpack = _SEQ.unpack
        try:
            for key, value in iterator:
                seq = unpack(key[1:])[0]
                if superseded is not None:
                    while 0 <= next_superseded < seq:
                        next_superseded = _next_seq(superseded)
                    if next_superseded == seq:
                        continue
                elif not history and view.get(b"s" + key[1:]) is not None:
                    continue
                if not deleted and stored_is_deleted(value):
                    continue
                yield seq, value
                count += 1
                if limit is not None and count >= limit:
                    break
        except plyvel.Error as exc:  # (superseded markers are read inside the loop too)
            raise self._read_error(exc) from None
        finally:
            iterator.close()
            if superseded is not None:
                superseded.close()

    def iter_entities(self, since: int | None = None, **options: Any) -> Iterator[dict[str, Any]]:
        """Like :meth:`iter_stored`, parsed into dicts."""
        return (loads(value) for _seq, value in self.iter_stored(since, **options))

    def get(self, entity_id: str, *, snapshot: Any = None) -> dict[str, Any] | None:
        """The latest version of an id (deleted or not), or None."""
        stored = self.get_stored(entity_id, snapshot=snapshot)
        return None if stored is None else loads(stored)

    def get_stored(self, entity_id: str, *, snapshot: Any = None) -> bytes | None:
        """The latest version of an id (deleted or not) as stored (wire-form JSON), or None."""
        view = snapshot or self._db
        try:
            latest = self._latest(b"i" + entity_id.encode(), view.get)
            return None if latest is None else view.get(_log_key(latest.seq))
        except plyvel.Error as exc:
            raise self._read_error(exc) from None

    def versions(self, entity_id: str) -> list[dict[str, Any]]:
        """Every stored version of an id, oldest first."""
        try:
            return self._versions(entity_id)
        except plyvel.Error as exc:
            raise self._read_error(exc) from None

    def _versions(self, entity_id: str) -> list[dict[str, Any]]:
        with self._db.snapshot() as view:
            latest = self._latest(b"i" + entity_id.encode(), view.get)
            found: list[dict[str, Any]] = []
            seq = None if latest is None else latest.seq
            while seq is not None:
                stored = view.get(_log_key(seq))
                if stored is None:
                    break  # compacted away
                version = loads(stored)
                found.append(version)
                seq = version.get("_previous")
        found.reverse()
        return found

    def latest_offsets(self, ids: Iterable[str]) -> dict[str, int]:
        """The offset of the latest version of each id that exists."""
        found = {}
        try:
            for entity_id in ids:
                latest = self._latest(b"i" + entity_id.encode(), self._db.get)
                if latest is not None:
                    found[entity_id] = latest.seq
        except plyvel.Error as exc:
            raise self._read_error(exc) from None
        return found

    # -- secondary indexes --------------------------------------------------------------------------

    def define_index(self, name: str, function: IndexFunction, expression: Any = None) -> None:
        """Register (and if needed build or catch up) the index ``name`` on ``function``'s values."""
        data = self._db.get(_INDEX + name.encode())
        built = loads(data)["built_through"] if data else 0
        if data and loads(data).get("expression") != loads(dumps(expression)):  # as stored (tuples: lists)
            self.drop_index(name)
            built = 0
        self._indexes[name] = _Index(name, function, expression, built)
        self._catch_up(self._indexes[name])

    def drop_index(self, name: str) -> None:
        """Remove an index and its entries."""
        self._indexes.pop(name, None)
        raw = name.encode()
        batch = self._db.write_batch()
        for prefix in (b"x" + raw + b"\x00", b"X" + raw + b"\x00"):
            for key in self._db.iterator(prefix=prefix, include_value=False):
                batch.delete(key)
        batch.delete(_INDEX + raw)
        batch.write()

    def index_names(self) -> dict[str, Any]:
        return {k[len(_INDEX):].decode(): loads(v) for k, v in self._db.iterator(prefix=_INDEX)}

    def defined_indexes(self) -> set[str]:
        """The indexes defined in this process (every write maintains them)."""
        return set(self._indexes)

    def has_index(self, name: str) -> bool:
        """Whether the index is defined in this process or stored (built by an earlier one)."""
        return name in self._indexes or self._db.get(_INDEX + name.encode()) is not None

    def _catch_up(self, index: _Index, batch_size: int = 2000) -> None:
        target = self._state.next_seq
        while index.built_through < target:
            self._recorded = {}
            batch = self._db.write_batch()
            last = index.built_through
            count = 0
            with self._db.snapshot() as view:
                pairs = self._iter_view(view, index.built_through - 1, None, False, True, False)
                for seq, value in pairs:
                    entity = loads(value)
                    self._index_one(batch, index, entity["_id"], None if stored_is_deleted(value) else entity)
                    last = seq + 1
                    count += 1
                    if count >= batch_size:
                        break
                else:
                    last = target
                pairs.close()
            state = {"expression": index.expression, "built_through": last}
            batch.put(_INDEX + index.name.encode(), dumps(state))
            self._recorded = {}
            batch.write()
            index.built_through = last

    def _index_one(self, batch: Any, index: _Index, entity_id: str, entity: dict[str, Any] | None) -> None:
        self._update_indexes(batch, entity_id, entity, [index])

    def lookup(self, name: str, value: Any, *, snapshot: Any = None) -> list[str]:
        """The ids whose latest live version has ``value`` among its ``name`` index values."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"dataset {self.name} has no index {name!r}")
        prefix = index.prefix + canonical(value) + b"\x00"
        view = snapshot or self._db
        return [key[len(prefix):].decode() for key in view.iterator(prefix=prefix, include_value=False)]

    # -- compaction ---------------------------------------------------------------------------------

    def register_reader(self, name: str, offset: int) -> None:
        """Keep every version after ``offset`` from compaction until the reader moves or leaves."""
        self._db.put(_READER + name.encode(), orjson.dumps(offset))

    def unregister_reader(self, name: str) -> None:
        self._db.delete(_READER + name.encode())

    def readers(self) -> dict[str, int]:
        return {k[len(_READER):].decode(): loads(v) for k, v in self._db.iterator(prefix=_READER)}

    def compact(self, *, keep_versions: int = 2, older_than_us: int | None = None,
                protected: int | None = None) -> int:
        """Remove old versions (a whole pass of :mod:`storage._compaction`): keep ``keep_versions`` per id
        and those written at or after ``older_than_us``, and what a reader at a registered offset (or at
        ``protected``) still needs. The latest version of an id always stays. Returns the number removed."""
        from ._compaction import CompactionPolicy, compact

        return compact(self, CompactionPolicy(keep_versions, older_than_us, protected)).removed

    def _remove_versions(self, removals: Iterable[tuple[int, int]],
                         update_meta: Callable[[dict[str, Any], int, int], dict[str, Any]]) -> tuple[int, int]:
        """Compaction's write (:class:`storage._compaction.Chunk`): delete the superseded versions at the
        ``(offset, size)`` removals that are still there, with their markers, and store the compaction meta
        as ``update_meta(meta, removed, log size after)`` returns it, in one batch. Returns (removed, bytes)."""
        batch = self._db.write_batch()
        removed = freed = removed_deleted = 0
        for seq, size in removals:
            key = _log_key(seq)
            marker = b"s" + key[1:]
            if self._db.get(marker) is None or (stored := self._db.get(key)) is None:  # (the latest has no marker)
                continue
            batch.delete(key)
            batch.delete(marker)
            removed += 1
            removed_deleted += stored_is_deleted(stored)
            freed += size
        state = _State(**vars(self._state))
        state.log -= removed
        state.log_deleted -= removed_deleted
        meta = update_meta(loads(self._db.get(_COMPACTION) or b"{}"), removed, state.log)
        batch.put(_STATE, state.to_json())
        batch.put(_COMPACTION, dumps(meta))
        batch.write()
        self._state = state
        return removed, freed


def _offset_json(offset_key: str | None, offset: Any) -> bytes | None:
    """The stored form of a caller's offset (checked before anything is written)."""
    if offset_key is None or offset is _MISSING:
        return None
    try:
        return dumps(offset)
    except TypeError as exc:
        raise TypeError(f"offset {offset!r} is not JSON: {exc}") from None


def _next_seq(iterator: Any) -> int:
    try:
        key = next(iterator)
    except StopIteration:
        return -1
    return _SEQ.unpack(key[1:])[0]


