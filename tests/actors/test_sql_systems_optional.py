"""The SQL Server and Oracle systems (node-spec 10.3), whose drivers are optional extras and whose servers
do not run here: configs validate, URLs and driver options are built right, and without the driver the
system still opens while a pipe using it fails naming the driver and the extra that installs it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import ConfigError, Datasets, PipeRunError, build_runner
from actors.components import build_system


def url_of(config: dict[str, Any]) -> str:
    return build_system(config).database_url().render_as_string(hide_password=False)


def test_sql_server_urls_and_options() -> None:
    base = {"_id": "ms", "host": "db.example", "database": "crm", "username": "sa", "password": "p@ss"}
    for kind in ("system:sqlserver", "system:mssql", "system:mssql-azure-dw"):
        assert url_of({**base, "type": kind}) == "mssql+pymssql://sa:p%40ss@db.example:1433/crm"
    named = build_system({**base, "type": "system:mssql", "instance": "SQLEXPRESS", "tds_version": "7.4",
                          "pool_timeout": 7})
    assert named.database_url().host == "db.example\\SQLEXPRESS" and named.database_url().port is None
    assert named.connect_args() == {"login_timeout": 7, "tds_version": "7.4"}
    assert build_system({**base, "type": "system:mssql-azure-dw"}).setting("dialect") == "synapse"
    assert build_system({**base, "type": "system:sqlserver"}).setting("dialect") == "sql-server"


def test_oracle_urls_and_options() -> None:
    oracle = build_system({"_id": "ora", "type": "system:oracle", "host": "ora.example", "database": "ORCLPDB1",
                           "username": "scott", "password": "tiger"})
    assert oracle.database_url().render_as_string(hide_password=False) == (
        "oracle+oracledb://scott:tiger@ora.example:1521?service_name=ORCLPDB1")
    assert oracle.engine_options()["coerce_to_decimal"] is True
    tns = build_system({"_id": "tns", "type": "system:oracle_tns", "tns_name": "SALES", "username": "u",
                        "coerce_to_decimal": False})
    assert tns.database_url().render_as_string(hide_password=False) == "oracle+oracledb://u@SALES"
    assert tns.engine_options()["coerce_to_decimal"] is False
    assert "tiger" not in repr(oracle.describe())


@pytest.mark.parametrize(("config", "where"), [
    ({"type": "system:sqlserver", "database": "x"}, "host"),
    ({"type": "system:mssql", "host": "h", "database": "x", "tds_version": "new"}, "tds_version"),
    ({"type": "system:sqlserver", "host": "h", "database": "x", "dialect": "mysql"}, "dialect"),
    ({"type": "system:oracle", "host": "h"}, "database"),
    ({"type": "system:oracle_tns"}, "tns_name"),
])
def test_config_errors_name_the_property(config: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "s", **config})
    assert where in f"{caught.value.where} {caught.value}"


@pytest.mark.parametrize(("system", "module", "extra"), [
    ({"type": "system:sqlserver", "host": "127.0.0.1", "database": "x"}, "pymssql", "mssql"),
    ({"type": "system:oracle", "host": "127.0.0.1", "database": "x"}, "oracledb", "oracle"),
])
def test_without_the_driver_a_run_fails_naming_it(system: dict[str, Any], module: str, extra: str,
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # not installed (whether or not it is here)
    built = build_system({"_id": "db", **system})
    trio.run(built.open)  # opens all the same: the node starts with such a system in its config
    datasets = Datasets(tmp_path / "data")
    try:
        runner = build_runner({"_id": "p", "type": "pipe", "source": {"type": "sql", "system": "db",
                                                                       "table": "t"}},
                              datasets, systems={"db": built})
        with pytest.raises(PipeRunError) as caught:
            runner.run()
        assert "the database driver is not installed" in str(caught.value)
        assert f"pip install 'sesamd[{extra}]'" in str(caught.value)
    finally:
        trio.run(built.close)
        datasets.close_all()
