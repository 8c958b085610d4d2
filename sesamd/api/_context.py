"""What every handler reaches: the node, the authenticator and the shared limits, kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio
from quart import current_app, g

from .._auth import Authenticator, LoginThrottle, Principal, UserStore
from .._node import Node

__all__ = ["ApiContext", "api", "principal"]


@dataclass
class ApiContext:
    node: Node
    auth: Authenticator
    users: UserStore
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    read_limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(4))


def api() -> ApiContext:
    context: ApiContext = current_app.extensions["sesamd"]
    return context


def principal() -> Principal | None:
    """Who made this request (None on a public route)."""
    found: Principal | None = g.get("principal")
    return found
