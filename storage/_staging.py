"""Circuit breakers (node-spec 2.8): the writes of an armed run are staged, not logged, until the run ends.

Design. A dataset sink with a threshold arms the breaker of its (populated) dataset at the start of a run:
:func:`arm` stores the limit under ``mbreaker``. From then on the sink's batches go to :func:`stage`
instead of :meth:`Dataset.write`: each new or changed entity (compared by content digest with its latest
staged version, else its committed one, so unchanged entities do not count) is put under ``u`` + ordinal,
the id's latest staged digest under ``v`` + id, and the breaker's counters and the batch's offset (the
pipe state) into ``mbreaker``, all in one WriteBatch. The committed offset does not move, so normal readers
(the log, the id index, secondary indexes, counts, the pipe's ``load_state``) see nothing of the run, and
a rerun after a rollback reads the same source entities again. In a full run the committed id index
entries the run sees get its mark as usual (readers do not see marks), so that deletion tracking at the
end (:func:`stage_deletes`) stages the deletes of what the run did not see, counted like the rest, before
anything is exposed.

When a batch takes the count over the limit, the batch is staged, the breaker is stored ``tripped`` and
:class:`CircuitBreakerTripped` stops the run. A tripped dataset refuses staged runs (the sink refuses
the run), compaction skips it. :func:`commit` (the run's successful end, or ``commit-circuit-breaker``)
replays the staging through the normal write path in chunks, each chunk's batch deleting its staged keys
(and the last one the breaker, with the offset), so versions, ``_previous``, indexes and counters come
out as if the run had written them; :func:`rollback` deletes the staging in chunks. Both mark the breaker
``committing`` / ``rolling-back`` in their first batch: a crash part way is resumed when the dataset is
opened (:func:`recover`). A crash while staging leaves the staging of a run that never ended: the next
armed run (or the next run of an unarmed sink) rolls it back first (:func:`arm`, :func:`settle`).

Reading with ``uncommitted=true`` (:func:`iter_uncommitted`, :func:`get_uncommitted`) shows the committed
log followed by the staged versions, numbered from the dataset's next offset on, as a commit would number
them when nothing else writes meanwhile.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._dataset import _ID_VALUE, EmptySourceError, FullRun, _latest_of, _log_key, _offset_json, now_us
from ._entity import content_hash, prepare, stored_bytes
from ._errors import StorageError
from ._json import dumps, loads

if TYPE_CHECKING:
    from ._dataset import Dataset

__all__ = ["Breaker", "CircuitBreakerTripped", "arm", "commit", "get_uncommitted", "iter_uncommitted", "recover",
           "rollback", "settle", "stage", "stage_deletes"]

BREAKER_KEY = b"mbreaker"
CHUNK = 1000  # staged entities per commit or rollback batch
_SEQ = struct.Struct(">Q")
_STAGED = b"u"
_STAGED_ID = b"v"
_PHASES = ("staging", "committing", "rolling-back")


class CircuitBreakerTripped(StorageError):
    """A run wrote more entities than its dataset's circuit breaker allows, or a run met a tripped breaker."""

    def __init__(self, dataset: str, message: str) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.message = message


@dataclass(frozen=True)
class Breaker:
    """The stored state of a dataset's circuit breaker (``mbreaker``)."""

    key: str  # the offset key of the armed run (the pipe's state key)
    limit: int
    written: int = 0  # changes counted (= entities staged)
    staged: int = 0  # the next ordinal
    tripped: bool = False
    phase: str = "staging"
    offset: Any = None  # the pipe state staged with the last batch (None: none yet)

    def to_json(self) -> bytes:
        return dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Breaker:
        return cls(**loads(data))

    def reason(self, dataset: str) -> str:
        return (f"the circuit breaker of dataset '{dataset}' has tripped: the run wrote {self.written} entities, "
                f"more than the limit of {self.limit}; its writes are uncommitted until someone commits or rolls "
                f"them back (POST /api/datasets/{dataset} with operation=commit-circuit-breaker or "
                "rollback-circuit-breaker)")


