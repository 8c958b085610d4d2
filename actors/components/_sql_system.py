"""What the SQL systems share (node-spec 10.3): config properties, the timezone, and a pooled engine.

:meth:`SqlSystem.open` makes a SQLAlchemy :class:`~sqlalchemy.Engine` with a queue pool of ``pool_size``
connections (plus ``pool_max_overflow``), waiting at most ``pool_timeout`` seconds for one and recycling
connections older than ``pool_recycle`` seconds. The engine is synchronous: callers use it from worker
threads. Connections are made lazily (and pinged before use), so opening never needs the database to be up.
Each dialect is a small module (``system_postgresql``, ``system_mysql``, ``system_sqlite``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy
import trio

from ._errors import TerminalError, TransientError
from ._registry import ConfigError
from ._system_base import SECONDS, System, entity_path, seconds

__all__ = ["POOL_PROPERTIES", "SERVER_PROPERTIES", "SqlSystem", "driver_message"]

log = logging.getLogger("actors.components.sql_system")

OPEN_WAIT = 10.0  # seconds a read or write waits for its system to open (at most the system's pool_timeout)

POOL_PROPERTIES: dict[str, Any] = {
    "timezone": {"type": "string", "minLength": 1},
    "pool_size": {"type": "integer", "minimum": 1},
    "pool_timeout": SECONDS,
    "pool_max_overflow": {"type": "integer", "minimum": -1},  # -1: no limit
    "pool_recycle": {"type": "integer", "minimum": -1},  # -1: never
}
SERVER_PROPERTIES: dict[str, Any] = {
    **POOL_PROPERTIES,
    "username": {"type": "string"},
    "password": {"type": "string"},
    "host": {"type": "string", "minLength": 1},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "database": {"type": "string", "minLength": 1},
}


class SqlSystem(System):
    """A database reached through a pooled SQLAlchemy engine; subclasses name the driver and its options."""

    drivername: ClassVar[str] = ""
    driver_extra: ClassVar[str | None] = None  # the optional extra of pyproject.toml that installs the driver
    defaults: ClassVar[dict[str, Any]] = {"worker_threads": 10, "timezone": "UTC", "pool_size": 10,
                                          "pool_timeout": 30, "pool_max_overflow": 10, "pool_recycle": 1800}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.engine: sqlalchemy.Engine | None = None
        try:
            self.timezone = ZoneInfo(self.setting("timezone"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("'timezone' is not a known IANA time zone (such as UTC or Europe/Oslo)",
                              where=entity_path("timezone")) from None

    def database_url(self) -> sqlalchemy.URL:
        """The SQLAlchemy URL (its text form hides the password)."""
        return sqlalchemy.URL.create(self.drivername, username=self.config.get("username"),
                                     password=self.config.get("password"), host=self.config.get("host"),
                                     port=self.setting("port"), database=self.config.get("database"))

    def connect_args(self) -> dict[str, Any]:
        """Driver arguments (TLS mode, connect timeout)."""
        return {}

    def engine_options(self) -> dict[str, Any]:
        return {
            "poolclass": sqlalchemy.QueuePool,
            "pool_size": self.setting("pool_size"),
            "max_overflow": self.setting("pool_max_overflow"),
            "pool_timeout": seconds(self.setting("pool_timeout")),
            "pool_recycle": self.setting("pool_recycle"),
            "pool_pre_ping": True,
        }

    def create_engine(self) -> sqlalchemy.Engine:
        return sqlalchemy.create_engine(self.database_url(), connect_args=self.connect_args(),
                                        **self.engine_options())

    @property
    def dialect(self) -> str:
        """SQLAlchemy's dialect name: ``postgresql``, ``mysql`` or ``sqlite``."""
        return self.drivername.split("+")[0]

    def describe(self) -> str:
        """``system 'pg' (postgresql at 127.0.0.1:5432/test)``, for messages (never the password)."""
        url = self.database_url()
        if self.dialect == "sqlite":
            return f"system '{self.id}' (sqlite {url.database})"
        place = f"{url.host}" + (f":{url.port}" if url.port else "") + (f"/{url.database}" if url.database else "")
        return f"system '{self.id}' ({self.dialect} at {place})"

    def ready_engine(self) -> sqlalchemy.Engine:
        """The engine, once the system is open (called from worker threads: a pipe may run just after the
        config that made the system, so this waits for it as for a connection, up to ``pool_timeout`` and
        at most 10 s). A missing driver is a TerminalError, a system still not open a TransientError."""
        engine = self.engine
        if engine is not None:
            return engine
        try:
            self.database_url().get_dialect().import_dbapi()
        except ImportError as exc:
            hint = f"; install it with pip install 'sesamd[{self.driver_extra}]'" if self.driver_extra else ""
            raise TerminalError(f"{self.describe()}: the database driver is not installed ({exc}){hint}") from None
        deadline = time.monotonic() + min(OPEN_WAIT, seconds(self.setting("pool_timeout")))
        while (engine := self.engine) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if engine is None:
            raise TransientError(f"{self.describe()}: the system is not open (it is starting, or failed to open)")
        return engine

    async def open(self) -> None:
        """Make the engine; a missing (optional) driver leaves it unmade: runs then fail naming the driver."""
        try:
            self.engine = await trio.to_thread.run_sync(self.create_engine)
        except ImportError as exc:
            log.warning("%s: the database driver is not installed (%s)", self.describe(), exc)
        await super().open()

    async def close(self) -> None:
        engine, self.engine = self.engine, None
        try:
            if engine is not None:
                await trio.to_thread.run_sync(engine.dispose)
        finally:
            await super().close()

    def status(self) -> dict[str, Any]:
        status = {**super().status(), "dialect": self.dialect, "timezone": str(self.timezone)}
        pool = self.engine.pool if self.engine is not None else None
        if isinstance(pool, sqlalchemy.QueuePool):
            status["pool"] = {"size": pool.size(), "checked-out": pool.checkedout(), "checked-in": pool.checkedin(),
                              "overflow": pool.overflow()}
        return status


def driver_message(exc: sqlalchemy.exc.DBAPIError) -> str:
    """The driver's message, without SQLAlchemy's statement and background link."""
    original = exc.orig if exc.orig is not None else exc
    args = getattr(original, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        return f"({args[0]}) {args[1]}"
    return " ".join(str(original).split()) or type(original).__name__
