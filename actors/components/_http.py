"""HTTP for components: one request with retries, and JSON entity streams read in bounded memory.

Components run in the pump's worker thread, so they use the system's synchronous ``httpx.Client``.
:func:`send` makes one request and retries it by a :class:`RetryPolicy` when it fails transiently (a
connect error, a timeout, an answer of 429 or 5xx); the wait doubles from the policy's delay, and an
answer's ``Retry-After`` (seconds or an HTTP date) is waited out when it asks for longer. A separate
``rate_limit`` policy, when given, governs 429 answers alone (the REST components' ``rate_limiting_retries``
and ``rate_limiting_delay``), and ``accept`` lets a caller take answers of chosen error statuses as answers
(the REST transform's ``allowed_status_codes``/``ignored_status_codes``). What finally fails
is a :class:`~actors.components.TransientError` or :class:`~actors.components.TerminalError` whose message
names the method, the URL and the answer.

:func:`json_entities` streams the JSON array (or NDJSON) of an answer's body through
:func:`storage.iter_json_entities`, chunk by chunk: an endless body is read as far as it is consumed, and a
single value larger than ``max_value_bytes`` is an error rather than a full memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

import storage

from ._errors import ComponentError, TerminalError, TransientError
from ._registry import ConfigError
from ._system_base import seconds

__all__ = ["MAX_VALUE_BYTES", "RETRY_STATUSES", "RetryPolicy", "SystemLink", "json_entities", "retry_strategy",
           "send"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_VALUE_BYTES = 100 * 1024 * 1024  # the dataset sink's default max_entity_bytes_size
SNIPPET = 300  # bytes of an error answer quoted in the message


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` further attempts after the first, waiting ``delay`` seconds, multiplied by ``factor`` (2:
    doubling; 1: a fixed delay) each time, up to ``max_delay``. ``by_status`` holds the policies of a system's
    ``retry_strategy`` for chosen statuses (ranges of status codes, most specific first)."""

    retries: int = 0
    delay: float = 0.0
    max_delay: float = 300.0
    factor: float = 2.0
    by_status: tuple[tuple[tuple[tuple[int, int], ...], RetryPolicy], ...] = ()

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        backoff = self.delay * (self.factor ** attempt)
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(backoff, self.max_delay)

    def for_status(self, status: int | None) -> tuple[RetryPolicy, bool]:
        """The policy for a failure with ``status`` (None: no answer), and whether a ``retry_strategy`` rule
        named that status (which makes it worth retrying even when it is a 4xx)."""
        if status is not None:
            for ranges, policy in self.by_status:
                if any(low <= status <= high for low, high in ranges):
                    return policy, True
        return self, False

    @classmethod
    def of(cls, pump: Mapping[str, Any], retries_key: str, delay_key: str, *, default_retries: int = 0,
           strategy: Mapping[str, Mapping[str, Any]] | None = None) -> RetryPolicy:
        """The policy a pump config sets: ``pump[retries_key]`` retries, ``pump[delay_key]`` seconds apart.

        ``strategy`` is the system's ``retry_strategy`` (node-spec 10.1): its ``default`` entry and its
        entries for status expressions (``"429"``, ``"500-599"``, ``"502,504"``) give the values the pump
        does not set explicitly; a value set on the pump wins everywhere."""
        strategy = strategy or {}

        def policy(values: Mapping[str, Any]) -> RetryPolicy:
            merged = {**values, **{key: pump[key] for key in (retries_key, delay_key) if key in pump}}
            return cls._plain(merged, retries_key, delay_key, default_retries)

        rules = sorted(((_status_ranges(expression), policy({**strategy.get("default", {}), **values}))
                        for expression, values in strategy.items() if expression != "default"),
                       key=lambda rule: sum(high - low + 1 for low, high in rule[0]))
        return replace(policy(strategy.get("default", {})), by_status=tuple(rules))

    @classmethod
    def _plain(cls, values: Mapping[str, Any], retries_key: str, delay_key: str,
               default_retries: int) -> RetryPolicy:
        retries = values.get(retries_key)
        value = values.get(delay_key)
        delay = 0.0
        if (type(value) in (int, float)) or (isinstance(value, str) and value.startswith("~f")):
            try:
                delay = seconds(value)  # config keeps fractions as transit decimals ("~f1.5")
            except ValueError:
                delay = 0.0
        return cls(retries=retries if type(retries) is int and retries >= 0 else default_retries,
                   delay=delay if delay >= 0 else 0.0)


def _status_ranges(expression: str) -> tuple[tuple[int, int], ...]:
    """``"400-428,500"`` as ``((400, 428), (500, 500))`` (the system's schema has checked the form)."""
    ranges = []
    for part in expression.split(","):
        low, _, high = part.partition("-")
        ranges.append((int(low), int(high or low)))
    return tuple(ranges)


def retry_strategy(config: Mapping[str, Any], context: Any) -> Mapping[str, Mapping[str, Any]]:
    """The ``retry_strategy`` of the URL system a component's config names (empty when there is none)."""
    from .system_url import UrlSystem  # the system module imports this one's errors

    system = context.systems.get(config.get("system")) if "system" in config else None
    return system.config.get("retry_strategy") or {} if isinstance(system, UrlSystem) else {}