def _store(dataset: Dataset, breaker: Breaker | None, batch: Any = None) -> None:
    """Store (or with None remove) the breaker, in ``batch`` when given (the caller writes it)."""
    target = batch if batch is not None else dataset._db
    if breaker is None:
        target.delete(BREAKER_KEY)
    else:
        target.put(BREAKER_KEY, breaker.to_json())


def recover(dataset: Dataset) -> Breaker | None:
    """At open: the stored breaker, after finishing a commit or rollback that a crash cut short."""
    data = dataset._db.get(BREAKER_KEY)
    if data is None:
        return None
    breaker = Breaker.from_json(data)
    dataset._breaker = breaker
    if breaker.phase == "committing":
        commit(dataset, None)
    elif breaker.phase == "rolling-back":
        rollback(dataset)
    return dataset._breaker


def refuse_if_tripped(dataset: Dataset) -> None:
    """Raise :class:`CircuitBreakerTripped` when the dataset's breaker has tripped."""
    breaker = dataset._breaker
    if breaker is not None and breaker.tripped:
        raise CircuitBreakerTripped(dataset.name, breaker.reason(dataset.name))


def settle(dataset: Dataset) -> None:
    """Before a run: refuse it if tripped; roll back the staging a run that never ended left (a crash, a failure,
    a stop), or finish a commit cut short."""
    refuse_if_tripped(dataset)
    breaker = dataset._breaker
    if breaker is not None:
        if breaker.phase == "committing":
            commit(dataset, None)
        else:
            rollback(dataset)


def arm(dataset: Dataset, key: str, limit: int) -> None:
    """Arm the breaker for the run committing under ``key`` (after :func:`settle`)."""
    settle(dataset)
    breaker = Breaker(key, int(limit))
    _store(dataset, breaker)
    dataset._breaker = breaker


def staging_for(dataset: Dataset, key: str) -> Breaker | None:
    """The breaker when the run committing under ``key`` stages its writes (armed, not tripped), else None."""
    breaker = dataset._breaker
    if breaker is None or breaker.key != key or breaker.tripped or breaker.phase != "staging":
        return None
    return breaker


def stage(dataset: Dataset, entities: Iterable[Any], key: str, offset: Any, full_run: FullRun | None,
          *, check: bool = True) -> int:
    """Stage a batch of the armed run with its ``offset`` (one WriteBatch); returns the changes it counted.

    Raises :class:`storage.EntityError` for a bad entity before anything is staged, and
    :class:`CircuitBreakerTripped` (after staging the batch) once the count exceeds the limit (``check``)."""
    refuse_if_tripped(dataset)
    breaker = staging_for(dataset, key)
    if breaker is None:
        raise ValueError(f"dataset {dataset.name}: no armed run commits under {key!r}")
    if offset is not None:
        _offset_json(key, offset)  # (a TypeError before anything is staged)
    db = dataset._db
    batch = db.write_batch()
    staged: dict[bytes, bytes] = {}  # v key -> value this batch wrote
    marks: dict[bytes, bytes] = {}  # i key -> value this batch wrote
    ordinal, written = breaker.staged, breaker.written
    run_gen = full_run.generation if full_run is not None else None
    ts = now_us()
    count = 0
    for entity in entities:
        count += 1
        prepared = prepare(entity)
        raw_id = prepared.id.encode()
        id_key, staged_key = b"i" + raw_id, _STAGED_ID + raw_id
        committed_data = marks.get(id_key) or db.get(id_key)
        committed = None if committed_data is None else _latest_of(committed_data)
        if committed is not None and run_gen is not None and committed.run != run_gen:
            marks[id_key] = value = _ID_VALUE.pack(committed.seq, committed.digest, int(committed.deleted), run_gen)
            batch.put(id_key, value)
        latest = staged.get(staged_key) or db.get(staged_key)
        if latest is not None:
            exists, digest_now, deleted_now = True, latest[8:24], bool(latest[24])
        elif committed is not None:
            exists, digest_now, deleted_now = True, committed.digest, committed.deleted
        else:
            exists, digest_now, deleted_now = False, b"", False
        deleted, digest = prepared.deleted, prepared.digest
        if prepared.filtered:
            if not exists or deleted_now:
                continue
            deleted, digest = True, content_hash(prepared.body, True, prepared.id_json)
        elif exists and digest == digest_now:
            continue
        staged[staged_key] = value = _SEQ.pack(ordinal) + digest + bytes((deleted,))
        batch.put(staged_key, value)
        batch.put(_STAGED + _SEQ.pack(ordinal), _SEQ.pack(ts) + dumps(entity))
        ordinal += 1
        written += 1
    if full_run is not None:
        full_run.seen += count
        full_run.appended += written - breaker.written
    tripped = check and written > breaker.limit
    updated = dataclasses.replace(breaker, staged=ordinal, written=written, tripped=tripped,
                                  offset=breaker.offset if offset is None else offset)
    _store(dataset, updated, batch)
    batch.write()
    dataset._breaker = updated
    if tripped:
        raise CircuitBreakerTripped(dataset.name, updated.reason(dataset.name))
    return written - breaker.written


