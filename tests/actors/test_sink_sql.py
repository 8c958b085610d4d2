"""The ``sql`` sink (node-spec 8.9) against the local PostgreSQL and MariaDB servers and SQLite files, each
test in a scratch database it creates and drops: upserts and deletes by key, a round trip of typed values
through sql source -> dataset -> sql sink, composite keys, schema_definition tables, first-run handling,
values that do not fit, constraint violations and lock timeouts through the write-error policy."""

from __future__ import annotations

import datetime as _dt
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy
import trio

from actors import ConfigError, Datasets, PipeRunError, build_runner
from actors.components import BuildContext, TransientError, build_system, lookup
from actors.components.sink_sql import SqlSink
from actors.testing import ScratchDatabase


def source_pipe(entities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"_id": "src", "type": "pipe", "source": {"type": "embedded", "entities": entities}}


def sink_pipe(sink: dict[str, Any], source: str = "src", **extra: Any) -> dict[str, Any]:
    return {"_id": "out", "type": "pipe", "source": {"type": "dataset", "dataset": source},
            "sink": {"type": "sql", "system": "db", **sink}, **extra}


class Pipes:
    """An embedded source pipe feeding dataset ``src``, and a sql sink pipe reading it."""

    def __init__(self, datasets: Datasets, system: Any, sink: dict[str, Any], **extra: Any) -> None:
        self.datasets, self.system, self.sink, self.extra = datasets, system, sink, extra
        self.out = build_runner(sink_pipe(sink, **extra), datasets, systems={"db": system})

    def feed(self, entities: list[dict[str, Any]]) -> Any:
        """Run the source pipe over ``entities`` (a full run: ids it no longer has are deleted), then the
        sink pipe; returns the sink's run result."""
        build_runner(source_pipe(entities), self.datasets).run()
        return self.out.run()


def rows(db: ScratchDatabase, table: str = "people", order: str = "id") -> list[tuple[Any, ...]]:
    return db.rows(f"SELECT * FROM {table} ORDER BY {order}")


PEOPLE = "CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20), city VARCHAR(20))"


def test_upserts_and_deletes_by_key(db: ScratchDatabase, datasets: Datasets) -> None:
    db.run(PEOPLE)
    pipes = Pipes(datasets, db.system(), {"table": "people"})
    first = pipes.feed([{"_id": "1", "id": 1, "name": "Ann", "city": "Oslo"}, {"_id": "2", "id": 2, "name": "Bob"},
                        {"_id": "3", "name": "Cid", "city": "Bergen", "ignored": True}])  # id 3 from _id
    assert first.changes == 3
    assert rows(db) == [(1, "Ann", "Oslo"), (2, "Bob", None), (3, "Cid", "Bergen")]
    # Ann moves, Bob goes (a full run of the source deletes him), Cid loses his city (the row mirrors him)
    second = pipes.feed([{"_id": "1", "id": 1, "name": "Ann", "city": "Trondheim"}, {"_id": "3", "name": "Cid"}])
    assert second.changes == 3
    assert rows(db) == [(1, "Ann", "Trondheim"), (3, "Cid", None)]
    assert pipes.out.run().changes == 0  # nothing new in the dataset: nothing written


def test_an_id_repeated_in_a_batch_is_written_once_as_its_last_version(db: ScratchDatabase, datasets: Datasets
                                                                        ) -> None:
    db.run(PEOPLE)
    system = db.system()
    sink = lookup("sink", {"type": "sql", "system": "db", "table": "people"}, "pipe out: sink").factory(
        {"type": "sql", "system": "db", "table": "people"},
        BuildContext(pipe_id="out", pipe={"_id": "out"}, datasets=datasets, where="sink", systems={"db": system}))
    assert isinstance(sink, SqlSink)
    sink.begin_run()
    datasets.apply(sink.write([{"_id": "1", "name": "a"}, {"_id": "1", "name": "b"}, {"_id": "2", "name": "x"},
                               {"_id": "2", "_deleted": True}], state={"offset": 1}, full_run=None))
    assert rows(db) == [(1, "b", None)]
    assert sink.load_state() == {"offset": 1}