def send(client: httpx.Client, method: str, url: str, *, policy: RetryPolicy = RetryPolicy(),
         stream: bool = False, sleep: Callable[[float], None] = time.sleep,
         on_retry: Callable[[ComponentError, int], None] | None = None, rate_limit: RetryPolicy | None = None,
         accept: Callable[[int], bool] | None = None, **request: Any) -> httpx.Response:
    """Make the request, retrying by ``policy``; a 2xx/3xx response (open, when ``stream``) or an error.

    ``request`` goes to ``client.build_request`` (``params``, ``headers``, ``content``, ``json``...); a body
    must be bytes so it can be sent again. ``on_retry(error, attempt)`` is told of each retried failure.
    With ``rate_limit``, 429 answers are retried by that policy (counted apart) instead of ``policy``; an
    answer whose status ``accept`` takes is returned as it is, whatever its status.
    """
    attempt = limited = 0
    while True:
        retry_after: float | None = None
        try:
            response = client.send(client.build_request(method, url, **request), stream=stream)
        except httpx.TimeoutException as exc:
            error: ComponentError = TransientError(f"{method} {url}: timed out ({_describe(exc)})")
        except httpx.TransportError as exc:
            error = TransientError(f"{method} {url}: the connection failed ({_describe(exc)})")
        else:
            if response.status_code < 400 or (accept is not None and accept(response.status_code)):
                return response
            error = _status_error(method, url, response)
            retry_after = _retry_after(response.headers.get("Retry-After"))
        rate_limited = rate_limit is not None and error.status == 429
        if rate_limit is not None and rate_limited:
            rule, used, named = rate_limit, limited, False
        else:
            (rule, named), used = policy.for_status(error.status), attempt
        if not (error.transient or named) or used >= rule.retries:
            if attempt + limited:
                count = attempt + limited
                error.message += f" (after {count} {'retry' if count == 1 else 'retries'})"
                error.args = (error.message,)
            raise error
        if on_retry is not None:
            on_retry(error, attempt + limited)
        sleep(rule.wait(used, retry_after))
        if rate_limited:
            limited += 1
        else:
            attempt += 1


def _status_error(method: str, url: str, response: httpx.Response) -> ComponentError:
    try:
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= SNIPPET:
                break
    except httpx.HTTPError:
        body = b""
    finally:
        response.close()
    snippet = body[:SNIPPET].decode("utf-8", "replace").strip()
    status = response.status_code
    kind = TransientError if status in RETRY_STATUSES else TerminalError
    return kind(f"{method} {url} answered {status} {response.reason_phrase}" + (f": {snippet}" if snippet else ""),
                status=status)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _BodyReader:
    """A file-like ``read(n)`` over a streamed response body (what :func:`storage.iter_json_entities` reads)."""

    def __init__(self, response: httpx.Response, chunk_size: int) -> None:
        self._chunks = response.iter_bytes(chunk_size)
        self._what = f"{response.request.method} {response.url}"

    def read(self, size: int = -1) -> bytes:
        try:
            return next(self._chunks, b"")
        except httpx.TimeoutException as exc:
            raise TransientError(f"{self._what}: timed out reading the body ({_describe(exc)})") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"{self._what}: the body was cut off ({_describe(exc)})") from None


def json_entities(response: httpx.Response, *, chunk_size: int = 1 << 16,
                  max_value_bytes: int = MAX_VALUE_BYTES) -> Iterator[Any]:
    """The values of the JSON array or NDJSON in an open streamed ``response``, as they arrive; closes it.

    Bad JSON is a :class:`TerminalError` naming the URL, line and column; a body cut off or stalled is a
    :class:`TransientError`."""
    try:
        for value, _line in storage.iter_json_entities(_BodyReader(response, chunk_size), chunk_size=chunk_size,
                                                       max_value_chars=max_value_bytes):
            yield value
    except storage.JSONError as exc:
        raise TerminalError(f"{response.request.method} {response.url}: the answer is not a JSON array or "
                            f"NDJSON: {exc}") from None
    finally:
        response.close()


class SystemLink:
    """A component's link to the URL system its config names (``system``), with the component's ``headers``.

    The node builds pipes with the systems they name (:attr:`BuildContext.systems`); a named system of
    another kind is a :class:`ConfigError` (``kind``/``kinds``: a narrower class, and how to name it). One the
    node did not give (not in the config, or invalid, which the node reports on the pipe) fails the run with a
    :class:`TerminalError` when it is used.
    """

    def __init__(self, config: Mapping[str, Any], context: Any, *, what: str, kind: type | None = None,
                 kinds: str = "a system:url or system:microservice") -> None:
        from .system_url import UrlSystem  # the system module imports this one's errors

        self.system_id: str = config["system"]
        self.headers: dict[str, str] = dict(config.get("headers") or {})
        system = context.systems.get(self.system_id)
        if system is not None and not isinstance(system, kind or UrlSystem):
            raise ConfigError(f"system '{self.system_id}' is a {system.config.get('type')}; a {what} needs {kinds}",
                              where=f"pipe {context.pipe_id}: {context.where}.system")
        self._system = system

    @property
    def system(self) -> Any:
        if self._system is None:
            raise TerminalError(f"system '{self.system_id}' is not in the config (or its config is invalid)")
        return self._system

    def url(self, relative: str) -> str:
        """The absolute URL of ``relative`` by the system's rules (an absolute ``relative`` stays itself)."""
        if relative.startswith(("http://", "https://")):
            return relative
        return str(self.system.url(relative))

    @property
    def client(self) -> httpx.Client:
        """The system's open client (a :class:`TransientError` while it is not open)."""
        return self.system.http  # type: ignore[no-any-return]
