"""The ``sql`` source and sink through a real ``sesamd serve``, in scratch databases the tests create and
drop: a ``system:postgresql`` table read into a dataset by pump runs over the API, then an incremental run
that picks up a row changed in the boundary timestamp; and that dataset written into a MariaDB table by a
``sql`` sink, following inserts, changes and deletes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from actors.testing import scratch_database
from sesamd.testing import serve_process

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def database() -> Iterator[sqlalchemy.Engine]:
    """A scratch PostgreSQL database (its engine; the database's name is ``engine.url.database``)."""
    name = f"sesamd_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = sqlalchemy.create_engine(sqlalchemy.make_url(PG_ADMIN).set(database=name), poolclass=sqlalchemy.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def run(engine: sqlalchemy.Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def config(database: str) -> list[dict[str, Any]]:
    return [
        {"_id": "crm", "type": "system:postgresql", "host": "127.0.0.1", "database": database,
         "username": "postgres", "timezone": "Europe/Oslo"},
        {"_id": "customers", "type": "pipe", "pump": {"mode": "manual"},
         "source": {"type": "sql", "system": "crm", "table": "customer", "updated_column": "changed",
                    "blacklist": ["secret"]}},
    ]


def runtime(client: httpx.Client, pipe_id: str) -> dict[str, Any]:
    response = client.get(f"/pipes/{pipe_id}/pump")
    assert response.status_code == 200, response.text
    return response.json()["runtime"]  # type: ignore[no-any-return]


def pump(client: httpx.Client, pipe_id: str, timeout: float = 30) -> dict[str, Any]:
    """Start a run and wait until the pump has finished it; returns the pump's runtime."""
    before = runtime(client, pipe_id)["last-run"]
    response = client.post(f"/pipes/{pipe_id}/pump", data={"operation": "start"})
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + timeout
    while True:
        now = runtime(client, pipe_id)
        if not now["is-running"] and now["last-run"] != before:
            return now
        assert time.monotonic() < deadline, now
        time.sleep(0.05)


def entities(client: httpx.Client, dataset: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"/datasets/{dataset}/entities", params={"history": "false", "deleted": "false"})
    assert response.status_code == 200, response.text
    return {e["_id"]: e for e in response.json()}


def test_a_postgresql_table_is_pumped_into_a_dataset(tmp_path: Path, database: sqlalchemy.Engine) -> None:
    run(database, """CREATE TABLE customer (id integer PRIMARY KEY, name text, balance numeric(10,2),
                     changed timestamp NOT NULL, secret text)""",
        """INSERT INTO customer VALUES (1, 'Ann', 10.50, '2024-03-01 10:00:00', 'x'),
           (2, 'Bob', 0, '2024-03-01 11:00:00', 'y')""")
    with serve_process(tmp_path / "data") as daemon:
        with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
            response = client.put("/config", content=json.dumps(config(database.url.database or "")),
                                  headers={"Content-Type": "application/json"})
            assert response.status_code == 200, response.text
            first = pump(client, "customers")
            assert first["success"] is True, (first["last-message"], first["last-original-error-message"])
            assert first["sync-type"] == "full" and "2024-03-01T10:00:00" in str(first["last-seen"])
            found = entities(client, "customers")
            assert {k: (e["name"], e["balance"], e["changed"]) for k, e in found.items()} == {
                "1": ("Ann", "~f10.50", "~t2024-03-01T09:00:00Z"),  # the numeric's digits; naive in Oslo time
                "2": ("Bob", "~f0.00", "~t2024-03-01T10:00:00Z"),
            }
            assert all("secret" not in e for e in found.values())
            # a row in the boundary second and a change to Ann, committed after the first run
            run(database, "INSERT INTO customer VALUES (3, 'Cid', 1, '2024-03-01 11:00:00', 'z')",
                "UPDATE customer SET name = 'Anna', changed = '2024-03-01 12:00:00' WHERE id = 1")
            second = pump(client, "customers")
            assert second["success"] is True, second
            assert second["sync-type"] == "incremental" and second["progress"]["processed"] == 3  # Bob, Cid, Anna
            found = entities(client, "customers")
            assert {k: e["name"] for k, e in found.items()} == {"1": "Anna", "2": "Bob", "3": "Cid"}
        assert daemon.terminate() == 0  # the client closed first: no keep-alive connection to wait for


def test_a_postgresql_table_is_copied_into_mariadb_and_followed(tmp_path: Path) -> None:
    with scratch_database("postgresql", tmp_path) as pg, scratch_database("mysql", tmp_path) as maria:
        pg.run("CREATE TABLE customer (id integer PRIMARY KEY, name text, balance numeric(10,2), "
               "changed timestamptz NOT NULL)",
               "INSERT INTO customer VALUES (1, 'Ann', 10.50, '2024-03-01 10:00Z'), "
               "(2, 'Bob', 0, '2024-03-01 11:00Z')")
        maria.run("CREATE TABLE customer (id INTEGER PRIMARY KEY, name VARCHAR(40), balance DECIMAL(10,2), "
                  "changed DATETIME(6), `sesam-timestamp` DATETIME(6))")
        config = [{**pg.system_config, "_id": "crm"}, {**maria.system_config, "_id": "dw"},
                  {"_id": "customers", "type": "pipe", "pump": {"mode": "manual"},
                   "source": {"type": "sql", "system": "crm", "table": "customer", "updated_column": "changed"}},
                  {"_id": "customers-dw", "type": "pipe", "pump": {"mode": "manual"},
                   "source": {"type": "dataset", "dataset": "customers"},
                   "sink": {"type": "sql", "system": "dw", "table": "customer"}}]
        with serve_process(tmp_path / "data") as daemon:
            with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
                response = client.put("/config", content=json.dumps(config),
                                      headers={"Content-Type": "application/json"})
                assert response.status_code == 200, response.text

                def copy() -> dict[str, Any]:
                    assert pump(client, "customers")["success"] is True
                    run = pump(client, "customers-dw")
                    assert run["success"] is True, (run["last-message"], run["last-original-error-message"])
                    return run

                def copied() -> list[tuple[Any, ...]]:
                    return [(i, n, str(b), str(c)) for i, n, b, c in
                            maria.rows("SELECT id, name, balance, changed FROM customer ORDER BY id")]

                copy()
                assert copied() == [(1, "Ann", "10.50", "2024-03-01 10:00:00"),
                                    (2, "Bob", "0.00", "2024-03-01 11:00:00")]
                assert all(stamp is not None for (stamp,) in maria.rows("SELECT `sesam-timestamp` FROM customer"))
                pg.run("UPDATE customer SET balance = 99.99, changed = '2024-03-02 09:00Z' WHERE id = 2",
                       "INSERT INTO customer VALUES (3, 'Cid', 1, '2024-03-02 10:00Z')")
                copy()
                assert copied()[1:] == [(2, "Bob", "99.99", "2024-03-02 09:00:00"),
                                        (3, "Cid", "1.00", "2024-03-02 10:00:00")]
                # a deleted row: a rescan of the source marks it deleted, and the sink deletes it
                pg.run("DELETE FROM customer WHERE id = 1")
                response = client.post("/pipes/customers/pump", data={"operation": "start-rescan"})
                assert response.status_code == 200, response.text
                deadline = time.monotonic() + 30
                while "1" in entities(client, "customers"):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert pump(client, "customers-dw")["success"] is True
                assert [row[0] for row in copied()] == [2, 3]
            assert daemon.terminate() == 0
