"""The guard every route passes through: a bearer token whose role holds the route's permission.

Deny by default: the guard is applied by :func:`~sesamd.api._routes.install` to each declared route, so a
handler cannot run unless the request's token verified and its role holds the route's permission (401
for a missing or bad token, 403 for a role without the permission). Public routes skip the check;
websocket routes authenticate in their handler, where the token may also come in the first message.
A route may let requests without credentials through when its ``anonymous`` check says so (a pipe granting
``group:Anonymous`` the route's permission).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import g, request

from .._acl import ANONYMOUS, allows
from .._auth import Permission, Principal
from ._context import api
from ._routes import PUBLIC, Handler, Route

__all__ = ["grants_anonymous", "guard"]


def guard(route: Route) -> Handler:
    handler = route.handler
    if route.permission == PUBLIC or route.websocket:

        async def open_view(**kwargs: Any) -> Any:
            return await handler(**kwargs)

        return open_view
    permission = route.permission
    anonymous = route.anonymous

    async def view(**kwargs: Any) -> Any:
        authorization = request.headers.get("Authorization")
        if authorization is None and anonymous is not None and anonymous(kwargs):
            g.principal = Principal("anonymous", "anonymous", frozenset({permission}))  # type: ignore[arg-type]
            return await handler(**kwargs)
        found = api().auth.authenticate(authorization)
        found.require(permission)  # type: ignore[arg-type]
        g.principal = found
        return await handler(**kwargs)

    return view


def grants_anonymous(permission: Permission) -> Callable[[dict[str, Any]], bool]:
    """Whether the pipe named by the view's ``pipe_id`` grants ``group:Anonymous`` the ``permission``."""

    def check(kwargs: dict[str, Any]) -> bool:
        state = api().node.pipes.get(kwargs.get("pipe_id"))
        return state is not None and allows(state.original.get("permissions"), [ANONYMOUS], permission) is True

    return check
