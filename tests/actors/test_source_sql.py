"""The ``sql`` source (node-spec 6.10) against the local PostgreSQL and MariaDB servers and SQLite files, each
test in a scratch database it creates and drops: typed values in wire form, table and query reads, keys,
white/blacklists, incremental runs with ``updated_column`` (rows in the boundary timestamp), config errors,
unreachable servers and database errors; and a 200k-row table pumped in bounded memory."""

from __future__ import annotations

import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

import storage
from actors import ConfigError, Datasets, build_runner
from actors.components import BuildContext, TerminalError, TransientError, build_system, lookup
from actors.components.source_sql import SqlSource
from actors.testing import ScratchDatabase


def build(config: dict[str, Any], *systems: Any) -> SqlSource:
    """A sql source built through the registry, as the engine builds it."""
    config = {"type": "sql", "system": "db", **config}
    context = BuildContext(pipe_id="p1", pipe={"_id": "p1"}, datasets=None,  # type: ignore[arg-type]
                           where="source", systems={s.id: s for s in systems})
    source = lookup("source", config, "pipe p1: source").factory(config, context)
    assert isinstance(source, SqlSource)
    return source


def read(system: Any, since: Any = None, batch_size: int = 1000, **config: Any) -> list[dict[str, Any]]:
    return [e for batch in build(config, system).read(since, batch_size) for e in batch]


def failure(system: Any, kind: type[Exception] = TerminalError, since: Any = None, **config: Any) -> str:
    with pytest.raises(kind) as caught:
        read(system, since, **config)
    return str(caught.value)


