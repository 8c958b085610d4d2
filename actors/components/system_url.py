"""The ``system:url`` system: a pooled ``httpx.Client`` for an HTTP server (node-spec 10.1).

Components use the synchronous ``client`` (they run in the pump's worker thread), through
:func:`actors.components._http.send` for retries. ``url(relative)`` makes absolute URLs: ``url_pattern``
with ``%s`` inserts the relative URL there, without ``%s`` appends it; the deprecated ``base_url``
URL-joins it. The client carries the default ``headers``, the ``authentication`` (``basic``/``digest`` with
``username``/``password``, ``jwt`` as a Bearer header), ``verify_ssl`` (off by default, with an optional
``custom_ca_pem_chain``), the connect/read timeouts and ``proxies``; it opens at most ``worker_threads``
connections. ``oauth2``, ``tripletex``, ``ntlm`` and ``ignore_invalid_content_length_response_header`` are
validated but not implemented yet (listed under ``unsupported`` in the status). ``retry_strategy`` gives
the request retries of the components using the system (:meth:`RetryPolicy.of
<actors.components._http.RetryPolicy.of>`: ``max_read_retries``, ``read_retry_delay``, ``batch_retries``,
``write_retry_delay`` per status; a status it names is retried even when it is a 4xx); its write-error keys
(``max_retries_per_entity`` and the like) are listed under ``unsupported``. The environment
(``HTTP_PROXY``, netrc) is not consulted.
"""

from __future__ import annotations

import ssl
from typing import Any, ClassVar
from urllib.parse import urljoin

import httpx

from ._errors import TransientError
from ._registry import ConfigError
from ._system_base import SECONDS, System, entity_path, seconds, system_type

__all__ = ["UrlSystem"]

AUTHENTICATION = ["basic", "digest", "ntlm", "tripletex", "jwt"]
RETRY_KEYS = ["max_read_retries", "read_retry_delay", "write_retry_delay", "max_retries_per_entity",
              "max_consecutive_write_errors", "max_write_errors_in_retry_dataset", "batch_retries"]
PUMP_LEVEL_RETRY_KEYS = frozenset(RETRY_KEYS) - {"max_read_retries", "read_retry_delay", "write_retry_delay",
                                                "batch_retries"}  # the pump's write-error handling
STATUS_EXPRESSION = r"^(default|[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*)$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

URL_PROPERTIES: dict[str, Any] = {
    "url_pattern": {"type": "string", "minLength": 1},
    "base_url": {"type": "string", "minLength": 1},
    "verify_ssl": {"type": "boolean"},
    "custom_ca_pem_chain": {"type": "string"},
    "authentication": {"enum": AUTHENTICATION},
    "username": {"type": "string"},
    "password": {"type": "string"},
    "jwt_token": {"type": "string", "minLength": 1},
    "headers": STRING_MAP,
    "oauth2": {"type": "object", "additionalProperties": False, "properties": {
        "client_id": {"type": "string"}, "client_secret": {"type": "string"}, "token_url": {"type": "string"},
        "access_token": {"type": "string"}, "refresh_token": {"type": "string"}, "refresh_window": SECONDS,
        "scope": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "extra": {"type": "object"},
    }},
    "tripletex": {"type": "object", "additionalProperties": False, "properties": {
        "consumer_token": {"type": "string"}, "employee_token": {"type": "string"},
        "token_url": {"type": "string"}, "ttl": SECONDS,
    }},
    "proxies": STRING_MAP,
    "connect_timeout": SECONDS,
    "read_timeout": SECONDS,
    "ignore_invalid_content_length_response_header": {"type": "boolean"},
    "retry_strategy": {
        "type": "object",
        "propertyNames": {"pattern": STATUS_EXPRESSION},
        "additionalProperties": {"type": "object", "additionalProperties": False,
                                 "properties": {key: {"type": "integer", "minimum": 0} for key in RETRY_KEYS}},
    },
}


