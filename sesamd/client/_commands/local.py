"""Commands that rewrite project files (client-spec 6.4, 6.5, 6.13): ``init`` (test alternatives for input
pipes), ``convert`` (embedded test entities to ``testdata/``), ``format``, and ``run-pytest``."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import _portal
from .._errors import ClientError, ProjectError
from .._expected import render_expected
from .._output import log
from .._project import Project, read_json
from . import config
from ._context import Context
from .verify import options

__all__ = ["convert", "format_files", "init", "run_pytest"]

NOT_INPUT = frozenset({"dataset", "merge", "merge_datasets", "union_datasets", "diff_datasets", "embedded"})
TEST_ENTITIES = 10


def _empty_test() -> dict[str, Any]:
    return {"type": "embedded", "entities": []}


def _pipe(path: Path, project: Project) -> dict[str, Any]:
    pipe = read_json(path, path.relative_to(project.root).as_posix())
    if not isinstance(pipe, dict) or not isinstance(pipe.get("source"), dict):
        raise ProjectError(f"{path.relative_to(project.root).as_posix()}: not a pipe with a source object")
    return pipe


def _write(path: Path, value: Any) -> None:
    path.write_text(_portal.dumps(value), encoding="utf-8")


def init(context: Context) -> None:
    """Give each input pipe a conditional source with a ``test`` alternative (embedded, filled from the node
    with ``-add-test-entities``)."""
    log.info("Adding conditional sources to input pipes...")
    project, args = context.project, context.args
    added = entities_added = filled = 0
    for path in project.top_level("pipes"):
        pipe = _pipe(path, project)
        source = pipe["source"]
        changed = False
        if source.get("type") == "conditional":
            alternatives = source.setdefault("alternatives", {})
            if "test" not in alternatives:
                alternatives["test"] = _empty_test()
                added += 1
                changed = True
        elif source.get("type") not in NOT_INPUT:
            pipe["source"] = {"type": "conditional", "alternatives": {"prod": source, "test": _empty_test()},
                              "condition": "$ENV(node-env)"}
            added += 1
            changed = True
        else:
            continue
        test = pipe["source"]["alternatives"]["test"]
        if args.add_test_entities and isinstance(test, dict):
            if not test.get("entities") or args.force_add:
                count = _fill(context, pipe, test)
                if count:
                    entities_added += count
                    filled += 1
                    changed = True
            else:
                log.info("Pipe %s already has test entities. Re-run with '-force-add' if you want to overwrite "
                         "these entities.", pipe.get("_id"))
        if changed:
            _write(path, pipe)
    if added:
        log.info("Successfully added test sources to %d pipes.", added)
    else:
        log.info("All input pipes already have conditional sources with test alternatives. "
                 "No test sources were added.")
    if filled:
        log.info("Successfully added a total of %d test entities to %d pipes.", entities_added, filled)
    elif not added:
        log.info("No pipe configurations were modified.")


def _fill(context: Context, pipe: dict[str, Any], test: dict[str, Any]) -> int:
    """Up to ten of the pipe's live entities as its test entities; how many."""
    pipe_id = str(pipe.get("_id"))
    log.info("Adding test entities to pipe '%s'", pipe_id)
    node = context.node
    live = node.pipe(pipe_id)
    if live is None:
        log.warning("Configuration for '%s' was not found on the node. Continuing without adding any test "
                    "entities.", pipe_id)
        return 0
    sink = ((live.get("config") or {}).get("effective") or {}).get("sink") or {}
    dataset_id = sink.get("dataset", pipe_id) if isinstance(sink, dict) else pipe_id
    try:
        found = [] if node.dataset(dataset_id) is None else node.dataset_entities(
            dataset_id, history=False, deleted=False, limit=TEST_ENTITIES)
    except ClientError as exc:
        log.warning("Unable to get entities from '%s': %s", pipe_id, exc.message)
        found = []
    if not found:
        log.info("No input entities were found for '%s', so test entities will not be updated.", pipe_id)
        return 0
    test["entities"] = found
    return len(found)


