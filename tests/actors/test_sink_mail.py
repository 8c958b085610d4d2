"""The ``mail`` sink (node-spec 8.11) and the ``system:smtp`` system (10.5) against a real local SMTP server
(aiosmtpd) the tests start: one message per entity from Jinja2 templates (config or entity properties),
recipients, deleted entities skipped, unhandled template variables, write errors for entities that fail
(strict templates, refused recipients) without mailing the others twice, an unreachable server failing the
run, ``max_per_hour``, AUTH, STARTTLS and implicit TLS, and config errors."""

from __future__ import annotations

import datetime as _dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from actors import ConfigError, Datasets, PipeRunError, build_runner
from actors.components import TerminalError, TransientError, build_system
from actors.components.sink_mail import html_to_text
from actors.components.system_smtp import SmtpSystem

LOG = "system:pump_execution:out"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    """An aiosmtpd handler that records each message (``(envelope from, recipients, message)``) and answers
    550 to the recipients in ``refused``."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refused: set[str] = set()
        self.logins: list[tuple[str, str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refused:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == ("mailer", "s3cret"), handled=False)

    def by_subject(self) -> dict[str, EmailMessage]:
        return {str(m["Subject"]): m for _, _, m in self.messages}


class MailServer:
    """A running aiosmtpd server on 127.0.0.1 and its recorder."""

    def __init__(self, **smtp: Any) -> None:
        self.recorder = Recorder()
        if smtp.pop("auth", False):
            smtp.update(authenticator=self.recorder.authenticate, auth_require_tls=False)
        self.port = free_port()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **smtp)

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.recorder.messages

    def system(self, **extra: Any) -> SmtpSystem:
        system = build_system({"_id": "mail", "type": "system:smtp", "smtp_server": "127.0.0.1",
                               "smtp_port": self.port, "timeout": 5, **extra})
        assert isinstance(system, SmtpSystem)
        return system


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as running:
        yield running


def sink_pipe(sink: dict[str, Any], pipe_id: str = "out", **pump: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "batch_size": 50, "source": {"type": "dataset", "dataset": "src"},
            "sink": {"type": "mail", "system": "mail", "mail_from": "Sesam <node@example.com>", **sink},
            "pump": {"batch_retries": 0, **pump}}


class Pipes:
    """An embedded source pipe feeding dataset ``src``, and a mail sink pipe reading it."""

    def __init__(self, datasets: Datasets, system: Any, sink: dict[str, Any], pipe_id: str = "out",
                 **pump: Any) -> None:
        self.datasets = datasets
        systems = {} if system is None else {"mail": system}
        self.out = build_runner(sink_pipe(sink, pipe_id, **pump), datasets, systems=systems)

    def feed(self, entities: list[dict[str, Any]]) -> Any:
        build_runner({"_id": "src", "type": "pipe", "source": {"type": "embedded", "entities": entities}},
                     self.datasets).run()
        return self.out.run()


def parts(message: EmailMessage) -> tuple[str | None, str | None]:
    """The message's (HTML, plain text) bodies, with ``\n`` line ends."""
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    return (None if html is None else html.get_content().replace("\r\n", "\n"),  # type: ignore[attr-defined]
            None if text is None else text.get_content().replace("\r\n", "\n"))  # type: ignore[attr-defined]


def log_entity(datasets: Datasets, entity_id: str) -> dict[str, Any] | None:
    dataset = datasets.get(LOG)
    return None if dataset is None else dataset.get(entity_id)


ORDERS = [
    {"_id": "o1", "name": "Ann", "price": "~f1.50", "when": "~t2024-01-15T10:00:00Z", "paid": True, "note": None},
    {"_id": "o2", "name": "Bob & Co", "price": "~f20", "when": "~t2024-02-29", "paid": False, "note": "~~tilde"},
]
TEMPLATES = {"subject_template": "Order {{ _id }}\nfor {{ name }}",
             "body_template": "<p>{{ name }} pays <b>{{ price }}</b> on {{ when }}</p>",
             "text_body_template": "{{ name }} pays {{ price * 2 / 2 }} (paid: {{ paid }}, note: {{ note }})"}


