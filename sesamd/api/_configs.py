"""The node's config: the default group, named groups, everything, as JSON or a zip; and its history.

Every entity belongs to one config group, named by ``metadata.$config-group`` (no name: the default
group). ``PUT /config`` replaces the default group and ``PUT /config/{group}`` one named group, leaving
the others as they are; ``/config-all`` reads or replaces all of them. Uploads come as a JSON array, a
zip of ``*.json`` files (each one entity or an array), or a multipart field ``file`` holding either. What
was uploaded is given back exactly (values, digits and order); errors come in Sesam's shape, one item per
entity (:func:`~sesamd.api._views.validation_errors`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Collection
from typing import Any

import trio
from quart import Response, request

from .._auth import Permission
from .._config import ConfigValidationError, config_error, entity_kind, group_of, parse_upload, render_json
from .._node import CONFIG_HISTORY
from ._context import api
from ._errors import ApiError
from ._params import body_bytes, flag, integer, text
from ._routes import Param, Resource
from ._views import json_response, validation_errors

resource = Resource("config")

FORCE = Param("force", "boolean", "apply what is valid and keep invalid entities, marked invalid")
ZIP = "application/zip"
MAX_UNZIPPED = 256 << 20  # bytes of config a zip may unpack to


# -- reading --------------------------------------------------------------------------------------------


def _selected(keep: Callable[[Any], bool]) -> list[Any]:
    node = api().node
    return [shown for entity, shown in zip(node.config(), node.uploaded_config(), strict=True) if keep(entity)]


def _config_response(entities: list[Any]) -> Response:
    wanted = request.accept_mimetypes.best_match(["application/json", ZIP], default="application/json")
    if wanted != ZIP:
        return json_response(entities, config=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entity in entities:
            archive.writestr(_zip_name(entity), render_json(entity, indent=2) + b"\n")
    return Response(buffer.getvalue(), content_type=ZIP,
                    headers={"Content-Disposition": 'attachment; filename="sesam-config.zip"'})


def _zip_name(entity: Any) -> str:
    """Where the client expects an entity in a config zip: named by ``_id``."""
    entity_id = str(entity.get("_id", "entity"))
    kind = entity_kind(entity) if isinstance(entity.get("type"), str) else "pipe"
    if kind == "metadata":
        return "node-metadata.conf.json"
    return f"{'systems' if kind == 'system' else 'pipes'}/{entity_id}.conf.json"


@resource.route("/config", permission=Permission.READ_CONFIG,
                summary="The default config group as uploaded (a zip with Accept: application/zip)")
async def get_config() -> Response:
    return _config_response(_selected(lambda e: group_of(e) is None))


@resource.route("/config/<group>", permission=Permission.READ_CONFIG, summary="One named config group")
async def get_config_group(group: str) -> Response:
    return _config_response(_selected(lambda e: group_of(e) == group))


@resource.route("/config-all", permission=Permission.READ_CONFIG, summary="Every config group")
async def get_config_all() -> Response:
    return _config_response(_selected(lambda e: True))


@resource.route("/config-history/entity", permission=Permission.READ_CONFIG,
                query=(Param("entity_id", required=True), Param("since", "integer"), Param("limit", "integer"),
                       Param("reverse", "boolean")),
                summary="Every accepted version of one config entity (from system:config)")
async def config_history() -> Response:
    entity_id = text("entity_id")
    if entity_id is None:
        raise ApiError(400, "query parameter 'entity_id' is required")
    since, limit, reverse = integer("since"), integer("limit", 0), flag("reverse", False)
    node = api().node
    dataset = await trio.to_thread.run_sync(node.datasets.get, CONFIG_HISTORY, limiter=api().read_limiter)
    versions = [] if dataset is None else await trio.to_thread.run_sync(dataset.versions, entity_id)
    versions = [v for v in versions if since is None or v["_updated"] > since]
    if reverse:
        versions.reverse()
    return json_response(versions[:limit] if limit is not None else versions)


# -- writing --------------------------------------------------------------------------------------------


async def apply(entities: list[Any], *, displays: dict[str, Any] | None = None, check: Collection[str] | None = None,
                status: int = 200) -> Response:
    """Apply a whole config (wire form); a refusal is a 400 with Sesam's ``validation_errors``."""
    node = api().node
    shown = {**{e["_id"]: s for e, s in zip(node.config(), node.uploaded_config(), strict=True)}, **(displays or {})}
    try:
        errors = await node.apply_config(entities, force=flag("force", False), displays=displays, check=check)
    except ConfigValidationError as exc:
        raise ApiError(400, str(exc), validation_errors=validation_errors(exc.errors, entities, shown)) from None
    return json_response({"validation_errors": validation_errors(errors, entities, shown)}, status, config=True)


