"""The app: every resource's routes installed through the guard, the error table, the shared context."""

from __future__ import annotations

from quart_trio import QuartTrio

from .._auth import Authenticator, UserStore
from .._node import Node
from . import (
    _admin,
    _backup,
    _configs,
    _datasets,
    _events,
    _license,
    _logging,
    _login,
    _logs,
    _metadata,
    _metrics,
    _openapi,
    _pipes,
    _proxy,
    _publishers,
    _receivers,
    _run_all,
    _status,
    _systems,
    _variables,
)
from ._auth import guard
from ._context import ApiContext
from ._errors import install_error_handlers
from ._idle_body import IdleBodyTimeout
from ._params import drain_body
from ._routes import Resource, Route, install

__all__ = ["RESOURCES", "create_app", "routes_of"]

RESOURCES: list[Resource] = [_status.resource, _configs.resource, _variables.resource,
                             _run_all.resource,  # before pipes: /pipes/run-all-pipes is no /pipes/<pipe_id>
                             _pipes.resource, _datasets.resource, _systems.resource, _proxy.resource,
                             _metadata.resource,
                             _admin.resource, _backup.resource, _events.resource, _login.resource, _openapi.resource,
                             _receivers.resource, _publishers.resource, _metrics.resource, _logging.resource,
                             _logs.resource, _license.resource]

MAX_BODY = 256 << 20  # bytes: a config or entity upload larger than this is a 413
IDLE_BODY_SECONDS = 10.0  # a request body of which nothing arrives this long is dropped (408)


def create_app(node: Node, *, auth: Authenticator | None = None, users: UserStore | None = None) -> QuartTrio:
    """The API app for a running node; tokens are checked by ``auth`` (default: the data directory's key)."""
    app = QuartTrio("sesamd", static_folder=None)
    app.config["RESPONSE_TIMEOUT"] = None  # large reads stream for as long as they take
    app.config["BODY_TIMEOUT"] = 600
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["JSON_SORT_KEYS"] = False
    root = node.data_dir.root
    app.extensions["sesamd"] = ApiContext(node, auth or Authenticator(root), users or UserStore(root))
    install_error_handlers(app)
    app.after_request(drain_body)  # see drain_body: a keep-alive connection must not hang
    install(app, RESOURCES, guard)
    _metrics.observe(app, node)  # metrics, the pipe-cycle watch, run ids in log lines
    app.asgi_app = IdleBodyTimeout(app.asgi_app, IDLE_BODY_SECONDS)  # type: ignore[method-assign]
    return app


def routes_of(app: QuartTrio) -> list[Route]:
    """The route table the app was built from (for the OpenAPI document and the tests)."""
    table: list[Route] = app.extensions["sesamd.routes"]
    return table