ROUND_TRIP = {
    "postgresql": ("""CREATE TABLE {t} (id integer PRIMARY KEY, n numeric(12,4), f double precision, b boolean,
                      t text, ts timestamp, tz timestamptz, d date, tm time, bl bytea, u uuid, j jsonb,
                      a integer[], big bigint)""",
                   """INSERT INTO {t} VALUES (1, 12.3400, 0.25, true, '~tricky', '2024-07-15 12:00:00.123456',
                      '2024-01-15 10:00:00Z', '2024-02-29', '13:14:15', '\\x0102',
                      '6f1c2b4e-1111-2222-3333-444455556666', '{{"a": 1.10, "b": [1, "x"]}}', '{{1,2,3}}',
                      9007199254740993), (2, NULL, NULL, NULL, NULL,
                      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""),
    "mysql": ("""CREATE TABLE {t} (id INTEGER PRIMARY KEY, n DECIMAL(12,4), f DOUBLE, b BOOLEAN, t TEXT,
                 ts DATETIME(6), tz TIMESTAMP NULL, d DATE, tm TIME, bl BLOB, j JSON, big BIGINT)""",
              """INSERT INTO {t} VALUES (1, 12.3400, 0.25, true, '~tricky', '2024-07-15 12:00:00.123456',
                 '2024-01-15 10:00:00', '2024-02-29', '13:14:15', x'0102', '{{"a": 1.10, "b": [1, "x"]}}',
                 9007199254740993), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""),
    "sqlite": ("""CREATE TABLE {t} (id INTEGER PRIMARY KEY, n NUMERIC(12,4), f REAL, b BOOLEAN, t TEXT,
                  ts DATETIME, d DATE, bl BLOB, j JSON, big BIGINT)""",
               """INSERT INTO {t} VALUES (1, 12.34, 0.25, 1, '~tricky', '2024-07-15 12:00:00.123456',
                  '2024-02-29', x'0102', '{{"a": 1.10, "b": [1, "x"]}}', 9007199254740993),
                  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""),
}


def test_typed_values_round_trip_through_a_dataset(db: ScratchDatabase, datasets: Datasets) -> None:
    create, insert = ROUND_TRIP[db.dialect]
    db.run(create.format(t="src_table"), insert.format(t="src_table"), create.format(t="copy"))
    system = db.system(timezone="Europe/Oslo")  # naive timestamps are read and written in Oslo time
    source = build_runner({"_id": "typed", "type": "pipe", "source": {"type": "sql", "system": "db",
                                                                       "table": "src_table"}},
                          datasets, systems={"db": system})
    assert source.run().changes == 2
    copy = build_runner(sink_pipe({"table": "copy"}, source="typed"), datasets, systems={"db": system})
    assert copy.run().changes == 2
    original, copied = rows(db, "src_table"), rows(db, "copy")
    assert len(original) == 2 and copied == original
    stored = datasets.get("typed")
    assert stored is not None
    entity = next(e for e in stored.iter_entities(history=False) if e["_id"] == "1")
    assert entity["t"] == "~~tricky" and entity["big"] == 9007199254740993


def test_composite_keys_and_a_key_missing_from_the_entity(db: ScratchDatabase, datasets: Datasets) -> None:
    db.run("CREATE TABLE stock (country VARCHAR(2), no INTEGER, amount NUMERIC(5,1), PRIMARY KEY (country, no))")
    pipes = Pipes(datasets, db.system(), {"table": "stock"})
    first = pipes.feed([{"_id": "no:1", "country": "no", "no": 1, "amount": "~f2.5"},
                        {"_id": "se:10", "country": "se", "no": 10, "amount": 1}])
    assert first.changes == 2
    assert [(c, n, Decimal(str(a))) for c, n, a in db.rows("SELECT * FROM stock ORDER BY country")] == [
        ("no", 1, Decimal("2.5")), ("se", 10, Decimal("1"))]
    pipes.feed([{"_id": "no:1", "country": "no", "no": 1, "amount": 3}])
    assert [(c, n) for c, n, _ in db.rows("SELECT * FROM stock")] == [("no", 1)]
    # a compound key has no _id fallback: the entity fails to write (the default policy fails the run)
    with pytest.raises(PipeRunError) as failed:
        pipes.feed([{"_id": "no:1", "country": "no", "no": 1, "amount": 3}, {"_id": "x", "country": "dk"}])
    assert "primary key column 'no'" in str(failed.value)


SCHEMA = [{"source_property": "_id", "name": "pid", "type": "string", "max_size": 20, "primary_key": True},
          {"name": "name", "type": "string", "max_size": 40, "index": True},
          {"name": "score", "type": "decimal", "precision": 8, "scale": 2},
          {"name": "born", "type": "date"},
          {"name": "active", "type": "boolean", "default": True},
          {"name": "sesam-timestamp", "type": "datetime"}]


def test_schema_definition_creates_the_table_and_maps_properties(db: ScratchDatabase, datasets: Datasets) -> None:
    pipes = Pipes(datasets, db.system(), {"table": "members", "create_table_if_missing": True,
                                          "schema_definition": SCHEMA})
    before = _dt.datetime.now(_dt.UTC).replace(tzinfo=None, microsecond=0) - _dt.timedelta(seconds=1)
    result = pipes.feed([{"_id": "a", "name": "Ann", "score": "~f1.5", "born": "~t1990-05-17", "active": False},
                         {"_id": "b", "name": "Bob", "born": "~t1991-01-01T23:30:00Z", "active": True}])
    assert result.changes == 2
    found = db.rows('SELECT pid, name, score, born, active, "sesam-timestamp" FROM members ORDER BY pid'
                    if db.dialect != "mysql" else
                    "SELECT pid, name, score, born, active, `sesam-timestamp` FROM members ORDER BY pid")
    assert [(p, n, None if s is None else Decimal(str(s)), str(b), bool(a)) for p, n, s, b, a, _ in found] == [
        ("a", "Ann", Decimal("1.50"), "1990-05-17", False), ("b", "Bob", None, "1991-01-01", True)]
    stamps = [_dt.datetime.fromisoformat(str(s)) for *_, s in found]
    assert all(before <= stamp <= before + _dt.timedelta(seconds=60) for stamp in stamps), stamps
    indexes = sqlalchemy.inspect(db.engine).get_indexes("members")
    assert any(index["column_names"] == ["name"] for index in indexes)


def test_first_run_truncates_or_recreates_the_table(db: ScratchDatabase, datasets: Datasets) -> None:
    db.run(PEOPLE, "INSERT INTO people VALUES (7, 'Old', 'row')")
    pipes = Pipes(datasets, db.system(), {"table": "people", "truncate_table_on_first_run": True})
    pipes.feed([{"_id": "1", "name": "Ann"}])
    assert rows(db) == [(1, "Ann", None)]  # the old row went with the first run
    db.run("INSERT INTO people VALUES (8, 'Kept', 'row')")
    pipes.feed([{"_id": "1", "name": "Ann"}, {"_id": "2", "name": "Bob"}])  # not a first run: nothing emptied
    assert [r[0] for r in rows(db)] == [1, 2, 8]
    pipes.out.set_offset(None)  # a reset: the next run is a first run again
    pipes.out.run()
    assert [r[0] for r in rows(db)] == [1, 2]

    recreated = Pipes(datasets, db.system(), {"table": "people", "recreate_table_on_first_run": True,
                                              "schema_definition": [
                                                  {"name": "id", "type": "integer", "primary_key": True},
                                                  {"name": "label", "type": "string", "max_size": 10}]},
                      _id="out2")
    recreated.out = build_runner({**sink_pipe(recreated.sink), "_id": "out2"}, datasets, systems={"db": db.system()})
    recreated.out.run()
    assert [c["name"] for c in sqlalchemy.inspect(db.engine).get_columns("people")] == ["id", "label"]
    assert rows(db) == [(1, None), (2, None)]


def test_bad_values_and_constraint_violations_are_write_errors(db: ScratchDatabase, datasets: Datasets) -> None:
    db.run("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, age INTEGER)")
    pipes = Pipes(datasets, db.system(), {"table": "people"},
                  pump={"max_consecutive_write_errors": 5, "max_retries_per_entity": 0, "batch_retries": 0})
    result = pipes.feed([{"_id": "1", "name": "Ann", "age": 30}, {"_id": "2", "age": 31},  # NOT NULL
                         {"_id": "3", "name": "Cid", "age": "~f2.5"},  # not an integer
                         {"_id": "4", "name": "Dan", "age": {"nested": 1}}, {"_id": "5", "name": "Eve"}])
    assert result.write_errors == 3
    assert rows(db) == [(1, "Ann", 30), (5, "Eve", None)]
    log = datasets.get("system:pump_execution:out")
    assert log is not None
    errors = [e for e in log.iter_entities(history=False) if e.get("event_type") == "write-error"]
    messages = " | ".join(str(e) for e in errors)
    assert "'2'" in messages and "is not an integer" in messages and "does not fit" in messages


def test_config_errors_name_the_property(db: ScratchDatabase) -> None:
    system = db.system()

    def error(**sink: Any) -> str:
        config = {"type": "sql", "system": "db", **sink}
        with pytest.raises(ConfigError) as caught:
            lookup("sink", config, "pipe out: sink").factory(
                config, BuildContext(pipe_id="out", pipe={"_id": "out"}, datasets=None,  # type: ignore[arg-type]
                                     where="sink", systems={"db": system}))
        return f"{caught.value.where}: {caught.value}"

    assert "create_table_if_missing needs a schema_definition" in error(table="t", create_table_if_missing=True)
    assert "no column has" in error(table="t", schema_definition=[{"name": "a", "type": "string"}])
    assert "defined twice" in error(table="t", schema_definition=[{"name": "a", "type": "string",
                                                                    "primary_key": True},
                                                                   {"name": "a", "type": "integer"}])
    assert "differs" in error(table="t", primary_key="b", schema_definition=[
        {"name": "a", "type": "string", "primary_key": True}])
    with pytest.raises(ConfigError) as caught:
        lookup("sink", {"type": "sql", "system": "db"}, "pipe out: sink")
    assert "table" in str(caught.value)


def test_a_missing_table_and_a_missing_system_fail_the_run(db: ScratchDatabase, datasets: Datasets) -> None:
    pipes = Pipes(datasets, db.system(), {"table": "nowhere"})
    with pytest.raises(PipeRunError) as missing:
        pipes.feed([{"_id": "1"}])
    assert "'nowhere' does not exist" in str(missing.value)
    runner = build_runner(sink_pipe({"table": "people", "system": "gone"}), datasets, systems={})
    with pytest.raises(PipeRunError) as gone:
        runner.run()
    assert "system 'gone'" in str(gone.value)


def test_a_lock_timeout_is_transient_and_retried(pg: ScratchDatabase, datasets: Datasets) -> None:
    pg.run(PEOPLE, "INSERT INTO people VALUES (1, 'Ann', 'Oslo')")
    system = pg.system()
    config = {"type": "sql", "system": "db", "table": "people", "lock_timeout": 0.2}
    sink = lookup("sink", config, "pipe out: sink").factory(
        config, BuildContext(pipe_id="out", pipe={"_id": "out", "pump": {"batch_retries": 0}}, datasets=datasets,
                             where="sink", systems={"db": system}))
    holder = pg.engine.connect()
    transaction = holder.begin()
    holder.exec_driver_sql("SELECT * FROM people WHERE id = 1 FOR UPDATE")
    try:
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            sink.write([{"_id": "1", "name": "Anna"}], state={}, full_run=None)
        assert "lock" in str(caught.value) and time.monotonic() - started < 5
        # with a retry, a lock released in the meantime lets the write through
        sink.retries = type(sink.retries)(retries=3, delay=0.3)
        threading.Timer(0.4, transaction.rollback).start()
        sink.write([{"_id": "1", "name": "Anna"}], state={}, full_run=None)
    finally:
        time.sleep(0.5)
        holder.close()
    assert rows(pg) == [(1, "Anna", None)]


def test_an_unreachable_server_is_transient(datasets: Datasets) -> None:
    system = build_system({"_id": "db", "type": "system:postgresql", "host": "127.0.0.1", "port": 1,
                           "database": "x", "username": "postgres", "pool_timeout": 1})
    trio.run(system.open)
    try:
        config = {"type": "sql", "system": "db", "table": "people"}
        sink = lookup("sink", config, "pipe out: sink").factory(
            config, BuildContext(pipe_id="out", pipe={"_id": "out", "pump": {"batch_retries": 0}},
                                 datasets=datasets, where="sink", systems={"db": system}))
        with pytest.raises(TransientError) as caught:
            sink.write([{"_id": "1"}], state={}, full_run=None)
        assert "cannot connect" in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    finally:
        trio.run(system.close)
