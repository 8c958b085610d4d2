"""Validating uploaded entities: the one check behind ``sesamd dataset import`` and
``POST /api/datasets/{id}/entities``.

The input is a JSON array of entities, NDJSON, or one entity object, in wire form (``~f``, ``~t``... as
stored). Every entity must be an object with a string ``_id`` whose content a dataset can store
(:func:`storage.prepare`); bad JSON or bad UTF-8 is reported with its line and column. The first problem
raises :class:`EntityUploadError`, naming the entity by its position (1-based), its line and its ``_id``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

import storage

__all__ = ["EntityUploadError", "describe", "validated_entities", "validated_list"]


class EntityUploadError(ValueError):
    """The first bad entity (or bad JSON) of an upload; ``str()`` says where and what."""

    def __init__(self, message: str, *, position: int, line: int | None, column: int | None = None,
                 entity_id: Any = None, problem: str = "", bad_json: bool = False) -> None:
        super().__init__(message)
        self.bad_json = bad_json
        """Whether the JSON itself is bad (then no entity is to blame, and ``position`` counts the good ones)."""
        self.position = position
        """The bad entity's 1-based position (for bad JSON: the number of valid entities before it)."""
        self.line = line
        self.column = column
        self.entity_id = entity_id
        """The bad entity's ``_id`` as given (any JSON value, or None)."""
        self.problem = problem


def describe(entity: Any) -> str:
    """`` (_id 'x')`` for an entity with a string ``_id``, else empty."""
    if isinstance(entity, dict) and isinstance(entity.get("_id"), str):
        return f" (_id {entity['_id']!r})"
    return ""


def validated_entities(stream: IO[bytes]) -> Iterator[tuple[dict[str, Any], int]]:
    """The entities of ``stream`` with the line each starts on; raises :class:`EntityUploadError` at the
    first bad one (the entities before it have been yielded: validate everything before writing)."""
    position = 0
    try:
        for entity, line in storage.iter_json_entities(stream):
            position += 1
            try:
                storage.prepare(entity)
            except storage.EntityError as exc:
                raise EntityUploadError(
                    f"line {line}, entity #{position}{describe(entity)}: {exc}", position=position, line=line,
                    entity_id=entity.get("_id") if isinstance(entity, dict) else None, problem=str(exc)) from None
            yield entity, line
    except storage.JSONError as exc:
        raise EntityUploadError(f"{exc} (after {position} valid entities)", position=position, line=exc.line,
                                column=exc.column, problem=str(exc), bad_json=True) from None


def validated_list(data: bytes) -> list[dict[str, Any]]:
    """Every entity of an upload held in memory, all validated (see :func:`validated_entities`)."""
    return [entity for entity, _line in validated_entities(io.BytesIO(data))]
