"""Environment variables and secrets (names only: secret values never leave the node)."""

from __future__ import annotations

from typing import Any

import trio
from quart import Response

from .._auth import Permission
from ._context import api
from ._errors import ApiError
from ._params import json_body
from ._routes import Resource
from ._views import json_response

resource = Resource("variables")


async def _body_object(what: str) -> dict[str, Any]:
    value = await json_body(what)
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        merged: dict[str, Any] = {}
        for item in value:
            merged.update(item)
        value = merged
    if not isinstance(value, dict):
        raise ApiError(400, f"{what}: the body must be a JSON object of name -> value")
    return value


async def _reapply() -> None:
    node = api().node
    await node.apply_config(node.config(), force=True)


async def _set_values(kind: str, values: dict[str, Any], replace: bool) -> None:
    node = api().node
    await trio.to_thread.run_sync(lambda: node.store.put_many(kind, values.items(), replace=replace))
    await _reapply()


async def _delete_value(kind: str, name: str, label: str) -> Response:
    node = api().node
    if name not in dict(node.store.items(kind)):
        raise ApiError(404, f"no {label} '{name}'")
    await trio.to_thread.run_sync(node.store.delete, kind, name)
    await _reapply()
    return json_response({"deleted": name})


@resource.route("/env", permission=Permission.READ_CONFIG, summary="The environment variables")
async def get_env() -> Response:
    return json_response(api().node.env, config=True)


@resource.route("/env", "PUT", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Replace every environment variable")
async def put_env() -> Response:
    await _set_values("env", await _body_object("PUT /env"), replace=True)
    return json_response(api().node.env, config=True)


@resource.route("/env", "POST", "PATCH", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Add or overwrite environment variables")
async def merge_env() -> Response:
    await _set_values("env", await _body_object("POST /env"), replace=False)
    return json_response(api().node.env, config=True)


@resource.route("/env/<name>", "DELETE", permission=Permission.WRITE_CONFIG,
                summary="Delete one environment variable")
async def delete_env(name: str) -> Response:
    return await _delete_value("env", name, "environment variable")


@resource.route("/secrets", permission=Permission.READ_CONFIG, summary="The names of the global secrets")
async def get_secrets() -> Response:
    return json_response(sorted(api().node.secrets))


@resource.route("/secrets", "PUT", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Replace every global secret")
async def put_secrets() -> Response:
    await _set_values("secret", await _body_object("PUT /secrets"), replace=True)
    return json_response({"secrets": sorted(api().node.secrets)})  # an object: sesamclient prints it as one


@resource.route("/secrets", "POST", permission=Permission.WRITE_CONFIG, body="application/json",
                summary="Add or overwrite global secrets")
async def merge_secrets() -> Response:
    await _set_values("secret", await _body_object("POST /secrets"), replace=False)
    return json_response({"secrets": sorted(api().node.secrets)})


@resource.route("/secrets/<name>", "DELETE", permission=Permission.WRITE_CONFIG,
                summary="Delete one global secret")
async def delete_secret(name: str) -> Response:
    return await _delete_value("secret", name, "secret")
