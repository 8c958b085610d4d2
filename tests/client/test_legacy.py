"""The sesamclient command line without a node: the settings file, argument errors, the local side of
``import`` and ``export``, and how answers are printed."""

from __future__ import annotations

import argparse
import json
import socket
import stat
import sys
from pathlib import Path

import pytest

from sesamd.client import ClientError, _legacy_export, _legacy_import
from sesamd.client._legacy import LEGACY_COMMANDS, main, parser
from sesamd.client._legacy_node import show
from sesamd.client._legacy_settings import Settings, settings_path

SESAM_PY_COMMANDS = {"init", "upload", "download", "status", "run", "stop", "test", "verify", "update", "wipe",
                     "reset", "dump", "restart", "format", "convert", "authenticate", "validate", "expand",
                     "update-schemas", "connector-init", "add-datatype", "run-pytest"}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return tmp_path / "home"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the settings file -----------------------------------------------------------------------------------


def test_settings_path_is_sesamclients(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_path() == home / ".local" / "share" / "sesamclient" / "settings.ini"
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg"))
    assert settings_path() == home / "xdg" / "sesamclient" / "settings.ini"


def test_config_set_and_get(capsys, home: Path) -> None:
    assert run(capsys, "config", "server.base_url") == (0, "", "")  # unset: nothing printed
    assert run(capsys, "config", "server.base_url", "http://localhost:9042/api") == (0, "", "")
    assert run(capsys, "config", "server.timeout", "60") == (0, "", "")
    assert run(capsys, "config", "server.base_url") == (0, "http://localhost:9042/api\n", "")
    assert run(capsys, "config", "server.timeout") == (0, "60\n", "")
    path = home / ".local" / "share" / "sesamclient" / "settings.ini"
    assert path.read_text() == "[server]\nbase_url = http://localhost:9042/api\ntimeout = 60\n\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_settings_round_trip(home: Path) -> None:
    settings = Settings()
    settings.set("server.jwt", "a%b.c")  # no interpolation: a token may hold any character
    settings.set("server.username", "ann")
    settings.save()
    again = Settings()
    assert (again.get("server.jwt"), again.get("server.username"), again.get("server.password")) == \
        ("a%b.c", "ann", None)
    assert again.remove("server.jwt") and not again.remove("server.jwt")
    again.save()
    assert Settings().get("server.jwt") is None and Settings().get("server.username") == "ann"


def test_logout_forgets_the_token(capsys) -> None:
    settings = Settings()
    settings.set("server.jwt", "token")
    settings.save()
    code, out, _ = run(capsys, "logout")
    assert code == 0 and "Logged out" in out
    assert Settings().get("server.jwt") is None
    code, out, _ = run(capsys, "logout")
    assert code == 0 and "Not logged in" in out


def test_unreadable_settings_file_is_one_line(capsys, home: Path) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("no section header\n")
    code, out, err = run(capsys, "config", "server.base_url")
    assert code == 1 and out == ""
    assert err.startswith(f"error: the settings file {path} cannot be read") and err.count("\n") == 1


def test_bad_timeout_in_the_settings_file(capsys) -> None:
    settings = Settings()
    settings.set("server.base_url", f"http://127.0.0.1:{closed_port()}/api")
    settings.set("server.timeout", "soon")
    settings.save()
    code, _, err = run(capsys, "get-pipes")
    assert code == 2
    assert err == f"error: server.timeout in {settings.path} must be a positive number of seconds, not 'soon'\n"


# -- argument errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "text"), [
    ([], "no command given"),
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["config"], "the following arguments are required: optionname"),
    (["config", "server.jwt", "x"], "invalid choice: 'server.jwt'"),
    (["config", "server.timeout", "-1"], "server.timeout must be a positive number of seconds, not '-1'"),
    (["get-pipe"], "sesam get-pipe: the following arguments are required: pipe_id"),
    (["get-pipes", "--out", "xml"], "argument --out: invalid choice: 'xml'"),
    (["add-pipes", "not json"], "argument pipe_configurations: not valid JSON"),
    (["modify-pipe", "[1]"], "the configuration must be a JSON object with an '_id'"),
    (["add-systems", '"text"'], "must be a JSON list of objects"),
    (["wait-for-pump-to-finish-running", "p", "soon"], "argument timeout: not a number of seconds: 'soon'"),
    (["run-pump-operation", "p", "start", "-d", "novalue"], "-d takes <parametername>=<parametervalue>"),
    (["export", "--expand", "--export-filename", "a.conf.json"], "cannot be used together"),
    (["export", "--export-filename", "a.json"], "must be a file name ending in .conf.json"),
    (["import"], "the following arguments are required: config-file-or-folder"),
    (["get-pipes", "--server_timeout", "0"], "--server_timeout must be a positive number of seconds"),
])
def test_argument_errors_are_one_line_and_exit_2(capsys, argv: list[str], text: str) -> None:
    settings = Settings()
    settings.set("server.base_url", f"http://127.0.0.1:{closed_port()}/api")  # nothing is sent
    settings.save()
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and text in err, err


