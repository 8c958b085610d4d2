"""Route registration: every route is declared once, with its permission and a one-line summary.

A resource module makes one :class:`Resource` and declares its handlers with :meth:`Resource.route` (or
:meth:`Resource.websocket`). :func:`install` turns each resource into a Quart blueprint under ``/api``
whose views all pass through one guard (``_auth.guard``), so a route cannot exist without a declared
permission and no handler can skip the check. The same table (:func:`table`) builds the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quart import Blueprint, Quart

from .._auth import Permission

__all__ = ["PUBLIC", "Param", "Resource", "Route", "install"]

PUBLIC = "public"  # the permission of the few routes that need no token (health, ping, jwt, openapi)

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Param:
    """A query parameter, for the OpenAPI document."""

    name: str
    type: str = "string"  # string | integer | boolean
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Route:
    """One declared route: ``rule`` is relative to ``/api`` with Quart converters (``<pipe_id>``)."""

    resource: str
    rule: str
    methods: tuple[str, ...]
    permission: Permission | str
    summary: str
    handler: Handler = field(compare=False, repr=False)
    query: tuple[Param, ...] = ()
    body: str | None = None  # the request body's media type, for the OpenAPI document
    produces: str = "application/json"
    websocket: bool = False
    status: tuple[int, ...] = (200,)  # the success statuses it answers, for the OpenAPI document
    anonymous: Callable[[dict[str, Any]], bool] | None = field(default=None, compare=False, repr=False)
    """Whether a request without credentials may pass, given the view's arguments (a pipe's ACL granting
    ``group:Anonymous`` the permission)."""

    @property
    def endpoint(self) -> str:
        return f"{self.resource}.{self.handler.__name__}"

    @property
    def path(self) -> str:
        return "/api" + self.rule


class Resource:
    """The routes of one resource (one blueprint)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: list[Route] = []

    def route(self, rule: str, *methods: str, permission: Permission | str, summary: str,
              query: tuple[Param, ...] = (), body: str | None = None,
              produces: str = "application/json",
              status: tuple[int, ...] = (200,),
              anonymous: Callable[[dict[str, Any]], bool] | None = None) -> Callable[[Handler], Handler]:
        """Declare an HTTP route; ``permission`` is required (a :class:`Permission` or :data:`PUBLIC`);
        ``status`` lists the success statuses it answers (201, 202, ...) when not just 200; ``anonymous``
        may let a request without credentials pass (see :attr:`Route.anonymous`)."""
        return self._declare(rule, methods or ("GET",), permission, summary, query, body, produces, False, status,
                             anonymous)

    def websocket(self, rule: str, *, permission: Permission | str, summary: str,
                  query: tuple[Param, ...] = ()) -> Callable[[Handler], Handler]:
        """Declare a websocket route; its handler authenticates (the token may come in a message)."""
        return self._declare(rule, ("GET",), permission, summary, query, None, "application/json", True)

    def _declare(self, rule: str, methods: tuple[str, ...], permission: Permission | str, summary: str,
                 query: tuple[Param, ...], body: str | None, produces: str,
                 websocket: bool, status: tuple[int, ...] = (200,),
                 anonymous: Callable[[dict[str, Any]], bool] | None = None) -> Callable[[Handler], Handler]:
        if permission != PUBLIC and not isinstance(permission, Permission):
            raise TypeError(f"route {rule}: permission must be a Permission or PUBLIC, not {permission!r}")
        if not summary:
            raise TypeError(f"route {rule}: a one-line summary is required")

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(self.name, rule, tuple(m.upper() for m in methods), permission, summary,
                                     handler, query, body, produces, websocket, tuple(status), anonymous))
            return handler

        return register


def install(app: Quart, resources: list[Resource], guard: Callable[[Route], Handler]) -> list[Route]:
    """Register every route of ``resources`` on ``app`` (one blueprint each, under ``/api``) through
    ``guard``; returns the route table in registration order."""
    table: list[Route] = []
    for resource in resources:
        blueprint = Blueprint(resource.name, __name__)
        for route in resource.routes:
            view = guard(route)
            view.__name__ = route.handler.__name__
            if route.websocket:
                blueprint.add_websocket(route.rule, route.handler.__name__, view)
            else:
                blueprint.add_url_rule(route.rule, route.handler.__name__, view, methods=list(route.methods))
            table.append(route)
        app.register_blueprint(blueprint, url_prefix="/api")
    app.extensions["sesamd.routes"] = table
    return table