def stage_deletes(dataset: Dataset, run: FullRun, key: str, offset: Any, if_empty: str, mark: bool,
                  chunk: int = CHUNK) -> int:
    """Deletion tracking of an armed full run: stage a delete of every live id the run did not see (counted,
    then checked against the limit), with ``offset``; returns the number of deletes."""
    if if_empty not in ("accept", "fail"):
        raise ValueError(f"if_empty must be 'accept' or 'fail', not {if_empty!r}")
    if run.generation != dataset._run_gen:
        raise ValueError(f"dataset {dataset.name}: full run {run.generation} was replaced by a later one")
    if run.seen == 0 and if_empty == "fail":
        raise EmptySourceError(f"dataset {dataset.name}: the full run saw no entities")
    deleted = 0
    deletes: list[dict[str, Any]] = []
    with dataset._db.snapshot() as view:
        for id_key, value in view.iterator(prefix=b"i"):
            latest = _latest_of(value)
            if latest.deleted or latest.run == run.generation:
                continue
            stored = loads(view.get(_log_key(latest.seq)))
            body = {k: v for k, v in stored.items() if k[:1] != "_"}
            if mark:
                body["$deletion_tracked"] = True
            body["_id"] = id_key[1:].decode()
            body["_deleted"] = True
            deletes.append(body)
            if len(deletes) >= chunk:
                deleted += stage(dataset, deletes, key, None, None, check=False)
                deletes = []
    deleted += stage(dataset, deletes, key, offset, None)
    return deleted


