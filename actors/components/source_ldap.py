"""The ``ldap`` source: the entries of an LDAP search as entities (node-spec 6.13, 10.5).

``system`` names a ``system:ldap``. Each read borrows one bound connection from the system and searches
``search_base`` (a DN; required) with ``search_filter`` (default ``(objectClass=organizationalPerson)``) in
``scope``: ``subtree`` (the default: the base and everything below it), ``level`` (its children only) or
``base`` (the base entry alone; ``scope`` is a sesamd extension). ``attributes`` ("*", all user
attributes; or a list of names, where "+" adds the operational ones) chooses what the server returns, then
``attribute_blacklist`` drops some (names compare without case, and ``jpegPhoto`` also drops
``jpegPhoto;binary``); the ``id_attribute`` is read whatever they say, and kept as a property only when
``attributes`` selects it. The search is paged with the simple paged results control (RFC 2696): the server
returns ``page_size`` entries at a time (default 500; 0 turns paging off, and the server's size limit then
caps the result), so a directory of any size is read in bounded memory and within the server's limits.

Entities: ``_id`` is the value of ``id_attribute`` (default ``cn`` as in Sesam; ``dn`` gives the entry's DN,
which unlike ``cn`` is unique in the directory); an entry without it fails the run, and when it has several
values the first one the server sends is the id. ``dn`` is the entry's DN, and each attribute is a property
named as the server names it (``objectClass``, ``userCertificate;binary``): an attribute with one value is
that value, one with several values a list of them in the server's order. Values of binary syntaxes (JPEG,
octet string such as ``userPassword`` or ``objectGUID``, certificates, audio, fax) and of an attribute with the
``;binary`` option are bytes (``~b`` in the dataset); all others are strings, decoded as UTF-8 (the system's
``charset`` for a value that is not UTF-8; with no schema from the server, such a value stays bytes).
Numbers and times stay strings, as the server sends them.

Continuation (node-spec 6.0): the source does not support since, so every run is a full run, and the pump's
deletion tracking marks the entities of entries that are gone as deleted.

Errors: a system that is not in the config fails the run with a :class:`TerminalError` naming it, one that
is not open yet is waited for (10 s), then a :class:`TransientError`; a server that cannot be reached or a
connection lost while reading is a :class:`TransientError`; a refused bind, a base that does not exist, a
search the server refuses or a size or time limit hit is a :class:`TerminalError` with the server's answer,
naming the system and server. Config errors (no ``search_base``, a DN or filter that does not parse, a
system that is not ``system:ldap``) are :class:`ConfigError` naming the property.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.core import results as ldap_results
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn

import storage

from ._base import BuildContext, Source
from ._errors import TerminalError, TransientError
from ._registry import ConfigError, component
from .system_ldap import CONNECTION_ERRORS, LdapSystem, ldap_answer, ldap_message

__all__ = ["LdapSource"]

log = logging.getLogger("actors.components.source_ldap")

DEFAULT_FILTER = "(objectClass=organizationalPerson)"
DEFAULT_PAGE_SIZE = 500
PAGED_RESULTS = "1.2.840.113556.1.4.319"
SCOPES = {"base": ldap3.BASE, "level": ldap3.LEVEL, "subtree": ldap3.SUBTREE}
NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
# syntaxes (RFC 4517 and friends) whose values are octets, not text
BINARY_SYNTAXES = frozenset("1.3.6.1.4.1.1466.115.121.1." + n for n in ("4", "5", "8", "9", "10", "23", "28", "40",
                                                                         "49"))
LIMITS = {ldap_results.RESULT_SIZE_LIMIT_EXCEEDED: "the server's size limit", ldap_results.RESULT_TIME_LIMIT_EXCEEDED:
          "the server's time limit", ldap_results.RESULT_ADMIN_LIMIT_EXCEEDED: "an administrative limit"}


@component("source", "ldap", {
    "required": ["system", "search_base"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "search_base": {"type": "string"},
        "search_filter": {"type": "string", "minLength": 1, "default": DEFAULT_FILTER},
        "scope": {"enum": sorted(SCOPES), "default": "subtree"},
        "attributes": {"anyOf": [{"type": "string", "minLength": 1}, {**NAMES, "minItems": 1}], "default": "*"},
        "attribute_blacklist": {**NAMES, "default": []},
        "id_attribute": {"type": "string", "minLength": 1, "default": "cn"},
        "page_size": {"type": "integer", "minimum": 0, "default": DEFAULT_PAGE_SIZE},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class LdapSource(Source):
    """Reads the entries of a (paged) LDAP search."""

    adds_namespaces = True

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.system_id: str = config["system"]
        system = context.systems.get(self.system_id)
        if system is not None and not isinstance(system, LdapSystem):
            raise ConfigError(f"system '{self.system_id}' is a {system.config.get('type')}; an ldap source needs "
                              "a system:ldap", where=f"{self.where}.system")
        self.search_base: str = config["search_base"]
        try:
            if self.search_base:  # "" is the root DSE
                parse_dn(self.search_base)
        except (ldap_errors.LDAPException, ValueError, IndexError) as exc:
            raise ConfigError(f"not a DN: {ldap_message(exc)}", where=f"{self.where}.search_base") from None
        self.search_filter: str = config.get("search_filter", DEFAULT_FILTER)
        try:
            parse_filter(self.search_filter, None, auto_escape=True, auto_encode=True, validator=None,
                         check_names=False)
        except (ldap_errors.LDAPException, ValueError, IndexError) as exc:
            raise ConfigError(f"not an LDAP filter: {ldap_message(exc)}",
                              where=f"{self.where}.search_filter") from None
        self.scope = SCOPES[config.get("scope", "subtree")]
        attributes = config.get("attributes", "*")
        self.attributes: list[str] = [attributes] if isinstance(attributes, str) else list(attributes)
        self.blacklist = {name.lower() for name in config.get("attribute_blacklist") or ()}
        self.id_attribute: str = config.get("id_attribute", "cn")
        self.page_size: int = config.get("page_size", DEFAULT_PAGE_SIZE)
        # the id attribute is read whatever ``attributes`` says, but kept only when they name it
        named = {name.lower() for name in self.attributes}
        self.id_unselected = self.id_attribute.lower() != "dn" and not named & {"*", self.id_attribute.lower()}
        self.requested = [*self.attributes, self.id_attribute] if self.id_unselected else self.attributes

    # -- reading ---------------------------------------------------------------------------------------------

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        system = self._system()
        what = system.describe()
        with system.connection() as connection:
            binary = _binary_attributes(connection)
            batch: list[dict[str, Any]] = []
            for dn, attributes in self._entries(connection, what):
                batch.append(self._entity(dn, attributes, binary, system.charset, what))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def _system(self) -> LdapSystem:
        system = self.context.systems.get(self.system_id)
        if system is None:
            raise TerminalError(f"system '{self.system_id}' is not in the config (or its config is invalid)")
        assert isinstance(system, LdapSystem)
        return system

    def _entries(self, connection: ldap3.Connection, what: str) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """``(dn, raw attributes)`` of each entry found, page by page (a stopped read unbinds the connection:
        the system does not keep a connection in the middle of a paged search)."""
        cookie: bytes | None = None
        pages = 0
        while True:
            try:
                connection.search(self.search_base, self.search_filter, search_scope=self.scope,
                                  attributes=self.requested, paged_size=self.page_size or None,
                                  paged_cookie=cookie)
            except CONNECTION_ERRORS as exc:
                raise TransientError(f"{what}: the connection failed while searching: {ldap_message(exc)}") from None
            except ldap_errors.LDAPException as exc:
                raise TerminalError(f"{what}: the search failed: {ldap_message(exc)}") from None
            pages += 1
            result = connection.result or {}
            code = result.get("result")
            found = [(r["dn"], r["raw_attributes"]) for r in connection.response or ()
                     if r.get("type") == "searchResEntry"]
            if code in LIMITS:
                hint = (f"; lower page_size (now {self.page_size})" if self.page_size
                        else "; set page_size to page the search")
                raise TerminalError(f"{what}: the search of {self.search_base!r} hit {LIMITS[code]} after "
                                    f"{len(found)} entries{hint}")
            if code == ldap_results.RESULT_NO_SUCH_OBJECT:
                raise TerminalError(f"{what}: the search_base {self.search_base!r} does not exist")
            if code in (ldap_results.RESULT_BUSY, ldap_results.RESULT_UNAVAILABLE):
                raise TransientError(f"{what}: the server cannot search now: {ldap_answer(result)}")
            if code != ldap_results.RESULT_SUCCESS:
                raise TerminalError(f"{what}: the server refused the search of {self.search_base!r}: "
                                    f"{ldap_answer(result)}")
            yield from found
            control = (result.get("controls") or {}).get(PAGED_RESULTS) or {}
            cookie = (control.get("value") or {}).get("cookie") or None
            if not self.page_size or not cookie:
                log.debug("%s: %s searched in %d page(s)", what, self.search_base, pages)
                return

    def _entity(self, dn: str, attributes: dict[str, list[bytes]], binary: set[str] | None, charset: str,
                what: str) -> dict[str, Any]:
        if self.id_attribute.lower() == "dn":
            identity: Any = dn
        else:
            values = attributes.get(self.id_attribute)
            if not values:
                raise TerminalError(f"{what}: the entry {dn!r} has no {self.id_attribute!r} (the id_attribute)")
            identity = _value(values[0], self.id_attribute, binary, charset)
            if isinstance(identity, bytes):
                identity = identity.hex()
        entity: dict[str, Any] = {"_id": identity, "dn": dn}
        for name, raw in attributes.items():
            if not raw or name.lower() in self.blacklist or name.split(";", 1)[0].lower() in self.blacklist:
                continue
            if self.id_unselected and name.lower() == self.id_attribute.lower():
                continue
            converted = [_value(v, name, binary, charset) for v in raw]
            entity[name] = converted[0] if len(converted) == 1 else converted
        wire: dict[str, Any] = storage.encode(entity)
        return wire


def _binary_attributes(connection: ldap3.Connection) -> set[str] | None:
    """The lower-case names (with aliases) of the attribute types of binary syntax in the server's schema
    (inheriting a syntax from their superior); None when the server gave no schema."""
    schema = connection.server.schema if connection.server is not None else None
    types = getattr(schema, "attribute_types", None)
    if not types:
        return None

    def syntax(info: Any, depth: int = 0) -> str | None:
        if info.syntax or depth > 10 or not info.superior:
            return info.syntax  # type: ignore[no-any-return]
        parent = types.get(info.superior[0])
        return syntax(parent, depth + 1) if parent is not None else None

    binary: set[str] = set()
    for info in {id(i): i for i in types.values()}.values():
        oid = syntax(info)
        if oid is not None and oid.split("{", 1)[0] in BINARY_SYNTAXES:
            binary.update(n.lower() for n in (info.name or ()))
            binary.add(str(info.oid).lower())
    return binary


def _value(raw: bytes, name: str, binary: set[str] | None, charset: str) -> str | bytes:
    base, _, options = name.partition(";")
    if "binary" in options.lower().split(";") or (binary is not None and base.lower() in binary):
        return bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(raw) if binary is None else raw.decode(charset, "replace")

