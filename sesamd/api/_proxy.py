"""``/api/systems/{id}/proxy/{path}``: a reverse proxy to a URL system's HTTP service (node-spec 10.4, 12).

A request (method, the raw path after ``/proxy/``, the query string, the body and the end-to-end headers)
goes to ``system.url(path)`` (the system's ``url_pattern``/``base_url`` rules) through the system's own
``httpx`` client, so its default headers, authentication, TLS settings and timeouts apply; the caller's
``Authorization`` (the node's token) and hop-by-hop headers stay behind. ``system:url``, ``system:rest`` and
``system:microservice`` are URL systems; any other type is a 400 naming it.

The client is synchronous: the request is made in a worker thread while the proxy holds one of the system
actor's ``worker_threads`` slots (as a pipe using the system does), and the answer is relayed as it comes:
status, content type and end-to-end headers at once, the body chunk by chunk (each chunk read in a worker
thread), never loaded whole. The slot is held until the body is relayed or the caller goes away. The
request body is read whole first (bounded by the app's body size limit).

Failures name the system and the URL: an unknown system is a 404, a system with an invalid config a 409, one
that is not open within :data:`OPEN_WAIT` seconds (starting, reloading, crashed) a 503, a service that
refuses or breaks the connection a 502, one that does not answer within the system's timeouts a 504. A
service failing after its answer began cannot change the status: the body ends early (the connection is
dropped, so the caller sees a truncated answer, not a complete one).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import trio
from quart import Response, request

from actors import SystemActor
from actors.components import TransientError
from actors.components.system_url import UrlSystem

from .._auth import Permission
from ._context import api
from ._errors import ApiError
from ._params import body_bytes
from ._routes import Resource

__all__ = ["resource"]

log = logging.getLogger("sesamd.api.proxy")

resource = Resource("proxy")

OPEN_WAIT = 10.0  # seconds a request waits for a starting or reloading system to open
CHUNK = 64 * 1024  # bytes of the answer read per worker-thread call
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect", "authorization",
                              "remote-addr"}  # (Quart adds Remote-Addr; the client sets host and length)
NOT_RELAYED = HOP_BY_HOP | {"date", "server"}  # the node's server sets its own
RULE = "/systems/<system_id>/proxy/<path:rest_of_path>"
SUMMARY = "through the system's HTTP client to its service (a URL system); the service's answer is relayed"
STATUSES = (200, 502, 504)  # and whatever else the service answers


@resource.route(RULE, "GET", permission=Permission.READ_PROXY, produces="*/*", status=STATUSES,
                summary="Proxy a GET " + SUMMARY)
async def proxy_read(system_id: str, rest_of_path: str) -> Response:
    return await _proxy(system_id)


@resource.route(RULE, "POST", "PUT", "PATCH", "DELETE", permission=Permission.WRITE_PROXY, body="*/*",
                produces="*/*", status=STATUSES, summary="Proxy a request " + SUMMARY)
async def proxy_write(system_id: str, rest_of_path: str) -> Response:
    return await _proxy(system_id)


async def _proxy(system_id: str) -> Response:
    actor, system = await _open_system(system_id)
    url = _url(system)
    body = await body_bytes()
    what = f"{request.method} {url} (system '{system_id}')"
    borrower = object()  # the slot is released by the task relaying the body
    await actor.limiter.acquire_on_behalf_of(borrower)
    relay: _Relay | None = None
    try:
        upstream = await trio.to_thread.run_sync(_send, system, request.method, url, _forwarded_headers(), body,
                                                 what)
        relay = _Relay(upstream, actor.limiter, borrower, what)
    finally:
        if relay is None:
            actor.limiter.release_on_behalf_of(borrower)
    response = Response(relay, status=upstream.status_code,
                        headers=[(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in NOT_RELAYED])
    if "content-type" not in upstream.headers:
        del response.headers["Content-Type"]  # (Quart's default): the service sent none
    return response


async def _open_system(system_id: str) -> tuple[SystemActor, UrlSystem]:
    state = api().node.systems.get(system_id)  # UnknownSystem: a 404
    kind = state.original.get("type")
    if state.system is not None and not isinstance(state.system, UrlSystem):
        raise ApiError(400, f"system '{system_id}' is a {kind}, not a URL system (system:url, system:rest or "
                            "system:microservice): there is no HTTP service to proxy to")
    if not state.is_valid:
        raise ApiError(409, f"system '{system_id}' has an invalid config and does not run: "
                            + "; ".join(e["msg"] for e in state.errors))
    actor = state.actor
    if actor is None:
        raise ApiError(503, f"system '{system_id}' does not run: the node runs no system actors")
    opened = None
    with trio.move_on_after(OPEN_WAIT):
        opened = await actor.wait_open()
    if not isinstance(opened, UrlSystem):
        raise ApiError(503, f"system '{system_id}' is not open ({actor.status.state}) after {OPEN_WAIT:g} s: "
                            "try again later")
    return actor, opened


def _url(system: UrlSystem) -> str:
    """The service URL of the request: the raw path after ``/proxy/`` (its escapes kept) and query string."""
    raw_path: bytes = request.scope["raw_path"]
    relative = raw_path.split(b"/proxy/", 1)[1].decode("ascii", "replace")  # (an id has no '/': the first one)
    url = system.url(relative)
    query = request.query_string.decode("ascii", "replace")
    return url + ("&" if "?" in url else "?") + query if query else url


def _forwarded_headers() -> list[tuple[bytes, bytes]]:
    """The request's end-to-end headers as sent (latin-1 bytes), without those its Connection header names."""
    named = {name.strip().lower() for value in request.headers.getlist("Connection") for name in value.split(",")}
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()
            if name.lower() not in NOT_FORWARDED and name.lower() not in named]