def test_help_exits_0(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "get-dataset-entities" in out
    code, out, _ = run(capsys, "start-pump", "-h")
    assert code == 0 and "--wait-timeout" in out and "--server_base_url" in out


def test_commands_are_the_parsers_and_none_is_sesam_pys() -> None:
    subparsers = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == LEGACY_COMMANDS
    assert not LEGACY_COMMANDS & SESAM_PY_COMMANDS
    assert {"config", "login", "import", "export", "get-pipes", "start-pump", "get-dataset-entities"} <= \
        LEGACY_COMMANDS


# -- import and export, the local side ------------------------------------------------------------------


def write(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def test_import_dry_run_lists_the_files(capsys, tmp_path: Path) -> None:
    write(tmp_path / "conf" / "b.conf.json", [{"_id": "b", "type": "pipe"}, {"_id": "c", "type": "pipe"}])
    write(tmp_path / "conf" / "sub" / "a.conf.json", {"_id": "a", "type": "system:url"})
    write(tmp_path / "conf" / "sub" / "nodeconfig.json", [{"_id": "n", "type": "metadata"}])
    write(tmp_path / "conf" / "ignored.json", [{"_id": "ignored"}])
    extra = write(tmp_path / "extra.json", {"_id": "x", "type": "pipe"})
    code, out, err = run(capsys, "import", "--dry-run", str(tmp_path / "conf"), str(extra))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:6] == ["Read 5 config entities from these config-files:",
                         f"  {tmp_path}/conf/b.conf.json",
                         f"  {tmp_path}/conf/sub/a.conf.json",
                         f"  {tmp_path}/conf/sub/nodeconfig.json",
                         f"  {tmp_path}/extra.json",
                         ""]
    assert "dry run" in lines[6]


@pytest.mark.parametrize(("files", "text"), [
    ({"a.conf.json": [{"_id": "a"}], "b.conf.json": {"_id": "a"}}, "the config entity id 'a' is in both"),
    ({"a.conf.json": [{"_id": "a"}, {"_id": "a"}]}, "holds two config entities with the id 'a'"),
    ({"a.conf.json": [{"type": "pipe"}]}, "holds a config entity without an '_id'"),
    ({"a.conf.json": 5}, "must hold a config entity (a JSON object) or a list of them"),
    ({"a.conf.json": "not json"}, "is not valid JSON"),
])
def test_import_checks_the_files(capsys, tmp_path: Path, files: dict[str, object], text: str) -> None:
    for name, value in files.items():
        path = tmp_path / "conf" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(value if isinstance(value, str) else json.dumps(value))
    code, out, err = run(capsys, "import", "--dry-run", str(tmp_path / "conf"))
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and text in err, err


def test_import_missing_path(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "import", str(tmp_path / "nothing.conf.json"))
    assert (code, err) == (1, f"error: the path '{tmp_path}/nothing.conf.json' does not exist\n")


def test_import_upload_keeps_a_single_list_file_as_is(tmp_path: Path) -> None:
    one = write(tmp_path / "one.conf.json", [{"_id": "a", "n": 1}])
    contents = _legacy_import.read_entities([str(one)])
    assert _legacy_import._upload(contents) == ("one.conf.json", one.read_bytes(), "application/json")
    two = write(tmp_path / "two.conf.json", {"_id": "b"})
    name, data, content_type = _legacy_import._upload(_legacy_import.read_entities([str(one), str(two)]))
    assert (name, content_type) == ("sesam-config.zip", "application/zip") and data[:4] == b"PK\x03\x04"


def test_export_changes(tmp_path: Path) -> None:
    (tmp_path / "pipes").mkdir()
    (tmp_path / "pipes" / "same.conf.json").write_bytes(b"{}")
    (tmp_path / "pipes" / "old.conf.json").write_bytes(b"{}")
    (tmp_path / "changed.conf.json").write_bytes(b"[]")
    (tmp_path / "notes.json").write_bytes(b"[]")
    wanted = {tmp_path / "pipes" / "same.conf.json": b"{}", tmp_path / "changed.conf.json": b"[1]",
              tmp_path / "systems" / "new.conf.json": b"{}"}
    assert _legacy_export.changes(tmp_path, wanted, expand=True) == {
        "deleted": [tmp_path / "pipes" / "old.conf.json"],
        "added": [tmp_path / "systems" / "new.conf.json"],
        "modified": [tmp_path / "changed.conf.json"]}
    assert _legacy_export.changes(tmp_path, wanted, expand=False)["deleted"] == []


# -- printing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("out", "ids_only", "printed"), [
    ("json", False, '[\n    {\n        "_id": "a",\n        "n": "\\u00e6"\n    },\n'
                    '    {\n        "_id": "b"\n    }\n]\n'),
    ("json", True, '[\n    "a",\n    "b"\n]\n'),
    ("plain", True, "a\nb\n"),
    ("plain", False, "a\nb\n"),
    ("yaml", True, "- a\n- b\n"),
])
def test_show(capsys, out: str, ids_only: bool, printed: str) -> None:
    show(argparse.Namespace(out=out, ids_only=ids_only), [{"_id": "a", "n": "æ"}, {"_id": "b"}])
    assert capsys.readouterr().out == printed


def test_yaml_needs_pyyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    with pytest.raises(ClientError, match="needs the PyYAML package"):
        show(argparse.Namespace(out="yaml"), [])


def test_show_plain_object(capsys) -> None:
    show(argparse.Namespace(out="plain"), {"a": "1", "b": [1, 2], "c": None})
    assert capsys.readouterr().out == "a: 1\nb: [1, 2]\nc: null\n"