# -- messages -------------------------------------------------------------------------------------------------


def test_one_mail_per_entity_from_the_templates(server: MailServer, datasets: Datasets) -> None:
    pipes = Pipes(datasets, server.system(),
                  {**TEMPLATES, "recipients": "boss@example.com, Ann Admin <ann@example.com>"})
    result = pipes.feed(ORDERS)
    assert result.changes == 2 and result.write_errors == 0
    assert len(server.messages) == 2
    for sender, recipients, _message in server.messages:
        assert sender == "node@example.com"
        assert recipients == ["boss@example.com", "ann@example.com"]
    messages = server.recorder.by_subject()
    assert sorted(messages) == ["Order o1 for Ann", "Order o2 for Bob & Co"]  # the line break became a space
    first = messages["Order o1 for Ann"]
    assert first["From"] == "Sesam <node@example.com>"
    assert first["To"] == "boss@example.com, Ann Admin <ann@example.com>"
    assert first["Message-ID"] and first["Date"]
    assert first.get_content_type() == "multipart/alternative"
    html, text = parts(first)
    assert html is not None and html.strip() == "<p>Ann pays <b>1.50</b> on 2024-01-15T10:00:00Z</p>"
    assert text is not None and text.strip() == "Ann pays 1.50 (paid: true, note: )"  # decimals compute
    html, text = parts(messages["Order o2 for Bob & Co"])
    assert html is not None and "Bob & Co pays <b>20</b> on 2024-02-29" in html  # not HTML-escaped
    assert text is not None and text.strip() == "Bob & Co pays 20 (paid: false, note: ~tilde)"


def test_deleted_entities_are_not_mailed(server: MailServer, datasets: Datasets) -> None:
    pipes = Pipes(datasets, server.system(), {**TEMPLATES, "recipients": "boss@example.com"})
    assert pipes.feed(ORDERS).changes == 2
    result = pipes.feed(ORDERS[:1])  # a full run of the source without o2 deletes it
    assert result.changes == 0 and result.write_errors == 0
    assert len(server.messages) == 2  # nothing new: o1 did not change, o2's deletion is not mailed
    assert pipes.out.run().changes == 0


def test_recipients_and_templates_from_entity_properties(server: MailServer, datasets: Datasets) -> None:
    pipes = Pipes(datasets, server.system(), {
        "recipients_property": "to", "subject_template_property": "subject", "body_template_property": "html"})
    pipes.feed([
        {"_id": "a", "to": ["x@example.com", "Why <y@example.com>"], "subject": "Hi {{ first }}", "first": "Xe",
         "html": "<h1>Hello {{ first }}</h1><ul><li>one</li><li>two</li></ul><a href='https://e.org'>more</a>"},
        {"_id": "b", "to": "z@example.com;w@example.com", "subject": "Bye {{ _id }}", "html": "<p>{{ _id }}</p>"},
    ])
    assert [(m[1], str(m[2]["Subject"])) for m in server.messages] == [
        (["x@example.com", "y@example.com"], "Hi Xe"), (["z@example.com", "w@example.com"], "Bye b")]
    html, text = parts(server.messages[0][2])
    assert html is not None and html.startswith("<h1>Hello Xe</h1>")
    assert text == "Hello Xe\n\n- one\n- two\n\nmore (https://e.org)\n"  # made from the HTML
    assert server.messages[1][2]["To"] == "z@example.com, w@example.com"


def test_non_ascii_names_subjects_and_bodies(server: MailServer, datasets: Datasets) -> None:
    pipes = Pipes(datasets, server.system(), {"recipients": "Åse Ødegård <ase@example.com>",
                                              "subject_template": "Hei {{ name }} ✓",
                                              "body_template": "<p>{{ name }}</p>"})
    pipes.feed([{"_id": "1", "name": "Bjørn"}])
    (_, recipients, message), = server.messages
    assert recipients == ["ase@example.com"]
    assert str(message["To"]) == "Åse Ødegård <ase@example.com>" and str(message["Subject"]) == "Hei Bjørn ✓"
    assert parts(message) == ("<p>Bjørn</p>\n", "Bjørn\n")