def config_error(*systems: Any, **config: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build(config, *systems)
    return caught.value


PEOPLE = ["CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20), city VARCHAR(20))",
          "INSERT INTO people VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', NULL), (3, 'Lee', 'Bergen')"]


# -- typed values ------------------------------------------------------------------------------------------


def test_postgresql_values_in_wire_form(pg: ScratchDatabase) -> None:
    pg.run("""CREATE TABLE typed (id integer PRIMARY KEY, big bigint, small smallint, n numeric(21,10), n2 numeric,
              zero numeric(20,10), f double precision, r real, b boolean, t text, tilde text, ch char(3),
              ts timestamp, tstz timestamptz, d date, tm time, tmtz timetz, iv interval, by bytea, u uuid,
              j json, jb jsonb, arr integer[], tarr text[], narr numeric[], ip inet, nul text)""",
           """INSERT INTO typed VALUES (1, 9007199254740993, -7, 12345678901.1234567890, 1.50, 0, 1.5, 0.25, true,
              'plain', '~tnot a date', 'ab', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02', '2024-02-29',
              '10:11:12.5', '10:11:12+02', '1 day 02:03:04', '\\x000102ff', '531a379e-31bb-4ce1-8690-158dceb64be6',
              '{"a"\\: 1.10, "l"\\: [1, "x"]}', '{"b"\\: [1, 2.50]}', '{1,2,3}', '{a,"~tb"}', '{1.5,2.25}',
              '10.0.0.1', NULL)""")
    expected = {
        "_id": "1", "id": 1, "big": 9007199254740993, "small": -7, "n": "~f12345678901.1234567890", "n2": "~f1.50",
        "zero": "~f0.0000000000", "f": 1.5, "r": 0.25, "b": True, "t": "plain", "tilde": "~~tnot a date",
        "ch": "ab ", "ts": "~t2024-01-02T03:04:05.123456Z", "tstz": "~t2024-01-02T01:04:05Z", "d": "~t2024-02-29",
        "tm": "10:11:12.500000", "tmtz": "10:11:12+02:00", "iv": "26:03:04", "by": "~bAAEC/w==",
        "u": "~u531a379e-31bb-4ce1-8690-158dceb64be6", "j": {"a": "~f1.10", "l": [1, "x"]},
        "jb": {"b": [1, "~f2.50"]}, "arr": [1, 2, 3], "tarr": ["a", "~~tb"], "narr": ["~f1.5", "~f2.25"],
        "ip": "10.0.0.1",
    }
    system = pg.system()
    assert read(system, table="typed") == [expected]
    assert read(system, query="SELECT * FROM typed", primary_key="id") == [expected]
    assert read(system, table="typed", preserve_null_values=True) == [{**expected, "nul": None}]
    # every value is wire form: the dataset takes it, and decoding gives the typed values
    decoded = storage.decode(expected)
    assert isinstance(decoded["ts"], storage.Datetime) and str(decoded["n"]) == "12345678901.1234567890"
    assert decoded["by"] == b"\x00\x01\x02\xff" and decoded["u"] == uuid.UUID("531a379e-31bb-4ce1-8690-158dceb64be6")
    storage.prepare(expected)


def test_mariadb_values_in_wire_form(maria: ScratchDatabase) -> None:
    maria.run("""CREATE TABLE typed (id INT PRIMARY KEY, big BIGINT, n DECIMAL(30,10), zero DECIMAL(10,2), f DOUBLE,
                 b BOOLEAN, bit1 BIT(1), bit8 BIT(8), t TEXT, dt DATETIME(6), ts TIMESTAMP(3) NULL, d DATE,
                 tm TIME, bl BLOB, vb VARBINARY(8), j JSON, u UUID, e ENUM('a', 'b'), y YEAR, nul TEXT)""",
              """INSERT INTO typed VALUES (1, 9007199254740993, 12345678901.1234567890, 0, 1.5, true, b'1', b'101',
                 '~tx', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5', '2024-02-29', '-26:03:04',
                 x'000102ff', x'03', '{"a"\\: 1.10}', '531a379e-31bb-4ce1-8690-158dceb64be6', 'b', 2024, NULL)""")
    expected = {
        "_id": "1", "id": 1, "big": 9007199254740993, "n": "~f12345678901.1234567890", "zero": "~f0.00", "f": 1.5,
        "b": True, "bit1": True, "bit8": 5, "t": "~~tx", "dt": "~t2024-01-02T03:04:05.123456Z",
        "ts": "~t2024-01-02T03:04:05.5Z", "d": "~t2024-02-29", "tm": "-26:03:04", "bl": "~bAAEC/w==", "vb": "~bAw==",
        "j": {"a": "~f1.10"}, "u": "~u531a379e-31bb-4ce1-8690-158dceb64be6", "e": "b", "y": 2024,
    }
    system = maria.system()
    assert read(system, table="typed") == [expected]
    # a query has only the driver's types: MariaDB reports JSON and UUID columns as text
    assert read(system, query="SELECT * FROM typed", primary_key="id") == [
        {**expected, "j": '{"a": 1.10}', "u": "531a379e-31bb-4ce1-8690-158dceb64be6"}]


def test_sqlite_values_in_wire_form(lite: ScratchDatabase) -> None:
    lite.run("""CREATE TABLE typed (id INTEGER PRIMARY KEY, n NUMERIC(10,2), f REAL, b BOOLEAN, t TEXT, dt DATETIME,
                d DATE, bl BLOB, j JSON, nul TEXT)""",
             """INSERT INTO typed VALUES (1, 1.5, 0.25, 1, '~fnope', '2024-01-02 03:04:05.5', '2024-02-29', x'0102',
                '{"a"\\: 1.10}', NULL)""")
    system = lite.system()
    assert read(system, table="typed") == [{
        "_id": "1", "id": 1, "n": "~f1.50", "f": 0.25, "b": True, "t": "~~fnope", "dt": "~t2024-01-02T03:04:05.5Z",
        "d": "~t2024-02-29", "bl": "~bAQI=", "j": {"a": "~f1.10"}}]
    # a query's values are as stored (SQLite has no types in results)
    assert read(system, query="SELECT * FROM typed", primary_key="id") == [{
        "_id": "1", "id": 1, "n": 1.5, "f": 0.25, "b": 1, "t": "~~fnope", "dt": "2024-01-02 03:04:05.5",
        "d": "2024-02-29", "bl": "~bAQI=", "j": '{"a": 1.10}'}]


def test_naive_timestamps_are_read_in_the_system_time_zone(db: ScratchDatabase) -> None:
    naive = "DATETIME" if db.dialect == "mysql" else "TIMESTAMP"  # MySQL TIMESTAMP is an instant
    db.run(f"CREATE TABLE events (id INTEGER PRIMARY KEY, at {naive}, day DATE)",
           "INSERT INTO events VALUES (1, '2024-01-15 12:00:00', '2024-01-15'), (2, '2024-07-15 12:00:00', NULL)")
    system = db.system(timezone="Europe/Oslo")
    entities = read(system, table="events")
    assert [e["at"] for e in entities] == ["~t2024-01-15T11:00:00Z", "~t2024-07-15T10:00:00Z"]
    assert entities[0]["day"] == "~t2024-01-15"  # a date is not shifted
    for since, ids in (("~t2024-07-15T10:00:00Z", ["2"]), ("~t2024-07-15T10:00:00.000001Z", [])):
        assert [e["_id"] for e in read(system, since, table="events", updated_column="at")] == ids, since


def test_mysql_timestamp_columns_keep_their_instant_in_any_time_zone(maria: ScratchDatabase) -> None:
    maria.run("CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMP NULL)", "SET time_zone = '+00:00'",
              "INSERT INTO events VALUES (1, '2024-01-15 12:00:00'), (2, '2024-07-15 12:00:00')")
    # the session is in UTC and the source knows TIMESTAMP columns by their type, so no zone (nor the
    # server's lack of time zone tables, nor summer time) shifts them
    for zone in ("UTC", "Europe/Oslo", "Asia/Tokyo", "America/New_York"):
        system = maria.system(timezone=zone)
        assert read(system, table="events", updated_column="at") == [
            {"_id": "1", "id": 1, "at": "~t2024-01-15T12:00:00Z", "_updated": "~t2024-01-15T12:00:00.000000000Z"},
            {"_id": "2", "id": 2, "at": "~t2024-07-15T12:00:00Z", "_updated": "~t2024-07-15T12:00:00.000000000Z"}]
        assert read(system, query="SELECT * FROM events ORDER BY id", primary_key="id")[1]["at"] == (
            "~t2024-07-15T12:00:00Z")
        for since, ids in (("~t2024-01-15T12:00:00Z", ["1", "2"]), ("~t2024-01-15T12:00:00.000001Z", ["2"]),
                           ("~t2024-07-15T12:00:00Z", ["2"]), ("~t2024-07-15T12:00:01Z", [])):
            assert [e["_id"] for e in read(system, since, table="events", updated_column="at")] == ids, (zone, since)


def test_postgresql_time_zone_columns_and_since_agree_in_another_time_zone(pg: ScratchDatabase) -> None:
    pg.run("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz)",
           "INSERT INTO events VALUES (1, '2024-01-15 10:00:00Z'), (2, '2024-01-15 11:00:00Z')")
    system = pg.system(timezone="America/New_York")
    entities = read(system, table="events", updated_column="at")
    assert [e["_updated"] for e in entities] == ["~t2024-01-15T10:00:00.000000000Z", "~t2024-01-15T11:00:00.000000000Z"]
    assert [e["_id"] for e in read(system, entities[1]["_updated"], table="events", updated_column="at")] == ["2"]


def test_a_value_without_a_wire_form_names_its_column(pg: ScratchDatabase) -> None:
    pg.run("CREATE TABLE ranges (id integer PRIMARY KEY, span int4range)", "INSERT INTO ranges VALUES (1, '[1,3)')")
    system = pg.system()
    message = failure(system, table="ranges")
    assert "column 'span' of row 1" in message and "blacklist" in message
    assert read(system, table="ranges", blacklist=["span"]) == [{"_id": "1", "id": 1}]
    assert read(system, query="SELECT id, span::text AS span FROM ranges", primary_key="id") == [  # :: is no bind
        {"_id": "1", "id": 1, "span": "[1,3)"}]


# -- table, query, keys, columns ---------------------------------------------------------------------------


def test_table_and_query_read_the_same_rows(db: ScratchDatabase) -> None:
    db.run(*PEOPLE)
    system = db.system()
    people = [{"_id": "1", "id": 1, "name": "Ann", "city": "Oslo"}, {"_id": "2", "id": 2, "name": "Bob"},
              {"_id": "3", "id": 3, "name": "Lee", "city": "Bergen"}]
    assert read(system, table="people") == people  # the key from the table's metadata; NULL left out
    assert sorted(read(system, query="SELECT * FROM people", primary_key="id"), key=lambda e: e["_id"]) == people
    assert read(system, query=["SELECT id, name", "FROM people", "WHERE id = 3"], primary_key="id") == [
        {"_id": "3", "id": 3, "name": "Lee"}]  # a list of lines
    assert [e["_id"] for e in read(system, query="SELECT * FROM people WHERE name LIKE 'A%'", primary_key="id")
            ] == ["1"]  # a % is no placeholder
    assert read(system, table="people", preserve_null_values=True)[1] == {"_id": "2", "id": 2, "name": "Bob",
                                                                          "city": None}
    assert read(system, table="people", query="SELECT 1")[0]["name"] == "Ann"  # table wins (node-spec 6.10)
    batches = list(build({"table": "people"}, system).read(None, 2))
    assert [len(b) for b in batches] == [2, 1]


def test_schema_qualifies_the_table(server_db: ScratchDatabase) -> None:
    db = server_db
    schema = "other_schema" if db.dialect == "postgresql" else f"{db.system_config['database']}_other"
    db.run(f"CREATE SCHEMA {schema}", f"CREATE TABLE {schema}.people (id INTEGER PRIMARY KEY, name VARCHAR(9))",
           f"INSERT INTO {schema}.people VALUES (7, 'Ola')")
    try:
        system = db.system()
        assert read(system, table="people", schema=schema) == [{"_id": "7", "id": 7, "name": "Ola"}]
        assert "does not exist" in failure(system, table="people")
    finally:
        if db.dialect == "mysql":
            db.run(f"DROP DATABASE {schema}")


def test_compound_keys_join_the_values_with_a_colon(db: ScratchDatabase) -> None:
    db.run("CREATE TABLE stock (country VARCHAR(2), no INTEGER, amount NUMERIC(5,1), PRIMARY KEY (country, no))",
           "INSERT INTO stock VALUES ('no', 1, 2.5), ('se', 10, 1)")
    system = db.system()
    assert [e["_id"] for e in read(system, table="stock")] == ["no:1", "se:10"]  # the table's key, in its order
    assert [e["_id"] for e in read(system, table="stock", primary_key=["no", "country"])] == ["1:no", "10:se"]
    stored_one = "1" if db.dialect == "sqlite" else "1.0"  # a query on SQLite has no declared types
    assert [e["_id"] for e in read(system, query="SELECT * FROM stock ORDER BY no", primary_key=["country", "amount"])
            ] == ["no:2.5", f"se:{stored_one}"]  # typed key values without their tag


def test_whitelist_then_blacklist_choose_the_columns_but_not_the_key(db: ScratchDatabase) -> None:
    db.run(*PEOPLE)
    system = db.system()
    for mode in ({"table": "people"}, {"query": "SELECT * FROM people", "primary_key": "id"}):
        first = read(system, **mode, whitelist=["name", "city"])
        assert sorted(first, key=lambda e: e["_id"])[0] == {"_id": "1", "name": "Ann", "city": "Oslo"}
        assert read(system, **mode, whitelist=["name", "city"], blacklist=["city"])[0]["_id"] in ("1", "2", "3")
        assert {k for e in read(system, **mode, whitelist=["name", "city"], blacklist=["city"]) for k in e} == {
            "_id", "name"}
        assert {k for e in read(system, **mode, blacklist=["id", "nothing"]) for k in e} == {"_id", "name", "city"}


def test_a_null_key_or_a_missing_key_column_fails_the_run(db: ScratchDatabase) -> None:
    db.run("CREATE TABLE loose (code VARCHAR(5), name VARCHAR(5))", "INSERT INTO loose VALUES ('a', 'x'), (NULL, 'y')")
    system = db.system()
    assert "has no primary key; set 'primary_key'" in failure(system, table="loose")
    assert "row 2 has NULL in the primary_key column 'code'" in failure(system, table="loose", primary_key="code")
    assert "primary_key column 'nope' is not in table 'loose'" in failure(system, table="loose", primary_key="nope")
    assert "primary_key column 'nope' is not in the result" in failure(system, query="SELECT * FROM loose",
                                                                     primary_key="nope")


# -- incremental runs --------------------------------------------------------------------------------------


def pipe(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"_id": "people", "type": "pipe", "source": {"type": "sql", "system": "db", **source}, **extra}


def latest(datasets: Datasets, name: str = "people") -> dict[str, dict[str, Any]]:
    dataset = datasets.get(name)
    assert dataset is not None
    return {e["_id"]: e for e in dataset.iter_entities(history=False, deleted=False)}


def test_incremental_runs_reread_the_boundary_timestamp(db: ScratchDatabase, datasets: Datasets) -> None:
    db.run("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20), changed TIMESTAMP NULL)",
           "INSERT INTO people VALUES (1, 'Ann', '2024-01-01 10:00:00'), (2, 'Bob', '2024-01-01 11:00:00')")
    system = db.system()
    runner = build_runner(pipe({"table": "people", "updated_column": "changed"}), datasets, systems={"db": system})
    assert runner.source.continuation == "chronological"
    first = runner.run()
    assert (first.sync_type, first.processed, first.changes) == ("full", 2, 2)
    assert first.offset == "~t2024-01-01T11:00:00.000000000Z"
    # committed after the first run read: a row in the same second as its last row, and a change to Ann
    db.run("INSERT INTO people VALUES (3, 'Cid', '2024-01-01 11:00:00')",
           "UPDATE people SET name = 'Anna', changed = '2024-01-01 12:00:00' WHERE id = 1")
    second = runner.run()
    assert second.sync_type == "incremental"
    assert second.processed == 3 and second.changes == 2  # Bob again (>=: unchanged, a no-op), Cid and Anna
    assert second.offset == "~t2024-01-01T12:00:00.000000000Z"
    entities = latest(datasets)
    assert {k: e["name"] for k, e in entities.items()} == {"1": "Anna", "2": "Bob", "3": "Cid"}
    assert entities["3"]["changed"] == "~t2024-01-01T11:00:00Z"
    assert runner.run().changes == 0  # only Anna again
    full = runner.run(kind="full")
    assert full.processed == 3 and full.changes == 0


def test_query_with_updated_query_and_a_wrapped_query(db: ScratchDatabase, datasets: Datasets) -> None:
    db.run("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20), version INTEGER)",
           "INSERT INTO people VALUES (1, 'Ann', 5), (2, 'Bob', 7)")
    system = db.system()
    updated_query = {"query": "SELECT * FROM people", "primary_key": "id", "updated_column": "version",
                     "updated_query": "SELECT * FROM people WHERE version >= :since"}
    wrapped = {"query": "SELECT id, name, version FROM people", "primary_key": "id", "updated_column": "version"}
    for number, source in enumerate((updated_query, wrapped)):
        name = f"people{number}"
        runner = build_runner({**pipe(source), "_id": name}, datasets, systems={"db": system})
        assert runner.source.continuation == "max"  # a query is not chronological unless it says so
        first = runner.run()
        assert first.processed == 2 and first.offset == 7
        assert [e["_id"] for e in read(system, 7, **source)] == ["2"]
        second = runner.run()
        assert second.processed == 1 and second.changes == 0
    db.run("INSERT INTO people VALUES (3, 'Cid', 7)", "UPDATE people SET version = 9, name = 'Bo' WHERE id = 2")
    for number in range(2):
        runner = build_runner({**pipe((updated_query, wrapped)[number]), "_id": f"people{number}"}, datasets,
                              systems={"db": system})
        result = runner.run()
        assert result.processed == 2 and result.changes == 2 and result.offset == 9
        assert {k: e["name"] for k, e in latest(datasets, f"people{number}").items()} == {"1": "Ann", "2": "Bo",
                                                                                          "3": "Cid"}


def test_a_query_may_declare_itself_chronological(db: ScratchDatabase) -> None:
    db.run(*PEOPLE)
    system = db.system()
    source = build({"query": "SELECT * FROM people ORDER BY id", "primary_key": "id", "updated_column": "id",
                    "is_chronological": True}, system)
    assert source.continuation == "chronological"
    assert [e["_updated"] for batch in source.read(2, 10) for e in batch] == [2, 3]


def test_initial_since_value_is_bound_for_the_first_run(pg: ScratchDatabase, datasets: Datasets) -> None:
    pg.run("CREATE TABLE people (id integer PRIMARY KEY, changed timestamp)",
           "INSERT INTO people VALUES (1, '2023-06-01'), (2, '2024-06-01')")
    system = pg.system()
    for since in ("~t2024-01-01T00:00:00Z", "2024-01-01 00:00:00"):  # transit, or text the database casts
        name = f"p{len(since)}"
        runner = build_runner({**pipe({"table": "people", "updated_column": "changed", "initial_since_value": since}),
                               "_id": name}, datasets, systems={"db": system})
        assert runner.run().processed == 1 and list(latest(datasets, name)) == ["2"]


# -- reading: connections, streaming, errors ----------------------------------------------------------------


def test_reads_are_read_only_transactions(pg: ScratchDatabase, maria: ScratchDatabase) -> None:
    pg.run("CREATE SEQUENCE counter")
    maria.run("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    for db, query in ((pg, "SELECT nextval('counter') AS id"), (maria, "INSERT INTO t VALUES (1)")):
        message = failure(db.system(), query=query, primary_key="id")
        assert "read-only" in message.lower() or "read only" in message.lower(), message


def test_a_stopped_read_returns_its_connection(db: ScratchDatabase) -> None:
    db.run("CREATE TABLE numbers (id INTEGER PRIMARY KEY)")
    db.run("INSERT INTO numbers VALUES " + ", ".join(f"({i})" for i in range(5000)))
    system = db.system()
    reader = build({"table": "numbers", "fetch_size": 100}, system).read(None, 10)
    assert len(next(reader)) == 10
    reader.close()
    if db.dialect != "sqlite":
        assert system.engine.pool.checkedout() == 0
    assert len(read(system, table="numbers")) == 5000  # the pool still works


def test_database_errors_carry_the_database_message(db: ScratchDatabase) -> None:
    db.run(*PEOPLE)
    system = db.system()
    assert "table 'nope' does not exist" in failure(system, table="nope")
    message = failure(system, query="SELECT nope FROM people", primary_key="id")
    assert "system 'db'" in message and "nope" in message
    expected = {"postgresql": "does not exist", "mysql": "Unknown column", "sqlite": "no such column"}[db.dialect]
    assert expected in message
    assert "updated_column 'nope' is not in table 'people'" in failure(system, table="people", updated_column="nope")
    assert "updated_column 'nope' is not in the result" in failure(
        system, query="SELECT * FROM people", primary_key="id", updated_column="nope")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_an_unreachable_server_is_a_transient_error_naming_the_system(dialect: str) -> None:
    port = closed_port()
    config = ({"type": "system:postgresql", "username": "postgres"} if dialect == "postgresql"
              else {"type": "system:mysql", "username": "root"})
    system = build_system({"_id": "db", **config, "host": "127.0.0.1", "port": port, "database": "test",
                           "pool_timeout": 2})
    trio.run(system.open)
    try:
        started = time.monotonic()
        message = failure(system, TransientError, table="people")
        assert time.monotonic() - started < 10
    finally:
        trio.run(system.close)
    assert message.startswith(f"system 'db' ({dialect} at 127.0.0.1:{port}/test): cannot connect: ")
    assert "refused" in message.lower() or "can't connect" in message.lower(), message


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_system_that_is_missing_unopened_or_without_its_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    source = build({"table": "t"})
    with pytest.raises(TerminalError, match="system 'db' is not in the config"):
        list(source.read(None, 10))
    system = build_system({"_id": "db", "type": "system:mysql", "host": "127.0.0.1", "database": "test",
                           "pool_timeout": "~f0.2"})
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"system 'db' \(mysql at 127.0.0.1:3306/test\): the system is not open"):
        list(build({"table": "t"}, system).read(None, 10))
    assert 0.2 <= time.monotonic() - started < 5  # waited for it to open, as long as for a connection
    monkeypatch.setitem(sys.modules, "pymysql", None)  # the driver is not installed
    with pytest.raises(TerminalError, match=r"system 'db' \(mysql at .*\): the database driver is not installed"):
        list(build({"table": "t"}, system).read(None, 10))


# -- config ------------------------------------------------------------------------------------------------


def test_config_errors_name_the_property(tmp_path: Path) -> None:
    lite = build_system({"_id": "db", "type": "system:sqlite", "database": str(tmp_path / "x.db")})
    web = build_system({"_id": "web", "type": "system:url", "base_url": "http://h/"})
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({}, "pipe p1: source", "one of 'table' and 'query' is required"),
        ({"query": "SELECT 1"}, "pipe p1: source.primary_key", "needs 'primary_key'"),
        ({"query": "SELECT * FROM t WHERE a = :a", "primary_key": "a"}, "pipe p1: source.query", ":a"),
        ({"table": "t", "updated_query": "SELECT 1 WHERE x >= :since"}, "pipe p1: source.updated_query",
         "goes with 'query'"),
        ({"query": "SELECT 1", "primary_key": "a", "updated_query": "SELECT 1 WHERE x >= :since"},
         "pipe p1: source.updated_query", "needs 'updated_column'"),
        ({"query": "SELECT 1", "primary_key": "a", "updated_column": "x", "updated_query": "SELECT 1"},
         "pipe p1: source.updated_query", "no bind variable :since"),
        ({"table": "t", "supports_since": True}, "pipe p1: source.supports_since", "fixed to false"),
        ({"table": "t", "updated_column": "x", "is_chronological": False}, "pipe p1: source.is_chronological",
         "fixed to true"),
        ({"table": "t", "system": "web"}, "pipe p1: source.system", "a sql source needs a SQL system"),
        ({"table": ""}, "pipe p1: source.table", ""),
        ({"table": "t", "primary_key": []}, "pipe p1: source.primary_key", ""),
        ({"table": "t", "fetch_size": 0}, "pipe p1: source.fetch_size", ""),
        ({"table": "t", "whitelist": "name"}, "pipe p1: source.whitelist", ""),
    ]
    for config, where, text in cases:
        error = config_error(lite, web, **config)
        assert (error.where, text in error.detail) == (where, True), (config, error)
    source = build({"query": "SELECT * FROM t", "primary_key": ["a"], "updated_column": "x", "is_chronological": True,
                    "is_since_comparable": True}, lite)
    assert source.supports_since and source.is_chronological
    assert build({"table": "t"}, lite).continuation == "none"
    with pytest.raises(ConfigError) as caught:  # a system type the node does not know
        build_system({"_id": "db2", "type": "system:db2", "host": "h", "database": "d"})
    assert caught.value.where == "$['type']" and "unknown or unsupported system type" in caught.value.detail