@system_type("system:url", {"properties": URL_PROPERTIES, "allOf": [
    {"if": {"required": ["authentication"], "properties": {"authentication": {"const": "jwt"}}},
     "then": {"required": ["jwt_token"]}},
]})
class UrlSystem(System):
    """An HTTP server: session handling, connection pooling and authentication for sources and sinks."""

    defaults: ClassVar[dict[str, Any]] = {"worker_threads": 10, "verify_ssl": False, "connect_timeout": 60,
                                          "read_timeout": 1800,
                                          "ignore_invalid_content_length_response_header": False}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.client: httpx.Client | None = None
        self.transport: httpx.BaseTransport | None = None  # set before open() to replace the network
        self._check_urls()
        self.auth = self._auth()
        self.headers = httpx.Headers(config.get("headers") or {})
        if self.setting("authentication") == "jwt":
            self.headers["Authorization"] = f"Bearer {config['jwt_token']}"
        self.verify = self._verify()
        self.timeout = httpx.Timeout(connect=seconds(self.setting("connect_timeout")),
                                     read=seconds(self.setting("read_timeout")),
                                     write=seconds(self.setting("read_timeout")),
                                     pool=seconds(self.setting("read_timeout")))
        self.limits = httpx.Limits(max_connections=self.worker_threads,
                                   max_keepalive_connections=self.worker_threads)
        self.proxies = self._proxies()
        self.unsupported = sorted(
            {name for name in ("oauth2", "tripletex") if name in config}
            | ({f"authentication:{config['authentication']}"} if config.get("authentication") in
               ("ntlm", "tripletex") else set())
            | ({"ignore_invalid_content_length_response_header"}
               if config.get("ignore_invalid_content_length_response_header") else set())
            | {f"retry_strategy:{key}" for values in (config.get("retry_strategy") or {}).values()
               for key in values if key in PUMP_LEVEL_RETRY_KEYS})

    # -- config ------------------------------------------------------------------------------------

    def _check_urls(self) -> None:
        if "url_pattern" not in self.config and "base_url" not in self.config:
            raise ConfigError("one of 'url_pattern' and 'base_url' is required", where=entity_path())
        for name in ("url_pattern", "base_url"):
            if name in self.config:
                url = _parse(self.config[name])
                if url is None or url.scheme not in ("http", "https") or not url.host:
                    raise ConfigError(f"'{name}' must be an absolute http or https URL", where=entity_path(name))

    def _auth(self) -> httpx.Auth | None:
        config = self.config
        if "username" in config and "password" not in config:
            raise ConfigError("'password' is required when 'username' is set", where=entity_path())
        method = config.get("authentication")
        if method in ("basic", "digest"):
            if "username" not in config:
                raise ConfigError(f"authentication '{method}' needs 'username' and 'password'", where=entity_path())
            kind = httpx.BasicAuth if method == "basic" else httpx.DigestAuth
            return kind(config["username"], config["password"])
        if method == "jwt" and "oauth2" in config:
            raise ConfigError("'oauth2' cannot be combined with authentication 'jwt'", where=entity_path("oauth2"))
        return None

    def _verify(self) -> ssl.SSLContext | bool:
        if not self.setting("verify_ssl"):
            return False
        pem = self.config.get("custom_ca_pem_chain")
        if not pem:
            return True
        try:
            return ssl.create_default_context(cadata=pem)
        except (ssl.SSLError, ValueError):
            raise ConfigError("'custom_ca_pem_chain' is not a valid PEM certificate chain",
                              where=entity_path("custom_ca_pem_chain")) from None

    def _proxies(self) -> dict[str, str]:
        proxies: dict[str, str] = {}
        for prefix, proxy in (self.config.get("proxies") or {}).items():
            scheme = proxy.split("://", 1)[0].lower() if "://" in proxy else ""
            if scheme not in ("http", "https"):
                raise ConfigError("only http:// and https:// proxies are supported (not socks)",
                                  where=entity_path("proxies", prefix))
            proxies[prefix if "://" in prefix else f"{prefix}://"] = proxy
        return proxies

    # -- use ---------------------------------------------------------------------------------------

    def url(self, relative: str = "") -> str:
        """The absolute URL of ``relative`` (see the module docstring for the rules)."""
        pattern = self.config.get("url_pattern")
        if pattern is not None:
            return pattern.replace("%s", relative) if "%s" in pattern else pattern + relative
        return urljoin(self.config["base_url"], relative)

    def make_client(self) -> httpx.Client:
        """A new client with this system's settings (``open`` keeps one as ``client``)."""
        mounts: dict[str, httpx.BaseTransport | None] | None = None
        if self.proxies and self.transport is None:
            mounts = {prefix: httpx.HTTPTransport(verify=self.verify, limits=self.limits, proxy=proxy,
                                                  trust_env=False)
                      for prefix, proxy in self.proxies.items()}
        return httpx.Client(auth=self.auth, headers=self.headers, verify=self.verify, timeout=self.timeout,
                            limits=self.limits, transport=self.transport, mounts=mounts, trust_env=False)

    @property
    def http(self) -> httpx.Client:
        """The open client; a :class:`TransientError` while the system is not open (starting, reloading)."""
        client = self.client
        if client is None:
            raise TransientError(f"system '{self.id}' is not open")
        return client

    async def open(self) -> None:
        self.client = self.make_client()
        await super().open()

    async def close(self) -> None:
        client, self.client = self.client, None
        try:
            if client is not None:
                client.close()
        finally:
            await super().close()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "authentication": self.config.get("authentication"),
                "verify-ssl": self.verify is not False, "max-connections": self.worker_threads,
                "unsupported": self.unsupported}


def _parse(pattern: str) -> httpx.URL | None:
    try:
        return httpx.URL(pattern.replace("%s", ""))
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
