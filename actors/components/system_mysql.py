"""The ``system:mysql`` system: a pooled MySQL/MariaDB engine through PyMySQL (node-spec 10.3)."""

from __future__ import annotations

import ssl
from typing import Any, ClassVar

from ._sql_system import SERVER_PROPERTIES, SqlSystem
from ._system_base import seconds, system_type

__all__ = ["MysqlSystem"]


@system_type("system:mysql", {"required": ["host", "database"], "properties": {
    **SERVER_PROPERTIES,
    "sslmode": {"enum": ["disabled", "preferred", "required"]},
}})
class MysqlSystem(SqlSystem):
    """A MySQL or MariaDB server. ``sslmode``: ``disabled``, ``preferred`` (TLS when the server offers it,
    the default) or ``required`` (TLS or no connection; the certificate is not verified).

    Sessions are in UTC (``time_zone = '+00:00'``): a ``TIMESTAMP`` is an instant and comes out as its UTC
    time (readers know such columns by their type), whatever the server's time zone tables hold and summer
    time does; ``DATETIME`` values are wall-clock times and are read in the system's ``timezone``."""

    drivername = "mysql+pymysql"
    defaults: ClassVar[dict[str, Any]] = {**SqlSystem.defaults, "port": 3306, "sslmode": "preferred"}

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"charset": "utf8mb4",
                                "connect_timeout": max(1, int(seconds(self.setting("pool_timeout")))),
                                "init_command": "SET time_zone = '+00:00'"}
        mode = self.setting("sslmode")
        if mode == "disabled":
            args["ssl_disabled"] = True
        elif mode == "required":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            args["ssl"] = context
        return args
