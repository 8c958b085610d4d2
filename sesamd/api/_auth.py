"""The guard every route passes through: a bearer token whose role holds the route's permission.

Deny by default: the guard is applied by :func:`~sesamd.api._routes.install` to each declared route, so a
handler cannot run unless the request's token verified and its role holds the route's permission (401
for a missing or bad token, 403 for a role without the permission). Public routes skip the check;
websocket routes authenticate in their handler, where the token may also come in the first message.
"""

from __future__ import annotations

from typing import Any

from quart import g, request

from ._context import api
from ._routes import PUBLIC, Handler, Route

__all__ = ["guard"]


def guard(route: Route) -> Handler:
    handler = route.handler
    if route.permission == PUBLIC or route.websocket:

        async def open_view(**kwargs: Any) -> Any:
            return await handler(**kwargs)

        return open_view
    permission = route.permission

    async def view(**kwargs: Any) -> Any:
        found = api().auth.authenticate(request.headers.get("Authorization"))
        found.require(permission)  # type: ignore[arg-type]
        g.principal = found
        return await handler(**kwargs)

    return view