def test_static_recipients_are_the_fallback_of_recipients_property(server: MailServer, datasets: Datasets) -> None:
    pipes = Pipes(datasets, server.system(), {"recipients": ["team@example.com"], "recipients_property": "to",
                                              "subject_template": "s {{ _id }}", "text_body_template": "t"})
    pipes.feed([{"_id": "a", "to": "own@example.com"}, {"_id": "b"}])
    assert [m[1] for m in server.messages] == [["own@example.com"], ["team@example.com"]]
    message = server.messages[0][2]
    assert message.get_content_type() == "text/plain" and message.get_content().strip() == "t"  # type: ignore


@pytest.mark.parametrize(("mode", "expected"), [
    (None, "Hello {{missing}} / {{gone.deeper}} / Ann"),
    ("debug", "Hello {{missing}} / {{gone.deeper}} / Ann"),
    ("empty_string", "Hello  /  / Ann"),
])
def test_unhandled_template_variables(server: MailServer, datasets: Datasets, mode: str | None,
                                      expected: str) -> None:
    sink = {"recipients": "a@example.com", "subject_template": "s",
            "text_body_template": "Hello {{ missing }} / {{ gone.deeper }} / {{ name }}"}
    if mode is not None:
        sink["unhandled_template_variable_replacement"] = mode
    Pipes(datasets, server.system(), sink).feed([{"_id": "1", "name": "Ann"}])
    assert server.messages[0][2].get_content().strip() == expected  # type: ignore[attr-defined]


# -- write errors -----------------------------------------------------------------------------------------------


def test_strict_templates_fail_the_entity_into_a_write_error(server: MailServer, datasets: Datasets) -> None:
    pipes = Pipes(datasets, server.system(), {
        "recipients": "a@example.com", "subject_template": "About {{ name }}", "text_body_template": "{{ age }}",
        "unhandled_template_variable_replacement": "strict"}, max_consecutive_write_errors=5)
    result = pipes.feed([{"_id": "1", "name": "Ann", "age": 3}, {"_id": "2", "age": 4},
                         {"_id": "3", "name": "Cid", "age": 5}])
    assert result.write_errors == 1
    assert sorted(str(m[2]["Subject"]) for m in server.messages) == ["About Ann", "About Cid"]  # each once
    error = log_entity(datasets, "write-error:2")
    assert error is not None and error["event_type"] == "write-error" and error["error_code"] == 1
    assert "'name' is undefined" in error["original_error_message"]
    assert "subject_template" in error["original_error_message"] and "strict" in error["original_error_message"]
    assert error["entity"]["_id"] == "2"
    assert log_entity(datasets, "write-error:1") is None


def test_a_refused_recipient_is_a_terminal_write_error(server: MailServer, datasets: Datasets) -> None:
    server.recorder.refused = {"nobody@example.com"}
    sink = {"recipients_property": "to", "subject_template": "{{ _id }}", "body_template": "<p>hi</p>"}
    entities = [{"_id": "a", "to": "x@example.com"}, {"_id": "b", "to": "nobody@example.com"},
                {"_id": "c", "to": "y@example.com"}]
    result = Pipes(datasets, server.system(), sink, max_consecutive_write_errors=5).feed(entities)
    assert result.write_errors == 1
    # a was sent before b failed the batch; the fallback to single entities does not send it again
    assert [str(m[2]["Subject"]) for m in server.messages] == ["a", "c"]
    error = log_entity(datasets, "write-error:b")
    assert error is not None and error["error_code"] == 1
    assert "550" in error["original_error_message"] and "nobody@example.com" in error["original_error_message"]


def test_by_default_a_refused_recipient_fails_the_run(server: MailServer, datasets: Datasets) -> None:
    server.recorder.refused = {"nobody@example.com"}
    pipes = Pipes(datasets, server.system(), {"recipients": "nobody@example.com", "subject_template": "s",
                                              "text_body_template": "t"})
    with pytest.raises(PipeRunError, match=r"writing entity '1' failed: .*refused the recipients.*550") as failure:
        pipes.feed([{"_id": "1"}])
    assert isinstance(failure.value.__cause__, TerminalError) and failure.value.__cause__.status == 550


