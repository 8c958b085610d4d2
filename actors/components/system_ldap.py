"""The ``system:ldap`` system: an LDAP directory server reached through ``ldap3`` (node-spec 10.5), used by the
``ldap`` source.

Properties as in Sesam: ``host`` ("localhost"), ``port`` (389), ``use_ssl`` (LDAP over TLS from the first
byte, ``ldaps``; false), ``verify_ssl`` (check the server's certificate and host name when ``use_ssl``; true)
with an optional ``custom_ca_pem_chain``, ``username`` (the DN to bind as; none: an anonymous bind) and
``password`` (required with ``username``), ``charset`` ("latin-1": how text values that are not UTF-8 are
decoded; LDAPv3 servers send UTF-8, so it matters only for older ones), ``connect_timeout`` (seconds; 30) and
``read_timeout`` (seconds for each answer; 1800). ``$SECRET(...)`` and ``$ENV(...)`` references are
substituted by the node before the system sees its config.

The system owns its connections: :meth:`open` makes the ``ldap3`` server object (no network), and
:meth:`LdapSystem.connection` lends a bound connection, made and bound (simple bind) when no idle one is
left, and kept for the next read when the read went well (at most ``worker_threads`` idle ones);
:meth:`close` unbinds the idle connections, and a connection lent at the time is unbound when it comes
back. Binding also reads the server's schema, which the source uses to tell binary attributes from text.

Errors name the system and the server (``system 'dir' (ldap at host:389)``): a server that cannot be reached
(refused, timed out, lost) is a :class:`TransientError`, a refused bind (wrong DN or password) a
:class:`TerminalError` that says to check ``username`` and ``password`` (it never shows either), a system
that is not open (yet) is waited for up to 10 s, then a :class:`TransientError`. Passwords are never logged
nor shown in the status.
"""

from __future__ import annotations

import codecs
import logging
import math
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import ldap3
from ldap3.core import exceptions as ldap_errors

from ._errors import TerminalError, TransientError
from ._registry import ConfigError
from ._system_base import SECONDS, System, entity_path, seconds, system_type

__all__ = ["CONNECTION_ERRORS", "LdapSystem", "ldap_answer", "ldap_message"]

log = logging.getLogger("actors.components.system_ldap")

OPEN_WAIT = 10.0  # seconds a read waits for its system to open

LDAP_PROPERTIES: dict[str, Any] = {
    "host": {"type": "string", "minLength": 1, "default": "localhost"},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 389},
    "use_ssl": {"type": "boolean", "default": False, "description": "LDAP over TLS (ldaps)"},
    "verify_ssl": {"type": "boolean", "default": True, "description": "check the server's certificate"},
    "custom_ca_pem_chain": {"type": "string", "description": "CA certificates to trust"},
    "username": {"type": ["string", "null"], "description": "the DN to bind as (none: anonymous)"},
    "password": {"type": ["string", "null"]},
    "charset": {"type": "string", "minLength": 1, "default": "latin-1",
                "description": "the encoding of text values that are not UTF-8"},
    "connect_timeout": SECONDS,
    "read_timeout": SECONDS,
}

# errors of the connection itself (as opposed to an answer of the server)
CONNECTION_ERRORS = (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPSocketOpenError,
                     ldap_errors.LDAPSocketReceiveError, ldap_errors.LDAPSocketSendError,
                     ldap_errors.LDAPSessionTerminatedByServerError, ldap_errors.LDAPResponseTimeoutError,
                     ldap_errors.LDAPSocketCloseError, ldap_errors.LDAPStartTLSError, OSError)


