"""The ``sql`` source: the rows of a table or a query in a SQL system as entities (node-spec 6.10, 10.3).

``system`` names a SQL system (``system:postgresql``, ``system:mysql`` (MySQL or MariaDB) or the local
``system:sqlite``). Each read checks one connection out of the system's pool, runs in a read-only
transaction and streams the rows through a server-side cursor (``fetch_size`` rows at a time, default
1000), yielding entities in batches: a table of any size is read in bounded memory.

What is read:

* ``table`` (with ``schema`` to qualify it): the table's columns are reflected and selected by name, quoted
  by the dialect (config values are never pasted into SQL). ``table`` wins when ``query`` is set too
  (node-spec 6.10), and ``schema`` applies to ``table`` only.
* ``query`` (a string, or a list of strings joined with ``\\n``): a SELECT of your own, run as written
  (SQLAlchemy ``text()``: ``:name`` would be a bind parameter, so a literal colon followed by a word is
  written ``\\:``; a query with bind parameters is a config error). It needs ``primary_key``.

``_id`` is the value of the ``primary_key`` column (by default, with ``table``, the table's primary key);
for several columns it is their values joined with ``:`` in key order (``["country", "no"]`` gives
``"no:1"``; Sesam leaves the format undocumented, and this is the ``csv`` source's choice too). Typed key
values are written without their transit tag (a decimal ``1.50``, a timestamp ``2024-01-02T03:04:05Z``). A
row with NULL in a key column fails the run. A column named ``_id`` is replaced by the key. ``whitelist``
keeps only the columns it names, then ``blacklist`` drops some (with ``table`` the others are not even
selected, so a column of an unsupported type can simply be left out); the key and the updated column are
read whatever the lists say. NULL columns are left out unless ``preserve_null_values``. Values are typed as
:mod:`actors.components._sql_types` describes (numeric → ``~f`` with its digits, timestamps → ``~t`` in UTC
with naive ones read in the system's ``timezone``, date → ``~t`` date, binary → ``~b``, uuid → ``~u``,
json → parsed JSON, arrays → lists).

Continuation (node-spec 4.3, 6.0): ``updated_column`` makes the source support since, and each entity's
``_updated`` is that column's value (timestamps with all nine fraction digits, so that they compare as
strings in time order). With ``table`` the source is then chronological: it reads ``ORDER BY
<updated_column>, <key>`` and the pipe checkpoints the offset as it goes. An incremental run reads ``WHERE
<updated_column> >= :since`` with the offset bound as a parameter: **``>=``, not ``>``**, so rows changed
in the same timestamp as the last row of the previous run (committed after it read) are not missed. The
boundary rows are read again, and the dataset's change detection (same content hash) makes them no-ops.
With ``query``, ``updated_query`` is the incremental form of the query, with the bind variable ``:since``
(it must cover the same ids as ``query``); without it the query is wrapped (``SELECT * FROM (<query>) AS
sesamd_query WHERE <updated_column> >= :since``). A query source is not chronological unless
``is_chronological`` says so (then the query must order by the updated column itself). A query's ``:since``
is the offset's time in the system's ``timezone`` (right for naive timestamp columns; for a MySQL
``TIMESTAMP`` column, whose UTC value the session shows, read a ``table`` or use a UTC system). The pipe keeps the
largest ``_updated`` seen (the ``max`` strategy). Rows whose updated column is NULL are read only by full
runs. ``is_chronological_full`` is accepted, but full runs are always ordered (correct, if slower).

Errors: a system that is not in the config, or whose driver is not installed, fails the run with a
:class:`TerminalError` naming it; a system that is not open (yet) is waited for up to its ``pool_timeout``
(at most 10 s), then a :class:`TransientError`; a server that cannot be reached (or a pool with no free connection, or a
connection lost while reading) a :class:`TransientError`; a missing table or column, SQL the database
rejects and values with no wire form a :class:`TerminalError` with the database's message. Config errors
(no ``table`` or ``query``, a query without ``primary_key``, a system that is not SQL...) are
:class:`ConfigError` naming the property.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy
from sqlalchemy.types import NullType

from . import _sql_types as types
from ._base import BuildContext, Source
from ._errors import TerminalError, TransientError
from ._registry import ConfigError, component
from ._sql_system import SqlSystem, driver_message

__all__ = ["SqlSource"]

log = logging.getLogger("actors.components.source_sql")

KEY_SEPARATOR = ":"
DEFAULT_FETCH_SIZE = 1000
COLUMNS = {"type": "array", "items": {"type": "string"}}
SQL_TEXT = {"anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
WRAPPED = "sesamd_query"


@component("source", "sql", {
    "required": ["system"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "table": {"type": "string", "minLength": 1},
        "schema": {"type": "string", "minLength": 1},
        "query": SQL_TEXT,
        "updated_query": SQL_TEXT,
        "primary_key": {"anyOf": [{"type": "string", "minLength": 1},
                                  {**COLUMNS, "minItems": 1, "uniqueItems": True}]},
        "updated_column": {"type": "string", "minLength": 1},
        "whitelist": COLUMNS,
        "blacklist": COLUMNS,
        "preserve_null_values": {"type": "boolean", "default": False},
        "fetch_size": {"type": "integer", "minimum": 1, "default": DEFAULT_FETCH_SIZE},
        "is_chronological_full": {"type": "boolean"},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class SqlSource(Source):
    """Streams the rows of a table or query in a SQL system."""

    adds_namespaces = True

    # node-spec 6.0: supports_since is dynamic (updated_column), is_chronological dynamic with table and
    # settable with query, is_since_comparable a default
    settable_flags = frozenset({"is_since_comparable", "is_chronological"})

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.context = context
        self.table: str | None = config.get("table")
        self.schema: str | None = config.get("schema") if self.table is not None else None
        self.query = _joined(config.get("query")) if self.table is None else None
        self.updated_query = _joined(config.get("updated_query"))
        self.updated_column: str | None = config.get("updated_column")
        key = config.get("primary_key")
        self.key: list[str] | None = None if key is None else [key] if isinstance(key, str) else list(key)
        if self.table is None and self.query is None:
            raise ConfigError("one of 'table' and 'query' is required", where=self.where)
        if self.query is not None:
            if self.key is None:
                raise ConfigError("a 'query' source needs 'primary_key'", where=f"{self.where}.primary_key")
            _check_binds(self.query, set(), f"{self.where}.query")
        if self.updated_query is not None:
            if self.query is None:
                raise ConfigError("'updated_query' goes with 'query'; with 'table', 'updated_column' is enough",
                                  where=f"{self.where}.updated_query")
            if self.updated_column is None:
                raise ConfigError("'updated_query' needs 'updated_column' (the column whose value is _updated)",
                                  where=f"{self.where}.updated_query")
            _check_binds(self.updated_query, {"since"}, f"{self.where}.updated_query")
        self.supports_since = self.updated_column is not None
        self.is_chronological = self.table is not None and self.updated_column is not None
        if self.table is not None:
            self.settable_flags = frozenset({"is_since_comparable"})
        super().__init__(config, context)
        self.system_id: str = config["system"]
        system = context.systems.get(self.system_id)
        if system is not None and not isinstance(system, SqlSystem):
            raise ConfigError(f"system '{self.system_id}' is a {system.config.get('type')}; a sql source needs a "
                              "SQL system (system:postgresql, system:mysql or system:sqlite)",
                              where=f"{self.where}.system")
        self.whitelist: set[str] | None = set(config["whitelist"]) if "whitelist" in config else None
        self.blacklist: set[str] = set(config.get("blacklist") or ())
        self.preserve_nulls: bool = config.get("preserve_null_values", False)
        self.fetch_size: int = config.get("fetch_size", DEFAULT_FETCH_SIZE)

    # -- reading ---------------------------------------------------------------------------------------------

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        system, engine = self._engine()
        what = system.describe()
        dialect = engine.dialect.name
        try:
            connection = engine.connect()
        except sqlalchemy.exc.TimeoutError as exc:
            raise TransientError(f"{what}: no free connection in the pool ({exc})") from None
        except sqlalchemy.exc.DBAPIError as exc:
            raise TransientError(f"{what}: cannot connect: {driver_message(exc)}") from None
        finished = stopped = False
        try:
            with connection:
                try:
                    restore = self._begin(connection, dialect)
                    try:
                        yield from self._batches(connection, dialect, system.timezone, since, batch_size, what)
                    finally:
                        _quietly(restore, what)
                    finished = True
                except GeneratorExit:  # the run stopped reading
                    stopped = True
                    raise
                except sqlalchemy.exc.NoSuchTableError:
                    raise TerminalError(f"{what}: table {self._table_name()!r} does not exist") from None
                except sqlalchemy.exc.DBAPIError as exc:
                    kind = TransientError if exc.connection_invalidated else TerminalError
                    raise kind(f"{what}: {driver_message(exc)}") from None
                except sqlalchemy.exc.SQLAlchemyError as exc:
                    raise TerminalError(f"{what}: {exc}") from None
                finally:
                    if not finished and dialect == "mysql" and not connection.invalidated:
                        _drop_mysql_connection(connection)
        except sqlalchemy.exc.DBAPIError as exc:  # from returning the connection to the pool
            if not (finished or stopped):
                raise TransientError(f"{what}: {driver_message(exc)}") from None
            log.warning("%s: releasing the connection failed: %s", what, driver_message(exc))

    def _engine(self) -> tuple[SqlSystem, sqlalchemy.Engine]:
        system = self.context.systems.get(self.system_id)
        if system is None:
            raise TerminalError(f"system '{self.system_id}' is not in the config (or its config is invalid)")
        assert isinstance(system, SqlSystem)
        return system, system.ready_engine()

    def _begin(self, connection: sqlalchemy.Connection, dialect: str) -> Callable[[], None]:
        """Start the read-only transaction; returns what undoes the connection settings made for it."""
        if dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            from psycopg.types.json import set_json_loads

            raw = connection.connection.driver_connection
            set_json_loads(types.pg_json_loads, raw)  # keep the digits of JSON numbers

            def restore() -> None:
                if not connection.invalidated:
                    set_json_loads(json.loads, raw)  # psycopg's default
            return restore
        if dialect == "mysql":
            connection.exec_driver_sql("START TRANSACTION READ ONLY")
        elif dialect == "sqlite" and connection.engine.url.database not in (None, "", ":memory:"):
            connection.exec_driver_sql("PRAGMA query_only = ON")

            def reset() -> None:
                if not connection.invalidated:
                    connection.exec_driver_sql("PRAGMA query_only = OFF")
            return reset
        return lambda: None

    def _batches(self, connection: sqlalchemy.Connection, dialect: str, tz: _dt.tzinfo, since: Any | None,
                 batch_size: int, what: str) -> Iterator[list[dict[str, Any]]]:
        hints: dict[str, types.Hint] = {}
        if self.table is not None:
            statement, key, hints = self._table_statement(connection, dialect, tz, since, what)
        else:
            statement, key = self._query_statement(dialect, tz, since), self.key or []
        result = connection.execution_options(stream_results=True, yield_per=self.fetch_size).execute(statement)
        names = list(result.keys())
        by_position = types.description_hints(dialect, getattr(result.cursor, "description", None))
        converters = [_converter(by_position.get(i) or hints.get(name), tz) for i, name in enumerate(names)]
        position = {name: i for i, name in reversed(list(enumerate(names)))}  # the first of a repeated name
        missing = [name for name in key if name not in position]
        if missing:
            raise TerminalError(f"{what}: the primary_key column {missing[0]!r} is not in the result (columns: "
                                f"{', '.join(names)})")
        if self.updated_column is not None and self.updated_column not in position:
            raise TerminalError(f"{what}: the updated_column {self.updated_column!r} is not in the result "
                                f"(columns: {', '.join(names)})")
        keys = [(position[name], by_position.get(position[name]) or hints.get(name)) for name in key]
        updated = None
        if self.updated_column is not None:
            index = position[self.updated_column]
            updated = (index, by_position.get(index) or hints.get(self.updated_column))
        wanted = [(i, name, converters[i]) for i, name in enumerate(names) if self._keeps(name)]
        preserve = self.preserve_nulls
        batch: list[dict[str, Any]] = []
        for number, row in enumerate(result, 1):
            entity = {"_id": self._id(row, keys, key, tz, number, what)}
            for index, name, convert in wanted:
                value = row[index]
                if value is None:
                    if preserve:
                        entity[name] = None
                    continue
                try:
                    entity[name] = convert(value)
                except (types.UnsupportedValue, OverflowError, ValueError) as exc:
                    raise TerminalError(f"{what}: column {name!r} of row {number}: {exc}; blacklist the column "
                                        "or cast it in a query") from None
            if updated is not None:
                value = row[updated[0]]
                if value is not None:
                    try:
                        entity["_updated"] = types.updated_value(updated[1](value) if updated[1] else value, tz)
                    except (types.UnsupportedValue, OverflowError, ValueError) as exc:
                        raise TerminalError(f"{what}: the updated_column {self.updated_column!r} of row {number}: "
                                            f"{exc}") from None
            batch.append(entity)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _id(self, row: Any, keys: list[tuple[int, types.Hint | None]], names: list[str], tz: _dt.tzinfo,
            number: int, what: str) -> str:
        parts = []
        for (index, hint), name in zip(keys, names, strict=True):
            value = row[index]
            if value is None:
                raise TerminalError(f"{what}: row {number} has NULL in the primary_key column {name!r}")
            try:
                parts.append(types.key_text(hint(value) if hint else value, tz))
            except (types.UnsupportedValue, OverflowError, ValueError) as exc:
                raise TerminalError(f"{what}: the primary_key column {name!r} of row {number}: {exc}") from None
        return parts[0] if len(parts) == 1 else KEY_SEPARATOR.join(parts)

    def _keeps(self, name: str) -> bool:
        return name != "_id" and (self.whitelist is None or name in self.whitelist) and name not in self.blacklist

    def _table_name(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else str(self.table)

    def _table_statement(self, connection: sqlalchemy.Connection, dialect: str, tz: _dt.tzinfo, since: Any | None,
                         what: str) -> tuple[Any, list[str], dict[str, types.Hint]]:
        """The SELECT of the table's columns (reflected), its key and the type hints of its columns."""
        assert self.table is not None
        inspector = sqlalchemy.inspect(connection)
        columns = inspector.get_columns(self.table, schema=self.schema)
        names = [column["name"] for column in columns]
        key = self.key
        if key is None:
            key = inspector.get_pk_constraint(self.table, schema=self.schema).get("constrained_columns") or []
            if not key:
                raise TerminalError(f"{what}: table {self._table_name()!r} has no primary key; set 'primary_key'")
        for name in key:
            if name not in names:
                raise TerminalError(f"{what}: the primary_key column {name!r} is not in table "
                                    f"{self._table_name()!r} (columns: {', '.join(names)})")
        if self.updated_column is not None and self.updated_column not in names:
            raise TerminalError(f"{what}: the updated_column {self.updated_column!r} is not in table "
                                f"{self._table_name()!r} (columns: {', '.join(names)})")
        needed = {*key, self.updated_column}
        selected = [name for name in names if name in needed or self._keeps(name)]
        json_columns = self._mariadb_json_columns(connection) if getattr(connection.dialect, "is_mariadb", False) \
            else []
        hints = types.column_hints(dialect, [c for c in columns if c["name"] in selected], json_columns)
        table = sqlalchemy.table(self.table, *(sqlalchemy.column(name) for name in selected), schema=self.schema)
        statement = sqlalchemy.select(*table.c)
        if self.updated_column is not None:
            column = table.c[self.updated_column]
            if since is not None:
                reflected = next(c for c in columns if c["name"] == self.updated_column)
                utc = types.is_instant_column(dialect, reflected)
                statement = statement.where(column >= _since(since, dialect, tz, utc=utc))
            if self.is_chronological:
                statement = statement.order_by(column, *(table.c[name] for name in key))
        return statement, key, hints

    def _mariadb_json_columns(self, connection: sqlalchemy.Connection) -> list[str]:
        """MariaDB's JSON is LONGTEXT with a ``json_valid`` check, which only information_schema shows."""
        statement = sqlalchemy.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = "
            "COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table")
        rows = connection.execute(statement, {"schema": self.schema, "table": self.table})
        return types.json_checked_columns({"sqltext": clause} for (clause,) in rows)

    def _query_statement(self, dialect: str, tz: _dt.tzinfo, since: Any | None) -> Any:
        assert self.query is not None
        if since is None or self.updated_column is None:
            return sqlalchemy.text(self.query)
        if self.updated_query is not None:
            return sqlalchemy.text(self.updated_query).bindparams(_since(since, dialect, tz))
        wrapped = sqlalchemy.text(self.query).columns().subquery(WRAPPED)
        return (sqlalchemy.select(sqlalchemy.literal_column("*")).select_from(wrapped)
                .where(sqlalchemy.column(self.updated_column) >= _since(since, dialect, tz)))