def test_an_unreachable_server_fails_the_run(datasets: Datasets) -> None:
    port = free_port()  # nothing listens there
    system = build_system({"_id": "mail", "type": "system:smtp", "smtp_server": "127.0.0.1", "smtp_port": port,
                           "timeout": 2})
    pipes = Pipes(datasets, system, {"recipients": "a@example.com", "subject_template": "s",
                                     "text_body_template": "t"}, max_consecutive_write_errors=5)
    with pytest.raises(PipeRunError, match=f"cannot reach smtp server 127.0.0.1:{port}") as failure:
        pipes.feed([{"_id": "1"}, {"_id": "2"}])
    assert isinstance(failure.value.__cause__, TransientError) and failure.value.__cause__.status is None
    error = log_entity(datasets, "write-error:1")
    assert error is not None and error["error_code"] == 0  # the system, not the entity, failed
    assert log_entity(datasets, "write-error:2") is None


def test_transient_failures_are_retried(server: MailServer, datasets: Datasets, monkeypatch: Any) -> None:
    system = server.system()
    real = system.connect
    calls: list[int] = []

    def flaky() -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("cannot reach smtp server: a fluke")
        return real()

    monkeypatch.setattr(system, "connect", flaky)
    pipes = Pipes(datasets, system, {"recipients": "a@example.com", "subject_template": "{{ _id }}",
                                     "text_body_template": "t"}, batch_retries=2, write_retry_delay=0)
    assert pipes.feed([{"_id": "1"}, {"_id": "2"}]).changes == 2
    assert len(calls) == 2 and [str(m[2]["Subject"]) for m in server.messages] == ["1", "2"]


def test_max_per_hour_discards_the_messages_past_it(server: MailServer, datasets: Datasets) -> None:
    system = server.system(max_per_hour=2)
    pipes = Pipes(datasets, system, {"recipients": "a@example.com", "subject_template": "{{ _id }}",
                                     "text_body_template": "t"})
    result = pipes.feed([{"_id": str(i)} for i in range(4)])
    assert result.write_errors == 0 and result.changes == 2
    assert [str(m[2]["Subject"]) for m in server.messages] == ["0", "1"]
    assert system.status()["sent-last-hour"] == 2 and system.status()["max-per-hour"] == 2


# -- authentication and TLS -------------------------------------------------------------------------------------


def test_auth_logs_in_and_a_wrong_password_fails_the_run(datasets: Datasets) -> None:
    sink = {"recipients": "a@example.com", "subject_template": "s", "text_body_template": "t"}
    with MailServer(auth=True) as server:
        Pipes(datasets, server.system(smtp_username="mailer", smtp_password="s3cret"), sink).feed([{"_id": "1"}])
        assert server.recorder.logins == [("mailer", "s3cret")] and len(server.messages) == 1
        wrong = Pipes(datasets, server.system(smtp_username="mailer", smtp_password="nope"), sink, "wrong")
        with pytest.raises(PipeRunError, match=r"cannot reach smtp server .*refused the login") as failure:
            wrong.out.run()
        assert len(server.messages) == 1
    assert "nope" not in str(failure.value)


