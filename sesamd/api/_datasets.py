"""Datasets: their state, their entities (streamed from a LevelDB snapshot), uploads, deletes and indexes.

Every write goes through the dataset's single writer (``node.writers``): an upload is one
:class:`~actors.DatasetWrite` (one LevelDB batch, all of it or nothing), a delete closes the writer and
removes the dataset before the writer takes writes again. ``GET /namespaces`` lives here too (node-wide).

A damaged dataset (``node.datasets.damaged()``) is listed by ``GET /datasets`` as
``{"_id": NAME, "runtime": {"damaged": true, "error": WHAT, "origin": ...}}`` beside the others; its own routes
answer 503 naming it and what is wrong (:class:`storage.DatasetDamaged`). A stream that meets the damage after
its headers went out is cut off without closing its JSON array, so that a client sees an invalid body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice
from typing import Any

import trio
from quart import Response

import storage
from actors import DatasetWrite, WriterClosed, index_token
from dtl import DTLCompileError, DTLError, IndexExpression, compile_expression
from dtl._fn_ni import DECLARED_NAMESPACES

from .._auth import Permission
from .._entities_upload import EntityUploadError, validated_list
from ._context import api
from ._errors import ApiError
from ._params import body_bytes, flag, form_and_query, integer, text
from ._routes import Param, Resource
from ._views import JSON, dataset_json, json_array, json_response

resource = Resource("datasets")

SUBSET = Param("subset", description='a subset: ["eq", INDEX_EXPRESSION, VALUE] (JSON) on an existing index')
ENTITY_QUERY = (
    Param("since", "integer", "entities after this offset"),
    Param("limit", "integer", "at most this many"),
    Param("start", "integer", "skip this many (after the other filters)"),
    Param("history", "boolean", "older versions too (default true)"),
    Param("deleted", "boolean", "deleted entities too (default true)"),
    Param("reverse", "boolean", "newest first"),
    Param("populated", "boolean", "404 unless the dataset is populated"),
    SUBSET,
)
UNCOMMITTED = Param("uncommitted", "boolean", "the uncommitted writes of a run whose circuit breaker tripped too")
BREAKER_OPERATIONS = ("rollback-circuit-breaker", "commit-circuit-breaker")

MAX_DIRECTORY_NAME = 255  # bytes: a dataset id whose directory name is longer can name no dataset
INDEX_VERSION = 2  # our indexes leave deleted entities out (Sesam's index version 2)

# The namespace -> URI expansions every node has (node-spec 1.6; the service metadata's
# namespaces.default adds to them and may override them).
BUILTIN_NAMESPACES: dict[str, str] = {
    "_": "http://example.org/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "wgs84": "http://www.w3.org/2003/01/geo/wgs84_pos#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "dcterms": "http://purl.org/dc/terms/",
    "gs": "http://www.opengis.net/ont/geosparql#",
}


def _valid_name(name: str) -> bool:
    try:
        storage.validate_dataset_id(name)
        directory = api().node.data_dir.dataset_path(name).name
    except ValueError:
        return False
    return len(directory.encode()) <= MAX_DIRECTORY_NAME


def _open(name: str) -> Any:
    """The dataset, or None; an id that can name no dataset (``..``, ``a/b``, too long) is a 404 too."""
    if not _valid_name(name):
        return None
    try:
        return api().node.datasets.get(name)
    except (KeyError, OSError):  # (removed meanwhile)
        return None


async def dataset_or_404(name: str) -> Any:
    dataset = await trio.to_thread.run_sync(_open, name, limiter=api().read_limiter)
    if dataset is None:
        raise ApiError(404, f"no dataset '{name}'")
    return dataset


# -- datasets -----------------------------------------------------------------------------------------


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
            try:
                dataset = node.datasets.get(name)
                if dataset is not None:
                    out.append(dataset_json(name, dataset))
            except storage.DatasetDamaged as exc:
                out.append(damaged_json(name, exc.detail))
        return out

    return json_response(await trio.to_thread.run_sync(collect, limiter=api().read_limiter))


def damaged_json(name: str, detail: str) -> dict[str, Any]:
    """The listing entry of a damaged dataset."""
    return {"_id": name, "runtime": {"damaged": True, "error": f"dataset '{name}' is damaged: {detail}",
                                     "origin": "system" if name.startswith("system:") else "user"}}


@resource.route("/datasets/<dataset_id>", permission=Permission.READ_DATA, summary="One dataset with its counts")
async def get_dataset(dataset_id: str) -> Response:
    dataset = await dataset_or_404(dataset_id)
    return json_response(dataset_json(dataset_id, dataset))


@resource.route("/datasets/<dataset_id>", "POST", permission=Permission.WRITE_DATA,
                body="application/x-www-form-urlencoded",
                summary="A circuit breaker operation (form field 'operation': rollback-circuit-breaker or "
                        "commit-circuit-breaker); answers the dataset")
async def post_dataset(dataset_id: str) -> Response:
    """``rollback-circuit-breaker`` deletes the uncommitted writes of the run whose circuit breaker tripped,
    ``commit-circuit-breaker`` writes them as if the run had succeeded (with its offset); either resets the
    breaker (node-spec 2.8). 409 when the breaker has not tripped."""
    params = await form_and_query()
    operation = params.get("operation")
    if not operation:
        raise ApiError(400, f"dataset '{dataset_id}': the form field 'operation' is missing", parameter="operation")
    if operation not in BREAKER_OPERATIONS:
        raise ApiError(400, f"dataset '{dataset_id}': unknown operation {operation!r} (known: "
                            f"{', '.join(BREAKER_OPERATIONS)})", parameter="operation")
    dataset = await dataset_or_404(dataset_id)
    rollback = operation == "rollback-circuit-breaker"

    def reset(opened: storage.Dataset) -> int | None:
        if not opened.breaker_tripped:
            return None  # (checked in the writer: no run trips or resets it meanwhile)
        return opened.rollback_staged() if rollback else opened.commit_staged()

    try:
        count = await api().node.writers.apply(DatasetWrite(dataset_id, reset))
    except WriterClosed as exc:
        raise ApiError(409, f"dataset '{dataset_id}' is being deleted: {exc}") from None
    if count is None:
        raise ApiError(409, f"dataset '{dataset_id}': its circuit breaker has not tripped, there is nothing to "
                            f"{'roll back' if rollback else 'commit'}", operation=operation)
    state = await trio.to_thread.run_sync(dataset_json, dataset_id, dataset, limiter=api().read_limiter)
    return json_response({**state, "operation": operation,
                          "rolled-back" if rollback else "committed": count})


@resource.route("/datasets/<dataset_id>", "DELETE", permission=Permission.WRITE_DATA,
                summary="Delete a dataset with all its data (answers the dataset as it was)")
async def delete_dataset(dataset_id: str) -> Response:
    """The pipes writing the dataset stop their runs first (after their current batch); then the dataset's
    writer closes and the dataset goes, while writes sent meanwhile fail. A later write creates it anew with
    another generation, which the pipes reading it notice (node-spec 4.8). ``system:`` datasets may go too."""
    dataset = await dataset_or_404(dataset_id)
    node = api().node
    before = await trio.to_thread.run_sync(dataset_json, dataset_id, dataset, limiter=api().read_limiter)
    await _stop_runs_writing(dataset_id)
    await node.writers.delete(dataset_id)
    return json_response({**before, "deleted": True})


@resource.route("/datasets/<dataset_id>/compact", "POST", permission=Permission.WRITE_DATA,
                query=(Param("keep_versions", "integer", "versions kept per id (default: the writing pipe's "
                             "compaction.keep_versions)"),
                       Param("time_threshold_hours", "integer", "only versions older than this go (default: the "
                             "pipe's compaction.time_threshold_hours)")),
                summary="Compact the dataset now (old versions no reader needs); answers what was removed")
async def compact_dataset(dataset_id: str) -> Response:
    """One pass of :mod:`sesamd._compaction` with the writing pipe's settings (or the node's defaults), the
    query parameters over them; the latest version of every id and what the pipes still need stay."""
    keep = integer("keep_versions", minimum=0)
    hours = integer("time_threshold_hours", minimum=1)
    if dataset_id.startswith("system:"):
        raise ApiError(400, f"dataset '{dataset_id}': system datasets are trimmed by retention, not compacted")
    await dataset_or_404(dataset_id)
    compactions = api().node.compactions
    try:
        target = compactions.target(dataset_id)
        if keep == 0 and hours is None and target.settings.time_threshold_hours is None:
            raise ApiError(400, "query parameter 'keep_versions' 0 needs a time threshold: give "
                                "'time_threshold_hours'", parameter="keep_versions")
        result = await compactions.compact(target, keep_versions=keep, time_threshold_hours=hours)
    except WriterClosed as exc:
        raise ApiError(409, f"dataset '{dataset_id}' is being deleted: {exc}") from None
    except ValueError as exc:  # keep_versions 0 without a time threshold, or bad settings of the pipe
        raise ApiError(400, f"dataset '{dataset_id}': {exc}") from None
    if result is None:
        raise ApiError(404, f"no dataset '{dataset_id}'")
    return json_response({**result.to_json(), "pipe": target.pipe,
                          "keep_versions": target.settings.keep_versions if keep is None else keep,
                          "time_threshold_hours": target.settings.time_threshold_hours if hours is None else hours})


async def _stop_runs_writing(name: str, grace: float = 30.0) -> None:
    """Stop the runs of the pipes whose sink is ``name``; each commits its current batch (within ``grace``)."""
    node = api().node
    actors = [state.actor for state in node.pipes.values()
              if state.actor is not None and state.runner is not None and state.runner.sink_dataset == name]
    with trio.move_on_after(grace):
        async with trio.open_nursery() as nursery:
            for actor in actors:
                nursery.start_soon(node.stop_run, actor)


# -- entities -----------------------------------------------------------------------------------------


@resource.route("/datasets/<dataset_id>/entities", permission=Permission.READ_DATA,
                query=(*ENTITY_QUERY, UNCOMMITTED),
                summary="A dataset's entities in log order, streamed (with the X-Dataset-* headers)")
async def dataset_entities(dataset_id: str) -> Response:
    return await stream_entities(dataset_id, missing_ok=False)


@resource.route("/datasets/<dataset_id>/entities", "POST", permission=Permission.WRITE_DATA,
                query=(Param("force", "boolean", "append a new version even of unchanged entities"),),
                body="application/json",
                summary="Write a JSON array of entities (or one entity) with change tracking")
async def post_entities(dataset_id: str) -> Response:
    """All entities are validated first (as ``sesamd dataset import`` does); a bad one is a 400 naming it and
    nothing is written. Then one write (one batch): new and changed entities get a version, unchanged ones
    none unless ``force``. The dataset is created if missing."""
    force = flag("force", False)
    if not _valid_name(dataset_id) or any(c < " " or c == "\x7f" for c in dataset_id):
        raise ApiError(400, f"invalid dataset id {dataset_id!r}: it must be a non-empty string without '/' "
                            "or control characters, not '.' or '..'")
    if dataset_id.startswith("system:"):
        raise ApiError(400, f"dataset '{dataset_id}': ids starting with 'system:' are internal")
    data = await body_bytes()
    try:
        entities = await trio.to_thread.run_sync(validated_list, data)
    except EntityUploadError as exc:
        where = {"line": exc.line, "column": exc.column, "valid_entities": exc.position} if exc.bad_json else {
            "entity": exc.position, "entity_id": exc.entity_id, "line": exc.line}
        raise ApiError(400, f"dataset '{dataset_id}': nothing was written: {exc}", **where) from None

    def write(dataset: storage.Dataset) -> storage.WriteResult:
        return dataset.write(entities, force=force)

    try:
        result = await api().node.writers.apply(DatasetWrite(dataset_id, write))
    except WriterClosed as exc:
        raise ApiError(409, f"dataset '{dataset_id}' is being deleted: {exc}") from None
    except storage.EntityError as exc:  # (validated above: not expected)
        raise ApiError(400, f"dataset '{dataset_id}': nothing was written: {exc}") from None
    return json_response({"_id": dataset_id, "entities": result.seen, "written": result.appended,
                          "unchanged": result.seen - result.appended})


@resource.route("/datasets/<dataset_id>/entity", permission=Permission.READ_DATA,
                query=(Param("entity_id", required=True), Param("offset", "integer"), SUBSET, UNCOMMITTED),
                summary="The latest version of one entity")
async def dataset_entity(dataset_id: str) -> Response:
    entity_id = text("entity_id")
    if entity_id is None:
        raise ApiError(400, "query parameter 'entity_id' is required")
    offset = integer("offset", 0)
    subset = _subset_param()
    dataset = await dataset_or_404(dataset_id)
    if subset is not None:
        _require_index(dataset_id, dataset, subset[0])
    read = dataset.get_stored_uncommitted if flag("uncommitted", False) else dataset.get_stored
    stored = await trio.to_thread.run_sync(read, entity_id, limiter=api().read_limiter)
    entity = None if stored is None else storage.loads(stored)
    if entity is None:
        raise ApiError(404, f"dataset '{dataset_id}' has no entity '{entity_id}'")
    if offset is not None and entity.get("_updated") != offset:
        raise ApiError(404, f"the latest version of '{entity_id}' in dataset '{dataset_id}' "
                            f"is not at offset {offset}")
    if subset is not None and not _in_subset(entity, *subset):
        raise ApiError(404, f"the entity '{entity_id}' of dataset '{dataset_id}' is not in the subset")
    return Response(storage.dumps(entity), content_type=JSON)


async def stream_entities(name: str, *, missing_ok: bool) -> Response:
    since = integer("since")
    limit = integer("limit", 0)
    start = integer("start", 0) or 0
    history = flag("history", True)
    deleted = flag("deleted", True)
    reverse = flag("reverse", False)
    want_populated = flag("populated", False)
    uncommitted = flag("uncommitted", False)
    subset = _subset_param()
    if uncommitted and subset is not None:
        raise ApiError(400, "query parameters 'uncommitted' and 'subset' cannot be combined", parameter="uncommitted")
    limiter = api().read_limiter
    dataset = await trio.to_thread.run_sync(_open, name, limiter=limiter)
    if dataset is None:
        if missing_ok:
            return Response(b"[]", content_type=JSON)
        raise ApiError(404, f"no dataset '{name}'")
    if want_populated and not dataset.populated:
        raise ApiError(404, f"dataset '{name}' is not populated yet")
    if subset is not None:
        _require_index(name, dataset, subset[0])
        await trio.to_thread.run_sync(api().node.datasets.ensure_index, name, subset[0])
    snapshot = await trio.to_thread.run_sync(dataset.snapshot, limiter=limiter)
    headers = {
        "X-Dataset-Populated": "true" if dataset.populated else "false",
        "X-Dataset-Max-Updated": str(dataset.next_offset - 1),
        "X-Dataset-Generation": dataset.generation,
    }
    if uncommitted:
        iterator = dataset.iter_uncommitted(since, limit=None if limit is None else start + limit, history=history,
                                            deleted=deleted, reverse=reverse, snapshot=snapshot)
    elif subset is None:
        iterator = dataset.iter_stored(since, limit=None if limit is None else start + limit, history=history,
                                       deleted=deleted, reverse=reverse, snapshot=snapshot)
    elif history:
        iterator = _subset_history(dataset, snapshot, subset, since, deleted, reverse)
    else:
        iterator = _subset_latest(dataset, snapshot, subset, since, deleted, reverse)
    if start or (subset is not None and limit is not None):
        iterator = _window(iterator, start, limit)
    return Response(json_array(_aborting(iterator), snapshot, limiter), content_type=JSON, headers=headers)


def _aborting(iterator: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """The stream's items; damage met on the way (:class:`storage.DatasetDamaged`: the dataset records it)
    ends the response with the connection aborted, so that the array is never closed."""
    try:
        yield from iterator  # (closing this closes ``iterator``)
    except storage.StorageError as exc:
        raise StreamAborted(str(exc)) from exc


class StreamAborted(Exception):
    """A streamed body cannot go on (its dataset is damaged)."""


def _window(iterator: Iterator[tuple[int, bytes]], start: int,
            limit: int | None) -> Iterator[tuple[int, bytes]]:
    """Skip ``start`` items, then at most ``limit``; closes ``iterator`` when done."""
    try:
        yield from islice(iterator, start, None if limit is None else start + limit)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


# -- subsets (node-spec 2.6) --------------------------------------------------------------------------

Subset = tuple[IndexExpression, list[Any]]  # the index expression and the index tokens of its value(s)


def _subset_param() -> Subset | None:
    """The ``subset`` query parameter: ``["eq", INDEX_EXPRESSION, VALUE]`` with a constant VALUE."""
    raw = text("subset")
    if raw is None:
        return None
    try:
        spec = storage.parse_json(raw)
    except storage.JSONError as exc:
        raise ApiError(400, f"query parameter 'subset' is not valid JSON: {exc}") from None
    if type(spec) is not list or len(spec) != 3 or spec[0] != "eq":
        raise ApiError(400, f"query parameter 'subset' must be [\"eq\", INDEX_EXPRESSION, VALUE], not {raw}")
    try:
        index = IndexExpression(spec[1])
        value = compile_expression(spec[2])
    except DTLCompileError as exc:
        raise ApiError(400, f"query parameter 'subset': {exc}") from None
    if not value.is_constant:
        raise ApiError(400, f"query parameter 'subset': the value must be a constant, not {spec[2]!r}")
    constant = value.constant
    values = [v for v in constant if v is not None] if type(constant) is list else (
        [] if constant is None else [constant])
    return index, [index_token(v) for v in values]


def _require_index(name: str, dataset: Any, index: IndexExpression) -> None:
    """A subset reads through an index the dataset has (declared by a pipe): else 404, as Sesam does."""
    if not dataset.has_index(index.key):
        raise ApiError(404, f"dataset '{name}' has no index for the subset expression {index.key} "
                            "(indexes come from the pipes' hops and subsets)")


def _subset_ids(dataset: Any, snapshot: Any, tokens: list[Any], key: str) -> set[str]:
    ids: set[str] = set()
    for token in tokens:
        ids.update(dataset.lookup(key, token, snapshot=snapshot))
    return ids


def _after(seq: int, since: int | None, reverse: bool) -> bool:
    if since is None or since < 0:
        return True
    return seq < since if reverse else seq > since


def _subset_latest(dataset: Any, snapshot: Any, subset: Subset, since: int | None, deleted: bool,
                   reverse: bool) -> Iterator[tuple[int, bytes]]:
    """The latest versions of the subset's ids, in log order (the index holds only live entities)."""
    index, tokens = subset
    found = []
    for entity_id in _subset_ids(dataset, snapshot, tokens, index.key):
        stored = dataset.get_stored(entity_id, snapshot=snapshot)
        if stored is None:
            continue
        version = storage.loads(stored)
        if _after(version["_updated"], since, reverse) and (deleted or version.get("_deleted") is not True):
            found.append((version["_updated"], stored))
    found.sort(reverse=reverse)
    yield from found