def test_the_pipe_reports_config_errors_with_its_id(datasets: Datasets) -> None:
    with pytest.raises(ConfigError) as caught:
        build_runner(pipe({}), datasets)
    assert caught.value.where == "pipe people: source"


# -- bounded memory ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_large_table_is_pumped_in_bounded_memory(pg: ScratchDatabase, datasets: Datasets) -> None:
    """About 130 MB of text: read without a server-side cursor the peak RSS grows by some 190 MB (measured),
    streamed by about 30 MB."""
    rows = 200_000
    pg.run("""CREATE TABLE big (id integer PRIMARY KEY, name text, amount numeric(12,2), changed timestamp)""",
           f"""INSERT INTO big SELECT i, repeat('x', 600) || i, i / 100.0, '2024-01-01'::timestamp + i * interval '1 s'
               FROM generate_series(1, {rows}) AS i""")
    system = pg.system()
    runner = build_runner({**pipe({"table": "big", "updated_column": "changed", "fetch_size": 2000}), "_id": "big",
                           "batch_size": 1000}, datasets, systems={"db": system})
    process = psutil.Process()
    base = process.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        result = runner.run()
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    growth = (peak - base) / 2**20
    print(f"\n{rows} rows in {elapsed:.1f} s ({rows / elapsed:.0f} rows/s); peak RSS growth {growth:.1f} MB")
    assert result.processed == rows and result.changes == rows
    assert result.offset == "~t2024-01-03T07:33:20.000000000Z"  # 2024-01-01 + 200000 s
    assert growth < 150, f"peak RSS grew by {growth:.1f} MB"
