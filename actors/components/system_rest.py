"""The ``system:rest`` system: a URL system with named operations (node-spec 10.2), and the machinery the
``rest`` source, sink and transform share (node-spec 6.12, 7.4, 8.10).

The system *is* a :class:`~actors.components.system_url.UrlSystem` (a subclass: the same ``url_pattern``
rules, auth, TLS, timeouts and pooled ``httpx`` client, opened and closed by the system actor) with
``operations``, ``rate_limiting_retries``/``rate_limiting_delay``, ``json_content_types`` (``application/json``
is always one) and ``custom_auth`` (validated, not implemented: listed under ``unsupported``). Requests go
through :func:`actors.components._http.send`, so connect errors, timeouts and 5xx are retried by the
component's pump policy with back-off and ``Retry-After``; 429 answers follow the rate limiting settings
(component, else operation, else system; ``rate_limiting_delay`` default 1 s, a fixed delay, or a longer
``Retry-After``) when ``rate_limiting_retries`` is set anywhere, else the pump policy.

An operation (``method`` and ``url`` required) is checked when its config is built: its JSON Schema, then
every Jinja template compiles, ``not-full-page`` has a ``page_size``, status code expressions parse and
``allowed_status_codes`` and ``ignored_status_codes`` do not overlap; errors name
``operations.<name>.<prop>`` (as a JSONPath in a system, a dotted path in a pipe). A pipe component's
``operations`` replace the system's operations of the same name. Templates render in a
:class:`jinja2.sandbox.SandboxedEnvironment` where a missing name or key renders empty (a chainable
undefined) and ``None`` renders as the empty string; they see the entity's (or response item's) own keys as
variables, then ``properties``, ``entity``/``source_entity``, ``since`` (sources), ``page_size``, ``page``,
``is_first_page``, the ``previous_*`` values from the second page on, and, as the request is built, ``url``,
``params``/``request_params`` and ``headers``/``request_headers``; expressions over a response also see
``body`` and the response ``headers``/``response_headers`` (a ``Link`` header parsed to ``{rel: url}``, so
``{{ headers.Link.next }}`` works). An expression that is one ``{{ ... }}`` keeps its value's type (an
``updated_expression`` of ``{{ seq }}`` gives an integer). The ``sesam:markskip`` marker drops a key or
value of ``headers``/``params``/``payload``; ``sesam:markjson`` parses the rendered text as JSON. The
filters ``bytes``, ``base64_encode`` and ``base64_decode`` exist; the others of Sesam's list do not.

Payloads: an entity's ``payload`` wins over the component's, which wins over the operation's; only the config
ones are templates (entity data is never rendered). ``json`` sends plain JSON (decimals as numbers, datetimes
as ISO strings, no transit), ``json-transit`` the wire form, a string as it is; ``text`` sends a string as
``text/plain``, bytes as ``application/octet-stream``, anything else as JSON; ``form`` and ``multipart-form``
take an object whose values are sent as text (strings as they are, other values as wire-form JSON, a list as
repeated fields). The ``Content-Type`` is set unless the operation's or the system's headers set one.

Responses are JSON when their media type is a JSON content type (then parsed as plain JSON: strings are
literal, fractions exact); anything else is text. Paging follows ``next_page_link`` (rendered after each
page; an absolute URL is used as it is, one starting with ``?`` or ``/`` is resolved against the current
request URL, anything else goes through the system's ``url_pattern``) until a
``next_page_termination_strategy`` says stop (default ``next-page-link-empty``, ``same-next-page-request``,
``same-response``).
"""

from __future__ import annotations

import base64
import functools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode, urljoin

import httpx
import jinja2
import jinja2.meta
import jinja2.sandbox
import msgspec

import storage

from ._errors import TerminalError
from ._http import RetryPolicy, SystemLink, send
from ._registry import ConfigError
from ._system_base import SECONDS, entity_path, seconds, system_type
from .system_url import URL_PROPERTIES, UrlSystem