def _subset_history(dataset: Any, snapshot: Any, subset: Subset, since: int | None, deleted: bool,
                    reverse: bool) -> Iterator[tuple[int, bytes]]:
    """Every stored version of the subset's ids (older versions too), in log order."""
    index, tokens = subset
    ids = _subset_ids(dataset, snapshot, tokens, index.key)
    if not ids:
        return
    iterator = dataset.iter_stored(since, history=True, deleted=deleted, reverse=reverse, snapshot=snapshot)
    try:
        for seq, stored in iterator:
            if storage.loads(stored)["_id"] in ids:
                yield seq, stored
    finally:
        iterator.close()


def _in_subset(entity: dict[str, Any], index: IndexExpression, tokens: list[Any]) -> bool:
    if entity.get("_deleted") is True:
        return False  # (deleted entities are in no index)
    wanted = {storage.canonical(t) for t in tokens}
    try:
        values = index.values(storage.decode(entity))
    except DTLError:  # (the index could not hold an entity its expression fails on)
        return False
    return any(storage.canonical(index_token(v)) in wanted for v in values)


# -- indexes ------------------------------------------------------------------------------------------


def index_int_id(key: str) -> int:
    """A stable integer id for the index ``key`` (48 bits: exact in JSON numbers everywhere)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=6).digest(), "big")


def _referenced_indexes(name: str) -> set[str]:
    """The keys of the indexes on dataset ``name`` that the configured pipes' joins use."""
    found: set[str] = set()
    for state in list(api().node.pipes.values()):
        runner = state.runner
        if runner is None:
            continue
        for plan in runner.plans:
            for dataset, expressions in plan.indexes().items():
                if dataset == name or (dataset is None and name in runner.source_datasets):
                    found.update(e.key for e in expressions)
    return found


