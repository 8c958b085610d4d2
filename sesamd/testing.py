"""Test helpers for the daemon: an in-process API client that carries a token of a chosen role."""

from __future__ import annotations

from typing import Any

from quart_trio import QuartTrio

from .api._context import ApiContext

__all__ = ["TokenClient", "token_for"]


def token_for(app: QuartTrio, role: str = "admin") -> str:
    """A token of ``role`` signed with the app's key."""
    context: ApiContext = app.extensions["sesamd"]
    return context.auth.mint(role, subject=f"test-{role}")


class TokenClient:
    """Quart's test client with ``Authorization: Bearer <token>`` on every request (``token=None``: none)."""

    def __init__(self, app: QuartTrio, role: str | None = "admin", *, token: str | None = None) -> None:
        self.app = app
        self.client = app.test_client()
        self.token = token if token is not None else (token_for(app, role) if role is not None else None)

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = dict(headers or {})
        if self.token is not None:
            merged.setdefault("Authorization", f"Bearer {self.token}")
        return merged

    async def open(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                   **kwargs: Any) -> Any:
        return await self.client.open(path, method=method, headers=self._headers(headers), **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="GET", **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="POST", **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="PUT", **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="PATCH", **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="DELETE", **kwargs)
