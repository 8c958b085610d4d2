"""JSON shapes of the API's objects (node info, pipe, dataset) and the streamed entity array."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import orjson
import trio
from quart import Response

import storage

from .._config import render_json
from .._node import EXECUTION_DATASET, Node, PipeState

__all__ = ["JSON", "dataset_json", "json_array", "json_response", "node_info", "pipe_json", "relative_errors",
           "validation_errors"]

JSON = "application/json"
CHUNK = 1000  # stored versions per worker-thread read while streaming


def json_response(value: Any, status: int = 200, *, config: bool = False) -> Response:
    """A JSON response; ``config`` renders wire-form decimals (``~f1.50``) as plain numbers."""
    body = render_json(value, indent=2) if config else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status=status, content_type=JSON)


def node_info(node: Node) -> dict[str, Any]:
    now = datetime.now(UTC)
    started = node.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "node_id": node.node_id,
        "node_version": node.version,
        "node_start_time": started,
        "node_uptime": (now - node.started_at).total_seconds(),
        "status": {"version": node.version, "node-id": node.node_id, "pid": os.getpid(),
                   "node_start_time": started, "developer_mode": node.developer_mode},
        "pipes": len(node.pipes),
        "systems": len(node.systems.systems),
    }


def pipe_json(node: Node, state: PipeState, fields: set[str] | None = None) -> dict[str, Any]:
    pump = node.pump_json(state.id).get("runtime", {})
    runner = state.runner
    dependencies: list[str] = []
    if runner is not None:
        dependencies = sorted({*runner.source_datasets, *runner.tracked_datasets})
    runtime = {
        **pump,
        "state": "Deployed",
        "is-running": bool(pump.get("is-running")),
        "is-disabled": bool(pump.get("is-disabled")),
        "is-valid-config": state.is_valid,
        "config-errors": relative_errors(state.errors),
        "dependencies": dependencies,
        "queues": pump.get("queues", {"source": 0, "dependencies": {}}),
        "execution-dataset": EXECUTION_DATASET.format(state.id),
        "circuit-breaker-tripped": breaker_tripped(node, runner.sink_dataset if runner is not None else None),
    }
    actor = node.actor_status(state.id)
    if actor is not None:
        runtime["actor-state"] = actor.state
        runtime["actor-restarts"] = actor.restarts
        runtime["actor-last-error"] = actor.last_error
    result: dict[str, Any] = {"_id": state.id}
    if fields is None or "config" in fields:
        result["config"] = {"original": state.original, "effective": state.effective}
    if fields is None or "runtime" in fields:
        result["runtime"] = runtime
    if fields is None or "storage" in fields:
        result["storage"] = {"sink-dataset": runner.sink_dataset if runner is not None else None,
                             "source-datasets": runner.source_datasets if runner is not None else []}
    return result


def breaker_tripped(node: Node, name: str | None) -> bool:
    """Whether the circuit breaker of the dataset ``name`` has tripped (node-spec 2.8; false when missing)."""
    if name is None:
        return False
    try:
        dataset = node.datasets.get(name)
    except (KeyError, storage.StorageError):  # removed meanwhile, or damaged
        return False
    return dataset is not None and dataset.breaker_tripped


def breaker_json(dataset: Any) -> dict[str, Any] | None:
    """The dataset's circuit breaker (the armed or tripped run), None without one."""
    breaker = dataset.breaker
    if breaker is None:
        return None
    return {"tripped": breaker.tripped, "limit": breaker.limit, "written": breaker.written,
            "writer": breaker.key, "phase": breaker.phase}


def dataset_json(name: str, dataset: Any) -> dict[str, Any]:
    counts = dataset.counts()
    return {"_id": name, "runtime": {
        "circuit-breaker-tripped": dataset.breaker_tripped,
        "circuit-breaker": breaker_json(dataset),
        "populated": dataset.populated,
        "count-index-exists": counts["entities"],
        "count-index-deleted": counts["deleted"],
        "count-index-total": counts["total"],
        "count-log-exists": counts["log_exists"],
        "count-log-deleted": counts["log_deleted"],
        "count-log-total": counts["log"],
        "next-offset": counts["next_offset"],
        "last-offset": counts["next_offset"] - 1,
        "generation": dataset.generation,
        "origin": "system" if name.startswith("system:") else "user",
        "writers": sorted(dataset.offsets()),
        "queues": {"size": 0},
    }}


async def json_array(iterator: Iterator[tuple[int, bytes]], snapshot: Any,
                     limiter: trio.CapacityLimiter) -> AsyncIterator[bytes]:
    """Stream stored versions as one JSON array, reading chunks in worker threads."""
    try:
        prefix = b"["
        while True:
            chunk = await trio.to_thread.run_sync(lambda: [v for _, v in islice(iterator, CHUNK)],
                                                  limiter=limiter)
            if not chunk:
                break
            yield prefix + b",".join(chunk)
            prefix = b","
        yield b"[]" if prefix == b"[" else b"]"
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        snapshot.close()


_POSITION = re.compile(r"^\$\[(\d+)\]")


def relative_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Config errors with their ``elements`` relative to their entity (``$[2]['source']`` -> ``$['source']``)."""
    return [{**e, "elements": _POSITION.sub("$", e.get("elements", "$"))} for e in errors]


def validation_errors(errors: list[dict[str, Any]], entities: list[Any], shown: dict[str, Any]) -> list[Any]:
    """Sesam's ``validation_errors``: one item per entity with errors (``posted-config``, ``config-errors``
    with paths relative to the entity, ``is-valid-config``); ``entities`` is the list the ``$[i]`` paths
    index, ``shown`` the display forms by id. Errors of the whole upload come first, with no entity."""
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for error in errors:
        match = _POSITION.match(error.get("elements", ""))
        index = int(match.group(1)) if match else None
        grouped.setdefault(index, []).append(error)
    items = []
    for index, found in sorted(grouped.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        entity = entities[index] if index is not None and index < len(entities) else None
        entity_id = entity.get("_id") if isinstance(entity, dict) else None
        posted = shown.get(entity_id, entity) if isinstance(entity_id, str) else entity
        items.append({"posted-config": posted, "config-errors": relative_errors(found) if entity is not None
                      else found, "is-valid-config": False})
    return items
