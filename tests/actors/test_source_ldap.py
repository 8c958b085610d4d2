"""The ``ldap`` source and ``system:ldap`` against a real OpenLDAP ``slapd`` each test (or module) starts on a
free loopback port and stops: a directory of 350 people read in pages (the server's size limit of 100 fails
an unpaged search), filters, scopes, attribute selection and blacklists, ``id_attribute``, binary and
multi-valued attributes in wire form, a rescan that follows a change and marks a removed entry deleted, a
refused bind, an unreachable server, a stopped read and config errors naming the property."""

from __future__ import annotations

import datetime
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
import trio

import storage
from actors import ConfigError, Datasets, PipeRunError, build_runner
from actors.components import BuildContext, TerminalError, TransientError, build_system, lookup
from actors.components.source_ldap import LdapSource
from actors.components.system_ldap import LdapSystem
from actors.ldap_testing import READER, READER_PASSWORD, SUFFIX, ScratchDirectory, scratch_directory

PEOPLE = f"ou=people,{SUFFIX}"
TEAM = f"ou=team,{PEOPLE}"
COUNT = 350  # people directly under ou=people
SIZE_LIMIT = 100  # the server's limit for the reader
PHOTO = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x80, 0xFE])  # not UTF-8


def person(number: int, base: str = PEOPLE, **extra: Any) -> tuple[str, dict[str, Any]]:
    cn = f"person{number:03d}"
    return f"cn={cn},{base}", {"objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"], "cn": cn,
                               "sn": f"Surname{number}", "uid": f"u{number}", "employeeNumber": str(number),
                               **extra}


def populate(directory: ScratchDirectory) -> None:
    directory.add(*(person(n) for n in range(COUNT)))
    directory.add((TEAM, {"objectClass": ["organizationalUnit"], "ou": "team"}),
                  person(900, TEAM, mail=["ann@example.org", "ann.other@example.org"], jpegPhoto=PHOTO,
                         givenName="Åse", description="~tnot a date"),
                  person(901, TEAM))


@pytest.fixture(scope="module")
def people() -> Iterator[ScratchDirectory]:
    """A directory with 350 people and a team of two below them (tests must not change it)."""
    with scratch_directory(size_limit=SIZE_LIMIT) as directory:
        populate(directory)
        yield directory


@pytest.fixture
def directory() -> Iterator[ScratchDirectory]:
    """A fresh directory of one test, with the same people."""
    with scratch_directory(size_limit=SIZE_LIMIT) as scratch:
        populate(scratch)
        yield scratch


@pytest.fixture(scope="module")
def system(people: ScratchDirectory) -> LdapSystem:
    built = people.system()
    assert isinstance(built, LdapSystem)
    return built


def build(config: dict[str, Any], *systems: Any) -> LdapSource:
    """An ldap source built through the registry, as the engine builds it."""
    config = {"type": "ldap", "system": "dir", "search_base": PEOPLE, **config}
    context = BuildContext(pipe_id="p1", pipe={"_id": "p1"}, datasets=None,  # type: ignore[arg-type]
                           where="source", systems={s.id: s for s in systems})
    source = lookup("source", config, "pipe p1: source").factory(config, context)
    assert isinstance(source, LdapSource)
    return source


def read(system: Any, batch_size: int = 1000, **config: Any) -> list[dict[str, Any]]:
    config = {"system": system.id, **config}
    return [e for batch in build(config, system).read(None, batch_size) for e in batch]


def ids(system: Any, **config: Any) -> list[str]:
    return sorted(e["_id"] for e in read(system, **config))


def failure(system: Any, kind: type[Exception] = TerminalError, **config: Any) -> str:
    with pytest.raises(kind) as caught:
        read(system, **config)
    return str(caught.value)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- paging ------------------------------------------------------------------------------------------------