def _chunk(dataset: Dataset, size: int) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The first ``size`` staged entries and whether they are the last."""
    found: list[tuple[bytes, bytes]] = []
    with dataset._db.iterator(prefix=_STAGED) as iterator:
        for item in iterator:
            if len(found) == size:
                return found, False
            found.append(item)
    return found, True


def commit(dataset: Dataset, offset: Any, chunk: int = CHUNK) -> int:
    """Replay the staging through :meth:`Dataset.write` in chunks (the last with the offset: ``offset``, else
    the staged one), then forget the breaker; returns the versions appended."""
    breaker = dataset._breaker
    if breaker is None:
        raise ValueError(f"dataset {dataset.name} has no staged writes")
    if offset is not None or breaker.phase != "committing":
        breaker = dataclasses.replace(breaker, phase="committing", offset=breaker.offset if offset is None else offset)
    appended = 0
    while True:
        entries, last = _chunk(dataset, chunk)
        also: dict[bytes, bytes | None] = {}
        entities = []
        for key, value in entries:
            entity = loads(value[8:])
            entities.append(entity)
            also[key] = None
            staged_key = _STAGED_ID + entity["_id"].encode()
            latest = dataset._db.get(staged_key)
            if latest is not None and latest[:8] == key[1:]:  # the id's latest staged version
                also[staged_key] = None
        also[BREAKER_KEY] = None if last else breaker.to_json()
        state = {"offset_key": breaker.key, "offset": breaker.offset} if last and breaker.offset is not None else {}
        appended += dataset.write(entities, _also=also, **state).appended
        dataset._breaker = None if last else breaker
        if last:
            return appended


def rollback(dataset: Dataset, chunk: int = CHUNK) -> int:
    """Delete the staging in chunks (each its batch; the first marks the breaker ``rolling-back``, the last
    removes it); returns how many staged entities there were."""
    breaker = dataset._breaker
    if breaker is None:
        raise ValueError(f"dataset {dataset.name} has no staged writes")
    breaker = dataclasses.replace(breaker, phase="rolling-back")
    removed = 0
    while True:
        entries, last = _chunk(dataset, chunk)
        batch = dataset._db.write_batch()
        for key, value in entries:
            batch.delete(key)
            batch.delete(_STAGED_ID + loads(value[8:])["_id"].encode())
        _store(dataset, None if last else breaker, batch)
        batch.write()
        removed += len(entries)
        dataset._breaker = None if last else breaker
        if last:
            return removed


# -- reading -------------------------------------------------------------------------------------------------


def _staged_versions(dataset: Dataset, view: Any, latest_only: bool) -> list[tuple[int, bytes, str]]:
    """The staged versions as stored versions ``(offset, bytes, id)``, numbered from the next offset on."""
    out: list[tuple[int, bytes, str]] = []
    previous: dict[str, int | None] = {}
    seq = dataset.next_offset
    with view.iterator(prefix=_STAGED) as iterator:
        for key, value in iterator:
            entity = loads(value[8:])
            prepared = prepare(entity)
            entity_id = prepared.id
            if entity_id not in previous:
                committed = view.get(b"i" + entity_id.encode())
                previous[entity_id] = None if committed is None else _latest_of(committed).seq
            latest = view.get(_STAGED_ID + entity_id.encode())
            if latest_only and (latest is None or latest[:8] != key[1:]):
                previous[entity_id] = seq
                seq += 1
                continue
            deleted = bool(latest[24]) if latest is not None and latest[:8] == key[1:] else \
                prepared.deleted or prepared.filtered
            ts = _SEQ.unpack_from(value)[0]
            out.append((seq, stored_bytes(prepared, seq, previous[entity_id], ts, deleted), entity_id))
            previous[entity_id] = seq
            seq += 1
    return out


def iter_uncommitted(dataset: Dataset, since: int | None = None, *, limit: int | None = None, history: bool = True,
                     deleted: bool = True, reverse: bool = False, snapshot: Any = None) -> Iterator[tuple[int, bytes]]:
    """The committed log as :meth:`Dataset.iter_stored` reads it, then the staged versions (newest first with
    ``reverse``); with ``history=False`` a committed version superseded by a staged one is left out."""
    own = snapshot is None
    view = dataset._db.snapshot() if own else snapshot
    try:
        staged = _staged_versions(dataset, view, latest_only=not history)
        staged_ids = {entity_id for _seq, _stored, entity_id in staged}
        staged = [(seq, stored) for seq, stored, _id in staged
                  if (since is None or since < 0 or (seq < since if reverse else seq > since))
                  and (deleted or not _is_deleted(stored))]
        committed = dataset.iter_stored(since, history=history, deleted=deleted, reverse=reverse, snapshot=view)
        if not history and staged_ids:
            committed = (item for item in committed if loads(item[1])["_id"] not in staged_ids)
        parts: list[Iterable[tuple[int, bytes]]] = [reversed(staged), committed] if reverse else [committed, staged]
        count = 0
        for part in parts:
            for item in part:
                if limit is not None and count >= limit:
                    return
                yield item
                count += 1
    finally:
        if own:
            view.close()


def _is_deleted(stored: bytes) -> bool:
    return stored.startswith(b'{"_deleted":true')


def get_uncommitted(dataset: Dataset, entity_id: str) -> bytes | None:
    """The id's latest staged version (as stored), else its latest committed version, else None."""
    with dataset._db.snapshot() as view:
        if view.get(_STAGED_ID + entity_id.encode()) is not None:
            for _seq, stored, found in reversed(_staged_versions(dataset, view, latest_only=True)):
                if found == entity_id:
                    return stored
        return dataset.get_stored(entity_id, snapshot=view)

