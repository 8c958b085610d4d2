"""``sesam import FILE-OR-DIR...``: replace the node's config with the entities in local config files.

Directories are searched recursively for ``*.conf.json`` files (and the old name ``nodeconfig.json``). Each
file holds one config entity or a list of them; every entity needs an ``_id``, unique over all the files.
The files go to ``PUT /config`` in a multipart field ``file``: a single file holding a list as it is (so
the node keeps its exact text), anything else as a zip of the files. The node's validation errors are
listed per entity, with the file it came from.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from ._connection import Connection
from ._errors import ApiError, ProjectError
from ._legacy_node import add_node_command

__all__ = ["add_commands", "config_files", "read_entities"]

OLD_NAME = "nodeconfig.json"


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_node_command(commands, "import", "Replace the node's config with the config entities in the given "
                                             "files and directories (their *.conf.json files)", _import)
    p.add_argument("paths", nargs="+", metavar="config-file-or-folder",
                   help="a config file, or a directory searched for *.conf.json files")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="only list the files that would be imported; upload nothing")
    p.add_argument("--force", action="store_true",
                   help="make the node apply what it can despite config errors (rarely a good idea)")
    p.add_argument("--verbose", action="store_true", help="show each validation error in full")


def config_files(paths: list[str]) -> list[str]:
    """The files to import, sorted: plain files as given, directories searched for config files."""
    found: dict[str, None] = {}
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for child in path.rglob("*"):
                if child.is_file() and (child.name.endswith(".conf.json") or child.name == OLD_NAME):
                    found[str(child)] = None
        elif path.is_file():
            found[str(Path(name))] = None
        else:
            raise ProjectError(f"the path '{name}' does not exist")
    return sorted(found)


def read_entities(files: list[str]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Each file's text and entities, keyed by file name; checks that every entity has a unique ``_id``."""
    origin: dict[str, str] = {}
    contents: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for name in files:
        text, entities = _read(name)
        in_file: set[str] = set()
        for entity in entities:
            if not isinstance(entity, dict) or not isinstance(entity.get("_id"), str) or not entity["_id"]:
                raise ProjectError(f"the file '{name}' holds a config entity without an '_id': "
                                   f"{json.dumps(entity)[:200]}")
            entity_id = entity["_id"]
            if entity_id in in_file:
                raise ProjectError(f"the file '{name}' holds two config entities with the id '{entity_id}': "
                                   "ids must be unique")
            in_file.add(entity_id)
            first = origin.setdefault(entity_id, name)
            if first != name:
                raise ProjectError(f"the config entity id '{entity_id}' is in both '{first}' and '{name}': "
                                   "ids must be unique")
        contents[name] = (text, entities)
    return contents


def _read(name: str) -> tuple[str, list[Any]]:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"the file '{name}' cannot be read: {exc}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"the file '{name}' is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        return text, [value]
    if isinstance(value, list):
        return text, value
    raise ProjectError(f"the file '{name}' must hold a config entity (a JSON object) or a list of them")


def _import(node: Connection, args: argparse.Namespace) -> int:
    contents = read_entities(config_files(args.paths))
    print(f"Read {sum(len(entities) for _, entities in contents.values())} config entities from these "
          "config-files:")
    for name in contents:
        print(f"  {name}")
    if args.dry_run:
        print("\nThis was a dry run (--dry-run): the node's config is unchanged.")
        return 0
    response = node.request("PUT", "config", ok=(400,), params={"force": "true" if args.force else "false"},
                            files={"file": _upload(contents)})
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = body.get("validation_errors") if isinstance(body, dict) else None
    if response.status_code == 400:
        if not errors:
            detail = body.get("detail") if isinstance(body, dict) else response.text[:300]
            raise ApiError(f"PUT /config: 400 Bad Request: {detail}", status=400, body=body)
        print("Failed to apply the configuration. These errors were detected:")
        _print_errors(errors, contents, verbose=args.verbose)
        return 1
    if errors and any(error.get("config-errors") for error in errors if isinstance(error, dict)):
        print("The configuration was applied, but these errors/warnings were detected:")
        _print_errors(errors, contents, verbose=args.verbose)
    return 0


def _upload(contents: dict[str, tuple[str, list[dict[str, Any]]]]) -> tuple[str, bytes, str]:
    """The multipart file: one file holding a list as it is, otherwise a zip of all the files."""
    if len(contents) == 1:
        name, (text, _) = next(iter(contents.items()))
        if isinstance(json.loads(text), list):
            return Path(name).name, text.encode(), "application/json"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for position, (name, (text, _)) in enumerate(contents.items()):
            member = Path(name).name if Path(name).name.endswith(".json") else f"{Path(name).name}.json"
            archive.writestr(f"{position:04d}-{member}", text)
    return "sesam-config.zip", buffer.getvalue(), "application/zip"


def _print_errors(errors: list[Any], contents: dict[str, tuple[str, list[dict[str, Any]]]], *,
                  verbose: bool) -> None:
    origin = {entity["_id"]: name for name, (_, entities) in contents.items() for entity in entities}
    for error in errors:
        if not isinstance(error, dict) or not error.get("config-errors"):
            continue
        posted = error.get("posted-config")
        entity_id = posted.get("_id") if isinstance(posted, dict) else None
        if entity_id is None:
            print("    Issues with the config:")
        elif entity_id in origin:
            print(f"    Issues with the config entity '{entity_id}' from the file '{origin[entity_id]}':")
        else:
            print(f"    Issues with the config entity '{entity_id}':")
        for item in error["config-errors"]:
            if isinstance(item, dict):
                print(f"        {item.get('level', 'error')}: {item.get('msg', '')} "
                      f"(path: {item.get('elements', '$')})")
        if verbose:
            print("      The node's full answer for this entity:")
            print("\n".join(f"        {line}" for line in json.dumps(error, indent=2).splitlines()))
