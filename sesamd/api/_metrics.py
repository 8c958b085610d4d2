"""``GET /metrics`` (Prometheus text, node-spec 14.3) and :func:`observe`, which starts what feeds it."""

from __future__ import annotations

import time
import weakref

import trio
from quart import Quart, Response, g, request

from .. import _cycles, _logging, _metrics
from .._auth import Permission
from .._node import Node
from ._context import api
from ._routes import Resource

__all__ = ["observe", "resource"]

resource = Resource("metrics")

UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)


@resource.route("/metrics", permission=Permission.ADMIN, produces="text/plain",
                summary="Pump, pipe, dataset, actor and HTTP metrics in Prometheus text format")
async def metrics() -> Response:
    node_metrics = _metrics.for_node(api().node)
    pipes = node_metrics.pipe_views()
    body = await trio.to_thread.run_sync(node_metrics.render, pipes, limiter=api().read_limiter)
    return Response(body, content_type=_metrics.CONTENT_TYPE)


def observe(app: Quart, node: Node) -> None:
    """Start the node's observers (once per node): the metrics' bus listener, the pipe-cycle watch and the
    run ids of the log lines; and count the app's HTTP requests by route template, method and status."""
    watch = _cycles.watch(node)
    node_metrics = _metrics.for_node(node)
    node_metrics.cycles = watch.active
    if node not in _tracked:
        _tracked.add(node)
        _logging.track_runs(node.events)

    @app.before_request
    async def request_started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    async def request_answered(response: Response) -> Response:
        started = g.get("metrics_started")
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        seconds = time.perf_counter() - started if started is not None else 0.0
        node_metrics.observe_request(request.method, route, response.status_code, seconds)
        return response


_tracked: weakref.WeakSet[Node] = weakref.WeakSet()  # nodes whose runs the log lines name
