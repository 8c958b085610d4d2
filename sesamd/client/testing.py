"""Test helpers for the client: an in-memory :class:`~sesamd.client._verify.OutputReader` that records its calls,
and a contract check any OutputReader implementation can run."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import ApiError
from ._verify import OutputReader

__all__ = ["FakeOutputReader", "check_output_reader"]

PublisherBody = bytes | Callable[[Mapping[str, Any] | None], bytes]


class FakeOutputReader(OutputReader):
    """Output from memory. ``entities`` maps a pipe id, or a ``(pipe id, stage)`` pair that wins over it, to the
    pipe's entities; ``publishers`` maps ``(pipe id, endpoint)`` to a body, or to a function of the query
    parameters that returns one. Unknown pipes raise :class:`ApiError` 404. ``calls`` records every call as
    ``("entities", pipe_id, stage)`` or ``("publisher", pipe_id, endpoint, parameters)``."""

    def __init__(self, entities: Mapping[Any, list] | None = None,
                 publishers: Mapping[tuple[str, str], PublisherBody] | None = None) -> None:
        self._entities = dict(entities or {})
        self._publishers = dict(publishers or {})
        self.calls: list[tuple[Any, ...]] = []

    def entities(self, pipe_id: str, stage: str | None) -> list[dict]:
        self.calls.append(("entities", pipe_id, stage))
        for key in ((pipe_id, stage), pipe_id):
            if key in self._entities:
                return copy.deepcopy(list(self._entities[key]))
        raise ApiError(f"GET /pipes/{pipe_id}/entities: 404 Not Found: no pipe '{pipe_id}'", status=404)

    def publisher(self, pipe_id: str, endpoint: str, parameters: Mapping | None) -> bytes:
        self.calls.append(("publisher", pipe_id, endpoint, None if parameters is None else dict(parameters)))
        body = self._publishers.get((pipe_id, endpoint))
        if body is None:
            raise ApiError(f"GET /publishers/{pipe_id}/{endpoint}: 404 Not Found: no such publisher", status=404)
        return body(parameters) if callable(body) else body


def check_output_reader(reader: OutputReader, known_pipe_id: str, *, endpoint: str = "entities",
                        parameters: Mapping[str, Any] | None = None) -> None:
    """Check that ``reader`` keeps the OutputReader contract for ``known_pipe_id`` (a pipe publishing
    ``endpoint``): a list of entity objects, a bytes body, and :class:`ApiError` for an unknown pipe.
    Raises AssertionError naming the broken rule."""
    for stage in (None, "sink"):
        entities = reader.entities(known_pipe_id, stage)
        if not isinstance(entities, list) or not all(isinstance(entity, dict) for entity in entities):
            raise AssertionError(f"entities({known_pipe_id!r}, {stage!r}) must return a list of dicts, "
                                 f"not {type(entities).__name__}")
    body = reader.publisher(known_pipe_id, endpoint, parameters)
    if not isinstance(body, bytes):
        raise AssertionError(f"publisher({known_pipe_id!r}, {endpoint!r}, ...) must return bytes, "
                             f"not {type(body).__name__}")
    unknown = f"no-such-pipe-{uuid.uuid4().hex}"
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("entities", lambda: reader.entities(unknown, None)),
        ("publisher", lambda: reader.publisher(unknown, endpoint, parameters)),
    ]
    for name, call in calls:
        try:
            call()
        except ApiError:
            continue
        raise AssertionError(f"{name}() of an unknown pipe must raise ApiError")
