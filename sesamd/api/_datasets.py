"""Datasets: their state and their entities, streamed from a LevelDB snapshot."""

from __future__ import annotations

from typing import Any

import trio
from quart import Response

import storage

from .._auth import Permission
from ._context import api
from ._errors import ApiError
from ._params import flag, integer, text
from ._routes import Param, Resource
from ._views import JSON, dataset_json, json_array, json_response

resource = Resource("datasets")

ENTITY_QUERY = (
    Param("since", "integer", "entities after this offset"),
    Param("limit", "integer", "at most this many"),
    Param("history", "boolean", "older versions too (default true)"),
    Param("deleted", "boolean", "deleted entities too (default true)"),
    Param("reverse", "boolean", "newest first"),
    Param("populated", "boolean", "404 unless the dataset is populated"),
)


def _open(name: str) -> Any:
    """The dataset, or None; an id that can name no dataset (``..``, ``a/b``) is a 404 too."""
    try:
        storage.validate_dataset_id(name)
    except ValueError:
        return None
    return api().node.datasets.get(name)


async def dataset_or_404(name: str) -> Any:
    dataset = await trio.to_thread.run_sync(_open, name, limiter=api().read_limiter)
    if dataset is None:
        raise ApiError(404, f"no dataset '{name}'")
    return dataset


@resource.route("/datasets", permission=Permission.READ_DATA,
                query=(Param("include-internal-datasets", "boolean", "system: datasets too"),),
                summary="Every dataset with its counts")
async def list_datasets() -> Response:
    internal = flag("include-internal-datasets", False)
    node = api().node

    def collect() -> list[dict[str, Any]]:
        out = []
        for name in node.datasets.names():
            if not internal and name.startswith("system:"):
                continue
            dataset = node.datasets.get(name)
            if dataset is not None:
                out.append(dataset_json(name, dataset))
        return out

    return json_response(await trio.to_thread.run_sync(collect, limiter=api().read_limiter))


@resource.route("/datasets/<dataset_id>", permission=Permission.READ_DATA, summary="One dataset with its counts")
async def get_dataset(dataset_id: str) -> Response:
    dataset = await dataset_or_404(dataset_id)
    return json_response(dataset_json(dataset_id, dataset))


@resource.route("/datasets/<dataset_id>/entities", permission=Permission.READ_DATA, query=ENTITY_QUERY,
                summary="A dataset's entities in log order, streamed (with the X-Dataset-* headers)")
async def dataset_entities(dataset_id: str) -> Response:
    return await stream_entities(dataset_id, missing_ok=False)


@resource.route("/datasets/<dataset_id>/entity", permission=Permission.READ_DATA,
                query=(Param("entity_id", required=True), Param("offset", "integer")),
                summary="The latest version of one entity")
async def dataset_entity(dataset_id: str) -> Response:
    entity_id = text("entity_id")
    if entity_id is None:
        raise ApiError(400, "query parameter 'entity_id' is required")
    offset = integer("offset", 0)
    dataset = await dataset_or_404(dataset_id)
    entity = await trio.to_thread.run_sync(dataset.get, entity_id, limiter=api().read_limiter)
    if entity is None:
        raise ApiError(404, f"dataset '{dataset_id}' has no entity '{entity_id}'")
    if offset is not None and entity.get("_updated") != offset:
        raise ApiError(404, f"the latest version of '{entity_id}' in dataset '{dataset_id}' "
                            f"is not at offset {offset}")
    return Response(storage.dumps(entity), content_type=JSON)


async def stream_entities(name: str, *, missing_ok: bool) -> Response:
    since = integer("since")
    limit = integer("limit", 0)
    history = flag("history", True)
    deleted = flag("deleted", True)
    reverse = flag("reverse", False)
    want_populated = flag("populated", False)
    limiter = api().read_limiter
    dataset = await trio.to_thread.run_sync(_open, name, limiter=limiter)
    if dataset is None:
        if missing_ok:
            return Response(b"[]", content_type=JSON)
        raise ApiError(404, f"no dataset '{name}'")
    if want_populated and not dataset.populated:
        raise ApiError(404, f"dataset '{name}' is not populated yet")
    snapshot = await trio.to_thread.run_sync(dataset.snapshot, limiter=limiter)
    headers = {
        "X-Dataset-Populated": "true" if dataset.populated else "false",
        "X-Dataset-Max-Updated": str(dataset.next_offset - 1),
        "X-Dataset-Generation": dataset.generation,
    }
    iterator = dataset.iter_stored(since, limit=limit, history=history, deleted=deleted, reverse=reverse,
                                   snapshot=snapshot)
    return Response(json_array(iterator, snapshot, limiter), content_type=JSON, headers=headers)
