"""Entities in wire form: validation, content hash, and the stored byte form of a version.

The content hash covers every root property that does not start with ``_`` (``$`` keys included, nested
``_`` keys included) plus ``_id`` and ``_deleted``; key order never matters. It is the 128-bit xxh3 of
the canonical body bytes, a separator, the deleted flag and the JSON of the ``_id``; ``_hash`` is its 32
lowercase hex characters.

A stored version is the JSON object ``{"_deleted":..,"_updated":..,"_previous":..,"_ts":..,"_hash":..,
"_id":.., <body>}``. The fixed prefix lets readers tell a deleted version (``stored[12]``) without
parsing it, and export stream the stored bytes as they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import xxhash

from ._json import canonical

__all__ = ["EntityError", "Prepared", "prepare", "content_hash", "stored_bytes", "stored_is_deleted"]

_DELETED_AT = len(b'{"_deleted":')
_TRUE = ord("t")


class EntityError(ValueError):
    """An entity that cannot be stored (not a dict, no string ``_id``, bad values)."""


class Prepared(NamedTuple):
    """An entity ready to be written: its id, flags, canonical body and content digest."""

    id: str
    id_json: bytes
    deleted: bool
    filtered: bool
    body: bytes
    digest: bytes


def _body(entity: dict[str, Any]) -> dict[str, Any]:
    for key in entity:
        if "_" <= key < "`" and key != "_id":  # starts with "_" (no slice per key)
            return {k: v for k, v in entity.items() if not "_" <= k < "`"}
    body = entity.copy()
    del body["_id"]
    return body


def prepare(entity: Any) -> Prepared:
    """Validate a wire-form entity and compute what a write needs."""
    if type(entity) is not dict:
        raise EntityError(f"an entity must be a JSON object, not {_kind(entity)}")
    entity_id = entity.get("_id")
    if type(entity_id) is not str:
        if entity_id is None:
            raise EntityError("the entity has no _id")
        raise EntityError(f"_id must be a string, not {_kind(entity_id)}")
    deleted = entity.get("_deleted") is True
    try:
        body = canonical(_body(entity))
        id_json = orjson.dumps(entity_id)
    except (TypeError, RecursionError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise EntityError(f"entity {entity_id!r}: {exc}") from None
    digest = content_hash(body, deleted, id_json)
    return Prepared(entity_id, id_json, deleted, entity.get("_filtered") is True, body, digest)


def content_hash(body: bytes, deleted: bool, id_json: bytes) -> bytes:
    """The 16-byte content digest of a canonical body, its deleted flag and the JSON of its ``_id``."""
    return xxhash.xxh3_128_digest(body + (b"\x1f1" if deleted else b"\x1f0") + id_json)


def stored_bytes(prepared: Prepared, seq: int, previous: int | None, ts: int, deleted: bool) -> bytes:
    """The stored form of one version (``deleted`` may differ from the entity's, for deletes)."""
    body = prepared.body
    return b"".join((
        b'{"_deleted":true,"_updated":' if deleted else b'{"_deleted":false,"_updated":',
        b"%d" % seq,
        b',"_previous":null,"_ts":' if previous is None else b',"_previous":%d,"_ts":' % previous,
        b"%d" % ts,
        b',"_hash":"',
        _digest_of(prepared, deleted).hex().encode(),
        b'","_id":',
        prepared.id_json,
        b"," + body[1:] if len(body) > 2 else b"}",
    ))


def _digest_of(prepared: Prepared, deleted: bool) -> bytes:
    if deleted == prepared.deleted:
        return prepared.digest
    return content_hash(prepared.body, deleted, prepared.id_json)


def stored_is_deleted(stored: bytes) -> bool:
    """Whether a stored version is a delete, read from its fixed prefix."""
    return stored[_DELETED_AT] == _TRUE


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
