"""A connection to a node's API: the one place the client makes HTTP requests.

:class:`Connection` holds the normalised API URL (``https://host/api``; client-spec 2.4), the JWT and one
``httpx.Client``. :meth:`Connection.request` sends a request and turns every failure into a
:class:`~sesamd.client.ClientError` whose message names the method, the path and the node's answer (the
``error``/``detail`` of a JSON error body), so a command never shows a traceback. Tests and scripts give it a
``transport`` (``httpx.MockTransport`` or an ASGI/WSGI one) instead of the network.

Domain methods (node info, config, env, pipes, pumps, entities, publishers, datasets, receivers, the
run-all-pipes family, admin) are built on :meth:`request` and :meth:`json`; each is one API call.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from ._errors import ApiError, AuthError, ConfigRejected, ConnectionFailed

__all__ = ["DEFAULT_TIMEOUT", "Connection", "api_url", "bearer_token", "path_id"]

DEFAULT_TIMEOUT = 30.0
SNIPPET = 300  # characters of a non-JSON error answer quoted in a message


def api_url(node: str) -> str:
    """A node's address as the API base URL: quotes removed, ``https://`` added when there is no scheme,
    ``/api`` appended when missing (``localhost:9042`` -> ``https://localhost:9042/api``)."""
    url = node.replace('"', "").strip().rstrip("/")
    if not url.startswith("http"):
        url = f"https://{url}"
    if not url.endswith("/api"):
        url = f"{url}/api"
    return url


def bearer_token(jwt: str) -> str:
    """A JWT as configured, without surrounding double quotes or a leading ``bearer ``."""
    token = jwt.strip()
    if len(token) >= 2 and token[0] == token[-1] == '"':
        token = token[1:-1]
    if token[:7].lower() == "bearer ":
        token = token[7:]
    return token.strip()


def path_id(value: str) -> str:
    """An id as one path segment (percent-encoded; pipe ids may hold ``:`` and ``/``)."""
    return quote(value, safe="")


class Connection:
    """The API of the node at ``node`` (any form :func:`api_url` takes), authorised by ``jwt``."""

    def __init__(self, node: str, jwt: str | None = None, *, timeout: float | None = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None, verify: bool = True) -> None:
        self.url = api_url(node)
        self.jwt = bearer_token(jwt) if jwt else None
        headers = {"Accept": "application/json,*/*"}
        if self.jwt:
            headers["Authorization"] = f"Bearer {self.jwt}"
        self.http = httpx.Client(headers=headers, timeout=timeout, transport=transport, verify=verify)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """Send ``method`` to ``<api>/<path>``; the response when its status is below 400 or in ``ok``.

        Raises :class:`ConnectionFailed` when the node cannot be reached, :class:`AuthError` for 401/403 and
        :class:`ApiError` for any other error status. ``kwargs`` go to ``httpx.Client.request``.
        """
        url = f"{self.url}/{path.lstrip('/')}" if path else f"{self.url}/"
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ConnectionFailed(f"{method} {url}: the node did not answer in time") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach the node at {self.url}: {exc or type(exc).__name__}") from None
        if response.status_code < 400 or response.status_code in ok:
            return response
        raise _error(method, path, response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the answer parsed as JSON (an :class:`ApiError` when it is not JSON)."""
        response = self.request(method, path, **kwargs)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ApiError(f"{method} /{path.lstrip('/')}: the node's answer is not JSON: "
                           f"{response.text[:SNIPPET]!r}", status=response.status_code) from None

    def get(self, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """GET ``path`` as JSON."""
        return self.json("GET", path, params=params, **kwargs)

    # -- the node -------------------------------------------------------------------------------------------

    def api_info(self) -> dict[str, Any]:
        """``GET /``: the node's version and ``status`` (``developer_mode``...)."""
        return _object(self.get(""), "GET /")

    def status(self) -> dict[str, Any]:
        """``GET /status`` (``node_start_time`` changes on each restart)."""
        return _object(self.get("status"), "GET /status")

    def admin(self, operation: str) -> Any:
        """``POST /admin`` with ``operation`` (``restart``, ``reset``, ``load_config``)."""
        return self.json("POST", "admin", data={"operation": operation})

    # -- config and env ------------------------------------------------------------------------------------

    def config(self) -> list[Any]:
        """``GET /config``: the default config group's entities as uploaded."""
        return _array(self.get("config"), "GET /config")

    def config_zip(self) -> bytes:
        """``GET /config`` as a zip: one portal-format file per entity, named by ``_id``."""
        return self.request("GET", "config", headers={"Accept": "application/zip"}).content

    def put_config(self, config: bytes | list[Any], *, force: bool = False) -> dict[str, Any]:
        """``PUT /config``: replace the config with a zip (bytes) or a list of entities, sent as the multipart
        part ``file``. The answer holds ``validation_errors``; a refusal raises :class:`ConfigRejected`."""
        if isinstance(config, bytes | bytearray):
            part = ("config", bytes(config), "application/zip")
        else:
            part = ("config", orjson.dumps(config), "application/json")
        try:
            answer = self.json("PUT", "config", params={"force": _flag(force)}, files={"file": part})
        except ApiError as exc:
            if exc.status == 400 and isinstance(exc.body, dict) and "validation_errors" in exc.body:
                raise ConfigRejected(exc.message, status=400, body=exc.body) from None
            raise
        return answer if isinstance(answer, dict) else {"validation_errors": []}

    def env(self) -> dict[str, Any]:
        """``GET /env``: the environment variables."""
        return _object(self.get("env"), "GET /env")

    def put_env(self, variables: Mapping[str, Any]) -> Any:
        """``PUT /env``: replace all environment variables."""
        return self.json("PUT", "env", json=dict(variables))

    def post_env(self, variables: Mapping[str, Any]) -> Any:
        """``POST /env``: add or change some environment variables."""
        return self.json("POST", "env", json=dict(variables))

    # -- pipes and pumps -----------------------------------------------------------------------------------

    def pipes(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /pipes``: every pipe (``config.original``/``effective``, ``runtime``)."""
        return _array(self.get("pipes", params=_params(params)), "GET /pipes")

    def pipe(self, pipe_id: str) -> dict[str, Any] | None:
        """``GET /pipes/<id>``; None when the node has no such pipe."""
        response = self.request("GET", f"pipes/{path_id(pipe_id)}", ok=(404,))
        return None if response.status_code == 404 else _object(_parse(response, "GET /pipes/<id>"), "a pipe")

    def pump(self, pipe_id: str) -> dict[str, Any]:
        """``GET /pipes/<id>/pump``."""
        return _object(self.get(f"pipes/{path_id(pipe_id)}/pump"), "GET /pipes/<id>/pump")

    def pump_operation(self, pipe_id: str, operation: str, **fields: Any) -> dict[str, Any]:
        """``POST /pipes/<id>/pump`` with ``operation`` (``enable``, ``start``, ``update-last-seen``...) and
        its form fields (``last_seen`` is sent as ``last-seen``); the pump afterwards."""
        form = {"operation": operation, **{k.replace("_", "-"): _form(v) for k, v in fields.items()}}
        return _object(self.json("POST", f"pipes/{path_id(pipe_id)}/pump", data=form), "a pump")

    def pipe_entities(self, pipe_id: str, stage: str | None = None, **params: Any) -> list[Any]:
        """``GET /pipes/<id>/entities``: the pipe's output (at ``stage``) computed from its source's start."""
        params = _params({"stage": stage, **params})
        return _array(self.get(f"pipes/{path_id(pipe_id)}/entities", params=params), "GET /pipes/<id>/entities")

    def publisher(self, pipe_id: str, kind: str, params: Mapping[str, Any] | None = None) -> bytes:
        """``GET /publishers/<id>/<kind>`` (``xml``, ``csv``, ``entities``...): the raw body."""
        return self.request("GET", f"publishers/{path_id(pipe_id)}/{kind}", params=_params(params or {})).content

    def receive(self, pipe_id: str, entities: bytes | Any, **params: Any) -> Any:
        """``POST /receivers/<id>/entities``: push entities (JSON bytes, or values to encode) to a pipe's
        ``http_endpoint`` source."""
        body = entities if isinstance(entities, bytes | bytearray) else orjson.dumps(entities)
        return self.json("POST", f"receivers/{path_id(pipe_id)}/entities", content=bytes(body),
                         params=_params(params), headers={"Content-Type": "application/json"})

    # -- running the whole config (client-spec 6.6, 10) ---------------------------------------------------

    def run_all_pipes(self, **params: Any) -> dict[str, Any]:
        """``POST /pipes/run-all-pipes`` with query parameters only (``extra_zero_runs``, ``max_runs``,
        ``request_mode``...); in sync mode it answers when the run is over, so no timeout applies."""
        return _object(self.json("POST", "pipes/run-all-pipes", params=_params(params), timeout=None),
                       "POST /pipes/run-all-pipes")

    def stop_run_all_pipes(self, terminate_timeout: float = 30) -> Any:
        """``POST /pipes/stop-run-all-pipes``: stop a run in progress (if any)."""
        return self.json("POST", "pipes/stop-run-all-pipes", params={"terminate_timeout": terminate_timeout},
                         timeout=None)

    def run_all_pipes_log(self, since: str | None = None, token: str | None = None) -> list[Any]:
        """``GET /pipes/get-run-all-pipes-log``: the run's log lines after ``since``."""
        answer = self.get("pipes/get-run-all-pipes-log", params=_params({"since": since, "token": token}))
        return _array(answer, "GET /pipes/get-run-all-pipes-log")

    def pipe_runner_status(self, token: str) -> dict[str, Any]:
        """``GET /pipes/get-pipe-runner-status``: an async run's ``status``."""
        return _object(self.get("pipes/get-pipe-runner-status", params={"token": token}),
                       "GET /pipes/get-pipe-runner-status")

    def delete_all_sink_datasets(self) -> Any:
        """``POST /pipes/delete-all-sink-datasets``."""
        return self.json("POST", "pipes/delete-all-sink-datasets", timeout=None)

    def run_pipes(self, pipe_ids: list[str], timeout: float = 20) -> dict[str, Any]:
        """``POST /pipes/run-pipes``: run the pipes once each; per pipe its ``result`` and ``status``."""
        return _object(self.json("POST", "pipes/run-pipes", params={"timeout": timeout}, json=list(pipe_ids),
                                 timeout=None), "POST /pipes/run-pipes")

    # -- datasets and systems ------------------------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        """``GET /datasets``."""
        return _array(self.get("datasets"), "GET /datasets")

    def dataset(self, dataset_id: str) -> dict[str, Any] | None:
        """``GET /datasets/<id>``; None when there is no such dataset."""
        response = self.request("GET", f"datasets/{path_id(dataset_id)}", ok=(404,))
        return None if response.status_code == 404 else _object(_parse(response, "GET /datasets/<id>"), "a dataset")

    def dataset_entities(self, dataset_id: str, **params: Any) -> list[Any]:
        """``GET /datasets/<id>/entities`` (``history``, ``deleted``, ``limit``, ``since``...)."""
        return _array(self.get(f"datasets/{path_id(dataset_id)}/entities", params=_params(params)),
                      "GET /datasets/<id>/entities")

    def delete_dataset(self, dataset_id: str) -> None:
        """``DELETE /datasets/<id>`` (gone already is fine)."""
        self.request("DELETE", f"datasets/{path_id(dataset_id)}", ok=(404,))

    def systems(self) -> list[dict[str, Any]]:
        """``GET /systems``."""
        return _array(self.get("systems"), "GET /systems")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _form(value: Any) -> str:
    if isinstance(value, bool):
        return _flag(value)
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters without the None ones, booleans as ``true``/``false``."""
    return {k: _flag(v) if isinstance(v, bool) else v for k, v in params.items() if v is not None}


def _parse(response: httpx.Response, what: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ApiError(f"{what}: the node's answer is not JSON: {response.text[:SNIPPET]!r}",
                       status=response.status_code) from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(f"{what}: the node's answer is not a JSON object: {orjson.dumps(value).decode()[:SNIPPET]}",
                       status=200, body=value)
    return value


def _array(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(f"{what}: the node's answer is not a JSON array: {orjson.dumps(value).decode()[:SNIPPET]}",
                       status=200, body=value)
    return value


def _error(method: str, path: str, response: httpx.Response) -> ApiError:
    body: Any = None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        detail = response.text[:SNIPPET].strip()
    else:
        detail = _detail(body)
    where = f"{method} /{path.lstrip('/')}"
    status = response.status_code
    if status in (401, 403):
        hint = "the JWT is missing, invalid or expired" if status == 401 else "the JWT lacks the permission"
        return AuthError(f"{where}: {status} ({hint}): {detail}", status=status, body=body)
    return ApiError(f"{where}: {status} {_reason(response)}: {detail}", status=status, body=body)


def _reason(response: httpx.Response) -> str:
    """The status line's reason, or the standard one when the server sent none (HTTP/2, some servers)."""
    if response.reason_phrase:
        return response.reason_phrase
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return "Error"


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("detail", "error", "message", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    return orjson.dumps(body).decode()[:SNIPPET]
