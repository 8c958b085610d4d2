"""``sesamd lint``: the same errors, at the same paths, as ``PUT /api/config`` for the same files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from sesamd._lint import collect_files, lint_files
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

BAD_SOURCE = {"_id": "a", "type": "pipe", "source": {"type": "nope"}}
BAD_DTL = {"_id": "b", "type": "pipe", "source": {"type": "embedded", "entities": []},
           "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["bogus"]]}}}
BAD_SYSTEM_REF = {"_id": "c", "type": "pipe", "source": {"type": "sql", "system": "missing", "table": "t"}}
UNDEFINED_ENV = {"_id": "u", "type": "system:url", "base_url": "$ENV(base)", "password": "$SECRET(p)"}
GOOD = {"_id": "g", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "1"}]}}


def _project(root: Path) -> Path:
    """A Sesam project layout with bad entities in several files."""
    (root / "pipes").mkdir(parents=True)
    (root / "systems").mkdir()
    (root / "node-metadata.conf.json").write_text(json.dumps({"_id": "node", "type": "metadata"}))
    (root / "pipes" / "a.conf.json").write_text(json.dumps(BAD_SOURCE))
    (root / "pipes" / "bc.conf.json").write_text(json.dumps([BAD_DTL, BAD_SYSTEM_REF]))
    (root / "pipes" / "g.conf.json").write_text(json.dumps(GOOD))
    (root / "systems" / "u.conf.json").write_text(json.dumps(UNDEFINED_ENV))
    (root / "README.md").write_text("not config")
    return root


def _lint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sesamd._cli", "lint", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


async def _api_errors(data_dir: Path, entities: list[Any]) -> dict[str, list[tuple[str, str]]]:
    """PUT /api/config's validation_errors: entity id -> [(elements, msg)]."""
    async with open_node(data_dir) as node:
        client = TokenClient(create_app(node))
        response = await client.put("/api/config", data=json.dumps(entities).encode(),
                                    headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        body = await response.get_json()
    return {item["posted-config"]["_id"]: [(e["elements"], e["msg"]) for e in item["config-errors"]]
            for item in body["validation_errors"]}


async def test_lint_gives_the_apis_paths_and_messages(tmp_path: Path) -> None:
    root = _project(tmp_path / "project")
    files = collect_files([str(root)])
    assert [f.relative_to(root).as_posix() for f in files] == [
        "node-metadata.conf.json", "pipes/a.conf.json", "pipes/bc.conf.json", "pipes/g.conf.json",
        "systems/u.conf.json"]
    problems = await trio.to_thread.run_sync(lint_files, files)  # (lint runs its own Trio loop)
    entities = [{"_id": "node", "type": "metadata"}, BAD_SOURCE, BAD_DTL, BAD_SYSTEM_REF, GOOD, UNDEFINED_ENV]
    expected = await _api_errors(tmp_path / "node", entities)
    assert "u" in expected  # the node has no variable 'base' either
    expected["u"] = [e for e in expected["u"] if "$SECRET" not in e[1] and "secret" not in e[1]]
    found: dict[str, list[tuple[str, str]]] = {}
    for problem in problems:
        assert problem.entity is not None
        found.setdefault(problem.entity, []).append((problem.elements, problem.msg))
    assert found == expected
    assert ("$['source']['type']", found["a"][0][1]) == found["a"][0]
    assert {p.file for p in problems} == {str(root / "pipes" / "a.conf.json"), str(root / "pipes" / "bc.conf.json"),
                                          str(root / "systems" / "u.conf.json")}


def test_the_command_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    root = _project(tmp_path / "project")
    result = _lint(".", cwd=root)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("pipes/a.conf.json: 'a' $['source']['type']: ")
    assert any(line.startswith("pipes/bc.conf.json: 'b' $['transform']") for line in lines)
    assert any(line.startswith("pipes/bc.conf.json: 'c' ") and "missing" in line for line in lines)
    assert any(line.startswith("systems/u.conf.json: 'u' $['base_url']: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_env_file_and_clean_files_exit_0(tmp_path: Path) -> None:
    (tmp_path / "u.conf.json").write_text(json.dumps(UNDEFINED_ENV))
    (tmp_path / "g.conf.json").write_text(json.dumps(GOOD))
    (tmp_path / "env.json").write_text(json.dumps({"base": "http://127.0.0.1:1/"}))
    result = _lint("u.conf.json", "g.conf.json", "--env", "env.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_bad_json_duplicates_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "broken.conf.json").write_text('[{"_id": "x",')
    (tmp_path / "one.conf.json").write_text(json.dumps(GOOD))
    (tmp_path / "two.conf.json").write_text(json.dumps([GOOD]))
    (tmp_path / "scalar.conf.json").write_text("42")
    result = _lint("broken.conf.json", "one.conf.json", "two.conf.json", "scalar.conf.json", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("broken.conf.json: $: the config is not valid JSON")
    assert any(line.startswith("two.conf.json: 'g' $['_id']: ") and "duplicate" in line for line in lines)
    assert any(line.startswith("scalar.conf.json: $: ") for line in lines)
    missing = _lint("nowhere.conf.json", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "sesamd: error: nowhere.conf.json: no such file or directory"
