"""An invariant checker for a dataset's stored state (used by crash tests and ``sesamd dataset check``)."""

from __future__ import annotations

import struct

import plyvel

from ._dataset import _ID_VALUE, _SEQ, Dataset
from ._errors import plyvel_message
from ._json import loads

__all__ = ["check_dataset"]


def check_dataset(dataset: Dataset) -> list[str]:
    """Return every broken invariant found (an empty list means the dataset is consistent).

    Checks: log offsets increasing and below the next offset (and contiguous if nothing was compacted);
    the id index pointing at each id's latest version with its hash and deleted flag; superseded
    markers on exactly the older versions; ``_previous`` chains; no two consecutive versions of an id
    with the same hash; the counters. First every stored block is read with its checksum verified: damaged
    files are one problem, ``damaged: <LevelDB's error>``, and nothing else is checked.
    """
    try:
        with dataset.snapshot() as view:
            for _ in view.iterator(verify_checksums=True, fill_cache=False):
                pass
        return _check(dataset)
    except plyvel.Error as exc:
        dataset.damage = plyvel_message(exc)
        return [f"damaged: {dataset.damage}"]


def _check(dataset: Dataset) -> list[str]:
    problems: list[str] = []
    state = dataset._state
    last: dict[str, tuple[int, str]] = {}
    seqs: list[int] = []
    log_deleted = 0
    with dataset.snapshot() as view:
        superseded = {_SEQ.unpack(k[1:])[0] for k in view.iterator(prefix=b"s", include_value=False)}
        for key, value in view.iterator(prefix=b"l"):
            seq = _SEQ.unpack(key[1:])[0]
            version = loads(value)
            if seqs and seq <= seqs[-1]:
                problems.append(f"log offset {seq} is not after {seqs[-1]}")
            seqs.append(seq)
            if version.get("_updated") != seq:
                problems.append(f"log offset {seq} holds _updated {version.get('_updated')}")
            entity_id = version["_id"]
            before = last.get(entity_id)
            expected_previous = before[0] if before else None
            if version.get("_previous") != expected_previous and not (
                before is None and state.log != state.next_seq
            ):
                problems.append(f"{entity_id!r} at {seq}: _previous {version.get('_previous')} "
                                f"should be {expected_previous}")
            if before is not None and before[1] == version["_hash"]:
                problems.append(f"{entity_id!r}: versions {before[0]} and {seq} have the same hash")
            last[entity_id] = (seq, version["_hash"])
            log_deleted += version.get("_deleted") is True
        live = deleted = 0
        indexed = 0
        for key, value in view.iterator(prefix=b"i"):
            entity_id = key[1:].decode()
            seq, digest, flags, _run = _ID_VALUE.unpack(value)
            indexed += 1
            found = last.get(entity_id)
            if found is None:
                problems.append(f"id index has {entity_id!r} but the log does not")
                continue
            if found[0] != seq:
                problems.append(f"id index points {entity_id!r} at {seq}, its latest version is {found[0]}")
            if digest.hex() != found[1]:
                problems.append(f"id index hash of {entity_id!r} differs from its latest version")
            stored = view.get(b"l" + struct.pack(">Q", seq))
            is_deleted = stored is not None and loads(stored).get("_deleted") is True
            if bool(flags & 1) != is_deleted:
                problems.append(f"id index deleted flag of {entity_id!r} is wrong")
            if is_deleted:
                deleted += 1
            else:
                live += 1
        if indexed != len(last):
            problems.append(f"{len(last)} ids in the log but {indexed} in the id index")
        latest = {seq for seq, _ in last.values()}
        for seq in seqs:
            if (seq in superseded) == (seq in latest):
                problems.append(f"superseded marker of offset {seq} is wrong")
    if seqs and seqs[-1] >= state.next_seq:
        problems.append(f"log offset {seqs[-1]} is not below the next offset {state.next_seq}")
    if state.log == state.next_seq and seqs != list(range(state.next_seq)):
        problems.append("the log is not contiguous")
    if len(seqs) != state.log:
        problems.append(f"the log holds {len(seqs)} versions, the counter says {state.log}")
    if log_deleted != state.log_deleted:
        problems.append(f"the log holds {log_deleted} deleted versions, the counter says {state.log_deleted}")
    if (live, deleted) != (state.live, state.deleted):
        problems.append(f"counters say {state.live} live and {state.deleted} deleted, found {live} and {deleted}")
    return problems
