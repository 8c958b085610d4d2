"""The SQL Server systems (node-spec 10.3): ``system:sqlserver``, ``system:mssql`` (Sesam's legacy driver
type) and ``system:mssql-azure-dw`` (Azure Synapse), all through pymssql (FreeTDS, bundled in its wheels).

pymssql is optional: ``pip install 'sesamd[mssql]'``. Without it the config still validates and the system
opens, and a pipe that uses it fails with "the database driver is not installed". No SQL Server runs here:
the URL and options are tested, reads go through the generic ``sql`` source path, and the ``sql`` sink's
upsert is written for PostgreSQL, MySQL and SQLite only (it fails clearly on SQL Server).
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy

from ._sql_system import SERVER_PROPERTIES, SqlSystem
from ._system_base import seconds, system_type

__all__ = ["MssqlSystem", "SqlServerSystem", "SynapseSystem"]

MSSQL_PROPERTIES: dict[str, Any] = {
    **SERVER_PROPERTIES,
    "dialect": {"enum": ["sql-server", "synapse"]},
    "instance": {"type": "string", "minLength": 1},
    "tds_version": {"type": "string", "pattern": r"^\d+\.\d+$"},
}


class _SqlServer(SqlSystem):
    driver_extra = "mssql"
    drivername = "mssql+pymssql"
    defaults: ClassVar[dict[str, Any]] = {**SqlSystem.defaults, "port": 1433, "dialect": "sql-server"}

    def database_url(self) -> sqlalchemy.URL:
        instance = self.config.get("instance")
        if not instance:
            return super().database_url()
        # a named instance: FreeTDS's host\instance form, whose port the server's browser service tells
        host = f"{self.config.get('host')}\\{instance}"
        return sqlalchemy.URL.create(self.drivername, username=self.config.get("username"),
                                     password=self.config.get("password"), host=host,
                                     database=self.config.get("database"))

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"login_timeout": max(1, int(seconds(self.setting("pool_timeout"))))}
        if self.config.get("tds_version"):
            args["tds_version"] = self.config["tds_version"]
        return args


@system_type("system:sqlserver", {"required": ["host", "database"], "properties": MSSQL_PROPERTIES})
class SqlServerSystem(_SqlServer):
    """A Microsoft SQL Server (``dialect: synapse`` for Azure Synapse)."""


@system_type("system:mssql", {"required": ["host", "database"], "properties": MSSQL_PROPERTIES})
class MssqlSystem(_SqlServer):
    """A Microsoft SQL Server through Sesam's legacy driver type (``instance``, ``tds_version``)."""


@system_type("system:mssql-azure-dw", {"required": ["host", "database"], "properties": MSSQL_PROPERTIES})
class SynapseSystem(_SqlServer):
    """An Azure Synapse (formerly SQL Data Warehouse) pool."""

    defaults: ClassVar[dict[str, Any]] = {**_SqlServer.defaults, "dialect": "synapse"}
