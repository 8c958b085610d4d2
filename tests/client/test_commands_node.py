"""The sesam-py workflow end to end against a real ``sesamd serve``, on a demo project built from the
getting-started tutorial (``shared/tutorial``): its http_endpoint pipes fed from ``testdata/``, the
customers-with-orders pipe, an endpoint pipe added for verify, a system, node metadata and an env profile.

upload/download round trip byte for byte, status in and out of sync, update then verify, run and test,
wipe, restart, and failures (validation errors, refused connection, bad JWT, malformed file) as one line
and exit 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sesamd.client import Connection, _portal
from sesamd.client._cli import main
from sesamd.client._commands import run as run_command
from sesamd.testing import Daemon, serve_process

TUTORIAL = Path(__file__).resolve().parents[3] / "shared" / "tutorial"
BOM = b"\xef\xbb\xbf"
ENDPOINT = {"_id": "customers-endpoint", "type": "pipe",
            "source": {"type": "dataset", "dataset": "customers-with-orders"}, "sink": {"type": "http_endpoint"}}


def build_demo(root: Path) -> Path:
    """The tutorial as a sesam project, every file in portal format (as download writes it)."""
    configs = _portal.loads((TUTORIAL / "sesam.conf.json").read_bytes())
    seed = _portal.loads((TUTORIAL / "sesam-seed.conf.json").read_bytes())
    system = {**next(e for e in seed if e["_id"] == "customer-system"), "base_url": "http://localhost:1/customers/"}
    files = {f"pipes/{pipe['_id']}.conf.json": pipe for pipe in [*configs, ENDPOINT]}
    files["systems/customer-system.conf.json"] = system
    files["node-metadata.conf.json"] = {"_id": "node", "type": "metadata"}
    for name, value in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_portal.dumps(value), encoding="utf-8")
    (root / "test-env.json").write_bytes(BOM + _portal.dumps({"node-env": "test"}).encode())
    (root / "testdata").mkdir()
    for name in ("customers", "orders"):
        shutil.copyfile(TUTORIAL / name / f"{name}.json", root / "testdata" / f"{name}.json")
    (root / "expected").mkdir()
    (root / "expected" / "customers-endpoint.test.json").write_text("{}\n")
    (root / "expected" / "customers-endpoint.json").write_text("[]\n")
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with serve_process(tmp_path_factory.mktemp("node") / "data") as running:
        yield running


@pytest.fixture
def demo(tmp_path: Path, daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo project as the working directory, with a .syncconfig for the node, which starts empty."""
    root = build_demo(tmp_path / "node")
    (tmp_path / ".syncconfig").write_text(f'NODE="{daemon.url}"\nJWT="{daemon.token}"\n')  # found upwards
    for name in ("NODE", "JWT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    with Connection(daemon.url, daemon.token) as node:
        node.put_config([], force=True)
        node.put_env({})
    return root


def sesam(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    return code, captured.err


def test_upload_download_round_trip_and_status(demo: Path, daemon: Daemon, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = sesam(capsys, "upload")
    assert code == 0, err
    assert "Config uploaded successfully" in err and "Test data upload summary: total=2, uploaded=2, failed=0" in err
    with Connection(daemon.url, daemon.token) as node:
        metadata = next(e for e in node.config() if e["_id"] == "node")
        assert metadata["task_manager"] == {"disable_user_pipes": True}
        assert {e["_id"] for e in node.dataset_entities("orders")} == {"1000", "1001", "1002"}
    code, err = sesam(capsys, "status")
    assert code == 0 and "Sesam config is up-to-date with local config!" in err, err

    copy = tmp_path / "copy"
    copy.mkdir()
    monkeypatch.chdir(copy)
    code, err = sesam(capsys, "download", "-node", daemon.url, "-jwt", daemon.token)
    assert code == 0 and "Replaced local config successfully" in err, err
    original = {k: v for k, v in tree(demo).items() if not k.startswith(("testdata/", "expected/"))}
    assert tree(copy) == original

    monkeypatch.chdir(demo)
    pipe = demo / "pipes" / "orders.conf.json"
    pipe.write_text(pipe.read_text().replace('"http_endpoint"', '"embedded"'))
    (demo / "pipes" / "extra.conf.json").write_text(_portal.dumps({"_id": "extra", "type": "pipe"}))
    code, err = sesam(capsys, "status", "-diff")
    assert code == 0, err
    assert "File 'pipes/orders.conf.json' differs from Sesam!" in err
    assert '-    "type": "embedded"\n+    "type": "http_endpoint"' in err
    assert "Local file 'pipes/extra.conf.json' was not found in Sesam" in err
    assert "Sesam config is NOT in sync with local config!" in err


def test_update_then_verify_then_a_changed_expectation_fails(demo: Path, daemon: Daemon,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert sesam(capsys, "upload")[0] == 0
    with Connection(daemon.url, daemon.token) as node:
        node.run_all_pipes(request_mode="sync", delete_input_datasets=False)
    code, err = sesam(capsys, "update")
    assert code == 0 and "1 tests updated!" in err, err
    expected = json.loads((demo / "expected" / "customers-endpoint.json").read_text())
    assert [(e["_id"], e["name"], e["order_count"]) for e in expected] == [("1", "John Smith", 2),
                                                                           ("2", "Maria Hawkins", 1)]
    code, err = sesam(capsys, "verify")
    assert code == 0 and "All tests passed! Ran 1 tests." in err, err

    path = demo / "expected" / "customers-endpoint.json"
    path.write_text(path.read_text().replace('"Maria Hawkins"', '"Maria Hawkin"'))
    code, err = sesam(capsys, "verify")
    assert code == 1, err
    assert "Pipe verify failed! Content mismatch for test spec 'expected/customers-endpoint.json'" in err
    assert "entity '2': property 'name'" in err and "Failed 1 of 1 tests!" in err


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_test_uploads_runs_and_verifies(demo: Path, capsys: pytest.CaptureFixture[str], mode: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_command, "STATUS_POLL", 0.2)
    assert sesam(capsys, "test")[0] == 1  # the expected output is still empty
    assert sesam(capsys, "update")[0] == 0
    code, err = sesam(capsys, "test", "-scheduler-request-mode", mode, "-print-scheduler-log", "-runs", "2")
    assert code == 0, err
    assert err.count("Successfully ran all pipes to completion in") == 2
    assert " - INFO - Running pass #1" in err
    assert "All tests passed! Ran 1 tests." in err and "Test was successful!" in err


def test_run_fails_when_the_node_run_fails(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sesam(capsys, "upload")[0] == 0
    code, err = sesam(capsys, "run", "-scheduler-max-runs", "1")
    assert code == 1, err
    assert "Failed to run pipes to completion" in err and "Failed to run the tests" in err
    code, err = sesam(capsys, "run", "-scheduler-mode", "sometimes")
    assert code == 1 and "'scheduler_mode' can only be set to 'active' or 'poll'" in err


def test_wipe_leaves_an_empty_node(demo: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert sesam(capsys, "upload")[0] == 0
    code, err = sesam(capsys, "wipe")
    assert code == 0, err
    assert "Removed pipes and systems" in err and "Successfully wiped node!" in err
    with Connection(daemon.url, daemon.token) as node:
        assert node.config() == [] and node.env() == {}
        assert [p["_id"] for p in node.pipes() if not p["_id"].startswith("system:")] == []
        assert [d["_id"] for d in node.datasets() if not d["_id"].startswith("system:")] == []


def test_restart_waits_for_a_new_start_time(demo: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    with Connection(daemon.url, daemon.token) as node:
        before = node.status()["node_start_time"]
    code, err = sesam(capsys, "restart", "-restart-timeout", "60")
    assert code == 0 and "Successfully restarted target node!" in err, err
    with Connection(daemon.url, daemon.token) as node:
        assert node.status()["node_start_time"] != before


def test_validation_errors_fail_the_upload(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (demo / "pipes" / "broken.conf.json").write_text('{"_id": "broken", "type": "pipe", "source": {"type": "nope"}}')
    code, err = sesam(capsys, "upload")
    assert code == 1
    assert "******************Validation Errors*****************\nbroken: " in err
    assert "**************End of Validation Errors**************" in err
    assert err.splitlines()[-2].startswith("Failed to upload config to sesam: PUT /config: 400")


@pytest.mark.parametrize("argv, message", [
    (["-node", "http://127.0.0.1:1", "status"], "cannot reach the node at http://127.0.0.1:1/api: "),
    (["-jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "status"], "GET /: 401 (the JWT is missing, invalid "),
    (["-jwt", "not-a-jwt", "upload"], "the JWT is malformed: it is not three dot-separated base64url parts"),
])
def test_failures_are_one_line_and_exit_1_without_a_traceback(demo: Path, argv: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "sesamd.client._cli", *argv], cwd=demo, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and lines[0].startswith("Using ") and lines[2].startswith("Total run time was ")
    assert lines[1].startswith(message), result.stderr


def test_a_malformed_project_file_fails_before_the_node_changes(demo: Path, daemon: Daemon,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (demo / "systems" / "customer-system.conf.json").write_text('{"_id": "customer-system"\n "type": 1}')
    code, err = sesam(capsys, "upload")
    assert code == 1
    assert "systems/customer-system.conf.json: not valid JSON: Expecting ',' delimiter (line 2, column 2)" in err
    with Connection(daemon.url, daemon.token) as node:
        assert node.env() == {} and node.config() == []