__all__ = ["COMPONENT_PROPERTIES", "OPERATIONS", "Call", "Operation", "Page", "RestLink", "RestSystem", "Reply",
           "compile_operations", "extract", "items_of", "statuses", "value_of"]

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
PAYLOAD_TYPES = ["json", "json-transit", "text", "form", "multipart-form"]
TERMINATIONS = ["empty-result", "same-next-page-link", "next-page-link-empty", "same-next-page-request",
                "same-response", "not-full-page"]
DEFAULT_TERMINATION = ("next-page-link-empty", "same-next-page-request", "same-response")
DEFAULT_ALLOWED = "200-299"
STATUS_CODES = r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*$"
MARK_SKIP = "sesam:markskip"
MARK_JSON = "sesam:markjson"
TRACE = {"anyOf": [{"type": "boolean"}, {"type": "object", "additionalProperties": False, "properties": {
    "log_request_headers": {"type": "boolean"}, "log_request_body_maxsize": {"type": "integer"},
    "log_response_headers": {"type": "boolean"}, "log_response_body_maxsize": {"type": "integer"},
    "log_secret_redacted_bytes": {"type": "integer"}}}]}
RATE_LIMITING = {"rate_limiting_retries": {"type": "integer", "minimum": 0}, "rate_limiting_delay": SECONDS}
STRING = {"type": "string"}
STATUSES = {"type": "string", "pattern": STATUS_CODES}

OPERATION: dict[str, Any] = {
    "type": "object",
    "required": ["url", "method"],
    "additionalProperties": False,
    "properties": {
        "url": STRING,
        "method": {"enum": METHODS},
        "headers": {"type": "object"},
        "params": {"type": "object"},
        "payload-type": {"enum": PAYLOAD_TYPES},
        "payload_type": {"enum": PAYLOAD_TYPES},  # the spelling of the 2021 changelog
        "properties": {"type": "object"},
        "payload": {},
        "response_property": STRING,
        "response_headers_property": STRING,
        "response_status_property": STRING,
        "payload_property": STRING,
        "next_page_link": STRING,
        "next_page_termination_strategy": {"anyOf": [{"enum": TERMINATIONS},
                                                     {"type": "array", "items": {"enum": TERMINATIONS}}]},
        "page_size": {"type": "integer", "minimum": 1},
        "allowed_status_codes": STATUSES,
        "ignored_status_codes": STATUSES,
        "id_expression": STRING,
        "updated_expression": STRING,
        "error_expression": STRING,
        "since_property_name": {"type": "string", "minLength": 1},
        "since_property_location": {"enum": ["query", "header", "manual"]},
        **RATE_LIMITING,
        "comment": {},
        "description": {},
    },
}
OPERATIONS: dict[str, Any] = {"type": "object", "propertyNames": {"minLength": 1}, "additionalProperties": OPERATION}

# What the rest source, sink and transform have in common (each adds its own).
COMPONENT_PROPERTIES: dict[str, Any] = {
    "system": {"type": "string", "minLength": 1},
    "operation": {"type": "string", "minLength": 1},
    "operations": OPERATIONS,
    "properties": {"type": "object"},
    "payload": {},
    **RATE_LIMITING,
    "trace": TRACE,
}
RESPONSE_PROPERTIES: dict[str, Any] = {
    "response_property": STRING,
    "response_headers_property": STRING,
    "response_status_property": STRING,
    "response_include_content_type": {"type": "boolean"},
    "payload_property": STRING,
    "id_expression": STRING,
    "updated_expression": STRING,
    "error_expression": STRING,
}

CUSTOM_AUTH = {"type": "object", "properties": {
    "get_token_operation": STRING, "get_refresh_token_operation": STRING, "expires_at_expression": STRING,
    "expires_in_expression": STRING, "refresh_window": SECONDS, "initial_refresh_token": {"type": "object"},
    "refresh_token_expires_at_expression": STRING, "refresh_token_expires_in_expression": STRING,
    "access_token_property": STRING, "refresh_token_property": STRING}}


# -- Jinja ------------------------------------------------------------------------------------------------------


def _bytes(value: Any, encoding: str = "utf-8") -> bytes:
    return value if isinstance(value, bytes) else str(value).encode(encoding)


def _base64_encode(value: Any) -> str:
    return base64.b64encode(_bytes(value)).decode("ascii")