def convert(context: Context) -> None:
    """Move each input pipe's embedded test entities (the profile's alternative) to ``testdata/``."""
    log.info("Starting converting conditional embedded sources")
    project, profile = context.project, context.args.profile
    if context.args.dump:
        log.info("Dumping config for backup")
        config.dump(context)
    for path in project.top_level("pipes"):
        pipe = _pipe(path, project)
        source = pipe["source"]
        alternatives = source.get("alternatives")
        if source.get("type") != "conditional" or not isinstance(alternatives, dict):
            continue
        chosen = alternatives.get(profile)
        if not isinstance(chosen, dict) or chosen.get("type") != "embedded":
            continue
        alternatives[profile] = {"type": "http_endpoint"}
        _write(path, pipe)
        project.testdata.mkdir(exist_ok=True)
        _write(project.testdata / f"{pipe.get('_id')}.json", chosen.get("entities", []))
        log.debug("Converted %s", path.relative_to(project.root).as_posix())
    log.info("Successfully converted pipes and created testdata folder")


FORMAT_FOLDERS = {"pipes": "pipes", "systems": "systems", "testdata": "testdata", "expected": "expected"}


def format_files(context: Context) -> None:
    """Rewrite config, testdata and env files in portal format and expected output in its own format:
    ``all`` (default), ``pipes``, ``systems``, ``testdata``, ``expected`` or one ``<file>.json``."""
    what = context.words[0] if context.words else "all"
    root = context.cwd
    if what.endswith(".json"):
        path = root / what
        parts = Path(what).parts
        folder = next((p for p in parts if p in FORMAT_FOLDERS), "")
        if not folder:
            log.warning("[!] Unknown directory for file, formatting as normal. If this file is expected data, "
                        "please make sure it has the directory in the path.")
        log.info("[*] Formatting %s.", what)
        _format(context, path, folder)
        return
    if what != "all" and what not in FORMAT_FOLDERS:
        raise ClientError(f"[!] {what} is not a valid type to format... Try pipes, systems, testdata, or expected. "
                          "Alternatively you can pass in a json file")
    for folder in FORMAT_FOLDERS if what == "all" else (what,):
        log.info("[*] Formatting %s files. Search query is %s/*.json", folder, folder)
        for path in sorted((root / folder).glob("*.json")) if (root / folder).is_dir() else ():
            if folder == "expected" and path.name.endswith(".test.json"):
                continue
            log.debug("[+] Formatting %s", path.relative_to(root).as_posix())
            _format(context, path, folder)


def _format(context: Context, path: Path, folder: str) -> None:
    name = path.relative_to(context.cwd).as_posix() if path.is_relative_to(context.cwd) else str(path)
    if folder == "expected":
        path.write_bytes(render_expected(read_json(path, name, exact=False), options(context)))
    else:
        path.write_text(_portal.dumps(read_json(path, name)), encoding="utf-8")


def run_pytest(context: Context) -> None:
    """Run ``<folder>/test_*.py`` with pytest (the folder from the command's word or ``-run-pytest``)."""
    folder = context.words[0] if context.words else context.args.pytest_tests_folder
    if not folder:
        raise ClientError("The name of the folder containing tests must be specified when using the "
                          "'run-pytest' command.")
    tests = sorted((context.cwd / folder).glob("test_*.py"))
    if not tests:
        log.warning("No test_*.py files were found in '%s', so no tests have been run.", folder)
        return
    argv = [folder, *shlex.split(context.args.pytest_args)]
    log.info("Found %d test files in folder '%s', running pytest with these options: %s", len(tests), folder, argv)
    result = subprocess.run([sys.executable, "-m", "pytest", *argv], cwd=context.cwd, check=False)
    if result.returncode != 0:
        raise ClientError("One or more Python tests failed, see above output.")
    log.info("Ran unit tests successfully.")
