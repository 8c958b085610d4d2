"""Publishers: JSON Pull and CSV out of ``http_endpoint`` and ``csv_endpoint`` pipes (node-spec 8.3, 8.6, 9.2).

Each request reads the pipe's source after ``since`` through its transforms (every query parameter bound to
``_B``) in a worker thread, batch by batch, and streams what the sink renders. The first chunk is made before
the response starts, so a bad ``since`` or a transform failing on the first batch is an error status; a
failure later breaks the stream off (the client sees a truncated body, never a complete wrong one).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import trio
from quart import Response, request

from actors import PipeRunError
from actors.components import ComponentError

from .._auth import Permission
from .._node import PipeUnavailable
from ._auth import grants_anonymous
from ._context import api
from ._errors import ApiError
from ._params import integer, text
from ._routes import Param, Resource

resource = Resource("publishers")

PULL_QUERY = (
    Param("since", "string", "entities after this token (an entity's _updated)"),
    Param("limit", "integer", "at most this many entities"),
)
_INTEGER = re.compile(r"-?\d{1,19}")


ANONYMOUS_READ = grants_anonymous(Permission.READ_DATA)


@resource.route("/publishers/<pipe_id>/entities", permission=Permission.READ_DATA, query=PULL_QUERY,
                anonymous=ANONYMOUS_READ, status=(503,),
                summary="JSON Pull from an http_endpoint pipe: its source through its transforms, streamed")
async def publish_entities(pipe_id: str) -> Response:
    return await publish(pipe_id, "entities", None)


@resource.route("/publishers/<pipe_id>/entities/<filename>", permission=Permission.READ_DATA, query=PULL_QUERY,
                anonymous=ANONYMOUS_READ, status=(503,),
                summary="JSON Pull from an http_endpoint pipe, as an attachment named filename")
async def publish_entities_file(pipe_id: str, filename: str) -> Response:
    return await publish(pipe_id, "entities", filename)


@resource.route("/publishers/<pipe_id>/csv", permission=Permission.READ_DATA, query=PULL_QUERY,
                anonymous=ANONYMOUS_READ, status=(503,), produces="text/csv",
                summary="CSV from a csv_endpoint pipe: its source through its transforms, streamed")
async def publish_csv(pipe_id: str) -> Response:
    return await publish(pipe_id, "csv", None)


@resource.route("/publishers/<pipe_id>/csv/<filename>", permission=Permission.READ_DATA, query=PULL_QUERY,
                anonymous=ANONYMOUS_READ, status=(503,), produces="text/csv",
                summary="CSV from a csv_endpoint pipe, as an attachment named filename")
async def publish_csv_file(pipe_id: str, filename: str) -> Response:
    return await publish(pipe_id, "csv", filename)


async def publish(pipe_id: str, kind: str, filename: str | None) -> Response:
    node = api().node
    state = node.pipe(pipe_id)  # UnknownPipe: a 404
    runner = state.runner
    if runner is None or not state.is_valid:
        raise ApiError(503, str(PipeUnavailable(pipe_id, state)))
    sink = runner.sink
    if sink.publishes != kind:
        sink_type = runner.config["sink"].get("type")
        wanted = "http_endpoint" if kind == "entities" else "csv_endpoint"
        raise ApiError(404, f"pipe '{pipe_id}' does not publish {kind}: its sink is of type '{sink_type}', "
                            f"not '{wanted}'")
    if node.pump_json(pipe_id)["runtime"].get("is-disabled"):
        raise ApiError(409, f"pipe '{pipe_id}' is disabled: enable its pump to publish")
    since = _since(runner)
    limit = integer("limit", 0)
    bound = {name: request.args.get(name) for name in request.args}
    limiter = api().read_limiter

    def headers() -> dict[str, str]:
        found = {"X-Dataset-Filtered": "true" if runner.transforms else "false"}
        source = runner.source
        found["X-Dataset-Populated"] = "true" if source.is_populated() else "false"
        end = source.end_offset()
        if end is not None:
            found["X-Dataset-Max-Updated"] = str(end)
        name = source.dataset_source
        dataset = None if name is None else node.datasets.get(name)
        if dataset is not None:
            found["X-Dataset-Generation"] = dataset.generation
        return found

    chunks = sink.render(runner.publish(since, limit, bound))
    try:
        found = await trio.to_thread.run_sync(headers, limiter=limiter)
        first = await trio.to_thread.run_sync(next, chunks, None, limiter=limiter)
    except (PipeRunError, ComponentError) as exc:
        chunks.close()
        raise ApiError(500, f"pipe '{pipe_id}': publishing failed: {exc}") from None
    found.update(sink.headers(filename))
    return Response(_stream(first, chunks, limiter), content_type=sink.media_type, headers=found)


def _since(runner: Any) -> Any:
    """The ``since`` token: an integer for a dataset source (a 400 otherwise), else an integer-looking text as
    an integer and any other text as it is."""
    since = text("since")
    if since is None:
        return None
    if runner.source.dataset_source is not None:
        return integer("since")
    return int(since) if _INTEGER.fullmatch(since) else since


async def _stream(first: bytes | None, chunks: Iterator[bytes], limiter: trio.CapacityLimiter) -> AsyncIterator[bytes]:
    try:
        chunk = first
        while chunk is not None:
            if chunk:
                yield chunk
            chunk = await trio.to_thread.run_sync(next, chunks, None, limiter=limiter)
    finally:
        chunks.close()
