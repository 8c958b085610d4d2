"""The ``system:sqlite`` system: a SQLite database file (a project extension, not a Sesam type; node-spec 3.1).

``database`` is a file path (relative to the working directory) or ``:memory:``; the common pool properties
apply to files. An in-memory database is one connection shared by every thread.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy

from ._sql_system import POOL_PROPERTIES, SqlSystem
from ._system_base import seconds, system_type

__all__ = ["SqliteSystem"]


@system_type("system:sqlite", {"required": ["database"], "properties": {
    **POOL_PROPERTIES,
    "database": {"type": "string", "minLength": 1},
}})
class SqliteSystem(SqlSystem):
    """A SQLite database (non-standard: for tests and small local setups)."""

    drivername = "sqlite+pysqlite"

    @property
    def in_memory(self) -> bool:
        return self.config["database"] == ":memory:"

    def database_url(self) -> sqlalchemy.URL:
        return sqlalchemy.URL.create(self.drivername, database=self.config["database"])

    def connect_args(self) -> dict[str, Any]:
        return {"check_same_thread": False, "timeout": seconds(self.setting("pool_timeout"))}

    def engine_options(self) -> dict[str, Any]:
        if self.in_memory:
            return {"poolclass": sqlalchemy.StaticPool}
        return super().engine_options()
