"""The sesamclient command line against a real ``sesamd serve``: the getting-started guide's flow (config,
login, import, export), pumps and entities, validation errors, and the other thin commands."""

from __future__ import annotations

import getpass
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sesamd.client._legacy import main
from sesamd.client._legacy_settings import Settings
from sesamd.testing import Daemon, serve_process

TUTORIAL = Path(__file__).resolve().parents[2].parent / "shared" / "tutorial"  # ../shared beside the checkout
SEED = TUTORIAL / "sesam-seed.conf.json"
EMBEDDED = TUTORIAL / "sesam-embedded.conf.json"
EMAIL, PASSWORD = "guide@example.com", "correct horse"
CLI = [sys.executable, "-c", "import sys; from sesamd.client._legacy import main; sys.exit(main(sys.argv[1:]))"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    data = tmp_path_factory.mktemp("node") / "data"
    added = subprocess.run([sys.executable, "-m", "sesamd._cli", "user", "add", EMAIL, "--role", "admin",
                            "--data-dir", str(data)], input=f"{PASSWORD}\n", capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    with serve_process(data) as daemon:
        yield daemon


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return tmp_path / "home"


@pytest.fixture
def admin(node: Daemon, home: Path) -> Daemon:
    """Settings as after ``sesam config server.base_url`` and ``sesam login``."""
    settings = Settings()
    settings.set("server.base_url", node.url)
    settings.set("server.jwt", node.token)
    settings.save()
    return node


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


def cli(home: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home)}, timeout=60)


def test_the_guides_flow(capsys, node: Daemon, home: Path, tmp_path: Path, monkeypatch) -> None:
    assert ok(capsys, "config", "server.base_url", node.url) == ""
    login = cli(home, "login", stdin=f"{EMAIL}\n{PASSWORD}\n")  # stdin is a pipe, not a terminal
    assert login.returncode == 0, login.stderr
    assert "Logged in" in login.stdout
    token = Settings().get("server.jwt")
    assert token and token.count(".") == 2

    assert ok(capsys, "import", str(SEED)) == f"Read 5 config entities from these config-files:\n  {SEED}\n"

    monkeypatch.chdir(tmp_path)
    out = ok(capsys, "export", "--force")
    assert out == "The following files were added:\n  sesam.conf.json\n"
    assert json.loads((tmp_path / "sesam.conf.json").read_text()) == json.loads(SEED.read_text())
    assert ok(capsys, "export") == "The existing config-files are up-to-date.\n"

    ids = json.loads(ok(capsys, "get-pipes", "--ids-only"))
    assert ids == ["customers", "customers-with-orders", "orders"]
    assert ok(capsys, "get-systems", "--ids-only", "--out", "plain") == "customer-system\norder-system\n"


