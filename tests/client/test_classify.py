"""Pipe classification (client-spec 7)."""

from __future__ import annotations

from typing import Any

import pytest

from sesamd.client import _classify
from sesamd.client._classify import PipeKind, classify, is_user_pipe


def pipe(pipe_id: str, source: Any = None, sink: Any = None, *, origin: str | None = None) -> dict:
    effective: dict[str, Any] = {"_id": pipe_id, "type": "pipe"}
    if source is not None:
        effective["source"] = source
    if sink is not None:
        effective["sink"] = sink
    original: dict[str, Any] = {"_id": pipe_id, "type": "pipe"}
    if origin is not None:
        original["metadata"] = {"origin": origin}
    return {"_id": pipe_id, "config": {"original": original, "effective": effective},
            "runtime": {"is-valid-config": True}}


@pytest.mark.parametrize("origin", ["system", "search", "replica", "aggregator-storage-node"])
def test_non_user_origins_are_not_user_pipes(origin: str) -> None:
    assert not is_user_pipe(pipe("p", origin=origin))


def test_user_pipes() -> None:
    assert is_user_pipe(pipe("p"))
    assert is_user_pipe(pipe("p", origin="user"))
    assert is_user_pipe({"_id": "bare"})


def test_singlenode_ids_are_not_user_pipes() -> None:
    assert not is_user_pipe(pipe("worker:singlenode:p"))


@pytest.mark.parametrize(("source", "sink", "kind"), [
    ({"type": "embedded", "entities": []}, {"type": "sql"}, PipeKind.INPUT),
    ({"type": "embedded"}, {"type": "http_endpoint"}, PipeKind.INPUT),
    ({"type": "dataset", "dataset": "a"}, {"type": "http_endpoint"}, PipeKind.ENDPOINT),
    ({"type": "dataset", "dataset": "a"}, {"type": "csv_endpoint"}, PipeKind.ENDPOINT),
    ({"type": "dataset", "dataset": "a"}, {"type": "xml_endpoint"}, PipeKind.ENDPOINT),
    ({"type": "dataset", "dataset": "a"}, {"type": "dataset", "dataset": "b"}, PipeKind.INTERNAL),
    ({"type": "merge", "datasets": ["a", "b"]}, {"type": "dataset", "dataset": "b"}, PipeKind.INTERNAL),
    ({"type": "dataset", "dataset": "a"}, {"type": "sql", "table": "t"}, PipeKind.OUTPUT),
    ({"type": "dataset", "dataset": "a"}, {"type": "rest"}, PipeKind.OUTPUT),
    ({"type": "sql", "table": "t"}, {"type": "dataset", "dataset": "p"}, PipeKind.INTERNAL),
    ({"type": "dataset", "dataset": "a"}, None, PipeKind.OUTPUT),
    ({"type": "dataset", "dataset": "a"}, {"type": 3}, PipeKind.OUTPUT),
])
def test_classify_in_spec_order(source: Any, sink: Any, kind: PipeKind) -> None:
    assert classify(pipe("p", source, sink)) is kind


def test_classify_reads_the_effective_config() -> None:
    conditional = pipe("p", {"type": "dataset", "dataset": "a"}, {"type": "sql"})
    conditional["config"]["original"]["source"] = {"type": "conditional", "alternatives": {}}
    conditional["config"]["effective"]["source"] = {"type": "embedded", "entities": []}
    assert classify(conditional) is PipeKind.INPUT


def test_tested_pipes_are_user_output_then_endpoint_pipes() -> None:
    pipes = [
        pipe("endpoint", {"type": "dataset", "dataset": "a"}, {"type": "csv_endpoint"}),
        pipe("input", {"type": "embedded"}, {"type": "dataset", "dataset": "input"}),
        pipe("output", {"type": "dataset", "dataset": "a"}, {"type": "sql"}),
        pipe("internal", {"type": "dataset", "dataset": "a"}, {"type": "dataset", "dataset": "internal"}),
        pipe("system-output", {"type": "dataset", "dataset": "a"}, {"type": "sql"}, origin="system"),
    ]
    assert [p["_id"] for p in _classify.tested_pipes(pipes)] == ["output", "endpoint"]
