"""The REST API under ``/api`` (node-spec 12): a quart-trio app over a running :class:`Node`.

Errors are JSON ``{"detail": "...", "status": code}`` naming what went wrong and where: 400 for bad input,
404 for unknown ids, 409 for conflicts. Dataset reads stream stored bytes from a LevelDB snapshot, in
chunks read in worker threads, so a large dataset is never materialised and never blocks the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

import storage

from . import _config
from ._config import ConfigValidationError, render_json
from ._node import EXECUTION_DATASET, Node, PipeUnavailable, UnknownPipe

__all__ = ["ApiError", "create_app"]

log = logging.getLogger("sesamd.api")

JSON = "application/json"
CHUNK = 1000
STAGES = ("source", "before-transforms", "after-transforms", "sink")
_PUMP_ERRORS = {"PumpConflict": 409, "PumpOperationError": 400}  # raised by the pump (actors._pump)


class ApiError(Exception):
    """An error response: ``{"detail": message, "status": status}`` plus ``extra`` fields."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def json_response(value: Any, status: int = 200, *, config: bool = False) -> Response:
    """A JSON response; ``config`` renders wire-form decimals (``~f1.50``) as plain numbers."""
    body = render_json(value, indent=2) if config else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status=status, content_type=JSON)


def _bool(name: str, default: bool) -> bool:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(400, f"query parameter '{name}' must be true or false, not {value!r}")


def _int(name: str, minimum: int | None = None) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"query parameter '{name}' must be an integer, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ApiError(400, f"query parameter '{name}' must be at least {minimum}, not {number}")
    return number