def test_a_large_directory_is_read_in_pages(system: LdapSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    pages: list[int | None] = []
    search = ldap3.Connection.search

    def counted(self: ldap3.Connection, search_base: str, *args: Any, **kwargs: Any) -> Any:
        if search_base == PEOPLE:  # not the schema, read when a connection binds
            pages.append(kwargs.get("paged_size"))
        return search(self, search_base, *args, **kwargs)

    monkeypatch.setattr(ldap3.Connection, "search", counted)
    batches = list(build({"page_size": 40, "search_filter": "(objectClass=person)", "scope": "level"}, system)
                   .read(None, 64))
    entities = [e for batch in batches for e in batch]
    assert len(entities) == COUNT > SIZE_LIMIT
    assert len({e["_id"] for e in entities}) == COUNT
    assert pages == [40] * math.ceil(COUNT / 40)  # one search request per page
    assert [len(b) for b in batches] == [64] * 5 + [COUNT - 320]  # batches are the pipe's, not the pages
    pages.clear()
    assert len(read(system, scope="level")) == COUNT  # the default page size (500) is above the server's limit
    assert pages == [500]
    # without paging the server's size limit stops the search
    message = failure(system, page_size=0, scope="level")
    assert message.startswith(f"system 'dir' (ldap at 127.0.0.1:{system.port}): the search of {PEOPLE!r} hit the "
                              f"server's size limit after {SIZE_LIMIT} entries; set page_size"), message
    assert pages[-1] is None


def test_the_root_dn_is_not_held_to_the_size_limit(people: ScratchDirectory) -> None:
    # the root DN has no limit: without paging it reads everything in one answer
    system = people.system(_id="root", username=f"cn=admin,{SUFFIX}", password="root-secret")
    assert len(read(system, page_size=0, scope="level")) == COUNT


# -- what is read --------------------------------------------------------------------------------------------


def test_values_in_wire_form(system: LdapSystem) -> None:
    [ann] = read(system, search_filter="(uid=u900)")
    assert ann == {
        "_id": "person900", "dn": f"cn=person900,{TEAM}",
        "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],  # multi-valued: a list
        "cn": "person900", "sn": "Surname900", "uid": "u900", "employeeNumber": "900",  # one value: the value
        "mail": ["ann@example.org", "ann.other@example.org"],
        "jpegPhoto": "~b/9j/4AAQgP4=",  # binary syntax: bytes
        "givenName": "Åse", "description": "~~tnot a date",  # UTF-8 text; a leading ~ escaped
    }
    decoded = storage.decode(ann)
    assert decoded["jpegPhoto"] == PHOTO and decoded["description"] == "~tnot a date"
    storage.prepare(ann)  # a dataset takes it


def certificate() -> bytes:
    """A self-signed certificate, DER (the server checks the syntax of ``userCertificate``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "person901")])
    now = datetime.datetime.now(datetime.UTC)
    made = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return made.public_bytes(serialization.Encoding.DER)


def test_binary_option_and_octet_strings_are_bytes(directory: ScratchDirectory) -> None:
    der = certificate()
    directory.replace(f"cn=person901,{TEAM}", userPassword="plain-text", audio=b"\x00\x01\xff")
    directory.replace(f"cn=person901,{TEAM}", **{"userCertificate;binary": der})
    system = directory.system(username=f"cn=admin,{SUFFIX}", password="root-secret")
    [entity] = read(system, search_filter="(uid=u901)", attributes=["cn", "userPassword", "audio",
                                                                    "userCertificate;binary"])
    assert entity["userPassword"] == "~b" + "cGxhaW4tdGV4dA=="  # octet string: bytes, even when readable
    assert storage.decode(entity["audio"]) == b"\x00\x01\xff"  # the audio syntax
    assert storage.decode(entity["userCertificate;binary"]) == der  # the ;binary option
    assert set(entity) == {"_id", "dn", "cn", "userPassword", "audio", "userCertificate;binary"}
    # an attribute asked for that the entry does not have is left out
    [bare] = read(system, search_filter="(uid=u900)", attributes=["cn", "audio"])
    assert bare == {"_id": "person900", "dn": f"cn=person900,{TEAM}", "cn": "person900"}


def test_filter_and_scope(system: LdapSystem) -> None:
    assert len(read(system)) == COUNT + 2  # subtree, organizationalPerson: all people, the team's too
    assert ids(system, search_filter="(|(uid=u7)(uid=u900))") == ["person007", "person900"]
    assert ids(system, search_filter="(&(objectClass=person)(employeeNumber=90*))") == [
        "person090", "person900", "person901"]
    assert ids(system, search_filter="(uid=nobody)") == []
    assert ids(system, search_base=TEAM, scope="level") == ["person900", "person901"]
    assert ids(system, search_base=TEAM, scope="level", search_filter="(objectClass=*)") == ["person900",
                                                                                           "person901"]
    assert len(read(system, scope="level")) == COUNT  # not the team's people
    [team] = read(system, search_base=TEAM, scope="base", search_filter="(objectClass=*)", id_attribute="ou")
    assert team == {"_id": "team", "dn": TEAM, "objectClass": "organizationalUnit", "ou": "team"}
    assert read(system, search_base=TEAM, scope="base") == []  # the base itself does not match the filter
    assert ids(system, search_base=TEAM, search_filter="(objectClass=*)", id_attribute="dn") == [
        f"cn=person900,{TEAM}", f"cn=person901,{TEAM}", TEAM]


def test_attributes_blacklist_and_id_attribute(system: LdapSystem) -> None:
    base = {"search_base": TEAM, "search_filter": "(uid=u900)"}
    [chosen] = read(system, **base, attributes=["sn", "mail"])
    assert chosen == {"_id": "person900", "dn": f"cn=person900,{TEAM}", "sn": "Surname900",
                      "mail": ["ann@example.org", "ann.other@example.org"]}  # the id needs no attribute read
    [by_uid] = read(system, **base, attributes=["uid", "sn"], id_attribute="uid")
    assert by_uid == {"_id": "u900", "dn": f"cn=person900,{TEAM}", "uid": "u900", "sn": "Surname900"}
    [by_dn] = read(system, **base, attributes="sn", id_attribute="DN")
    assert by_dn == {"_id": f"cn=person900,{TEAM}", "dn": f"cn=person900,{TEAM}", "sn": "Surname900"}
    [dropped] = read(system, **base, attribute_blacklist=["JPEGPHOTO", "mail", "objectclass"])
    assert set(dropped) == {"_id", "dn", "cn", "sn", "uid", "employeeNumber", "givenName", "description"}
    [operational] = read(system, **base, attributes=["cn", "+"])
    assert operational["entryDN"] == f"cn=person900,{TEAM}" and "createTimestamp" in operational
    assert "sn" not in operational
    message = failure(system, search_base=TEAM, search_filter="(objectClass=*)", id_attribute="uid")
    assert message == (f"system 'dir' (ldap at 127.0.0.1:{system.port}): the entry {TEAM!r} has no 'uid' (the "
                       "id_attribute)")


# -- runs: deletion tracking -----------------------------------------------------------------------------------


def test_a_rescan_follows_changes_and_marks_removed_entries_deleted(directory: ScratchDirectory,
                                                                    datasets: Datasets) -> None:
    system = directory.system()
    pipe = {"_id": "people", "type": "pipe",
            "source": {"type": "ldap", "system": "dir", "search_base": PEOPLE, "page_size": 64}}
    runner = build_runner(pipe, datasets, systems={"dir": system})
    assert runner.source.continuation == "none"
    first = runner.run()
    assert (first.sync_type, first.processed, first.changes, first.deleted) == ("full", COUNT + 2, COUNT + 2, 0)
    directory.replace(f"cn=person001,{PEOPLE}", sn="Changed", mail=["one@example.org", "two@example.org"])
    directory.delete(f"cn=person002,{PEOPLE}")
    second = runner.run()
    # changes: one changed entity and one deleted
    assert (second.sync_type, second.processed, second.changes, second.deleted) == ("full", COUNT + 1, 2, 1)
    dataset = datasets.get("people")
    assert dataset is not None
    latest = {e["_id"]: e for e in dataset.iter_entities(history=False, deleted=True)}
    assert len(latest) == COUNT + 2
    assert latest["person001"]["sn"] == "Changed"
    assert latest["person001"]["mail"] == ["one@example.org", "two@example.org"]
    assert latest["person002"]["_deleted"] is True
    assert not latest["person003"].get("_deleted")
    third = runner.run()
    assert (third.processed, third.changes, third.deleted) == (COUNT + 1, 0, 0)


# -- errors ----------------------------------------------------------------------------------------------------


def test_a_refused_bind_fails_the_run_naming_the_system_and_server(people: ScratchDirectory,
                                                                    datasets: Datasets) -> None:
    system = people.system(password="wrong-password")
    pipe = {"_id": "people", "type": "pipe", "source": {"type": "ldap", "system": "dir", "search_base": PEOPLE}}
    runner = build_runner(pipe, datasets, systems={"dir": system})
    with pytest.raises(PipeRunError) as caught:
        runner.run()
    error = caught.value.__cause__
    assert isinstance(error, TerminalError) and caught.value.read_error
    assert str(error).startswith(f"system 'dir' (ldap at 127.0.0.1:{people.port}): the server refused the bind "
                                 "as 'username' (invalidCredentials (49)"), error
    assert "check 'username' and 'password'" in str(error)
    assert "wrong-password" not in str(caught.value) and READER not in str(caught.value)
    unknown = people.system(_id="other", username=f"cn=nobody,{SUFFIX}", password=READER_PASSWORD)
    assert "refused the bind" in failure(unknown)
    dataset = datasets.get("people")
    assert dataset is None or not list(dataset.iter_entities())


def test_an_unreachable_server_is_a_transient_error() -> None:
    port = closed_port()
    system = build_system({"_id": "dir", "type": "system:ldap", "host": "127.0.0.1", "port": port,
                           "connect_timeout": 2})
    trio.run(system.open)
    try:
        started = time.monotonic()
        message = failure(system, TransientError)
        assert time.monotonic() - started < 10
    finally:
        trio.run(system.close)
    assert message.startswith(f"system 'dir' (ldap at 127.0.0.1:{port}): cannot connect: "), message


def test_a_missing_base_and_a_missing_or_unopened_system(system: LdapSystem) -> None:
    message = failure(system, search_base=f"ou=nowhere,{SUFFIX}")
    assert message == (f"system 'dir' (ldap at 127.0.0.1:{system.port}): the search_base 'ou=nowhere,{SUFFIX}' "
                       "does not exist")
    with pytest.raises(TerminalError, match="system 'dir' is not in the config"):
        list(build({}).read(None, 10))
    unopened = build_system({"_id": "dir", "type": "system:ldap", "connect_timeout": "~f0.2"})
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"system 'dir' \(ldap at localhost:389\): the system is not open"):
        read(unopened)
    assert 0.2 <= time.monotonic() - started < 5


def test_a_stopped_read_drops_its_connection_and_the_system_goes_on(directory: ScratchDirectory) -> None:
    system = directory.system(connect_timeout=1)  # also how long a read waits for the system to open
    reader = build({"page_size": 50}, system).read(None, 10)
    assert len(next(reader)) == 10
    assert system.status()["connections"] == {"idle": 0, "in-use": 1}
    reader.close()
    assert system.status()["connections"] == {"idle": 0, "in-use": 0}  # unbound mid-search, not kept
    assert len(read(system)) == COUNT + 2
    assert system.status()["connections"] == {"idle": 1, "in-use": 0}  # a finished read keeps its connection
    assert len(read(system)) == COUNT + 2
    trio.run(system.close)
    assert system.status()["connections"] == {"idle": 0, "in-use": 0}
    with pytest.raises(TransientError, match="not open"):
        read(system)
    trio.run(system.open)
    assert len(read(system, scope="level", search_filter="(uid=u1*)")) == 111  # u1, u10-u19, u100-u199


def test_anonymous_binds_and_secrets_stay_out_of_the_status(people: ScratchDirectory) -> None:
    anonymous = people.system(_id="anon", username=None, password=None)
    assert ids(anonymous, search_base=TEAM) == ["person900", "person901"]
    status = people.system().status()
    assert status["authentication"] is True and READER_PASSWORD not in str(status)
    assert anonymous.status()["authentication"] is False


# -- config ----------------------------------------------------------------------------------------------------


def test_source_config_errors_name_the_property(system: LdapSystem) -> None:
    web = build_system({"_id": "web", "type": "system:url", "base_url": "http://h/"})
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"search_base": None}, "pipe p1: source.search_base", "None is not of type 'string'"),
        ({"search_filter": "uid=x)("}, "pipe p1: source.search_filter", "not an LDAP filter"),
        ({"search_filter": "(uid=x"}, "pipe p1: source.search_filter", "not an LDAP filter"),
        ({"search_base": "not a dn"}, "pipe p1: source.search_base", "not a DN"),
        ({"scope": "one"}, "pipe p1: source.scope", "is not one of"),
        ({"page_size": -1}, "pipe p1: source.page_size", "minimum"),
        ({"attributes": []}, "pipe p1: source.attributes", ""),
        ({"attribute_blacklist": "mail"}, "pipe p1: source.attribute_blacklist", "not of type 'array'"),
        ({"id_attribute": ""}, "pipe p1: source.id_attribute", ""),
        ({"supports_since": True}, "pipe p1: source.supports_since", "fixed to false"),
        ({"is_chronological": True}, "pipe p1: source.is_chronological", "fixed to false"),
        ({"system": "web"}, "pipe p1: source.system", "an ldap source needs a system:ldap"),
    ]
    for config, where, text in cases:
        with pytest.raises(ConfigError) as caught:
            build(config, system, web)
        assert (caught.value.where, text in caught.value.detail) == (where, True), (config, caught.value)
    with pytest.raises(ConfigError) as missing:
        lookup("source", {"type": "ldap", "system": "dir"}, "pipe p1: source")
    assert missing.value.where == "pipe p1: source" and "'search_base' is a required property" in missing.value.detail
    source = build({"is_since_comparable": True, "supports_since": False, "search_base": ""}, system)  # the root
    assert source.continuation == "none" and source.adds_namespaces


@pytest.mark.parametrize(("config", "where", "text"), [
    ({"port": 0}, "$['port']", "minimum"),
    ({"port": "389"}, "$['port']", "integer"),
    ({"use_ssl": "yes"}, "$['use_ssl']", "boolean"),
    ({"username": f"cn=x,{SUFFIX}"}, "$", "'password' is required when 'username' is set"),
    ({"charset": "klingon"}, "$['charset']", "unknown charset"),
    ({"connect_timeout": "soon"}, "$['connect_timeout']", ""),
    ({"read_timeout": -1}, "$['read_timeout']", ""),
    ({"use_ssl": True, "custom_ca_pem_chain": "junk"}, "$['custom_ca_pem_chain']", "not a valid PEM"),
    ({"worker_threads": 0}, "$['worker_threads']", ""),
])
def test_system_config_errors_name_the_path(config: dict[str, Any], where: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "dir", "type": "system:ldap", **config})
    assert caught.value.where == where
    assert text in caught.value.detail


def test_system_defaults_and_tls_settings() -> None:
    plain = build_system({"_id": "dir", "type": "ldap"})
    assert isinstance(plain, LdapSystem)
    assert (plain.host, plain.port, plain.use_ssl, plain.tls, plain.charset) == ("localhost", 389, False, None,
                                                                                 "latin-1")
    assert (plain.connect_timeout, plain.read_timeout) == (30, 1800)
    secure = build_system({"_id": "dir", "type": "system:ldap", "host": "ldap.example.org", "port": 636,
                           "use_ssl": True, "read_timeout": "~f2.5", "charset": "utf-8"})
    assert isinstance(secure, LdapSystem) and secure.tls is not None
    assert secure.describe() == "system 'dir' (ldaps at ldap.example.org:636)" and secure.read_timeout == 2.5
    unverified = build_system({"_id": "dir", "type": "system:ldap", "use_ssl": True, "verify_ssl": False})
    assert isinstance(unverified, LdapSystem) and unverified.tls is not None
    import ssl

    assert secure.tls.validate == ssl.CERT_REQUIRED and unverified.tls.validate == ssl.CERT_NONE