def _since(since: Any, dialect: str, tz: _dt.tzinfo, *, utc: bool = False) -> Any:
    """The ``:since`` bind parameter (untyped: the database casts it to the column's type)."""
    return sqlalchemy.bindparam("since", types.bind_since(since, dialect, tz, utc=utc), type_=NullType())


def _drop_mysql_connection(connection: sqlalchemy.Connection) -> None:
    """Close a MySQL connection in the middle of an unbuffered result, rather than read (and discard) the
    rest of it, which PyMySQL would do to return it to the pool: the result is marked done first, so that
    PyMySQL's cursor does not try to drain it from the closed socket later."""
    raw = connection.connection.driver_connection
    pending = getattr(raw, "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False
        raw._result = None
    connection.invalidate()


def _quietly(action: Callable[[], None], what: str) -> None:
    """Undo a connection setting; a failure there is logged (the read's own outcome matters more)."""
    try:
        action()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        log.warning("%s: resetting the connection failed: %s", what, exc)


def _converter(hint: types.Hint | None, tz: _dt.tzinfo) -> Callable[[Any], Any]:
    wire = types.wire
    if hint is None:
        return lambda value: wire(value, tz)
    return lambda value: wire(hint(value), tz)


def _joined(text: str | list[str] | None) -> str | None:
    return "\n".join(text) if isinstance(text, list) else text


def _check_binds(sql: str, allowed: set[str], where: str) -> None:
    names = set(sqlalchemy.text(sql).compile().params)
    if allowed - names:
        raise ConfigError(f"the query has no bind variable {', '.join(':' + n for n in sorted(allowed - names))}",
                          where=where)
    if names - allowed:
        raise ConfigError(f"the query has bind parameter(s) {', '.join(':' + n for n in sorted(names - allowed))}; "
                          "write \\: for a literal colon", where=where)
