"""The ``system:smtp`` system: an SMTP server to send mail through (node-spec 10.5), used by the ``mail`` sink.

Properties as in Sesam: ``smtp_server`` ("localhost"), ``smtp_port`` (25), ``smtp_username`` and
``smtp_password`` (AUTH when a username is set; a username without a password is a :class:`ConfigError`),
``use_tls`` (STARTTLS after the greeting; false) and ``max_per_hour`` (1000). sesamd extensions: ``use_ssl``
(implicit TLS from the first byte, as on port 465; false; it cannot be combined with ``use_tls``), ``timeout``
(seconds for connecting and for each answer; 30), ``verify_ssl`` (check the server's certificate and host
name; false, as Python's ``smtplib`` and so Sesam do by default) with an optional ``custom_ca_pem_chain``.
``$SECRET(...)`` and ``$ENV(...)`` references are substituted by the node before the system sees its config.

Building and :meth:`open` touch no network: :meth:`SmtpSystem.connect` opens a fresh connection (the sink
opens one per batch) as a :class:`SmtpSession`, which sends :class:`email.message.EmailMessage` objects.

Errors are component errors that say whose fault they are. Everything before the first message can be sent
(no connection, a refused connection, a timeout, a greeting other than 220, STARTTLS or the login failing)
and a connection lost on the way (``SMTPServerDisconnected``, a reset, a 421 answer) is a
:class:`TransientError` without a status whose message says "cannot reach smtp server host:port": the
write-error policy takes that as the system being unreachable, fails the run at once and blames no entity.
An answer to one message (the sender, its recipients or its data refused) is an error with the SMTP code as
its ``status``: a 4xx is a :class:`TransientError`, a 5xx a :class:`TerminalError`. A message that some but
not all of its recipients took counts as sent (the refused ones are logged): sending it again would mail the
others twice.

``max_per_hour`` stops run-away sending (in Sesam's words): the system counts the messages sent in the last
hour, and a message past the limit is not sent but logged and discarded (:meth:`SmtpSystem.take_slot`).
``null`` turns the limit off (a sesamd extension). The count is the system's, shared by all sinks using it,
and starts again when the system is rebuilt.

Passwords are never logged nor shown in the status; error messages do not name the username either, since
it may be a secret too.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from collections import deque
from email.message import EmailMessage
from typing import Any, ClassVar

from ._errors import ComponentError, TerminalError, TransientError
from ._registry import ConfigError
from ._system_base import SECONDS, System, entity_path, seconds, system_type

__all__ = ["SmtpSession", "SmtpSystem"]

log = logging.getLogger("actors.components.system_smtp")

HOUR = 3600.0

SMTP_PROPERTIES: dict[str, Any] = {
    "smtp_server": {"type": "string", "minLength": 1, "default": "localhost"},
    "smtp_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 25},
    "smtp_username": {"type": ["string", "null"]},
    "smtp_password": {"type": ["string", "null"]},
    "use_tls": {"type": "boolean", "default": False, "description": "STARTTLS after the greeting"},
    "use_ssl": {"type": "boolean", "default": False, "description": "implicit TLS (sesamd)"},
    "verify_ssl": {"type": "boolean", "default": False, "description": "check the certificate (sesamd)"},
    "custom_ca_pem_chain": {"type": "string", "description": "CA certificates to trust (sesamd)"},
    "timeout": {**SECONDS, "description": "seconds to connect and for each answer (sesamd)"},
    "max_per_hour": {"type": ["integer", "null"], "minimum": 0, "default": 1000},
}


@system_type("system:smtp", {"properties": SMTP_PROPERTIES})
class SmtpSystem(System):
    """An SMTP server: connections (STARTTLS or implicit TLS, AUTH) and the ``max_per_hour`` limit."""

    defaults: ClassVar[dict[str, Any]] = {"worker_threads": 10, "smtp_server": "localhost", "smtp_port": 25,
                                          "use_tls": False, "use_ssl": False, "verify_ssl": False, "timeout": 30,
                                          "max_per_hour": 1000}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.host: str = self.setting("smtp_server")
        self.port: int = self.setting("smtp_port")
        self.username: str | None = config.get("smtp_username") or None
        self.password: str | None = config.get("smtp_password")
        if self.username is not None and self.password is None:
            raise ConfigError("'smtp_password' is required when 'smtp_username' is set", where=entity_path())
        self.use_tls: bool = self.setting("use_tls")
        self.use_ssl: bool = self.setting("use_ssl")
        if self.use_tls and self.use_ssl:
            raise ConfigError("'use_tls' (STARTTLS) and 'use_ssl' (implicit TLS) cannot both be true",
                              where=entity_path("use_ssl"))
        try:
            self.timeout = seconds(self.setting("timeout"))
        except ValueError:
            raise ConfigError("not a number of seconds", where=entity_path("timeout")) from None
        self.max_per_hour: int | None = config.get("max_per_hour", 1000)
        self.ssl_context = self._ssl_context()
        self._sent: deque[float] = deque()  # monotonic times of the messages sent in the last hour
        self._lock = threading.Lock()

    def _ssl_context(self) -> ssl.SSLContext:
        if not self.setting("verify_ssl"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        pem = self.config.get("custom_ca_pem_chain")
        try:
            return ssl.create_default_context(cadata=pem) if pem else ssl.create_default_context()
        except (ssl.SSLError, ValueError):
            raise ConfigError("'custom_ca_pem_chain' is not a valid PEM certificate chain",
                              where=entity_path("custom_ca_pem_chain")) from None

    def describe(self) -> str:
        """``smtp server host:port``, for messages."""
        return f"smtp server {self.host}:{self.port}"

    # -- the hourly limit ------------------------------------------------------------------------------

    def take_slot(self) -> bool:
        """Whether one more message may be sent under ``max_per_hour``; True counts it as sent."""
        if self.max_per_hour is None:
            return True
        now = time.monotonic()
        with self._lock:
            while self._sent and now - self._sent[0] >= HOUR:
                self._sent.popleft()
            if len(self._sent) >= self.max_per_hour:
                return False
            self._sent.append(now)
            return True

    def sent_last_hour(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(1 for t in self._sent if now - t < HOUR)

    # -- connections -----------------------------------------------------------------------------------

    def connect(self) -> SmtpSession:
        """A new connection, greeted, with STARTTLS and the login done; a :class:`TransientError` without a
        status (the server cannot be reached) when any of that fails."""
        where = self.describe()
        try:
            if self.use_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                      context=self.ssl_context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:
            raise TransientError(f"cannot reach {where}: its greeting was {_answer(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot reach {where}: {_reason(exc)}") from None
        stage = "the greeting"
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.use_tls:
                stage = "STARTTLS (use_tls)"
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username is not None:
                stage = "the login (smtp_username/smtp_password)"
                assert self.password is not None
                smtp.login(self.username, self.password)
        except smtplib.SMTPNotSupportedError as exc:
            _close(smtp)
            raise TransientError(f"cannot reach {where}: it does not support {stage}: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            _close(smtp)
            raise TransientError(f"cannot reach {where}: it refused {stage}: {_answer(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            _close(smtp)
            raise TransientError(f"cannot reach {where}: {stage} failed: {_reason(exc)}") from None
        return SmtpSession(smtp, where)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "smtp-server": self.host, "smtp-port": self.port, "use-tls": self.use_tls,
                "use-ssl": self.use_ssl, "verify-ssl": bool(self.setting("verify_ssl")),
                "authentication": self.username is not None, "max-per-hour": self.max_per_hour,
                "sent-last-hour": self.sent_last_hour()}


class SmtpSession:
    """One open connection to the server (a context manager that quits it)."""

    def __init__(self, smtp: smtplib.SMTP, where: str) -> None:
        self.smtp = smtp
        self.where = where

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            _close(self.smtp)

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        """Send ``message`` from ``sender`` (the envelope's MAIL FROM) to ``recipients``; returns the refused
        recipients when some (not all) were refused; raises a :class:`ComponentError` (module docstring)."""
        where = self.where
        try:
            return self.smtp.send_message(message, sender, recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            answers = {r: (code, _text(text)) for r, (code, text) in exc.recipients.items()}
            code = max(code for code, _ in answers.values()) if answers else 550
            details = "; ".join(f"{r}: {c} {t}".rstrip() for r, (c, t) in answers.items())
            raise _coded(code, where, f"{where} refused the recipients: {details}") from None
        except smtplib.SMTPSenderRefused as exc:
            raise _coded(exc.smtp_code, where, f"{where} refused the sender {exc.sender!r}: {_answer(exc)}") from None
        except smtplib.SMTPDataError as exc:
            raise _coded(exc.smtp_code, where, f"{where} refused the message: {_answer(exc)}") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise TransientError(f"cannot reach {where}: the connection was lost ({_reason(exc)})") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise TerminalError(f"{where} cannot take the message: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise _coded(exc.smtp_code, where, f"{where} answered {_answer(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot reach {where}: {_reason(exc)}") from None


def _coded(code: int, where: str, message: str) -> ComponentError:
    """The error of an SMTP answer: 4xx transient, 5xx terminal, with the code as status; a 421 (the server
    closes the connection) or an answer that is no code is the server being unreachable (no status)."""
    if code == 421 or not 400 <= code < 600:
        return TransientError(f"cannot reach {where}: {message}")
    kind = TransientError if code < 500 else TerminalError
    return kind(message, status=code)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _answer(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}".rstrip()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out" if text == "timed out" else f"timed out ({text})"
    return text


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass
