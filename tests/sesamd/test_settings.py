"""Settings: flags over ``SESAMD_*`` variables over the TOML file over defaults; one-line errors naming the
file and key or the variable; ``sesamd settings`` shows each value and its source; ``serve`` runs with them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sesamd import _cli, _serve, _settings
from sesamd._settings import SettingsError, resolve

MIB = 1 << 20


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "sesamd.toml"
    path.write_text('data_dir = "/srv/node"\nport = 9100\ngrace = 12\nlog_format = "json"\n')
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in _settings.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv(_settings.ENV_FILE, raising=False)


def test_defaults_then_file_then_env_then_flags(toml: Path) -> None:
    effective = resolve({"port": 9300}, settings=str(toml), environ={"SESAMD_PORT": "9200", "SESAMD_HOST": "::1"})
    assert effective["port"] == 9300 and effective.sources["port"] == ("flag", "--port")
    assert effective["host"] == "::1" and effective.sources["host"] == ("env", "SESAMD_HOST")
    assert effective["data_dir"] == "/srv/node" and effective.sources["data_dir"] == ("file", str(toml))
    assert effective["grace"] == 12.0 and isinstance(effective["grace"], float)
    assert effective["log_level"] == "info" and effective.sources["log_level"] == ("default", "")
    assert effective["config"] is None
    assert set(effective.values) == {s.name for s in _settings.SETTINGS}


def test_every_serve_option_is_a_setting() -> None:
    names = {s.name for s in _settings.SETTINGS}
    assert names == {"data_dir", "host", "port", "config", "poll_interval", "grace", "dataset_write_buffer_mb",
                     "dataset_cache_mb", "log_format", "log_level", "log_dir", "log_file_mb", "log_file_count"}
    assert [s.env for s in _settings.SETTINGS][:3] == ["SESAMD_DATA_DIR", "SESAMD_HOST", "SESAMD_PORT"]


def test_the_file_comes_from_the_flag_the_variable_or_the_default(toml: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve(environ={_settings.ENV_FILE: str(toml)})["port"] == 9100
    other = tmp_path / "other.toml"
    other.write_text("port = 1\n")
    assert resolve(settings=str(other), environ={_settings.ENV_FILE: str(toml)})["port"] == 1
    monkeypatch.setattr(_settings, "DEFAULT_FILE", other)
    assert resolve(environ={}).file == other
    monkeypatch.setattr(_settings, "DEFAULT_FILE", tmp_path / "absent.toml")
    assert resolve(environ={}).file is None  # an absent default file is no error


@pytest.mark.parametrize(("text", "message"), [
    ("prot = 9042\n", "{file}: prot: unknown setting (known: data_dir, host, port"),
    ('port = "9042"\n', "{file}: port: must be an integer from 0 to 65535, not '9042'"),
    ("port = true\n", "{file}: port: must be an integer from 0 to 65535, not True"),
    ("port = 70000\n", "{file}: port: must be an integer from 0 to 65535, not 70000"),
    ("grace = -1\n", "{file}: grace: must be a number of seconds, 0 or more, not -1"),
    ('log_level = "loud"\n', "{file}: log_level: must be one of debug, info, warning, error, not 'loud'"),
    ("dataset_cache_mb = 0\n", "{file}: dataset_cache_mb: must be a whole number of MiB from 1 to 65536, not 0"),
    ('data_dir = ""\n', "{file}: data_dir: must be a non-empty string, not ''"),
    ("[serve]\nport = 1\n", "{file}: serve: unknown setting"),
    ("port = \n", "{file}: not valid TOML: "),
])
def test_a_bad_file_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as raised:
        resolve(settings=str(path), environ={})
    assert str(raised.value).startswith(message.format(file=path)), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_settings_file_given_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"cannot read the settings file .*absent.toml: No such file"):
        resolve(settings=str(tmp_path / "absent.toml"), environ={})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SESAMD_PORT", "http", "SESAMD_PORT: must be an integer from 0 to 65535, not 'http'"),
    ("SESAMD_GRACE", "nan", "SESAMD_GRACE: must be a number of seconds, 0 or more, not 'nan'"),
    ("SESAMD_LOG_FORMAT", "xml", "SESAMD_LOG_FORMAT: must be one of logfmt, json, not 'xml'"),
    ("SESAMD_DATASET_WRITE_BUFFER_MB", "2048",
     "SESAMD_DATASET_WRITE_BUFFER_MB: must be a whole number of MiB from 1 to 1024, not '2048'"),
])
def test_a_bad_variable_is_one_line_naming_it(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        resolve(environ={name: value, _settings.ENV_FILE: "/dev/null"})
    assert str(raised.value) == message


def test_variables_that_are_no_setting_are_listed_not_refused() -> None:
    effective = resolve(environ={"SESAMD_PROT": "1", "SESAMD_BENCH_ROOT": "/x", _settings.ENV_FILE: "/dev/null"})
    assert effective.ignored_env == ("SESAMD_BENCH_ROOT", "SESAMD_PROT")


def test_sesamd_settings_prints_values_and_sources(toml: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SESAMD_LOG_LEVEL", "debug")
    assert _cli.main(["settings", "--settings", str(toml), "--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert rows["host"] == ["0.0.0.0", "flag", "--host"]
    assert rows["log_level"] == ["debug", "env", "SESAMD_LOG_LEVEL"]
    assert rows["port"] == ["9100", "file", str(toml)]
    assert rows["config"] == ["-", "default"]
    assert rows["log_dir"] == ["/srv/node/logs", "default"]  # the directory the default is, not "-"
    assert f"# settings file: {toml}" in err

    assert _cli.main(["settings", "--settings", str(toml), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["file"] == str(toml)
    assert shown["settings"]["port"] == {"value": 9100, "source": "file", "from": str(toml)}
    assert shown["settings"]["host"] == {"value": "127.0.0.1", "source": "default", "from": None}
    assert shown["settings"]["log_level"] == {"value": "debug", "source": "env", "from": "SESAMD_LOG_LEVEL"}
    assert shown["settings"]["log_dir"] == {"value": "/srv/node/logs", "source": "default", "from": None}


def test_errors_are_one_line_and_exit_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("porrt = 1\n")
    for argv, env, expected in [
        (["settings", "--settings", str(bad)], {}, f"sesamd: error: {bad}: porrt: unknown setting"),
        (["serve", "--settings", str(bad)], {}, f"sesamd: error: {bad}: porrt: unknown setting"),
        (["serve", "--settings", "/dev/null"], {"SESAMD_PORT": "x"},
         "sesamd: error: SESAMD_PORT: must be an integer from 0 to 65535, not 'x'"),
    ]:
        done = subprocess.run([sys.executable, "-m", "sesamd._cli", *argv], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", **env})
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--port", "http", "argument --port: must be an integer from 0 to 65535, not 'http'"),
    ("--log-format", "xml", "argument --log-format: must be one of logfmt, json, not 'xml'"),
    ("--grace", "-3", "argument --grace: must be a number of seconds, 0 or more, not '-3'"),
])
def test_a_bad_flag_is_a_usage_error(flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["settings", flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_runs_with_the_effective_settings(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    async def fake_serve(data_dir: Any, **kwargs: Any) -> None:
        calls.append({"data_dir": data_dir, **kwargs})

    monkeypatch.setattr(_serve, "serve", fake_serve)
    monkeypatch.setattr(_serve, "tune_process", lambda: None)
    monkeypatch.setattr(_serve, "_configure_logging",
                        lambda settings: calls.append({"log": (settings["log_format"], settings["log_level"])}))
    monkeypatch.setenv("SESAMD_DATASET_CACHE_MB", "16")
    assert _cli.main(["serve", "--settings", str(toml), "--host", "::"]) == 0
    [logging_call, call] = calls
    assert logging_call == {"log": ("json", "info")}
    assert (call["data_dir"], call["host"], call["port"], call["grace"]) == ("/srv/node", "::", 9100, 12.0)
    assert call["dataset_options"] == _serve.dataset_options(8, 16)
    assert call["dataset_options"].lru_cache_size == 16 * MIB
    assert call["config_file"] is None and call["poll_interval"] == 1.0
