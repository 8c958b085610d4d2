"""The command line without a node (client-spec 1, 6.4, 6.5, 6.13): option parsing (single dash, before or
after the command), -version, exit codes, the legacy dispatch, and the offline commands format, dump,
convert and init."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from sesamd.client import _cli, _legacy, _portal
from sesamd.client._cli import build_parser, command_word, main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("NODE", "JWT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_options_come_before_or_after_the_command_with_one_dash() -> None:
    parser = build_parser()
    before = parser.parse_intermixed_args(["-vv", "-profile", "variables/test", "-runs", "3", "test"])
    after = parser.parse_intermixed_args(["test", "-vv", "-profile", "variables/test", "-runs", "3"])
    for args in (before, after):
        assert (args.command, args.extra_verbose, args.profile, args.runs) == (["test"], True, "variables/test", 3)
    mixed = parser.parse_intermixed_args(["format", "-unicode-encoding", "expected", "-pytest-args", "-rP -x"])
    assert (mixed.command, mixed.unicode_encoding, mixed.pytest_args) == (["format", "expected"], True, "-rP -x")


def test_the_defaults_are_sesam_pys() -> None:
    args = build_parser().parse_intermixed_args(["run"])
    assert (args.sync_config_file, args.profile, args.runs, args.scheduler_request_mode, args.scheduler_mode) == (
        ".syncconfig", "test", 1, "sync", None)
    assert (args.scheduler_zero_runs, args.scheduler_max_runs, args.scheduler_max_run_time) == (2, 100, 900)
    assert (args.restart_timeout, args.scheduler_poll_frequency, args.upload_workers, args.logformat) == (
        900, 5000, 8, "short")
    assert not (args.force or args.dump or args.verbose or args.print_scheduler_log)


@pytest.mark.parametrize("argv", [
    ["-use-internal-scheduler", "-custom-scheduler", "-scheduler-image-tag", "x", "-single", "p", "status"],
    ["-skip-tls-verification", "-scheduler-check-input-pipes", "-output-run-statistics",
     "-scheduler-dont-reset-pipes-or-delete-sink-datasets", "-scheduler-mode", "poll", "run"],
    ["upload", "-enable-user-pipes", "-enable-eager-ms", "-disable-cpp-extensions", "-upload-delete-sink-datasets",
     "-force", "-dump", "--upload-workers", "2", "--upload-rate", "1.5", "-single-thread-upload",
     "--do-float-as-decimal"],
    ["verify", "-no-large-int-bugs", "-disable-json-html-escape", "-whitelist-file", "w.txt", "-sesamconfig-file", "f"],
    ["init", "-add-test-entities", "-force-add", "-diff", "-logformat", "azure", "-run-pytest", "tests"],
    ["-dont-remove-scheduler", "-disable-user-pipes", "-compact-execution-datasets", "-scheduler-node", "n",
     "-scheduler-id", "i", "-sync-config-file", "x.cfg", "-node", "n", "-jwt", "j", "-vvv", "-v", "wipe"],
])
def test_every_sesam_py_option_is_accepted(argv: list[str]) -> None:
    args = build_parser().parse_intermixed_args(argv)
    assert args.command and args.command[0] in _cli.COMMANDS


def test_version_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-version"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("sesam version ") and err == ""


def test_bad_option_syntax_exits_2_with_the_error_and_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upload", "-runs", "many"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument -runs: invalid int value: 'many'\n")
    assert "usage: sesam" in err and "-print-scheduler-log" in err
    assert main(["-nodes", "x", "upload"]) == 2


@pytest.mark.parametrize("argv, message", [([], "No command given"), (["bogus"], "Unknown command: 'bogus'"),
                                           (["validate"], "'validate' is a connector command")])
def test_a_missing_or_unknown_command_exits_1(project: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                              message: str) -> None:
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"Using {project} as base directory"
    assert message in lines[1]
    assert lines[-1] == "Total run time was 0 seconds"


def test_an_online_command_without_node_settings_fails_in_one_line(project: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["STATUS"]) == 1
    err = capsys.readouterr().err
    assert "jwt and node must be specified either as parameter, os env or in syncconfig file" in err
    assert "Traceback" not in err


def test_the_command_word_skips_option_values() -> None:
    parser = build_parser()
    assert command_word(parser, ["-node", "http://x", "-v", "get-pipes", "--verbose"]) == "get-pipes"
    assert command_word(parser, ["-profile", "upload", "download"]) == "download"
    assert command_word(parser, ["-v"]) is None


def test_sesamclient_commands_go_to_the_legacy_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(_legacy, "LEGACY_COMMANDS", frozenset({"get-pipes", "upload"}))
    monkeypatch.setattr(_legacy, "main", lambda argv: seen.append(argv) or 7)
    assert main(["-node", "http://x", "get-pipes", "--json"]) == 7
    assert seen == [["-node", "http://x", "get-pipes", "--json"]]
    assert main(["-version", "upload"]) == 0  # a sesam-py command stays here
    assert len(seen) == 1


def test_format_rewrites_configs_testdata_and_expected(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pipes").mkdir()
    (project / "pipes" / "p.conf.json").write_text('{"type": "pipe", "_id": "p", "n": 1.50}')
    (project / "testdata").mkdir()
    (project / "testdata" / "p.json").write_text('[{"b": 1, "_id": "x"}]')
    (project / "expected").mkdir()
    (project / "expected" / "p.json").write_text('[{"b": "<tag> & æ", "_id": "x"}]')
    (project / "expected" / "p.test.json").write_text('{"pipe":"p"}')
    assert main(["format"]) == 0
    assert (project / "pipes" / "p.conf.json").read_text() == '{\n  "_id": "p",\n  "type": "pipe",\n  "n": 1.50\n}\n'
    assert (project / "testdata" / "p.json").read_text() == '[{\n  "_id": "x",\n  "b": 1\n}]\n'
    assert (project / "expected" / "p.json").read_text() == (
        '[\n  {\n    "_id": "x",\n    "b": "\\u003ctag\\u003e \\u0026 æ"\n  }\n]\n')
    assert (project / "expected" / "p.test.json").read_text() == '{"pipe":"p"}'
    assert main(["format", "expected/p.json", "-unicode-encoding", "-disable-json-html-escape"]) == 0
    assert (project / "expected" / "p.json").read_text() == (
        '[\n  {\n    "_id": "x",\n    "b": "<tag> & \\u00e6"\n  }\n]\n')
    assert main(["format", "nonsense"]) == 1
    assert "nonsense is not a valid type to format" in capsys.readouterr().err


def test_a_malformed_file_fails_format_in_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pipes").mkdir()
    (project / "pipes" / "p.conf.json").write_text('{"_id": "p",}')
    assert main(["format", "pipes"]) == 1
    err = capsys.readouterr().err
    assert ("pipes/p.conf.json: not valid JSON: Expecting property name enclosed in double quotes "
            "(line 1, column 13)") in err
    assert "Traceback" not in err
    assert main(["-vvv", "format", "pipes"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_dump_writes_the_local_config_zip(project: Path) -> None:
    (project / "pipes").mkdir()
    (project / "pipes" / "p.conf.json").write_text('{"_id": "p", "type": "pipe"}')
    (project / "node-metadata.conf.json").write_text('{"_id": "node", "type": "metadata"}')
    assert main(["dump"]) == 0
    with zipfile.ZipFile(project / "sesam-config.zip") as archive:
        assert archive.namelist() == ["pipes/p.conf.json", "node-metadata.conf.json"]
        assert archive.read("node-metadata.conf.json") == b'{"_id": "node", "type": "metadata"}'


def test_init_adds_test_alternatives_to_input_pipes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipes = project / "pipes"
    pipes.mkdir()
    sql = {"_id": "sql-in", "type": "pipe", "source": {"type": "sql", "system": "db", "table": "t"}}
    conditional = {"_id": "cond", "type": "pipe",
                   "source": {"type": "conditional", "condition": "$ENV(node-env)",
                              "alternatives": {"prod": {"type": "sql", "system": "db", "table": "t"}}}}
    dataset = {"_id": "internal", "type": "pipe", "source": {"type": "dataset", "dataset": "sql-in"}}
    for pipe in (sql, conditional, dataset):
        (pipes / f"{pipe['_id']}.conf.json").write_text(json.dumps(pipe))
    assert main(["init"]) == 0
    assert "Successfully added test sources to 2 pipes." in capsys.readouterr().err
    empty = {"type": "embedded", "entities": []}
    assert json.loads((pipes / "sql-in.conf.json").read_text())["source"] == {
        "type": "conditional", "alternatives": {"prod": sql["source"], "test": empty}, "condition": "$ENV(node-env)"}
    assert json.loads((pipes / "cond.conf.json").read_text())["source"]["alternatives"]["test"] == empty
    assert (pipes / "internal.conf.json").read_text() == json.dumps(dataset)
    assert main(["init"]) == 0
    assert "No test sources were added." in capsys.readouterr().err


def test_convert_moves_embedded_test_entities_to_testdata(project: Path) -> None:
    (project / "pipes").mkdir()
    pipe = {"_id": "Input-1", "type": "pipe",
            "source": {"type": "conditional", "condition": "$ENV(node-env)",
                       "alternatives": {"prod": {"type": "sql"},
                                        "test": {"type": "embedded", "entities": [{"_id": "a", "v": 1.10}]}}}}
    (project / "pipes" / "input-1.conf.json").write_text(json.dumps(pipe).replace("1.1", "1.10"))
    assert main(["convert", "-dump"]) == 0
    converted = _portal.loads((project / "pipes" / "input-1.conf.json").read_text())
    assert converted["source"]["alternatives"]["test"] == {"type": "http_endpoint"}
    assert (project / "testdata" / "Input-1.json").read_text() == '[{\n  "_id": "a",\n  "v": 1.10\n}]\n'
    assert (project / "sesam-config.zip").is_file()
