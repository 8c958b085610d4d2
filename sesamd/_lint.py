"""``sesamd lint FILE...``: validate config files offline, with the node's own validation.

The files' entities are checked together as one upload (ids must be unique across them, pipes may name
systems of other files), by the validation ``PUT /api/config`` runs (:meth:`Node.validate_config`: the
structure, ``$ENV``/``$SECRET`` references, every component's JSON Schema, DTL compilation, named
systems) on a throwaway node in a temporary data directory. Each problem is one line with the file, the
entity and the path relative to the entity as the API gives it: ``pipes/a.conf.json: 'a' $['source']['type']:
...``. A file holds one entity (a JSON object) or an array of them; a directory is walked for
``*.conf.json`` (a Sesam project: ``node-metadata.conf.json``, ``pipes/``, ``systems/``).

Offline there are no node variables or secrets: ``--env FILE`` (a JSON object) supplies the variables,
and every ``$SECRET(...)`` reference counts as defined (its value is never known offline).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import storage

from ._command_errors import CommandError
from ._config import ConfigValidationError, parse_upload, secret_names

__all__ = ["LintError", "Problem", "add_command", "collect_files", "lint_files"]

_POSITION_PREFIX = "$["


class LintError(CommandError):
    """Bad lint arguments (a missing file, an unreadable --env)."""


@dataclass(frozen=True)
class Problem:
    """One validation error: where (file, entity id, path in the entity) and what."""

    file: str
    entity: str | None
    elements: str
    msg: str
    level: str = "error"

    def line(self) -> str:
        entity = f" '{self.entity}'" if self.entity is not None else ""
        return f"{self.file}:{entity} {self.elements}: {self.msg}"


def collect_files(paths: list[str]) -> list[Path]:
    """The config files named, directories walked for ``*.conf.json`` (sorted); LintError for a missing one."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.conf.json") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise LintError(f"{name}: no such file or directory")
    return found


def lint_files(files: list[Path], env: dict[str, Any] | None = None) -> list[Problem]:
    """Validate the files' entities together; returns the problems (empty: clean)."""
    problems: list[Problem] = []
    entities: list[Any] = []
    origin: list[tuple[str, Any]] = []  # per entity: its file and its display form
    for file in files:
        try:
            wire, display = parse_upload(file.read_bytes())
        except ConfigValidationError as exc:
            problems.extend(Problem(str(file), None, e["elements"], e["msg"]) for e in exc.errors)
            continue
        except (OSError, ValueError) as exc:
            problems.append(Problem(str(file), None, "$", f"cannot read the file: {exc}"))
            continue
        if isinstance(wire, dict):
            wire, display = [wire], [display]
        if not isinstance(wire, list):
            problems.append(Problem(str(file), None, "$", "a config file holds a JSON object (one config entity) "
                                                          "or an array of them"))
            continue
        entities.extend(wire)
        origin.extend((str(file), d) for d in display)
    if entities:
        import trio  # (the command line's other commands need no Trio)

        errors = trio.run(_validate, entities, env or {})
        problems.extend(_locate(errors, entities, origin))
    order = {str(file): i for i, file in enumerate(files)}
    problems.sort(key=lambda p: order.get(p.file, -1))  # by file, each file's in the order found
    return problems


async def _validate(entities: list[Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    from ._node import Node  # the node and its components: imported only when linting

    with tempfile.TemporaryDirectory(prefix="sesamd-lint-") as scratch:
        node = Node(scratch)
        try:
            node.store.put_many("env", env.items())
            node.store.put_many("secret", [(name, "$SECRET") for name in sorted(secret_names(entities))])
            return await node.validate_config(entities)
        finally:
            node.close()


def _locate(errors: list[dict[str, Any]], entities: list[Any], origin: list[tuple[str, Any]]) -> list[Problem]:
    from .api._views import relative_errors

    problems = []
    for error, relative in zip(errors, relative_errors(errors), strict=True):
        elements = error.get("elements", "$")
        index = _index_of(elements)
        if index is None or index >= len(entities):
            problems.append(Problem("<config>", None, elements, error["msg"], error.get("level", "error")))
            continue
        entity = entities[index]
        entity_id = entity.get("_id") if isinstance(entity, dict) else None
        problems.append(Problem(origin[index][0], entity_id if isinstance(entity_id, str) else None,
                                relative["elements"], error["msg"], error.get("level", "error")))
    return problems


def _index_of(elements: str) -> int | None:
    if not elements.startswith(_POSITION_PREFIX):
        return None
    digits = elements[2:].partition("]")[0]
    return int(digits) if digits.isdigit() else None


# -- the command line ---------------------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    p = commands.add_parser("lint", help="validate config files offline (the checks of PUT /api/config)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="config files (a JSON object or array of entities) or directories (*.conf.json)")
    p.add_argument("--env", default=None, metavar="FILE",
                   help="a JSON object of environment variables for $ENV(...) references")
    p.set_defaults(handler=_cmd_lint)


def _cmd_lint(args: argparse.Namespace) -> int:
    env: dict[str, Any] = {}
    if args.env is not None:
        try:
            env = storage.parse_json(Path(args.env).read_bytes())
        except (OSError, storage.JSONError) as exc:
            raise LintError(f"--env {args.env}: {exc}") from None
        if not isinstance(env, dict):
            raise LintError(f"--env {args.env}: must be a JSON object of variables")
    files = collect_files(args.files)
    if not files:
        raise LintError(f"no config files (*.conf.json) in {' '.join(args.files)}")
    problems = lint_files(files, env)
    for problem in problems:
        print(problem.line())
    errors = sum(1 for p in problems if p.level == "error")
    print(f"sesamd: {len(files)} files, {errors} errors", file=sys.stderr)
    return 1 if errors else 0