def create_app(node: Node) -> QuartTrio:
    """The API app for a running node."""
    app = QuartTrio("sesamd")
    READ_LIMITER = trio.CapacityLimiter(4)  # worker threads for dataset reads
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 600
    app.config["MAX_CONTENT_LENGTH"] = 256 << 20
    app.config["JSON_SORT_KEYS"] = False

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return json_response({"detail": exc.detail, "status": exc.status, **exc.extra}, exc.status)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 404:
            detail = f"no such resource: {request.method} {request.path}"
        elif status == 405:
            detail = f"method {request.method} is not allowed on {request.path}"
        return json_response({"detail": detail, "status": status}, status)

    @app.errorhandler(Exception)
    async def internal_error(exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response({"detail": f"internal error: {type(exc).__name__}: {exc}", "status": 500}, 500)

    # -- node -----------------------------------------------------------------------------------------

    def info() -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "node_id": node.node_id,
            "node_version": node.version,
            "node_start_time": node.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "node_uptime": (now - node.started_at).total_seconds(),
            "status": {"version": node.version, "node-id": node.node_id, "pid": os.getpid()},
            "pipes": len(node.pipes),
        }

    @app.get("/api")
    @app.get("/api/")
    async def api_info() -> Response:
        return json_response(info())

    @app.get("/api/status")
    async def status() -> Response:
        return json_response(info())

    @app.get("/api/health")
    async def health() -> Response:
        if not node.accepting_runs:
            return json_response({"status": "stopping", "detail": "the node is shutting down"}, 503)
        return json_response({"status": "ok"})

    @app.get("/api/ping")
    async def ping() -> Response:
        return json_response({"status": "ok"})

    # -- config ---------------------------------------------------------------------------------------

    @app.get("/api/config")
    async def get_config() -> Response:
        return json_response(node.config(), config=True)

    @app.put("/api/config")
    async def put_config() -> Response:
        entities = await _uploaded_config()
        return await _apply(entities)

    async def _apply(entities: Any) -> Response:
        force = _bool("force", False)
        try:
            errors = await node.apply_config(entities, force=force)
        except ConfigValidationError as exc:
            raise ApiError(400, str(exc), validation_errors=exc.errors) from None
        return json_response({"validation_errors": errors})

    @app.get("/api/pipes/<pipe_id>/config")
    async def get_pipe_config(pipe_id: str) -> Response:
        return json_response(_pipe(pipe_id).original, config=True)

    @app.put("/api/pipes/<pipe_id>/config")
    async def put_pipe_config(pipe_id: str) -> Response:
        entity = _config.parse_config(await request.get_data())
        if not isinstance(entity, dict):
            raise ApiError(400, "the body must be one pipe config entity (a JSON object)")
        if entity.get("_id", pipe_id) != pipe_id:
            raise ApiError(400, f"the body's _id {entity.get('_id')!r} differs from the pipe id "
                                f"'{pipe_id}' in the path")
        entity = {"_id": pipe_id, **entity}
        entities = [e for e in node.config() if e.get("_id") != pipe_id] + [entity]
        await _apply(entities)
        return json_response(pipe_json(_pipe(pipe_id)), config=True)

    @app.delete("/api/pipes/<pipe_id>")
    async def delete_pipe(pipe_id: str) -> Response:
        shown = pipe_json(_pipe(pipe_id))
        await _apply([e for e in node.config() if e.get("_id") != pipe_id])
        return json_response(shown, config=True)

    async def _uploaded_config() -> Any:
        content_type = (request.mimetype or "").lower()
        if content_type == "application/zip":
            raise ApiError(415, "zip config uploads are not supported yet: send a JSON array")
        if content_type == "multipart/form-data":
            files = await request.files
            upload = files.get("file")
            if upload is None:
                raise ApiError(400, "the multipart upload has no 'file' field")
            data = upload.read()
        else:
            data = await request.get_data()
        try:
            return _config.parse_config(data)
        except ConfigValidationError as exc:
            raise ApiError(400, str(exc), validation_errors=exc.errors) from None

    # -- env and secrets --------------------------------------------------------------------------------

    async def _body_object() -> dict[str, Any]:
        try:
            value = storage.parse_json(await request.get_data())
        except storage.JSONError as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            merged: dict[str, Any] = {}
            for item in value:
                merged.update(item)
            value = merged
        if not isinstance(value, dict):
            raise ApiError(400, "the body must be a JSON object of name -> value")
        return value

    async def _reapply() -> None:
        errors = await node.apply_config(node.config(), force=True)
        for error in errors:
            log.warning("config after a variable change: %s", error["msg"])

    async def _set_values(kind: str, values: dict[str, Any], replace: bool) -> None:
        await trio.to_thread.run_sync(lambda: node.store.put_many(kind, values.items(), replace=replace))
        await _reapply()

    @app.get("/api/env")
    async def get_env() -> Response:
        return json_response(node.env, config=True)

    @app.put("/api/env")
    async def put_env() -> Response:
        await _set_values("env", await _body_object(), replace=True)
        return json_response(node.env, config=True)

    @app.route("/api/env", methods=["POST", "PATCH"])
    async def merge_env() -> Response:
        await _set_values("env", await _body_object(), replace=False)
        return json_response(node.env, config=True)

    @app.delete("/api/env/<name>")
    async def delete_env(name: str) -> Response:
        if name not in node.env:
            raise ApiError(404, f"no environment variable '{name}'")
        await trio.to_thread.run_sync(node.store.delete, "env", name)
        await _reapply()
        return json_response({"deleted": name})

    @app.get("/api/secrets")
    async def get_secrets() -> Response:
        return json_response(sorted(node.secrets))

    @app.put("/api/secrets")
    async def put_secrets() -> Response:
        await _set_values("secret", await _body_object(), replace=True)
        return json_response(sorted(node.secrets))

    @app.post("/api/secrets")
    async def merge_secrets() -> Response:
        await _set_values("secret", await _body_object(), replace=False)
        return json_response(sorted(node.secrets))

    @app.delete("/api/secrets/<name>")
    async def delete_secret(name: str) -> Response:
        if name not in node.secrets:
            raise ApiError(404, f"no secret '{name}'")
        await trio.to_thread.run_sync(node.store.delete, "secret", name)
        await _reapply()
        return json_response({"deleted": name})

    # -- pipes and pumps ----------------------------------------------------------------------------------

    def _pipe(pipe_id: str) -> Any:
        try:
            return node.pipe(pipe_id)
        except UnknownPipe:
            raise ApiError(404, f"no pipe '{pipe_id}'") from None

    def pipe_json(state: Any, fields: set[str] | None = None) -> dict[str, Any]:
        pump = node.pump_json(state.id).get("runtime", {})
        runner = state.runner
        dependencies: list[str] = []
        if runner is not None:
            dependencies = sorted({*runner.source_datasets, *getattr(runner, "tracked_datasets", [])})
        runtime = {
            **pump,
            "state": "Deployed",
            "is-running": bool(pump.get("is-running")),
            "is-disabled": bool(pump.get("is-disabled")),
            "is-valid-config": state.is_valid,
            "config-errors": state.errors,
            "dependencies": dependencies,
            "queues": pump.get("queues", {"source": 0, "dependencies": {}}),
            "execution-dataset": EXECUTION_DATASET.format(state.id),
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

    def _fields() -> set[str] | None:
        raw = request.args.get("fields")
        if not raw:
            return None
        fields = {f.strip() for f in raw.split(",") if f.strip()}
        unknown = fields - {"config", "runtime", "storage", "graph"}
        if unknown:
            raise ApiError(400, f"unknown fields {sorted(unknown)} (known: config, runtime, storage, graph)")
        return fields

    @app.get("/api/pipes")
    async def list_pipes() -> Response:
        fields = _fields()
        return json_response([pipe_json(node.pipes[p], fields) for p in sorted(node.pipes)], config=True)

    @app.get("/api/pipes/<pipe_id>")
    async def get_pipe(pipe_id: str) -> Response:
        return json_response(pipe_json(_pipe(pipe_id), _fields()), config=True)

    @app.get("/api/pipes/<pipe_id>/pump")
    async def get_pump(pipe_id: str) -> Response:
        _pipe(pipe_id)
        return json_response(node.pump_json(pipe_id))

    @app.post("/api/pipes/<pipe_id>/pump")
    async def post_pump(pipe_id: str) -> Response:
        _pipe(pipe_id)
        form = await request.form
        params = {k: v for k, v in form.items()}
        for key, value in request.args.items():
            params.setdefault(key, value)
        operation = params.pop("operation", None)
        if not operation:
            raise ApiError(400, f"pipe '{pipe_id}': the form field 'operation' is missing")
        try:
            return json_response(await node.operate(pipe_id, operation, params))
        except PipeUnavailable as exc:
            raise ApiError(409 if not node.accepting_runs else 400, str(exc), **node.pump_json(pipe_id)) from None
        except Exception as exc:
            status = _PUMP_ERRORS.get(type(exc).__name__, getattr(exc, "status", None))
            if isinstance(status, int) and 400 <= status < 500:
                raise ApiError(status, str(exc), **node.pump_json(pipe_id)) from None
            raise

    @app.get("/api/pipes/<pipe_id>/log")
    async def pipe_log(pipe_id: str) -> Response:
        _pipe(pipe_id)
        name = EXECUTION_DATASET.format(pipe_id)
        return await _stream_entities(name, missing_ok=True)

    @app.get("/api/pipes/<pipe_id>/entities")
    async def pipe_entities(pipe_id: str) -> Response:
        state = _pipe(pipe_id)
        if state.runner is None:
            raise ApiError(400, f"pipe '{pipe_id}' has an invalid config: it cannot be previewed",
                           validation_errors=state.errors)
        stage = request.args.get("stage", "sink")
        if stage not in STAGES:
            raise ApiError(400, f"query parameter 'stage' must be one of {', '.join(STAGES)}, not {stage!r}")
        since = request.args.get("since") or None
        limit = _int("limit", 0)
        try:
            entities = await trio.to_thread.run_sync(
                lambda: state.runner.preview(stage, since=since, limit=limit), limiter=READ_LIMITER)
        except Exception as exc:
            raise ApiError(400, f"pipe '{pipe_id}': preview at stage '{stage}' failed: {exc}") from None
        return Response(storage.dumps(entities), content_type=JSON)

    # -- datasets ---------------------------------------------------------------------------------------

    def _dataset(name: str) -> Any:
        dataset = node.datasets.get(name)
        if dataset is None:
            raise ApiError(404, f"no dataset '{name}'")
        return dataset

    def dataset_json(name: str, dataset: Any) -> dict[str, Any]:
        counts = dataset.counts()
        return {"_id": name, "runtime": {
            "populated": dataset.populated,
            "count-index-exists": counts["entities"],
            "count-index-deleted": counts["deleted"],
            "count-index-total": counts["total"],
            "count-log-exists": counts["log"],
            "next-offset": counts["next_offset"],
            "last-offset": counts["next_offset"] - 1,
            "generation": dataset.generation,
            "origin": "system" if name.startswith("system:") else "user",
            "writers": sorted(dataset.offsets()),
        }}

    @app.get("/api/datasets")
    async def list_datasets() -> Response:
        internal = _bool("include-internal-datasets", False)

        def collect() -> list[dict[str, Any]]:
            out = []
            for name in node.datasets.names():
                if not internal and name.startswith("system:"):
                    continue
                dataset = node.datasets.get(name)
                if dataset is not None:
                    out.append(dataset_json(name, dataset))
            return out

        return json_response(await trio.to_thread.run_sync(collect, limiter=READ_LIMITER))

    @app.get("/api/datasets/<dataset_id>")
    async def get_dataset(dataset_id: str) -> Response:
        dataset = await trio.to_thread.run_sync(_dataset, dataset_id, limiter=READ_LIMITER)
        return json_response(dataset_json(dataset_id, dataset))

    @app.get("/api/datasets/<dataset_id>/entities")
    async def dataset_entities(dataset_id: str) -> Response:
        return await _stream_entities(dataset_id, missing_ok=False)

    @app.get("/api/datasets/<dataset_id>/entity")
    async def dataset_entity(dataset_id: str) -> Response:
        entity_id = request.args.get("entity_id")
        if entity_id is None:
            raise ApiError(400, "query parameter 'entity_id' is required")
        offset = _int("offset", 0)
        dataset = await trio.to_thread.run_sync(_dataset, dataset_id, limiter=READ_LIMITER)
        entity = await trio.to_thread.run_sync(dataset.get, entity_id, limiter=READ_LIMITER)
        if entity is None:
            raise ApiError(404, f"dataset '{dataset_id}' has no entity '{entity_id}'")
        if offset is not None and entity.get("_updated") != offset:
            raise ApiError(404, f"the latest version of '{entity_id}' in dataset '{dataset_id}' "
                                f"is not at offset {offset}")
        return Response(storage.dumps(entity), content_type=JSON)

    async def _stream_entities(name: str, *, missing_ok: bool) -> Response:
        since = _int("since")
        limit = _int("limit", 0)
        history = _bool("history", True)
        deleted = _bool("deleted", True)
        reverse = _bool("reverse", False)
        want_populated = _bool("populated", False)
        dataset = await trio.to_thread.run_sync(node.datasets.get, name, limiter=READ_LIMITER)
        if dataset is None:
            if missing_ok:
                return Response(b"[]", content_type=JSON)
            raise ApiError(404, f"no dataset '{name}'")
        if want_populated and not dataset.populated:
            raise ApiError(404, f"dataset '{name}' is not populated yet")
        snapshot = await trio.to_thread.run_sync(dataset.snapshot, limiter=READ_LIMITER)
        headers = {
            "X-Dataset-Populated": "true" if dataset.populated else "false",
            "X-Dataset-Max-Updated": str(dataset.next_offset - 1),
            "X-Dataset-Generation": dataset.generation,
        }
        iterator = dataset.iter_stored(since, limit=limit, history=history, deleted=deleted, reverse=reverse,
                                       snapshot=snapshot)
        return Response(_json_array(iterator, snapshot, READ_LIMITER), content_type=JSON, headers=headers)

    # -- systems ----------------------------------------------------------------------------------------

    def _system(system_id: str) -> Any:
        state = node.systems.systems.get(system_id)
        if state is None:
            raise ApiError(404, f"no system '{system_id}'")
        return state

    @app.get("/api/systems")
    async def list_systems() -> Response:
        return json_response(node.systems.list_json(), config=True)

    @app.get("/api/systems/<system_id>")
    async def get_system(system_id: str) -> Response:
        return json_response(node.systems.system_json(_system(system_id)), config=True)

    @app.get("/api/systems/<system_id>/config")
    async def get_system_config(system_id: str) -> Response:
        return json_response(_system(system_id).original, config=True)

    return app


async def _json_array(iterator: Iterator[tuple[int, bytes]], snapshot: Any,
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
