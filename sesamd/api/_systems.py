"""Systems: their config (add, replace, delete), their own secrets, and their runtime (status, logs, reload).

Every change builds the new config from the node's and applies it whole, like the pipe routes do. A system's
secrets live in the node store (kind ``system-secret``, one ``{name: value}`` object per system id); its
``$SECRET(name)`` sees them before the global ones, and changing them re-applies the config so the system
restarts with the new values. Values never come back: only names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import trio
from quart import Response

from .._auth import Permission
from .._config import entity_kind
from .._node import Node
from .._systems import SystemState, SystemUnavailable
from ._configs import FORCE, apply, displays_of, uploaded_entities
from ._context import api
from ._errors import ApiError
from ._params import flag, text
from ._routes import Param, Resource
from ._variables import _body_object
from ._views import json_response, relative_errors

resource = Resource("systems")

SECRETS_KIND = "system-secret"
LIST_QUERY = (Param("include-internal-systems", "boolean", "accepted; sesamd has no internal systems"),
              Param("verbose", "boolean", "accepted; systems have no storage breakdown here"))


def _system(system_id: str) -> SystemState:
    return api().node.systems.get(system_id)  # UnknownSystem: a 404


def _system_json(node: Node, state: SystemState) -> dict[str, Any]:
    shown = node.systems.system_json(state)
    shown["runtime"]["config-errors"] = relative_errors(shown["runtime"]["config-errors"])  # as for pipes
    uploaded = node.uploaded_entity(state.id)
    if uploaded is not None:  # the entity exactly as uploaded (its digits), $SECRET(...) as text
        shown["config"]["original"] = uploaded
    return shown


def _check_system_entity(entity: dict[str, Any], what: str) -> None:
    kind = entity.get("type")
    if not isinstance(kind, str) or kind in ("pipe", "metadata") or entity_kind(entity) != "system":
        raise ApiError(400, f"{what}: {entity.get('_id')!r} is not a system (type {kind!r}; a system's type is "
                            "system:<kind>)")


# -- config ---------------------------------------------------------------------------------------------------


@resource.route("/systems", permission=Permission.READ_CONFIG, query=LIST_QUERY, summary="Every system")
async def list_systems() -> Response:
    flag("include-internal-systems", False)  # checked, else ignored: there are no internal systems
    flag("verbose", False)
    node = api().node
    return json_response([_system_json(node, node.systems.systems[s]) for s in sorted(node.systems.systems)],
                         config=True)


@resource.route("/systems", "POST", permission=Permission.WRITE_CONFIG, query=(FORCE,), body="application/json",
                status=(201,), summary="Add systems (an array of system configs): 201, or 409 if an id exists")
async def add_systems() -> Response:
    node = api().node
    wire, display = await uploaded_entities("POST /systems")
    for entity in wire:
        _check_system_entity(entity, "POST /systems")
        if isinstance(entity.get("_id"), str) and node.config_entity(entity["_id"]) is not None:
            raise ApiError(409, f"POST /systems: a config entity with the id '{entity['_id']}' exists already")
    ids = [e.get("_id") for e in wire]
    await apply(node.config() + wire, displays=displays_of(wire, display), check={i for i in ids if isinstance(i, str)})
    shown = [_system_json(node, node.systems.systems[i]) for i in ids if i in node.systems.systems]
    return json_response(shown, 201, config=True)


@resource.route("/systems/<system_id>", permission=Permission.READ_CONFIG, summary="One system")
async def get_system(system_id: str) -> Response:
    return json_response(_system_json(api().node, _system(system_id)), config=True)


@resource.route("/systems/<system_id>", "DELETE", permission=Permission.WRITE_CONFIG,
                summary="Remove a system and its secrets (pipes using it become invalid)")
async def delete_system(system_id: str) -> Response:
    node = api().node
    shown = _system_json(node, _system(system_id))
    # Sesam allows it: pipes that use the system stay, invalid, with an error naming the missing system
    await apply([e for e in node.config() if e.get("_id") != system_id], check=())
    async with node.systems.secrets_lock:
        await trio.to_thread.run_sync(node.store.delete, SECRETS_KIND, system_id)  # node-spec 3.4
    return json_response(shown, config=True)


@resource.route("/systems/<system_id>/config", permission=Permission.READ_CONFIG,
                summary="A system's config entity as uploaded")
async def get_system_config(system_id: str) -> Response:
    state = _system(system_id)
    uploaded = api().node.uploaded_entity(system_id)
    return json_response(uploaded if uploaded is not None else state.original, config=True)


@resource.route("/systems/<system_id>/config", "PUT", permission=Permission.WRITE_CONFIG, query=(FORCE,),
                body="application/json", summary="Create or replace one system's config")
async def put_system_config(system_id: str) -> Response:
    what = f"PUT /systems/{system_id}/config"
    wire, display = await uploaded_entities(what)
    if len(wire) != 1:
        raise ApiError(400, f"{what}: the body must be one system config entity (a JSON object)")
    entity, shown = wire[0], display[0]
    if entity.get("_id", system_id) != system_id:
        raise ApiError(400, f"the body's _id {entity.get('_id')!r} differs from the system id '{system_id}' "
                            "in the path")
    entity, shown = {"_id": system_id, **entity}, {"_id": system_id, **shown}
    _check_system_entity(entity, what)
    node = api().node
    entities = node.config()
    at = next((i for i, e in enumerate(entities) if e.get("_id") == system_id), None)
    if at is None:
        entities.append(entity)
    elif entity_kind(entities[at]) != "system":
        raise ApiError(409, f"{what}: '{system_id}' is a {entities[at].get('type')}, not a system")
    else:
        entities[at] = entity  # in its place: the upload order stays
    await apply(entities, displays={system_id: shown}, check={system_id})
    return json_response(_system_json(node, _system(system_id)), config=True)


# -- secrets ----------------------------------------------------------------------------------------------------


def _secrets_of(node: Node, system_id: str) -> dict[str, Any]:
    values = node.store.get(SECRETS_KIND, system_id)
    return dict(values) if isinstance(values, dict) else {}


def _names(system_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"system": system_id, "secrets": sorted(values)}


async def _change_secrets(system_id: str, change: Any) -> dict[str, Any]:
    """Apply ``change(values) -> values`` to the system's secrets, store them, and re-apply the config (the
    system restarts with them); answers the names."""
    node = api().node
    _system(system_id)
    async with node.systems.secrets_lock:
        values = change(_secrets_of(node, system_id))
        if values:
            await trio.to_thread.run_sync(node.store.put, SECRETS_KIND, system_id, values)
        else:
            await trio.to_thread.run_sync(node.store.delete, SECRETS_KIND, system_id)
    await node.apply_config(node.config(), force=True)
    return _names(system_id, values)


@resource.route("/systems/<system_id>/secrets", permission=Permission.READ_CONFIG,
                summary="The names of a system's own secrets")
async def get_system_secrets(system_id: str) -> Response:
    _system(system_id)
    return json_response(sorted(_secrets_of(api().node, system_id)))


@resource.route("/systems/<system_id>/secrets", "PUT", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Replace every secret of a system")
async def put_system_secrets(system_id: str) -> Response:
    _system(system_id)
    values = await _body_object(f"PUT /systems/{system_id}/secrets")
    return json_response(await _change_secrets(system_id, lambda _old: dict(values)))


@resource.route("/systems/<system_id>/secrets", "POST", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Add or overwrite secrets of a system")
async def merge_system_secrets(system_id: str) -> Response:
    _system(system_id)
    values = await _body_object(f"POST /systems/{system_id}/secrets")
    return json_response(await _change_secrets(system_id, lambda old: {**old, **values}))


@resource.route("/systems/<system_id>/secrets/<secret_key>", "DELETE", permission=Permission.WRITE_CONFIG,
                summary="Delete one secret of a system")
async def delete_system_secret(system_id: str, secret_key: str) -> Response:
    _system(system_id)
    if secret_key not in _secrets_of(api().node, system_id):
        raise ApiError(404, f"system '{system_id}' has no secret '{secret_key}'")

    def without(old: dict[str, Any]) -> dict[str, Any]:
        old.pop(secret_key, None)
        return old

    return json_response({"deleted": secret_key, **await _change_secrets(system_id, without)})


# -- runtime ----------------------------------------------------------------------------------------------------


@resource.route("/systems/<system_id>/status", permission=Permission.READ_CONFIG,
                summary="Whether the system runs with its clients and pools open ({'running': bool, ...})")
async def system_status(system_id: str) -> Response:
    return json_response(_status_json(_system(system_id)))


def _status_json(state: SystemState) -> dict[str, Any]:
    status = api().node.systems.status_json(state)
    status["config-errors"] = relative_errors(status["config-errors"])
    return status


@resource.route("/systems/<system_id>/logs", permission=Permission.READ_CONFIG, produces="text/plain",
                query=(Param("since", description="only records after this ISO 8601 time"),),
                summary="The system's recent lifecycle records (the last 1000), one '<ISO time> <LEVEL> <msg>' a line")
async def system_logs(system_id: str) -> Response:
    _system(system_id)
    since = _since()
    lines = api().node.systems.log_of(system_id).lines(since)
    return Response("".join(line + "\n" for line in lines), content_type="text/plain; charset=utf-8")


def _since() -> datetime | None:
    raw = text("since")
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(re.sub(r" (\d\d:?\d\d)$", r"+\1", raw))  # an unescaped '+' came as ' '
    except ValueError:
        raise ApiError(400, f"query parameter 'since' must be an ISO 8601 time, not {raw!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@resource.route("/systems/<system_id>/reload", "POST", permission=Permission.WRITE_CONFIG, status=(202,),
                summary="Close and reopen the system's clients and pools: 202")
async def reload_system(system_id: str) -> Response:
    node = api().node
    _system(system_id)
    try:
        await node.reload_system(system_id)
    except SystemUnavailable as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(_status_json(_system(system_id)), 202)