def make_certificate(directory: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file, PEM text)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = _dt.datetime.now(_dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(days=1))
                   .not_valid_after(now + _dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_text(pem)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, pem


def server_context(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    cert_file, key_file, pem = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, pem


def test_starttls_with_and_without_certificate_checks(tmp_path: Path, datasets: Datasets) -> None:
    context, pem = server_context(tmp_path)
    sink = {"recipients": "a@example.com", "subject_template": "{{ _id }}", "text_body_template": "t"}
    with MailServer(tls_context=context, require_starttls=True) as server:
        Pipes(datasets, server.system(use_tls=True), sink).feed([{"_id": "1"}])
        checked = Pipes(datasets, server.system(use_tls=True, verify_ssl=True, custom_ca_pem_chain=pem), sink,
                        "checked")
        checked.out.run()  # a pipe of its own: it sends 1 again
        untrusted = Pipes(datasets, server.system(use_tls=True, verify_ssl=True), sink, "untrusted")
        with pytest.raises(PipeRunError, match=r"cannot reach smtp server .*STARTTLS"):
            untrusted.out.run()
    assert [str(m[2]["Subject"]) for m in server.messages] == ["1", "1"]


def test_implicit_tls(tmp_path: Path, datasets: Datasets) -> None:
    context, _ = server_context(tmp_path)
    sink = {"recipients": "a@example.com", "subject_template": "{{ _id }}", "text_body_template": "t"}
    with MailServer(ssl_context=context) as server:
        Pipes(datasets, server.system(use_ssl=True), sink).feed([{"_id": "1"}])
    assert [str(m[2]["Subject"]) for m in server.messages] == ["1"]


# -- config -----------------------------------------------------------------------------------------------------


BASE = {"recipients": "a@example.com", "subject_template": "s", "text_body_template": "t"}


@pytest.mark.parametrize(("sink", "where", "message"), [
    ({"system": None}, "sink", "'system' is a required property"),
    ({"mail_from": None}, "sink", "'mail_from' is a required property"),
    ({"mail_from": "not an address"}, "sink.mail_from", "not an email address"),
    ({"recipients": None}, "sink.recipients", "one of 'recipients' and 'recipients_property' is required"),
    ({"recipients": "a@example.com, oops"}, "sink.recipients", "'oops' is not an email address"),
    ({"subject_template": None}, "sink.subject_template", "one of 'subject_template' and"),
    ({"subject_template_property": "s"}, "sink.subject_template_property", "at most one of"),
    ({"text_body_template": None}, "sink.body_template", "a body template is required"),
    ({"body_template": "{% if %}"}, "sink.body_template", "not a valid Jinja2 template"),
    ({"unhandled_template_variable_replacement": "loud"}, "sink", "'loud' is not one of"),
])
def test_config_errors_name_the_property(datasets: Datasets, sink: dict[str, Any], where: str,
                                         message: str) -> None:
    config = sink_pipe({**BASE, **sink})
    config["sink"] = {k: v for k, v in config["sink"].items() if v is not None}
    with pytest.raises(ConfigError, match=message) as failure:
        build_runner(config, datasets)
    assert failure.value.where.startswith(f"pipe out: {where}")


def test_a_system_of_another_type_is_a_config_error(datasets: Datasets) -> None:
    url = build_system({"_id": "mail", "type": "system:url", "base_url": "http://127.0.0.1:1/"})
    with pytest.raises(ConfigError, match="needs a system:smtp"):
        build_runner(sink_pipe(BASE), datasets, systems={"mail": url})


def test_a_missing_system_fails_the_run(datasets: Datasets) -> None:
    pipes = Pipes(datasets, None, BASE)  # the node builds a pipe whose system is not in the config so
    with pytest.raises(PipeRunError, match="system 'mail' is not in the config"):
        pipes.feed([{"_id": "1"}])


@pytest.mark.parametrize(("config", "where", "message"), [
    ({"smtp_username": "u"}, "$", "'smtp_password' is required"),
    ({"use_tls": True, "use_ssl": True}, "$['use_ssl']", "cannot both be true"),
    ({"smtp_port": 0}, "$['smtp_port']", "less than the minimum"),
    ({"max_per_hour": -1}, "$['max_per_hour']", "less than the minimum"),
])
def test_smtp_system_config_errors(config: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as failure:
        build_system({"_id": "mail", "type": "system:smtp", **config})
    assert failure.value.where == where


def test_the_system_defaults_and_status_hide_the_password() -> None:
    system = build_system({"_id": "mail", "type": "system:smtp", "smtp_username": "u", "smtp_password": "pw"})
    assert isinstance(system, SmtpSystem)
    assert (system.host, system.port, system.use_tls, system.max_per_hour) == ("localhost", 25, False, 1000)
    status = system.status()
    assert status["authentication"] is True and "pw" not in repr(status) and "'u'" not in repr(status)


def test_html_to_text() -> None:
    assert html_to_text("<html><head><title>x</title><style>p {}</style></head><body><p>a &amp; b</p>"
                        "<table><tr><td>1</td><td>2</td></tr></table><script>no()</script>c<br>d</body>") == \
        "a & b\n\n1\t2\n\nc\nd\n"