def _base64_decode(value: Any) -> bytes:
    return base64.b64decode(_bytes(value))


ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False,
                                          keep_trailing_newline=True,
                                          finalize=lambda value: "" if value is None else value)
ENV.filters.update(bytes=_bytes, base64_encode=_base64_encode, base64_decode=_base64_decode)
_SINGLE = re.compile(r"\A\s*\{\{((?:(?!\{\{|\}\}|\{%|\{#).)*)\}\}\s*\Z", re.S)


@functools.lru_cache(maxsize=4096)
def _template(source: str) -> jinja2.Template:
    return ENV.from_string(source)


@functools.lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    match = _SINGLE.match(source)
    if match is None:
        return None
    try:
        return ENV.compile_expression(match.group(1), undefined_to_none=True)
    except jinja2.TemplateSyntaxError:
        return None


def check_template(source: Any, where: str) -> None:
    """Raise a :class:`ConfigError` at ``where`` unless ``source`` (a string) compiles as a Jinja template."""
    if not isinstance(source, str):
        return
    try:
        _template(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"not a valid Jinja2 template: {exc.message} (line {exc.lineno})", where=where) from None


def check_tree(value: Any, where: Callable[..., str], *keys: str | int) -> None:
    """Check every string (keys too) of a templated ``headers``/``params``/``payload`` value."""
    if isinstance(value, str):
        check_template(value, where(*keys))
    elif isinstance(value, dict):
        for key, item in value.items():
            check_template(key, where(*keys, key))
            check_tree(item, where, *keys, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_tree(item, where, *keys, index)


def render(source: str, context: Mapping[str, Any], what: str) -> str:
    """``source`` rendered with ``context``; a failure is a :class:`TerminalError` naming ``what``."""
    if "{" not in source:
        return source
    try:
        return _template(source).render(context)
    except jinja2.TemplateError as exc:
        raise TerminalError(f"{what}: the template failed: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TerminalError(f"{what}: the template failed: {type(exc).__name__}: {exc}") from None


def value_of(source: str, context: Mapping[str, Any], what: str) -> Any:
    """An expression's value: its own type when ``source`` is one ``{{ ... }}``, else the rendered text."""
    expression = _expression(source)
    if expression is None:
        return render(source, context, what)
    try:
        result = expression(**context)
    except jinja2.TemplateError as exc:
        raise TerminalError(f"{what}: the template failed: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TerminalError(f"{what}: the template failed: {type(exc).__name__}: {exc}") from None
    return None if isinstance(result, jinja2.Undefined) else result


_SKIP = object()


def render_tree(value: Any, context: Mapping[str, Any], what: str) -> Any:
    """A templated ``headers``/``params``/``payload`` value rendered: strings (keys too) as templates, with the
    ``sesam:markskip`` and ``sesam:markjson`` markers; other values as they are."""
    if isinstance(value, str):
        text = render(value, context, what)
        if MARK_SKIP in text:
            return _SKIP
        if MARK_JSON in text:
            try:
                return parse_plain(text.replace(MARK_JSON, "").encode())
            except msgspec.DecodeError as exc:
                raise TerminalError(f"{what}: {MARK_JSON} on text that is not JSON ({exc}): {text[:100]!r}") from None
        return text
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = render(key, context, what) if isinstance(key, str) else key
            if MARK_SKIP in name:
                continue
            rendered = render_tree(item, context, what)
            if rendered is not _SKIP:
                out[name.replace(MARK_JSON, "")] = rendered
        return out
    if isinstance(value, list):
        return [item for item in (render_tree(i, context, what) for i in value) if item is not _SKIP]
    return value


# -- values -----------------------------------------------------------------------------------------------------

_PLAIN_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_PLAIN_ENCODER = msgspec.json.Encoder(decimal_format="number")


def parse_plain(data: bytes) -> Any:
    """Plain JSON (not transit) as Python values; fractions become exact Decimals."""
    return _PLAIN_DECODER.decode(data)


def _plain(value: Any) -> Any:
    """A typed value as plain JSON values (no transit): decimals stay numbers, the rest become strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str | Decimal):
        return value
    if isinstance(value, storage.Datetime) or hasattr(value, "utcoffset"):
        return storage.format_datetime(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, storage.NI | storage.URI):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def plain_json(value: Any) -> bytes:
    """Plain JSON bytes of a typed value."""
    return _PLAIN_ENCODER.encode(_plain(value))


def _form_text(value: Any) -> str:
    """A form field's text: a string as it is, any other value as its wire-form JSON (transit-encoded)."""
    if isinstance(value, str):
        return value
    return storage.dumps(storage.encode(value)).decode()


def _wire_text(value: Any) -> str:
    """A since value or header/param value as text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    return plain_json(value).decode()


def encode_payload(payload_type: str, payload: Any, what: str) -> tuple[bytes | None, str | None]:
    """The body and its content type for a typed ``payload`` (None: no body)."""
    if payload is None:
        return None, None
    if payload_type in ("json", "json-transit"):
        if isinstance(payload, str):
            return payload.encode(), "application/json"
        if isinstance(payload, bytes):
            return payload, "application/json"
        body = plain_json(payload) if payload_type == "json" else storage.dumps(storage.encode(payload))
        return body, "application/json"
    if payload_type == "text":
        if isinstance(payload, bytes):
            return payload, "application/octet-stream"
        return (payload if isinstance(payload, str) else plain_json(payload).decode()).encode(), "text/plain"
    if not isinstance(payload, dict):
        raise TerminalError(f"{what}: a '{payload_type}' payload must be an object of form fields, not "
                            f"{type(payload).__name__}")
    fields = [(str(k), _form_text(item)) for k, v in payload.items() for item in (v if isinstance(v, list) else [v])]
    if payload_type == "form":
        return urlencode(fields).encode(), "application/x-www-form-urlencoded"
    request = httpx.Request("POST", "http://form.invalid/", files=[(k, (None, v)) for k, v in fields])
    request.read()
    return request.content, request.headers["Content-Type"]


def statuses(expression: str | None) -> frozenset[int]:
    """The statuses of an expression such as ``"200-299,404"`` (empty for None)."""
    codes: set[int] = set()
    for part in (expression or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        codes.update(range(int(low), int(high or low) + 1))
    return frozenset(codes)


def extract(body: Any, path: str | None) -> Any:
    """``payload_property`` applied to a response body: an exact key wins, else the dotted path (None if absent)."""
    if path is None:
        return body
    if isinstance(body, dict) and path in body:
        return body[path]
    value = body
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


def items_of(value: Any) -> list[Any]:
    """The entities of an extracted value: a list's items, one object, or none."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class ResponseHeaders(dict[str, Any]):
    """Response headers for templates: names as sent, looked up without regard to case."""

    def __missing__(self, key: Any) -> Any:
        if isinstance(key, str):
            lower = key.lower()
            for name in self:
                if name.lower() == lower:
                    return dict.__getitem__(self, name)
        raise KeyError(key)


# -- operations -------------------------------------------------------------------------------------------------


class Operation:
    """One named operation, checked: see the module docstring."""

    TEMPLATES = ("url", "next_page_link", "id_expression", "updated_expression", "error_expression")
    TREES = ("headers", "params", "payload")

    def __init__(self, name: str, config: dict[str, Any], where: Callable[..., str]) -> None:
        self.name = name
        self.config = config
        self.method: str = config["method"]
        self.url: str = config["url"]
        self.payload_type: str = config.get("payload-type", config.get("payload_type", "json"))
        strategy = config.get("next_page_termination_strategy", list(DEFAULT_TERMINATION))
        self.termination = frozenset([strategy] if isinstance(strategy, str) else strategy)
        self.page_size: int | None = config.get("page_size")
        if "not-full-page" in self.termination and self.page_size is None:
            raise ConfigError("the 'not-full-page' strategy needs 'page_size'",
                              where=where("next_page_termination_strategy"))
        for key in self.TEMPLATES:
            check_template(config.get(key), where(key))
        for key in self.TREES:
            if key in config:
                check_tree(config[key], where, key)
        self.headers = storage.decode(config.get("headers") or {})
        self.params = storage.decode(config.get("params") or {})
        self.allowed = statuses(config.get("allowed_status_codes"))
        self.ignored = statuses(config.get("ignored_status_codes"))
        if self.allowed & self.ignored:
            raise ConfigError("overlaps 'allowed_status_codes'", where=where("ignored_status_codes"))
        variables = jinja2.meta.find_undeclared_variables(ENV.parse(self.url))
        self.url_variables = frozenset(variables)

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)


def compile_operations(config: Mapping[str, Any], where: Callable[..., str]) -> dict[str, Operation]:
    """The operations of a config's ``operations`` (already valid by the schema), checked."""
    return {name: Operation(name, op, functools.partial(where, name)) for name, op in config.items()}


@system_type("system:rest", {"properties": {
    **URL_PROPERTIES,
    "operations": OPERATIONS,
    **RATE_LIMITING,
    "json_content_types": {"type": "array", "items": {"type": "string", "minLength": 1}},
    "custom_auth": CUSTOM_AUTH,
}, "allOf": [
    {"if": {"required": ["authentication"], "properties": {"authentication": {"const": "jwt"}}},
     "then": {"required": ["jwt_token"]}},
]})
class RestSystem(UrlSystem):
    """A REST service: a URL system with named operations for the rest source, sink and transform."""

    defaults: ClassVar[dict[str, Any]] = {**UrlSystem.defaults, "rate_limiting_delay": 1}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.operations = compile_operations(config.get("operations") or {},
                                             lambda name, *keys: entity_path("operations", name, *keys))
        self.json_content_types = frozenset({"application/json",
                                             *(t.lower() for t in config.get("json_content_types") or [])})
        if "custom_auth" in config:
            self.unsupported = sorted({*self.unsupported, "custom_auth"})

    def status(self) -> dict[str, Any]:
        return {**super().status(), "operations": sorted(self.operations)}


# -- the link of a component --------------------------------------------------------------------------------


class RestLink:
    """A rest component's link to its ``system:rest``: the operations (its own win by name), the settings
    that fall back from the component to the operation (and the system), and the retry policies."""

    def __init__(self, config: Mapping[str, Any], context: Any, *, what: str) -> None:
        self.config = config
        self.what = what
        self.where = f"pipe {context.pipe_id}: {context.where}"
        self.link = SystemLink(config, context, what=what, kind=RestSystem, kinds="a system:rest")
        self.own = compile_operations(config.get("operations") or {},
                                      lambda name, *keys: ".".join([f"{self.where}.operations", name,
                                                                    *map(str, keys)]))
        for key in ("id_expression", "updated_expression", "error_expression"):
            check_template(config.get(key), f"{self.where}.{key}")
        if "payload" in config:
            check_tree(config["payload"], lambda *keys: ".".join([f"{self.where}.payload", *map(str, keys)]))
        known = context.systems.get(config["system"])
        self.known = known if isinstance(known, RestSystem) else None  # None: the run fails when it is used

    @property
    def system(self) -> RestSystem:
        return self.link.system  # type: ignore[no-any-return]

    def check_operation(self, name: str | None, key: str = "operation") -> Operation | None:
        """The operation a component's config names, when it can be known now; an unknown name is a
        :class:`ConfigError` (when the system is known)."""
        if name is None:
            return None
        if name in self.own:
            return self.own[name]
        if self.known is None:
            return None
        operation = self.known.operations.get(name)
        if operation is None:
            raise ConfigError(f"no operation {name!r} in system '{self.link.system_id}' or the {self.what}'s "
                              f"operations (known: {', '.join(sorted({*self.own, *self.known.operations})) or 'none'})",
                              where=f"{self.where}.{key}")
        return operation  # type: ignore[no-any-return]

    def operation(self, name: str) -> Operation:
        """The named operation; a :class:`TerminalError` when there is none."""
        operation = self.own.get(name) or self.system.operations.get(name)
        if operation is None:
            raise TerminalError(f"there is no operation {name!r} in system '{self.link.system_id}' or the "
                                f"{self.what}'s operations")
        return operation

    def setting(self, key: str, operation: Operation, default: Any = None) -> Any:
        """The component's ``key``, else the operation's, else ``default``."""
        if self.config.get(key) is not None:
            return self.config[key]
        if operation.get(key) is not None:
            return operation.get(key)
        return default

    def rate_limit(self, operation: Operation) -> RetryPolicy | None:
        """The 429 policy when ``rate_limiting_retries`` is set anywhere (else 429 follows the pump policy)."""
        system = self.system.config
        retries = self.setting("rate_limiting_retries", operation, system.get("rate_limiting_retries"))
        if retries is None:
            return None
        delay = seconds(self.setting("rate_limiting_delay", operation, system.get("rate_limiting_delay", 1)))
        return RetryPolicy(retries=int(retries), delay=delay, max_delay=max(300.0, delay), factor=1.0)

    def url(self, relative: str) -> str:
        return self.link.url(relative)

    def next_url(self, link: str, current: str) -> str:
        """Where a next-page link points (see the module docstring)."""
        if link.startswith(("http://", "https://")):
            return link
        if link.startswith(("?", "/", "#")):
            return urljoin(current, link)
        return self.link.url(link)


# -- requests and responses -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """One request, ready to send."""

    method: str
    url: str
    params: dict[str, Any]
    headers: dict[str, str]
    content: bytes | None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.method, self.url, sorted(self.params.items(), key=str), sorted(self.headers.items()),
                self.content)


@dataclass(frozen=True)
class Reply:
    """One response, read: ``body`` is the parsed JSON (plain Python values) or the text."""

    status: int
    url: str
    content_type: str
    is_json: bool
    body: Any
    raw: bytes
    headers: ResponseHeaders  # for templates (Link parsed)
    header_values: dict[str, str]  # as sent, for response_headers_property


@dataclass
class Page:
    """One page of an operation's answer, with the template context of its request and response."""

    request: Prepared
    reply: Reply
    context: dict[str, Any]
    number: int


def _text_values(values: Mapping[str, Any], *, lists: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if lists and isinstance(value, list):
            out[str(key)] = [_wire_text(v) for v in value]
        else:
            out[str(key)] = _wire_text(value)
    return out


@dataclass
class Call:
    """The use of one operation for one source read or one entity: its requests, following its pages."""

    rest: RestLink
    operation: Operation
    context: dict[str, Any]  # the base template context (entity keys, properties, entity, since...)
    payload: Any = None  # typed
    templated_payload: bool = False  # a config payload (a template); an entity's is used as it is
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    accept: Callable[[int], bool] | None = None
    since: Any = None  # sources: the since value to send, if any
    since_name: str = "since"
    since_location: str = "query"

    @property
    def what(self) -> str:
        return f"{self.rest.what} operation '{self.operation.name}'"

    def prepare(self, context: dict[str, Any], url: str | None = None) -> Prepared:
        """The request for ``context``: to ``url`` (a next page), else the operation's rendered URL."""
        op = self.operation
        context = dict(context)
        if url is None:
            url = self.rest.url(render(op.url, context, f"{self.what}: url"))
        context["url"] = url
        params = render_tree(op.params, context, f"{self.what}: params")
        headers = render_tree(op.headers, context, f"{self.what}: headers")
        params = _text_values(params if isinstance(params, dict) else {}, lists=True)
        headers = _text_values(headers if isinstance(headers, dict) else {}, lists=False)
        if self.since is not None and self.since_location != "manual" and not (
                op.url_variables & {"since", self.since_name}):
            (params if self.since_location == "query" else headers)[self.since_name] = _wire_text(self.since)
        context["params"] = context["request_params"] = params
        context["headers"] = context["request_headers"] = headers
        payload = self.payload
        if self.templated_payload:
            payload = render_tree(payload, context, f"{self.what}: payload")
            payload = None if payload is _SKIP else payload
        content, content_type = encode_payload(op.payload_type, payload, self.what)
        if content_type is not None:
            explicit = {name.lower() for name in headers} | set(self.rest.system.headers.keys())
            if "content-type" not in explicit or op.payload_type == "multipart-form":
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                headers["Content-Type"] = content_type
        return Prepared(op.method, url, params, headers, content)

    def send(self, request: Prepared) -> Reply:
        """Send ``request`` (retrying by the policies) and read its answer."""
        url = request.url  # httpx's params= would replace the query of a next-page link: merge them into it
        if request.params:
            url = str(httpx.URL(url).copy_merge_params(request.params))
        response = send(self.rest.link.client, request.method, url, policy=self.policy,
                        rate_limit=self.rest.rate_limit(self.operation), accept=self.accept, sleep=self.sleep,
                        headers=request.headers, content=request.content)
        raw = response.content
        content_type = response.headers.get("content-type", "")
        is_json = content_type.split(";", 1)[0].strip().lower() in self.rest.system.json_content_types
        body: Any
        if is_json:
            try:
                body = parse_plain(raw) if raw.strip() else None
            except msgspec.DecodeError as exc:
                raise TerminalError(f"{request.method} {response.url}: the answer is not valid JSON ({exc})",
                                    status=response.status_code) from None
        else:
            body = response.text
        values: dict[str, str] = {}
        for name, value in response.headers.raw:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            values[key] = f"{values[key]}, {text}" if key in values else text
        headers = ResponseHeaders(values)
        link = next((k for k in values if k.lower() == "link"), None)
        if link is not None:
            headers[link] = {str(rel): item.get("url") for rel, item in response.links.items()}
        return Reply(response.status_code, str(response.url), content_type, is_json, body, raw, headers, values)

    def pages(self) -> Iterator[Page]:
        """The pages of the operation's answer, each requested after the one before was used."""
        op = self.operation
        strategies = op.termination
        base = {**self.context, "page_size": op.page_size}
        previous: dict[str, Any] = {}
        url: str | None = None
        last_request: Prepared | None = None
        last_raw: bytes | None = None
        last_link: str | None = None
        number = 0
        while True:
            context = {**base, **previous, "page": number, "is_first_page": number == 0}
            request = self.prepare(context, url)
            if last_request is not None and "same-next-page-request" in strategies and request.key == last_request.key:
                return
            reply = self.send(request)
            if last_raw is not None and "same-response" in strategies and reply.raw == last_raw:
                return
            page_context = {**context, "url": request.url, "request_params": request.params,
                            "request_headers": request.headers, "body": reply.body, "headers": reply.headers,
                            "response_headers": reply.headers}
            page = Page(request, reply, page_context, number)
            yield page
            if op.get("next_page_link") is None:
                return
            found = len(items_of(extract(reply.body, self.rest.setting("payload_property", op)))) \
                if reply.is_json else (1 if reply.body else 0)
            if "empty-result" in strategies and (not found or not reply.raw.strip()):
                return
            if "not-full-page" in strategies and found < (op.page_size or 0):
                return
            link = render(op.get("next_page_link"), page_context, f"{self.what}: next_page_link").strip()
            if not link and "next-page-link-empty" in strategies:
                return
            if last_link is not None and "same-next-page-link" in strategies and link == last_link:
                return
            last_link, last_request, last_raw = link, request, reply.raw
            previous = {"previous_body": reply.body, "previous_request_headers": request.headers,
                        "previous_params": request.params, "previous_headers": reply.headers}
            url = self.rest.next_url(link, request.url) if link else None
            number += 1


def entity_context(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The variables an entity (typed) gives a template: its own keys, and ``entity``."""
    return {**{k: v for k, v in entity.items() if isinstance(k, str)}, "entity": entity}


def properties_of(rest: RestLink, operation: Operation, entity: Mapping[str, Any] | None) -> Any:
    """The ``properties`` for templates: the entity's, else the component's, else the operation's (typed)."""
    if entity is not None and isinstance(entity.get("properties"), dict):
        return entity["properties"]
    return storage.decode(rest.setting("properties", operation, {}))


def payload_of(rest: RestLink, operation: Operation, entity: Mapping[str, Any] | None) -> tuple[Any, bool]:
    """The payload (typed) and whether it is a template: the entity's, else the component's, else the
    operation's."""
    if entity is not None and "payload" in entity:
        return entity["payload"], False
    if "payload" in rest.config:
        return storage.decode(rest.config["payload"]), True
    if operation.get("payload") is not None:
        return storage.decode(operation.get("payload")), True
    return None, False
