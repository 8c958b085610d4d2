"""The ``mail`` sink: one email per entity through a ``system:smtp`` system (node-spec 8.11).

Each entity that is not deleted becomes one message (entities with ``_deleted: true`` are not mailed; they
count as delivered): ``From`` is ``mail_from``, ``To`` the recipients, ``Subject`` the rendered subject
template, and the body the rendered ``body_template`` as HTML, with a plain-text alternative: the rendered
``text_body_template``, else a best-effort text made from the HTML (as the Sesam docs say). With only a text
template the message is plain text. Line breaks in a subject become spaces (a header cannot hold them).

Templates are Jinja2, rendered in a sandboxed environment (``jinja2.sandbox``: no access to Python internals)
with the entity's properties as variables (``{{ name }}``, ``{{ _id }}``). Typed (transit) values are decoded:
``~f1.50`` is the decimal ``1.50`` (it renders as that text and computes as a number), ``~t`` datetimes and
dates are their ISO text (``2024-01-15T10:00:00Z``), ``~:``/``~r``/``~u`` are their text, ``~b`` its base64.
``null`` renders as an empty string and booleans as ``true``/``false``. Output is not HTML-escaped (a property
may hold HTML on purpose, as in Sesam); use ``{{ value | e }}`` to escape. Each template comes from the
config (``*_template``) or from the entity property that ``*_template_property`` names (compiled templates are
cached by their text); setting both is a :class:`ConfigError`, as is a template with a syntax error in the
config. ``unhandled_template_variable_replacement`` says what an undefined variable renders as: ``debug``
(the default) keeps a visible ``{{name}}`` marker, ``empty_string`` renders nothing, ``strict`` fails the
entity. Computing with an undefined value (``{{ missing + 1 }}``) fails the entity in every mode.

Recipients are ``recipients`` (a comma-separated string or a list) and/or, per entity, the property that
``recipients_property`` names (the same forms); with both, the entity's property wins when the entity has it.
One of the two is required (a :class:`ConfigError` names them), as are ``system``, ``mail_from``, a subject
template (``subject_template`` or ``subject_template_property``) and a body template (an HTML one, a text one
or both): the Sesam docs mark these "required" and give the ``*_property`` settings default property names as
well; sesamd takes the first reading and uses no default property names.

Errors: an entity whose recipients are missing or malformed, or whose template is missing, fails to compile
or to render, raises a :class:`TerminalError` naming the entity and the setting; the server refusing a
message raises by its answer (5xx terminal, 4xx transient; :mod:`~actors.components.system_smtp`). These
raise from :meth:`MailSink.write`, so the pipe's write-error policy applies (single-entity fallback,
``write-error`` entities in the execution log, dead letters). A server that cannot be reached fails the run.
Transient failures of a batch are retried ``batch_retries`` times (default 3) ``write_retry_delay`` seconds
apart (the pump's properties, as for the ``json`` sink).

Mail cannot be taken back, so the sink avoids sending a message twice: a batch renders every message before
it sends any, one connection sends the batch, and when sending fails half-way the entities already sent are
remembered (by ``_id`` and content, up to :data:`REMEMBERED` of them) and skipped when they come again, in
a batch retry, the single-entity fallback or a later run of the same pipe config. ``max_per_hour`` of the
system discards (and logs) messages past its limit; they count as delivered.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from html.parser import HTMLParser
from typing import Any

import jinja2
import jinja2.sandbox

import storage

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._errors import ComponentError, TerminalError, TransientError
from ._http import RetryPolicy
from ._registry import ConfigError, component
from .system_smtp import SmtpSystem

__all__ = ["MailSink", "html_to_text"]

log = logging.getLogger("actors.components.sink_mail")

DEFAULT_BATCH_RETRIES = 3
REMEMBERED = 10_000  # entities sent in failed batches that the sink remembers, to skip them when they come again
CACHED_TEMPLATES = 128  # compiled templates from entity properties, by their text
REPLACEMENTS = ("debug", "empty_string", "strict")
ADDRESSES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
PARTS = ("subject", "body", "text_body")  # template settings: <part>_template, <part>_template_property


class _DebugUndefined(jinja2.ChainableUndefined):
    """``debug``: an undefined variable renders as ``{{name}}`` (``{{a.b}}`` for an attribute of one)."""

    __slots__ = ()

    def __str__(self) -> str:
        return "{{" + str(self._undefined_name) + "}}"

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return type(self)(name=f"{self._undefined_name}.{name}")

    def __getitem__(self, key: Any) -> Any:
        return type(self)(name=f"{self._undefined_name}[{key!r}]")


UNDEFINED: dict[str, type[jinja2.Undefined]] = {
    "debug": _DebugUndefined, "empty_string": jinja2.ChainableUndefined, "strict": jinja2.StrictUndefined}


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return value


def _template_value(value: Any) -> Any:
    """A wire-form value as templates see it (the module docstring)."""
    kind = type(value)
    if kind is dict:
        return {k: _template_value(v) for k, v in value.items()}
    if kind is list:
        return [_template_value(v) for v in value]
    if kind is not str or len(value) < 2 or value[0] != "~":
        return value
    tag, text = value[1], value[2:]
    if tag == "~":
        return value[1:]
    if tag in "t:rub":
        return text
    decoded = storage.decode(value)
    return decoded if isinstance(decoded, Decimal | float) else value  # ~f, ~d; another tag stays as it was


@dataclass
class _Template:
    """One template setting: the compiled config template, or the entity property holding the template."""

    name: str  # the config key, e.g. subject_template
    template: jinja2.Template | None = None
    property: str | None = None


@dataclass
class _Mail:
    entity: dict[str, Any]
    key: bytes
    message: EmailMessage
    recipients: list[tuple[str, str]]  # (display name, address)


@component("sink", "mail", {
    "required": ["system", "mail_from"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "mail_from": {"type": "string", "minLength": 1},
        "recipients": ADDRESSES,
        "recipients_property": {"type": "string", "minLength": 1},
        **{f"{part}_template": {"type": "string"} for part in PARTS},
        **{f"{part}_template_property": {"type": "string", "minLength": 1} for part in PARTS},
        "unhandled_template_variable_replacement": {"enum": list(REPLACEMENTS), "default": "debug"},
        "batch_size": {"type": "integer", "minimum": 1},
    },
})
class MailSink(Sink):
    """Sends one email per entity, from Jinja2 templates, through an SMTP system."""

    removes_namespaces = True
    blocking = True

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        where = f"pipe {context.pipe_id}: {context.where or 'sink'}"
        self.where = where
        self.system_id: str = config["system"]
        system = context.systems.get(self.system_id)
        if system is not None and not isinstance(system, SmtpSystem):
            raise ConfigError(f"system '{self.system_id}' is a {system.config.get('type')}; a mail sink needs a "
                              "system:smtp", where=f"{where}.system")
        sender = _address(config["mail_from"])
        if sender is None:
            raise ConfigError(f"{config['mail_from']!r} is not an email address", where=f"{where}.mail_from")
        self.sender: str = sender  # the envelope's MAIL FROM
        self.mail_from: str = config["mail_from"]
        if "recipients" not in config and "recipients_property" not in config:
            raise ConfigError("one of 'recipients' and 'recipients_property' is required (who gets the mail)",
                              where=f"{where}.recipients")
        self.recipients: list[tuple[str, str]] | None = None
        if "recipients" in config:
            self.recipients, bad = _recipients(config["recipients"])
            if bad or not self.recipients:
                raise ConfigError(f"{bad or config['recipients']!r} is not an email address" if bad else
                                  "names no email address", where=f"{where}.recipients")
        self.recipients_property: str | None = config.get("recipients_property")
        self.environment = jinja2.sandbox.SandboxedEnvironment(
            undefined=UNDEFINED[config.get("unhandled_template_variable_replacement", "debug")],
            finalize=_finalize, autoescape=False, keep_trailing_newline=True)
        self.templates = {part: self._template_setting(part) for part in PARTS}
        if self.templates["subject"] is None:
            raise ConfigError("one of 'subject_template' and 'subject_template_property' is required",
                              where=f"{where}.subject_template")
        if self.templates["body"] is None and self.templates["text_body"] is None:
            raise ConfigError("a body template is required: 'body_template' or 'body_template_property' (HTML), "
                              "'text_body_template' or 'text_body_template_property' (plain text)",
                              where=f"{where}.body_template")
        self._cache: OrderedDict[str, jinja2.Template] = OrderedDict()
        self._sent: OrderedDict[bytes, None] = OrderedDict()  # entities sent in batches that failed
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "batch_retries", "write_retry_delay",
                                      default_retries=DEFAULT_BATCH_RETRIES)

    def _template_setting(self, part: str) -> _Template | None:
        name, prop = f"{part}_template", f"{part}_template_property"
        if name in self.config and prop in self.config:
            raise ConfigError(f"set at most one of '{name}' and '{prop}'", where=f"{self.where}.{prop}")
        if prop in self.config:
            return _Template(name, property=self.config[prop])
        if name not in self.config:
            return None
        try:
            return _Template(name, template=self.environment.from_string(self.config[name]))
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"not a valid Jinja2 template: {exc.message} (line {exc.lineno})",
                              where=f"{self.where}.{name}") from None

    # -- the run -------------------------------------------------------------------------------------------

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        mails = [self._mail(entity) for entity in batch if entity.get("_deleted") is not True]
        sent = self._retrying(lambda: self._send([m for m in mails if m.key not in self._sent])) if mails else 0
        for mail in mails:
            self._sent.pop(mail.key, None)  # all sent now: a later copy is a new message
        return state_write(self.state_dataset, self.state_key, state, changes=sent)

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.state_dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.state_dataset, self.state_key, state)

    # -- sending -------------------------------------------------------------------------------------------

    def _system(self) -> SmtpSystem:
        system = self.context.systems.get(self.system_id)
        if system is None:
            raise TerminalError(f"system '{self.system_id}' is not in the config (or its config is invalid)")
        assert isinstance(system, SmtpSystem)
        return system

    def _retrying(self, action: Callable[[], int]) -> int:
        attempt = 0
        sent = 0
        while True:
            try:
                return sent + action()
            except _Partial as partial:
                sent += partial.sent
                error = partial.error
            if not isinstance(error, TransientError) or attempt >= self.retries.retries:
                raise error
            wait = self.retries.wait(attempt, None)
            log.info("pipe %s: %s; retrying in %.1f s", self.context.pipe_id, error, wait)
            attempt += 1
            time.sleep(wait)

    def _send(self, mails: list[_Mail]) -> int:
        """Send ``mails`` over one connection; the number sent, or :class:`_Partial` when one fails."""
        if not mails:
            return 0
        system = self._system()
        sent = 0
        try:
            with system.connect() as session:
                for mail in mails:
                    if not system.take_slot():
                        log.warning("pipe %s: %s sent max_per_hour (%s) messages in the last hour; the mail for "
                                    "entity '%s' is discarded", self.context.pipe_id, system.describe(),
                                    system.max_per_hour, mail.entity.get("_id"))
                        self._remember(mail.key)
                        continue
                    refused = session.send(mail.message, self.sender, [a for _, a in mail.recipients])
                    self._remember(mail.key)
                    sent += 1
                    if refused:
                        log.warning("pipe %s: the mail for entity '%s' was sent, but %s refused %s",
                                    self.context.pipe_id, mail.entity.get("_id"), system.describe(),
                                    ", ".join(f"{r} ({c})" for r, (c, _) in refused.items()))
        except ComponentError as exc:
            raise _Partial(sent, exc) from None
        return sent

    def _remember(self, key: bytes) -> None:
        self._sent[key] = None
        while len(self._sent) > REMEMBERED:
            self._sent.popitem(last=False)

    # -- composing -----------------------------------------------------------------------------------------

    def _mail(self, entity: dict[str, Any]) -> _Mail:
        variables = {k: _template_value(v) for k, v in entity.items()}
        recipients = self._recipients_of(entity)
        subject = self._render("subject", entity, variables)
        body = self._render("body", entity, variables)
        text = self._render("text_body", entity, variables)
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = ", ".join(formataddr(r) for r in recipients)
        message["Subject"] = " ".join(subject.split()) if subject else ""
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(uuid.uuid4().hex[:12], domain=self.sender.rpartition("@")[2] or None)
        if body is not None:
            message.set_content(text if text is not None else html_to_text(body))
            message.add_alternative(body, subtype="html")
        else:
            message.set_content(text or "")
        key = hashlib.blake2b(storage.dumps(entity), digest_size=16).digest()
        return _Mail(entity, key, message, recipients)

    def _recipients_of(self, entity: Mapping[str, Any]) -> list[tuple[str, str]]:
        prop = self.recipients_property
        value = entity.get(prop) if prop is not None else None
        if value is None:
            if self.recipients is not None:
                return self.recipients
            raise TerminalError(f"entity '{entity.get('_id')}' has no recipients: it lacks the property "
                                f"'{prop}' (recipients_property)")
        if not isinstance(value, str) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise TerminalError(f"entity '{entity.get('_id')}': the recipients in '{prop}' (recipients_property) "
                                "must be a comma-separated string or a list of strings")
        recipients, bad = _recipients(value)
        if bad or not recipients:
            raise TerminalError(f"entity '{entity.get('_id')}': " + (
                f"{bad!r} in '{prop}' (recipients_property) is not an email address" if bad else
                f"'{prop}' (recipients_property) names no email address"))
        return recipients

    def _render(self, part: str, entity: Mapping[str, Any], variables: dict[str, Any]) -> str | None:
        setting = self.templates[part]
        if setting is None:
            return None
        entity_id = entity.get("_id")
        what = setting.name
        template = setting.template
        if setting.property is not None:
            what = f"the template in '{setting.property}' ({setting.name}_property)"
            source = entity.get(setting.property)
            if not isinstance(source, str):
                raise TerminalError(f"entity '{entity_id}': {what} is " + (
                    "missing" if source is None else "not a string"))
            template = self._compiled(source, entity_id, what)
        assert template is not None
        try:
            return template.render(variables)
        except jinja2.UndefinedError as exc:
            mode = self.config.get("unhandled_template_variable_replacement", "debug")
            raise TerminalError(f"entity '{entity_id}': {what}: {exc.message}"
                                + (" (unhandled_template_variable_replacement is strict)" if mode == "strict"
                                   else "")) from None
        except jinja2.TemplateError as exc:
            raise TerminalError(f"entity '{entity_id}': {what}: {exc}") from None
        except Exception as exc:  # a template computing something impossible (1/0, "a" - 1)
            raise TerminalError(f"entity '{entity_id}': {what}: {type(exc).__name__}: {exc}") from None

    def _compiled(self, source: str, entity_id: Any, what: str) -> jinja2.Template:
        template = self._cache.get(source)
        if template is not None:
            self._cache.move_to_end(source)
            return template
        try:
            template = self.environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TerminalError(f"entity '{entity_id}': {what} is not a valid Jinja2 template: {exc.message} "
                                f"(line {exc.lineno})") from None
        self._cache[source] = template
        if len(self._cache) > CACHED_TEMPLATES:
            self._cache.popitem(last=False)
        return template


class _Partial(Exception):
    """Sending a batch failed after ``sent`` messages went."""

    def __init__(self, sent: int, error: ComponentError) -> None:
        super().__init__(str(error))
        self.sent = sent
        self.error = error


_SEPARATORS = re.compile(r"[,;]")


def _address(text: str) -> str | None:
    """The address of ``Name <a@b>`` or ``a@b``; None when it is none."""
    if "\n" in text or "\r" in text:
        return None
    _, address = parseaddr(text)
    if not address or "@" not in address or address.startswith("@") or address.endswith("@") or " " in address:
        return None
    return address


def _recipients(value: str | list[str]) -> tuple[list[tuple[str, str]], str | None]:
    """The ``(display name, address)`` of a comma-separated string of addresses or a list of them, and the
    first item that is no address."""
    items = [value] if isinstance(value, str) else value
    found: list[tuple[str, str]] = []
    for item in items:
        if "\n" in item or "\r" in item:
            return found, item
        for part in _SEPARATORS.split(item):
            if not part.strip():
                continue
            pairs = getaddresses([part])
            address = _address(part) if len(pairs) == 1 else None
            if address is None:
                return found, part.strip()
            found.append((pairs[0][0], address))
    return found, None


# -- HTML to text (best effort) ------------------------------------------------------------------------------

_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "hr"})
_LINES = frozenset({"br", "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer"})
_HIDDEN = frozenset({"script", "style", "head", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _PARAGRAPHS:
            self.parts.append("\n\n")
        elif tag in _LINES:
            self.parts.append("\n- " if tag == "li" else "\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _PARAGRAPHS:
            self.parts.append("\n\n")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and href.startswith(("http://", "https://", "mailto:")):
                self.parts.append(f" ({href.removeprefix('mailto:')})")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """A plain-text version of HTML on a best-effort basis: the text, with a line break around each block
    (paragraph, list item, heading, row...), list items as ``- ``, link targets after their text."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient; this is a last resort
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