async def replace_group(keep_others: Callable[[Any], bool], upload: tuple[list[Any], list[Any]]) -> Response:
    """Replace the entities ``keep_others`` rejects with the upload (wire, display)."""
    wire, display = upload
    others = [e for e in api().node.config() if keep_others(e)]
    return await apply(others + wire, displays=displays_of(wire, display))


def displays_of(wire: list[Any], display: list[Any]) -> dict[str, Any]:
    return {e["_id"]: d for e, d in zip(wire, display, strict=True)
            if isinstance(e, dict) and isinstance(e.get("_id"), str)}


@resource.route("/config", "PUT", permission=Permission.WRITE_CONFIG, query=(FORCE,), body="application/json",
                summary="Replace the default config group (a JSON array, a zip, or a multipart field 'file')")
async def put_config() -> Response:
    return await replace_group(lambda e: group_of(e) is not None, await uploaded_config())


@resource.route("/config/<group>", "PUT", permission=Permission.WRITE_CONFIG, query=(FORCE,),
                body="application/json", summary="Replace one named config group")
async def put_config_group(group: str) -> Response:
    wire, display = await uploaded_config()
    for position, entity in enumerate(wire):
        if isinstance(entity, dict) and group_of(entity) != group:
            raise ApiError(400, f"PUT /config/{group}: entity #{position} ({entity.get('_id')!r}) is not in the "
                                f"group: set its metadata.$config-group to '{group}'",
                           validation_errors=validation_errors(
                               [config_error(f"$[{position}]['metadata']['$config-group']", "wrong config group")],
                               wire, {}))
    return await replace_group(lambda e: group_of(e) != group, (wire, display))


@resource.route("/config-all", "PUT", permission=Permission.WRITE_CONFIG, query=(FORCE,), body="application/json",
                summary="Replace every config group")
async def put_config_all() -> Response:
    return await replace_group(lambda e: False, await uploaded_config())


async def uploaded_config() -> tuple[list[Any], list[Any]]:
    """The upload in wire and display form: a JSON array, a zip, or either in a multipart field 'file'."""
    content_type = (request.mimetype or "").lower()
    if content_type == "multipart/form-data":
        files = await request.files
        upload = files.get("file")
        if upload is None:
            raise ApiError(400, "the multipart upload has no 'file' field")
        data = upload.read()
    else:
        data = await body_bytes()
    if content_type in (ZIP, "application/x-zip-compressed") or data[:4] == b"PK\x03\x04":
        return _unzip(data)
    wire, display = _parse(data, "the config")
    if not isinstance(wire, list):
        raise ApiError(400, "the config must be a JSON array of config entities",
                       validation_errors=validation_errors([config_error("$", "not an array")], [], {}))
    return wire, display


async def uploaded_entities(what: str) -> tuple[list[Any], list[Any]]:
    """A JSON body of one config entity or an array of them, in wire and display form."""
    wire, display = _parse(await body_bytes(), what)
    if isinstance(wire, dict):
        return [wire], [display]
    if not isinstance(wire, list) or not all(isinstance(e, dict) for e in wire):
        raise ApiError(400, f"{what}: the body must be a config entity (a JSON object) or an array of them")
    return wire, display


def _parse(data: bytes, what: str) -> tuple[Any, Any]:
    try:
        return parse_upload(data)
    except ConfigValidationError as exc:
        raise ApiError(400, f"{what}: {exc.errors[0]['msg']}",
                       validation_errors=validation_errors(exc.errors, [], {})) from None


def _unzip(data: bytes) -> tuple[list[Any], list[Any]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ApiError(400, f"the config zip cannot be read: {exc}") from None
    wire: list[Any] = []
    display: list[Any] = []
    total = 0
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            total += info.file_size
            if total > MAX_UNZIPPED:
                raise ApiError(413, f"the config zip unpacks to more than {MAX_UNZIPPED} bytes")
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise ApiError(400, f"the config zip's file {info.filename} cannot be read: {exc}") from None
            one_wire, one_display = _parse(content, f"the config zip's file {info.filename}")
            if isinstance(one_wire, dict):
                one_wire, one_display = [one_wire], [one_display]
            if not isinstance(one_wire, list):
                raise ApiError(400, f"the config zip's file {info.filename} must hold a config entity (a JSON "
                                    "object) or an array of them")
            wire.extend(one_wire)
            display.extend(one_display)
    return wire, display
