"""Pipes, their config, pumps, execution logs and previews."""

from __future__ import annotations

from typing import Any

import trio
from quart import Response

import storage
from actors import PumpConflict, PumpOperationError

from .._auth import Permission
from .._node import EXECUTION_DATASET, PipeState, PipeUnavailable
from ._configs import FORCE, apply, displays_of, uploaded_entities
from ._context import api
from ._datasets import ENTITY_QUERY, stream_entities
from ._errors import ApiError
from ._params import form_and_query, integer, text
from ._routes import Param, Resource
from ._views import JSON, json_response, pipe_json

resource = Resource("pipes")

STAGES = ("source", "before-transforms", "after-transforms", "sink")
FIELDS = Param("fields", description="a comma-separated subset of config, runtime, storage, graph")


def _fields() -> set[str] | None:
    raw = text("fields")
    if not raw:
        return None
    fields = {f.strip() for f in raw.split(",") if f.strip()}
    unknown = fields - {"config", "runtime", "storage", "graph"}
    if unknown:
        raise ApiError(400, f"unknown fields {sorted(unknown)} (known: config, runtime, storage, graph)")
    return fields


def _pipe(pipe_id: str) -> PipeState:
    return api().node.pipe(pipe_id)  # UnknownPipe: a 404


@resource.route("/pipes", permission=Permission.READ_CONFIG, query=(FIELDS,), summary="Every pipe")
async def list_pipes() -> Response:
    node, fields = api().node, _fields()
    return json_response([pipe_json(node, node.pipes[p], fields) for p in sorted(node.pipes)], config=True)


@resource.route("/pipes/<pipe_id>", permission=Permission.READ_CONFIG, query=(FIELDS,), summary="One pipe")
async def get_pipe(pipe_id: str) -> Response:
    return json_response(pipe_json(api().node, _pipe(pipe_id), _fields()), config=True)


@resource.route("/pipes", "POST", permission=Permission.WRITE_CONFIG, query=(FORCE,), body="application/json",
                status=(201,), summary="Add pipes (an array of pipe configs): 201, or 409 if an id exists")
async def add_pipes() -> Response:
    node = api().node
    wire, display = await uploaded_entities("POST /pipes")
    for entity in wire:
        if entity.get("type") != "pipe":
            raise ApiError(400, f"POST /pipes: {entity.get('_id')!r} is not a pipe (type {entity.get('type')!r})")
        if node.config_entity(entity.get("_id")) is not None:
            raise ApiError(409, f"POST /pipes: a config entity with the id '{entity['_id']}' exists already")
    ids = [e.get("_id") for e in wire]
    await apply(node.config() + wire, displays=displays_of(wire, display), check=set(ids))
    return json_response([pipe_json(node, node.pipes[i]) for i in ids if i in node.pipes], 201, config=True)


@resource.route("/pipes/<pipe_id>", "DELETE", permission=Permission.WRITE_CONFIG,
                summary="Remove a pipe from the config (its datasets stay)")
async def delete_pipe(pipe_id: str) -> Response:
    node = api().node
    shown = pipe_json(node, _pipe(pipe_id))
    await apply([e for e in node.config() if e.get("_id") != pipe_id], check=())
    return json_response(shown, config=True)


@resource.route("/pipes/<pipe_id>/config", permission=Permission.READ_CONFIG,
                summary="A pipe's config entity as uploaded")
async def get_pipe_config(pipe_id: str) -> Response:
    _pipe(pipe_id)
    return json_response(api().node.uploaded_entity(pipe_id), config=True)


@resource.route("/pipes/<pipe_id>/config", "PUT", permission=Permission.WRITE_CONFIG, query=(FORCE,),
                body="application/json", summary="Create or replace one pipe's config")
async def put_pipe_config(pipe_id: str) -> Response:
    wire, display = await uploaded_entities(f"PUT /pipes/{pipe_id}/config")
    if len(wire) != 1:
        raise ApiError(400, f"PUT /pipes/{pipe_id}/config: the body must be one pipe config entity (a JSON object)")
    entity, shown = wire[0], display[0]
    if entity.get("_id", pipe_id) != pipe_id:
        raise ApiError(400, f"the body's _id {entity.get('_id')!r} differs from the pipe id "
                            f"'{pipe_id}' in the path")
    entity, shown = {"_id": pipe_id, **entity}, {"_id": pipe_id, **shown}
    node = api().node
    entities = node.config()
    at = next((i for i, e in enumerate(entities) if e.get("_id") == pipe_id), None)
    if at is None:
        entities.append(entity)
    else:
        entities[at] = entity  # in its place: the upload order stays
    await apply(entities, displays={pipe_id: shown}, check={pipe_id})
    return json_response(pipe_json(node, _pipe(pipe_id)), config=True)


@resource.route("/pipes/<pipe_id>/pump", permission=Permission.READ_CONFIG, summary="A pipe's pump")
async def get_pump(pipe_id: str) -> Response:
    _pipe(pipe_id)
    return json_response(api().node.pump_json(pipe_id))


@resource.route("/pipes/<pipe_id>/pump", "POST", permission=Permission.RUN_PUMP_OPERATION,
                body="application/x-www-form-urlencoded",
                summary="Run a pump operation (form field 'operation': start, stop, enable, ...)")
async def post_pump(pipe_id: str) -> Response:
    node = api().node
    _pipe(pipe_id)
    params = await form_and_query()
    operation = params.pop("operation", None)
    if not operation:
        raise ApiError(400, f"pipe '{pipe_id}': the form field 'operation' is missing")
    try:
        return json_response(await node.operate(pipe_id, operation, params))
    except PipeUnavailable as exc:
        raise ApiError(409 if not node.accepting_runs else 400, str(exc), **node.pump_json(pipe_id)) from None
    except PumpConflict as exc:
        raise ApiError(409, str(exc), **node.pump_json(pipe_id)) from None
    except PumpOperationError as exc:
        raise ApiError(400, str(exc), **node.pump_json(pipe_id)) from None


@resource.route("/pipes/<pipe_id>/log", permission=Permission.READ_DATA, query=ENTITY_QUERY,
                summary="A pipe's execution log (its system:pump_execution dataset)")
async def pipe_log(pipe_id: str) -> Response:
    _pipe(pipe_id)
    return await stream_entities(EXECUTION_DATASET.format(pipe_id), missing_ok=True)


@resource.route("/pipes/<pipe_id>/entities", permission=Permission.READ_DATA,
                query=(Param("stage", description="source, before-transforms, after-transforms or sink"),
                       Param("since"), Param("limit", "integer")),
                summary="Preview: the entities the pipe makes at a stage, without writing them")
async def pipe_entities(pipe_id: str) -> Response:
    state = _pipe(pipe_id)
    runner = state.runner
    if runner is None:
        raise ApiError(400, f"pipe '{pipe_id}' has an invalid config: it cannot be previewed",
                       validation_errors=state.errors)
    stage = text("stage", "sink")
    if stage not in STAGES:
        raise ApiError(400, f"query parameter 'stage' must be one of {', '.join(STAGES)}, not {stage!r}")
    since = text("since")
    limit = integer("limit", 0)

    def preview() -> Any:
        return runner.preview(stage, since=since, limit=limit)

    try:
        entities = await trio.to_thread.run_sync(preview, limiter=api().read_limiter)
    except Exception as exc:
        raise ApiError(400, f"pipe '{pipe_id}': preview at stage '{stage}' failed: {exc}") from None
    return Response(storage.dumps(entities), content_type=JSON)
