"""Node info, status, health, readiness and liveness."""

from __future__ import annotations

from quart import Response

from .._auth import Permission
from .._health import readiness
from ._context import api
from ._routes import PUBLIC, Resource
from ._views import json_response, node_info

resource = Resource("node")


@resource.route("", permission=Permission.READ_CONFIG, summary="Node and API info (the clients' developer-mode gate)")
async def api_info() -> Response:
    return json_response(node_info(api().node))


@resource.route("/", permission=Permission.READ_CONFIG, summary="Node and API info (with a trailing slash)")
async def api_info_slash() -> Response:
    return json_response(node_info(api().node))


@resource.route("/status", permission=Permission.READ_CONFIG, summary="Node id, version, start time and uptime")
async def status() -> Response:
    return json_response(node_info(api().node))


@resource.route("/health", permission=PUBLIC, summary="200 while the node is healthy, 503 while it stops")
async def health() -> Response:
    if not api().node.accepting_runs:
        return json_response({"status": "stopping", "detail": "the node is shutting down"}, 503)
    return json_response({"status": "ok"})


@resource.route("/ping", permission=PUBLIC, summary="Liveness: 200 while the API answers")
async def ping() -> Response:
    return json_response({"status": "ok"})


@resource.route("/ready", permission=PUBLIC, status=(200, 503),
                summary="Readiness: 200 {ready: true}, or 503 naming failing pipes and systems and damaged datasets")
async def ready() -> Response:
    """Public like ``/health`` (a load balancer's probe has no token); it names ids, never error texts."""
    found = readiness(api().node)
    return json_response(found.json(), 200 if found.ready else 503)
