"""Every route declares a permission, and the guard enforces it: no token 401, a weaker role 403."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sesamd._auth import ROLES, Authenticator, Permission
from sesamd._node import open_node
from sesamd.api import PUBLIC, Resource, create_app, routes_of
from sesamd.testing import TokenClient

PUBLIC_PATHS = {"/api/health", "/api/ping", "/api/ready"}  # (ready: a load balancer's probe has no token)


@pytest.fixture
async def app(tmp_path: Any) -> AsyncIterator[Any]:
    async with open_node(tmp_path) as node:
        yield create_app(node)


def _concrete(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: f"x-{m.group(1)}", rule)


def test_a_route_cannot_be_declared_without_a_permission_or_summary() -> None:
    resource = Resource("t")
    with pytest.raises(TypeError, match="permission"):
        resource.route("/x", permission="read_config", summary="x")  # a string, not a Permission
    with pytest.raises(TypeError, match="summary"):
        resource.route("/x", permission=Permission.READ_DATA, summary="")


async def test_every_url_rule_is_a_declared_route(app: Any) -> None:
    declared = {(route.path, method) for route in routes_of(app) for method in route.methods}
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (rule.rule, method) in declared, f"{method} {rule.rule} was not declared with a permission"
    assert len(declared) >= 30
    assert {route.path for route in routes_of(app) if route.permission == PUBLIC} <= PUBLIC_PATHS | {
        "/api/jwt", "/api/openapi.json"}


async def test_every_route_refuses_a_request_without_a_token(app: Any) -> None:
    anonymous = TokenClient(app, role=None)
    for route in routes_of(app):
        if route.websocket:
            continue
        for method in route.methods:
            response = await anonymous.open(_concrete(route.path), method=method)
            body = await response.get_json()
            if route.permission == PUBLIC:
                assert response.status_code != 401, (method, route.path, body)
                continue
            assert response.status_code == 401, (method, route.path, body)
            assert body["status"] == 401 and "bearer token" in body["detail"], body
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_route_refuses_a_role_without_its_permission(app: Any) -> None:
    checked = 0
    for role, permissions in ROLES.items():
        client = TokenClient(app, role)
        for route in routes_of(app):
            if route.websocket or route.permission == PUBLIC or route.permission in permissions:
                continue
            for method in route.methods:
                response = await client.open(_concrete(route.path), method=method)
                body = await response.get_json()
                assert response.status_code == 403, (role, method, route.path, body)
                assert str(route.permission) in body["detail"]
                checked += 1
    assert checked > 20


def auth_dir_of(app: Any) -> Any:
    return app.extensions["sesamd"].node.data_dir.root


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def test_bad_tokens_are_401_with_a_reason(app: Any, tmp_path: Any) -> None:
    auth: Authenticator = app.extensions["sesamd"].auth
    other = Authenticator(tmp_path / "elsewhere").mint("admin")
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'x', 'role': 'admin'})}."
    past = Authenticator(auth_dir_of(app), clock=lambda: time.time() - 86400 * 3)
    expired = past.mint("admin", expires_days=1)
    cases = {"Bearer nonsense": "malformed", f"Bearer {other}": "signature", f"Bearer {unsigned}": "",
             f"Bearer {expired}": "expired", "Basic dXNlcjpwYXNz": "Basic"}
    for header, reason in cases.items():
        response = await app.test_client().get("/api/pipes", headers={"Authorization": header})
        body = await response.get_json()
        assert response.status_code == 401, (header, body)
        assert reason in body["detail"], body
    good = await app.test_client().get("/api/pipes", headers={"Authorization": f"bearer {auth.mint('guest')}"})
    assert good.status_code == 200
    health = await app.test_client().get("/api/health")
    assert health.status_code == 200


async def test_login_answers_a_token_and_slows_repeated_failures(app: Any) -> None:
    from argon2 import PasswordHasher

    from sesamd._auth import LoginThrottle, UserStore

    context = app.extensions["sesamd"]
    context.users = UserStore(auth_dir_of(app), hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    context.throttle = LoginThrottle(free_failures=2, base_delay=0.2, max_delay=1.0)
    context.users.add("ann@example.com", "s3cret", role="user")
    client = app.test_client()
    response = await client.post("/api/jwt", form={"email": "Ann@example.com", "password": "s3cret"})
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    principal = context.auth.verify((await response.get_data()).decode())
    assert (principal.role, principal.subject) == ("user", "ann@example.com")
    timings = []
    for _ in range(4):
        started = time.monotonic()
        wrong = await client.post("/api/jwt", form={"email": "ann@example.com", "password": "nope"})
        timings.append(time.monotonic() - started)
        assert wrong.status_code == 401 and (await wrong.get_json())["detail"] == "wrong email or password"
    assert timings[3] >= 0.35 > timings[0]  # the third failure on waits 0.2 s, then 0.4 s
    missing = await client.post("/api/jwt", form={"email": "ann@example.com"})
    assert missing.status_code == 400 and "password" in (await missing.get_json())["detail"]
