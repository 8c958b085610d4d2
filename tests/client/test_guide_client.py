"""The getting-started guide's sesamclient flow once more, typed as a user would: the installed ``sesam``
console script in subprocesses, with its own home directory, against a real ``sesamd serve`` with a login
user: ``config server.base_url``, ``login`` (email and password on stdin), ``import`` of the embedded tutorial
config, ``start-pump`` of each pipe, ``get-dataset-entities customers-with-orders`` and ``export``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sesamd.testing import Daemon, serve_process

CHECKOUT = Path(__file__).resolve().parents[2]
TUTORIAL = CHECKOUT.parent / "shared" / "tutorial"
SESAM = Path(sys.executable).with_name("sesam")
SESAMD = Path(sys.executable).with_name("sesamd")
EMAIL, PASSWORD = "ada@example.com", "an admin's passphrase"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    assert (TUTORIAL / "sesam-embedded.conf.json").is_file(), f"the getting-started tutorial is missing: {TUTORIAL}"
    assert SESAM.is_file() and SESAMD.is_file(), f"the console scripts are not installed beside {sys.executable}"
    data = tmp_path_factory.mktemp("guide") / "data"
    added = subprocess.run([str(SESAMD), "user", "add", EMAIL, "--role", "admin", "--data-dir", str(data)],
                           input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    with serve_process(data) as daemon:
        yield daemon


def test_the_guides_sesamclient_flow(node: Daemon, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if k not in ("NODE", "JWT")},
           "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}

    def sesam(*argv: str, stdin: str = "", cwd: Path = tmp_path) -> str:
        result = subprocess.run([str(SESAM), *argv], input=stdin, capture_output=True, text=True, cwd=cwd,
                                env=env, timeout=60, check=False)
        assert result.returncode == 0, f"sesam {' '.join(argv)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    assert sesam("config", "server.base_url", node.url) == ""
    assert sesam("config", "server.base_url") == f"{node.url}\n"
    settings = home / ".local" / "share" / "sesamclient" / "settings.ini"
    assert settings.is_file()

    out = sesam("login", stdin=f"{EMAIL}\n{PASSWORD}\n")
    assert "Logged in" in out and "jwt = " in settings.read_text()
    assert oct(settings.stat().st_mode & 0o777) == "0o600"

    embedded = "../shared/tutorial/sesam-embedded.conf.json"  # typed from the checkout, as the guide does
    out = sesam("import", embedded, cwd=CHECKOUT)
    assert out == f"Read 3 config entities from these config-files:\n  {embedded}\n"

    for pipe in ("customers", "orders", "customers-with-orders"):
        pump = json.loads(sesam("start-pump", pipe, "--wait-timeout", "30"))
        assert pump["runtime"]["is-running"] is False, pump
        assert pump["runtime"].get("last-run-error") in (None, ""), pump

    entities = json.loads(sesam("get-dataset-entities", "customers-with-orders"))
    shown = sorted((e["_id"], e["name"], e["order_count"]) for e in entities if not e.get("_deleted"))
    assert shown == [("1", "John Smith", 2), ("2", "Maria Hawkins", 1)]

    out = sesam("export", "--force")
    assert out == "The following files were added:\n  sesam.conf.json\n"
    exported = json.loads((tmp_path / "sesam.conf.json").read_text())
    assert exported == json.loads((TUTORIAL / "sesam-embedded.conf.json").read_text())
    assert sesam("export") == "The existing config-files are up-to-date.\n"