def test_wrong_password_is_one_line(capsys, node: Daemon, home: Path, monkeypatch) -> None:
    ok(capsys, "config", "server.base_url", node.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{EMAIL}\nwrong\n"))
    code, _, err = run(capsys, "login")
    assert (code, err) == (1, "error: login failed: wrong email or password\n")
    assert Settings().get("server.jwt") is None


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_login_at_a_terminal(capsys, node: Daemon, home: Path, monkeypatch) -> None:
    ok(capsys, "config", "server.base_url", node.url)
    monkeypatch.setattr(sys, "stdin", TTY(f"{EMAIL}\n"))
    asked: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: asked.append(prompt) or PASSWORD)
    out = ok(capsys, "login")
    assert "Email: " in out and asked == ["Password: "]
    assert Settings().get("server.jwt")
    assert json.loads(ok(capsys, "get-pipes", "--ids-only")) is not None  # the stored token works


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_one_line(capsys, home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api"
    ok(capsys, "config", "server.base_url", url)
    code, out, err = run(capsys, "get-pipes")
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot reach the node at {url}: ") and err.count("\n") == 1
    result = cli(home, "import", str(SEED))  # a real process: no traceback on stderr
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the node") and result.stderr.count("\n") == 1


def test_pump_and_entities(capsys, admin: Daemon) -> None:
    ok(capsys, "import", str(EMBEDDED))
    pump = json.loads(ok(capsys, "start-pump", "customers", "--allow-already-running-pump", "--wait-timeout", "60"))
    assert pump["_id"] == "pump:customers"
    assert pump["runtime"]["is-running"] is False and pump["runtime"]["success"] is True

    entities = json.loads(ok(capsys, "get-dataset-entities", "customers"))
    assert [(e["_id"], e["first_name"]) for e in entities] == [("1", "John"), ("2", "Maria"), ("3", "Pam")]
    assert len(json.loads(ok(capsys, "get-dataset-entities", "customers", "--limit", "1"))) == 1
    assert json.loads(ok(capsys, "get-dataset-entity", "customers", "2"))["last_name"] == "Hawkins"
    assert ok(capsys, "get-dataset-entity", "customers", "99") == "null\n"
    assert "customers" in json.loads(ok(capsys, "get-datasets", "--ids-only"))

    assert json.loads(ok(capsys, "disable-pump", "customers"))["runtime"]["is-disabled"] is True
    assert json.loads(ok(capsys, "enable-pump", "customers"))["runtime"]["is-disabled"] is False
    pump = json.loads(ok(capsys, "run-pump-operation", "customers", "update-last-seen", "-d", "last-seen=7"))
    assert pump["runtime"]["last-seen"] == "7"
    assert json.loads(ok(capsys, "unset-last-seen", "customers"))["runtime"]["last-seen"] is None
    assert json.loads(ok(capsys, "wait-for-pump-to-finish-running", "customers", "30"))["runtime"]["is-running"] \
        is False

    code, _, err = run(capsys, "run-pump-operation", "customers", "no-such-operation")
    assert code == 1 and err.startswith("error: POST /pipes/customers/pump: 400") and err.count("\n") == 1
    code, _, err = run(capsys, "get-pump", "no-such-pipe")
    assert code == 1 and err.startswith("error: GET /pipes/no-such-pipe/pump: 404") and err.count("\n") == 1


def test_import_shows_validation_errors(capsys, admin: Daemon, tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf.json"
    bad.write_text(json.dumps([{"_id": "x", "type": "pipe", "source": {"type": "no-such-source"}}]))
    code, out, _ = run(capsys, "import", str(bad))
    assert code == 1
    lines = out.splitlines()
    assert lines[:4] == ["Read 1 config entities from these config-files:", f"  {bad}",
                         "Failed to apply the configuration. These errors were detected:",
                         f"    Issues with the config entity 'x' from the file '{bad}':"]
    assert lines[4].startswith("        error: ") and lines[4].endswith("(path: $['source']['type'])")

    code, out, _ = run(capsys, "import", "--force", str(bad), str(EMBEDDED))  # two files: sent as a zip
    assert code == 0
    assert "The configuration was applied, but these errors/warnings were detected:" in out
    assert sorted(json.loads(ok(capsys, "get-pipes", "--ids-only"))) == \
        ["customers", "customers-with-orders", "orders", "x"]


def test_export_expand_and_the_prompt(capsys, admin: Daemon, tmp_path: Path, monkeypatch) -> None:
    ok(capsys, "import", str(EMBEDDED))
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "old.conf.json").write_text("[]")
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    out = ok(capsys, "export", "--expand", str(folder))
    assert "The following files will be deleted:" in out and out.endswith("Nothing was changed.\n")
    assert (folder / "old.conf.json").exists()

    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    out = ok(capsys, "export", "--expand", str(folder))
    assert f"The following files were deleted:\n  {folder}/old.conf.json\n" in out
    written = {p.relative_to(folder).as_posix(): json.loads(p.read_text()) for p in folder.rglob("*.json")}
    expected = {f"pipes/{e['_id']}.conf.json": e for e in json.loads(EMBEDDED.read_text())}
    assert written == expected
    assert ok(capsys, "export", "--expand", "--dry-run", str(folder)) == \
        "The existing config-files are up-to-date.\n"
    assert json.loads(ok(capsys, "export", "--export-filename", "-")) == json.loads(EMBEDDED.read_text())


def test_pipes_and_systems(capsys, admin: Daemon) -> None:
    ok(capsys, "import", str(EMBEDDED))
    pipe = {"_id": "extra", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "a"}]}}
    assert json.loads(ok(capsys, "add-pipes", json.dumps([pipe]), "--ids-only")) == ["extra"]
    code, _, err = run(capsys, "add-pipes", json.dumps([pipe]))
    assert code == 1 and "409" in err and err.count("\n") == 1
    changed = {**pipe, "source": {"type": "embedded", "entities": [{"_id": "b"}]}}
    assert json.loads(ok(capsys, "modify-pipe", json.dumps(changed)))["config"]["original"] == changed
    assert json.loads(ok(capsys, "get-pipe", "extra"))["config"]["original"] == changed
    assert json.loads(ok(capsys, "delete-pipe", "extra"))["_id"] == "extra"
    code, _, err = run(capsys, "get-pipe", "extra")
    assert code == 1 and err.startswith("error: GET /pipes/extra: 404")

    system = {"_id": "extra-system", "type": "system:url", "base_url": "http://localhost:1/"}
    assert json.loads(ok(capsys, "add-systems", json.dumps(system), "--ids-only")) == ["extra-system"]
    assert json.loads(ok(capsys, "get-system", "extra-system"))["config"]["original"] == system
    assert json.loads(ok(capsys, "delete-system", "extra-system"))["_id"] == "extra-system"


def test_env_vars_and_secrets(capsys, admin: Daemon, tmp_path: Path) -> None:
    first, second = tmp_path / "env.json", tmp_path / "more.json"
    first.write_text(json.dumps({"a": "1", "b": "2"}))
    second.write_text(json.dumps({"c": "3"}))
    assert json.loads(ok(capsys, "put-env-vars", str(first))) == {"a": "1", "b": "2"}
    assert json.loads(ok(capsys, "post-env-vars", str(second))) == {"a": "1", "b": "2", "c": "3"}
    ok(capsys, "delete-env-var", "a")
    assert ok(capsys, "get-env-vars", "--out", "plain") == "b: 2\nc: 3\n"

    assert json.loads(ok(capsys, "put-secrets", str(first)))["secrets"] == ["a", "b"]
    assert json.loads(ok(capsys, "post-secrets", str(second)))["secrets"] == ["a", "b", "c"]
    ok(capsys, "delete-secret", "b")
    assert json.loads(ok(capsys, "get-secrets")) == ["a", "c"]
    code, _, err = run(capsys, "delete-secret", "b")
    assert code == 1 and "404" in err and err.count("\n") == 1
