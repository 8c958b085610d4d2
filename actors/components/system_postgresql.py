"""The ``system:postgresql`` system: a pooled PostgreSQL engine through psycopg 3 (node-spec 10.3)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._sql_system import SERVER_PROPERTIES, SqlSystem
from ._system_base import seconds, system_type

__all__ = ["PostgresqlSystem"]


@system_type("system:postgresql", {"required": ["host", "database"], "properties": {
    **SERVER_PROPERTIES,
    "sslmode": {"enum": ["disable", "allow", "prefer", "require"]},
}})
class PostgresqlSystem(SqlSystem):
    """A PostgreSQL server; ``sslmode`` is libpq's (default ``prefer``). Sessions use the system's
    ``timezone`` as their ``TimeZone``, so naive timestamps and ``timestamp with time zone`` agree."""

    drivername = "postgresql+psycopg"
    defaults: ClassVar[dict[str, Any]] = {**SqlSystem.defaults, "port": 5432, "sslmode": "prefer"}

    def connect_args(self) -> dict[str, Any]:
        return {"sslmode": self.setting("sslmode"),
                "connect_timeout": max(1, int(seconds(self.setting("pool_timeout")))),
                "options": f"-c TimeZone={self.timezone.key}"}