def _send(system: UrlSystem, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes,
          what: str) -> httpx.Response:
    """Send the request (in a worker thread); the answer's body is left to stream."""
    try:
        client = system.http
    except TransientError as exc:  # closed meanwhile (a reload)
        raise ApiError(503, f"{what}: {exc}") from None
    try:
        outgoing = client.build_request(method, url, headers=headers, content=body or None)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ApiError(400, f"{what}: the URL cannot be requested: {exc}") from None
    try:
        return client.send(outgoing, stream=True)
    except httpx.TimeoutException as exc:
        log.warning("proxy %s: the service did not answer in time: %s", what, exc)
        raise ApiError(504, f"{what}: the service did not answer in time ({type(exc).__name__}: {exc})",
                       system=system.id, url=url) from None
    except httpx.LocalProtocolError as exc:
        raise ApiError(400, f"{what}: the request cannot be forwarded: {exc}") from None
    except httpx.HTTPError as exc:
        log.warning("proxy %s: the service cannot be reached: %s", what, exc)
        raise ApiError(502, f"{what}: the service cannot be reached ({type(exc).__name__}: {exc})",
                       system=system.id, url=url) from None


class _Relay:
    """The body of the service's answer, read chunk by chunk in worker threads (an async iterator for
    Quart); closing it (at the end, or when the caller goes away) closes the answer and frees the slot."""

    def __init__(self, upstream: httpx.Response, limiter: trio.CapacityLimiter, borrower: object,
                 what: str) -> None:
        self._upstream = upstream
        self._chunks = upstream.iter_raw(CHUNK)
        self._limiter = limiter
        self._borrower = borrower
        self._what = what
        self._closed = False

    def __aiter__(self) -> _Relay:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk: bytes | None = await trio.to_thread.run_sync(next, self._chunks, None)
        except httpx.HTTPError as exc:  # the answer began: its status is sent, so the body ends early
            log.warning("proxy %s: the answer broke off: %s: %s", self._what, type(exc).__name__, exc)
            await self.aclose()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> Any:
        if self._closed:
            return
        self._closed = True
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._upstream.close)
        finally:
            self._limiter.release_on_behalf_of(self._borrower)