@system_type("system:ldap", {"properties": LDAP_PROPERTIES})
class LdapSystem(System):
    """An LDAP server: TLS, the bind, the schema and a small pool of bound connections for the ldap source."""

    defaults: ClassVar[dict[str, Any]] = {"worker_threads": 10, "host": "localhost", "port": 389, "use_ssl": False,
                                          "verify_ssl": True, "charset": "latin-1", "connect_timeout": 30,
                                          "read_timeout": 1800}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.host: str = self.setting("host")
        self.port: int = self.setting("port")
        self.use_ssl: bool = self.setting("use_ssl")
        self.username: str | None = config.get("username") or None
        self.password: str | None = config.get("password")
        if self.username is not None and self.password is None:
            raise ConfigError("'password' is required when 'username' is set", where=entity_path())
        self.charset: str = self.setting("charset")
        try:
            codecs.lookup(self.charset)
        except LookupError:
            raise ConfigError(f"unknown charset {self.charset!r} (such as utf-8 or latin-1)",
                              where=entity_path("charset")) from None
        timeouts = {}
        for name in ("connect_timeout", "read_timeout"):
            try:
                timeouts[name] = seconds(self.setting(name))
            except ValueError:
                raise ConfigError("not a number of seconds", where=entity_path(name)) from None
        self.connect_timeout = timeouts["connect_timeout"]
        self.read_timeout = timeouts["read_timeout"]
        self.tls = self._tls() if self.use_ssl else None
        self.server: ldap3.Server | None = None
        self._idle: list[ldap3.Connection] = []
        self._lent = 0
        self._lock = threading.Lock()

    def _tls(self) -> ldap3.Tls:
        pem = self.config.get("custom_ca_pem_chain")
        if pem and self.setting("verify_ssl"):
            try:
                ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError):
                raise ConfigError("'custom_ca_pem_chain' is not a valid PEM certificate chain",
                                  where=entity_path("custom_ca_pem_chain")) from None
        if not self.setting("verify_ssl"):
            return ldap3.Tls(validate=ssl.CERT_NONE)
        return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_data=pem or None)

    def describe(self) -> str:
        """``system 'dir' (ldap at host:389)`` (``ldaps`` with ``use_ssl``), for messages."""
        return f"system '{self.id}' ({'ldaps' if self.use_ssl else 'ldap'} at {self.host}:{self.port})"

    # -- connections ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Make the server object (no network: connections are made when a read needs one)."""
        self.server = ldap3.Server(self.host, port=self.port, use_ssl=self.use_ssl, tls=self.tls,
                                   get_info=ldap3.SCHEMA, connect_timeout=self.connect_timeout)
        await super().open()

    async def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self.server = None
        try:
            for connection in idle:
                _unbind(connection)
        finally:
            await super().close()

    def ready_server(self) -> ldap3.Server:
        """The server object, once the system is open (called from worker threads: a pipe may run just after
        the config that made the system, so this waits for it up to 10 s, then is a TransientError)."""
        deadline = time.monotonic() + min(OPEN_WAIT, self.connect_timeout)
        while (server := self.server) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if server is None:
            raise TransientError(f"{self.describe()}: the system is not open (it is starting, or failed to open)")
        return server

    @contextmanager
    def connection(self) -> Iterator[ldap3.Connection]:
        """A bound connection for one read (from worker threads). It goes back to the idle ones when the block
        ends without an error, and is unbound otherwise (or when the system was closed meanwhile)."""
        server = self.ready_server()
        with self._lock:
            connection = self._idle.pop() if self._idle else None
            self._lent += 1
        healthy = False
        try:
            if connection is None or connection.closed:
                connection = self._bound(server)
            yield connection
            healthy = True
        finally:
            with self._lock:
                self._lent -= 1
                keep = (healthy and connection is not None and self.server is server and not connection.closed
                        and len(self._idle) < self.worker_threads)
                if keep:
                    self._idle.append(connection)  # type: ignore[arg-type]
            if not keep and connection is not None:
                _unbind(connection)

    def _bound(self, server: ldap3.Server) -> ldap3.Connection:
        what = self.describe()
        connection = ldap3.Connection(server, user=self.username, password=self.password,
                                      authentication=ldap3.SIMPLE if self.username else ldap3.ANONYMOUS,
                                      receive_timeout=max(1, math.ceil(self.read_timeout)),  # whole seconds
                                      raise_exceptions=False, check_names=False, read_only=True)
        try:
            bound = connection.bind()
        except CONNECTION_ERRORS as exc:
            _unbind(connection)
            raise TransientError(f"{what}: cannot connect: {ldap_message(exc)}") from None
        except ldap_errors.LDAPException as exc:
            _unbind(connection)
            raise TerminalError(f"{what}: the bind failed: {ldap_message(exc)}") from None
        if not bound:
            result = connection.result or {}
            _unbind(connection)
            answer = ldap_answer(result)
            if result.get("result") in (ldap3.core.results.RESULT_BUSY, ldap3.core.results.RESULT_UNAVAILABLE):
                raise TransientError(f"{what}: the server cannot take the bind now ({answer})")
            who = "the bind as 'username'" if self.username else "the anonymous bind"
            raise TerminalError(f"{what}: the server refused {who} ({answer}); check 'username' and 'password'")
        return connection

    def status(self) -> dict[str, Any]:
        with self._lock:
            idle, lent = len(self._idle), self._lent
        return {**super().status(), "host": self.host, "port": self.port, "use-ssl": self.use_ssl,
                "verify-ssl": bool(self.setting("verify_ssl")), "authentication": self.username is not None,
                "charset": self.charset, "connections": {"idle": idle, "in-use": lent}}


def ldap_answer(result: dict[str, Any]) -> str:
    """``invalidCredentials (49)``, with the server's message when it gave one."""
    text = f"{result.get('description') or 'error'} ({result.get('result')})"
    message = str(result.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def ldap_message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, TimeoutError | ldap_errors.LDAPResponseTimeoutError) and "time" not in text.lower():
        return f"timed out ({text})"
    return text


def _unbind(connection: ldap3.Connection) -> None:
    try:
        connection.unbind()
    except (ldap_errors.LDAPException, OSError) as exc:
        log.debug("unbinding failed: %s", exc)
