"""Which pipes ``verify`` and ``update`` test (client-spec 7): user pipes classified from their effective config.

Works on Pipe objects as ``GET /pipes`` returns them: ``{"_id", "config": {"original", "effective"}, "runtime"}``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["NON_USER_ORIGINS", "PipeKind", "classify", "is_user_pipe", "tested_pipes"]

NON_USER_ORIGINS = frozenset({"system", "search", "replica", "aggregator-storage-node"})


class PipeKind(enum.Enum):
    """The role of a pipe in a test run."""

    INPUT = "input"
    ENDPOINT = "endpoint"
    OUTPUT = "output"
    INTERNAL = "internal"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def is_user_pipe(pipe: Mapping[str, Any]) -> bool:
    """True unless the pipe's original config has a non-user ``metadata.origin`` or its id holds ``:singlenode``."""
    original = _mapping(_mapping(pipe.get("config")).get("original"))
    origin = _mapping(original.get("metadata")).get("origin", "user")
    return origin not in NON_USER_ORIGINS and ":singlenode" not in str(pipe.get("_id", ""))


def classify(pipe: Mapping[str, Any]) -> PipeKind:
    """The pipe's kind from ``config.effective``, the first rule that applies in client-spec 7's order."""
    effective = _mapping(_mapping(pipe.get("config")).get("effective"))
    source = _mapping(effective.get("source"))
    sink = _mapping(effective.get("sink"))
    sink_type = sink.get("type", "")
    if source.get("type") == "embedded":
        return PipeKind.INPUT
    if isinstance(sink_type, str) and sink_type.endswith("_endpoint"):
        return PipeKind.ENDPOINT
    if (source.get("dataset") or source.get("datasets")) and sink.get("dataset"):
        return PipeKind.INTERNAL
    if not sink.get("dataset"):
        return PipeKind.OUTPUT
    return PipeKind.INTERNAL


def tested_pipes(pipes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The user pipes that verify and update test: the output pipes, then the endpoint pipes, each in the given
    order (the order sesam-py reports them in)."""
    user = [pipe for pipe in pipes if is_user_pipe(pipe)]
    kinds = [classify(pipe) for pipe in user]
    return ([pipe for pipe, kind in zip(user, kinds, strict=True) if kind is PipeKind.OUTPUT]
            + [pipe for pipe, kind in zip(user, kinds, strict=True) if kind is PipeKind.ENDPOINT])
