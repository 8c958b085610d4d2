"""SQL connections killed mid-run from the server side (``pg_terminate_backend`` / MariaDB ``KILL``), each
in a scratch database: a source read fails with a transient error, its offset no further than what was
stored, and the next run ends with every row stored once; a sink write whose connection is killed while it
waits for a row lock is retried (``batch_retries``) and delivers everything once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import storage
from actors import Datasets, PipeRunError, build_runner
from actors.testing import ScratchDatabase


def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def backends(db: ScratchDatabase, where: str) -> list[int]:
    """The server-side ids of the other connections of the scratch database that match ``where``."""
    if db.dialect == "postgresql":
        return [pid for (pid,) in db.rows(f"SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                          f"AND pid <> pg_backend_pid() AND {where}")]
    return [pid for (pid,) in db.rows(f"SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                                      f"AND id <> CONNECTION_ID() AND {where}")]


def lock_waiters(db: ScratchDatabase) -> list[int]:
    """The connections waiting for a row lock."""
    if db.dialect == "postgresql":
        return backends(db, "wait_event_type = 'Lock'")
    return backends(db, "command = 'Query' AND info LIKE 'INSERT INTO people%'")  # INNODB_TRX lags behind


def kill(db: ScratchDatabase, pid: int) -> None:
    if db.dialect == "postgresql":
        db.run("SELECT pg_terminate_backend(:pid)", pid=pid)
    else:
        db.run(f"KILL {int(pid)}")


def test_a_source_connection_killed_mid_read(pg: ScratchDatabase, datasets: Datasets) -> None:
    rows = 150_000  # some 4 s of reading: time to kill the connection in the middle
    pg.run("CREATE TABLE big (id integer PRIMARY KEY, name text, changed timestamp)",
           f"INSERT INTO big SELECT i, 'n' || i, '2024-01-01'::timestamp + i * interval '1 s' "
           f"FROM generate_series(1, {rows}) AS i")
    system = pg.system()
    pipe = {"_id": "big", "type": "pipe", "batch_size": 100,
            "source": {"type": "sql", "system": "db", "table": "big", "updated_column": "changed", "fetch_size": 100}}
    runner = build_runner(pipe, datasets, systems={"db": system})
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            runner.run()
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(lambda: (dataset := datasets.get("big")) is not None and dataset.next_offset > 500)
    # the reader: a server-side cursor's transaction (FETCH after FETCH), the pool's other connections idle
    kill(pg, wait_for(lambda: backends(pg, "backend_type = 'client backend' AND state <> 'idle'"))[0])
    worker.join(30)
    error = outcome[0]
    assert isinstance(error, PipeRunError), error
    assert "system 'db' (postgresql" in str(error)
    dataset = datasets.get("big")
    assert dataset is not None
    stored = dataset.next_offset
    offset = runner.get_offset()
    assert 0 < stored < rows and offset is not None
    newest = max(storage.decode(e["changed"]) for e in dataset.iter_entities(history=False))
    assert storage.decode(offset) <= newest  # the offset never runs ahead of what was stored

    result = runner.run()  # the next run goes on from the offset
    assert result.sync_type == "incremental"
    ids = [e["_id"] for e in dataset.iter_entities(history=True)]
    assert len(ids) == len(set(ids)) == rows  # every row once: the re-read boundary rows were no-ops


def test_a_sink_connection_killed_while_waiting_for_a_lock_is_retried(server_db: ScratchDatabase,
                                                                      datasets: Datasets) -> None:
    db = server_db
    db.run("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20))", "INSERT INTO people VALUES (1, 'Old')")
    system = db.system()
    build_runner({"_id": "src", "type": "pipe", "source": {"type": "embedded", "entities": [
        {"_id": str(i), "name": f"n{i}"} for i in range(1, 51)]}}, datasets).run()
    runner = build_runner({"_id": "out", "type": "pipe", "source": {"type": "dataset", "dataset": "src"},
                           "pump": {"batch_retries": 3, "write_retry_delay": 0.2},
                           "sink": {"type": "sql", "system": "db", "table": "people"}},
                          datasets, systems={"db": system})
    holder = db.engine.connect()
    transaction = holder.begin()
    holder.exec_driver_sql("SELECT * FROM people WHERE id = 1 FOR UPDATE")
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(runner.run()))
    worker.start()
    try:
        kill(db, wait_for(lambda: lock_waiters(db))[0])
        time.sleep(0.1)
    finally:
        transaction.rollback()
        holder.close()
    worker.join(30)
    assert outcome and outcome[0].changes == 50 and outcome[0].write_errors == 0
    assert db.rows("SELECT COUNT(*), MIN(name) FROM people") == [(50, "n1")]
    assert runner.get_offset() == 49