def _indexes_json(name: str, dataset: Any) -> list[dict[str, Any]]:
    referenced = _referenced_indexes(name)
    defined = dataset.defined_indexes()
    total = dataset.next_offset
    out = []
    for key, state in sorted(dataset.index_names().items()):
        built = min(int(state.get("built_through") or 0), total)
        in_use = key in referenced or key in defined
        status = "orphaned" if not in_use else "up-to-date" if built >= total else "out-of-date"
        out.append({"id": index_int_id(key), "dataset": name, "expression": state.get("expression"), "key": key,
                    "status": status, "in-use": in_use, "progress": {"indexed": built, "total": total},
                    "version": INDEX_VERSION})
    return out


@resource.route("/datasets/<dataset_id>/indexes", permission=Permission.READ_DATA,
                summary="The dataset's secondary indexes (from hops and subsets)")
async def dataset_indexes(dataset_id: str) -> Response:
    dataset = await dataset_or_404(dataset_id)
    return json_response(await trio.to_thread.run_sync(_indexes_json, dataset_id, dataset,
                                                       limiter=api().read_limiter))


@resource.route("/datasets/<dataset_id>/indexes/<index_id>", "DELETE", permission=Permission.WRITE_DATA,
                summary="Remove one secondary index (a pipe that needs it builds it again)")
