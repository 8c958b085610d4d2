"""The Oracle systems (node-spec 10.3): ``system:oracle`` (host, port 1521 and ``database``, the service
name) and ``system:oracle_tns`` (a ``tns_name`` from the node's tnsnames.ora), through python-oracledb in
its thin mode (no Oracle client libraries needed). ``coerce_to_decimal`` (default true) reads NUMBER columns
as decimals, keeping their digits.

python-oracledb is optional: ``pip install 'sesamd[oracle]'``. Without it the config still validates and the
system opens, and a pipe that uses it fails with "the database driver is not installed". No Oracle server
runs here: the URL and options are tested; the ``sql`` sink's upsert does not cover Oracle.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy

from ._sql_system import POOL_PROPERTIES, SERVER_PROPERTIES, SqlSystem
from ._system_base import seconds, system_type

__all__ = ["OracleSystem", "OracleTnsSystem"]


class _Oracle(SqlSystem):
    driver_extra = "oracle"
    drivername = "oracle+oracledb"
    defaults: ClassVar[dict[str, Any]] = {**SqlSystem.defaults, "coerce_to_decimal": True}

    def engine_options(self) -> dict[str, Any]:
        return {**super().engine_options(), "coerce_to_decimal": self.setting("coerce_to_decimal")}

    def connect_args(self) -> dict[str, Any]:
        return {"tcp_connect_timeout": max(1.0, seconds(self.setting("pool_timeout")))}


@system_type("system:oracle", {"required": ["host", "database"], "properties": {
    **SERVER_PROPERTIES,
    "coerce_to_decimal": {"type": "boolean"},
}})
class OracleSystem(_Oracle):
    """An Oracle database by host, port and service name."""

    defaults: ClassVar[dict[str, Any]] = {**_Oracle.defaults, "port": 1521}

    def database_url(self) -> sqlalchemy.URL:
        return sqlalchemy.URL.create(self.drivername, username=self.config.get("username"),
                                     password=self.config.get("password"), host=self.config.get("host"),
                                     port=self.setting("port"),
                                     query={"service_name": self.config["database"]})


@system_type("system:oracle_tns", {"required": ["tns_name"], "properties": {
    **POOL_PROPERTIES,
    "username": {"type": "string"},
    "password": {"type": "string"},
    "tns_name": {"type": "string", "minLength": 1},
    "coerce_to_decimal": {"type": "boolean"},
}})
class OracleTnsSystem(_Oracle):
    """An Oracle database by its TNS alias."""

    def database_url(self) -> sqlalchemy.URL:
        return sqlalchemy.URL.create(self.drivername, username=self.config.get("username"),
                                     password=self.config.get("password"), host=self.config["tns_name"])