async def delete_dataset_index(dataset_id: str, index_id: str) -> Response:
    dataset = await dataset_or_404(dataset_id)
    try:
        wanted = int(index_id)
    except ValueError:
        raise ApiError(404, f"dataset '{dataset_id}' has no index {index_id!r} (index ids are integers)") from None
    indexes = await trio.to_thread.run_sync(_indexes_json, dataset_id, dataset, limiter=api().read_limiter)
    found = next((index for index in indexes if index["id"] == wanted), None)
    if found is None:
        raise ApiError(404, f"dataset '{dataset_id}' has no index {wanted}")
    key = found["key"]
    try:
        await api().node.writers.apply(DatasetWrite(dataset_id, lambda opened: opened.drop_index(key)))
    except WriterClosed as exc:
        raise ApiError(409, f"dataset '{dataset_id}' is being deleted: {exc}") from None
    return json_response({**found, "deleted": True})


# -- namespaces (node-wide, here for want of a resource of its own) ------------------------------------


@resource.route("/namespaces", permission=Permission.READ_CONFIG,
                summary="The node's namespace -> URI expansions: built-ins and the service metadata's")
async def namespaces() -> Response:
    """Node-wide, not per dataset: the built-in expansions, those DTL's ``ni`` collapses URIs into, then the
    service metadata's ``namespaces.default`` (which may override them)."""
    effective = {**BUILTIN_NAMESPACES, **DECLARED_NAMESPACES}
    declared = (api().node.metadata.get("namespaces") or {})
    default = declared.get("default") if isinstance(declared, dict) else None
    if isinstance(default, dict):
        effective.update({k: v for k, v in default.items() if isinstance(k, str) and isinstance(v, str)})
    return json_response(effective)
