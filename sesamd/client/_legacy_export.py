"""``sesam export [DIR]``: write the node's config to local files.

By default ``GET /config`` goes, as the node sends it, to one file ``sesam.conf.json`` (``--export-filename``
names another; ``-`` prints it). With ``--expand`` the node's config zip is unpacked instead, one file an
entity, and every other ``*.conf.json`` file under the directory is deleted. The added, modified and deleted
files are listed, and nothing is written before the user agrees (``--force``: agree; ``--dry-run``: only list).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from pathlib import Path

from ._connection import Connection
from ._errors import ClientError, ProjectError, UsageError
from ._legacy_node import add_node_command

__all__ = ["Changes", "add_commands", "changes"]

DEFAULT_FILENAME = "sesam.conf.json"
Changes = dict[str, list[Path]]  # "deleted", "added", "modified" -> files


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_node_command(commands, "export", "Write the node's config to sesam.conf.json in the directory (or "
                                             "to one file per entity with --expand)", _export)
    p.add_argument("exportdir", nargs="?", default="", help="the directory to write to (default: the current one)")
    p.add_argument("--export-filename", dest="export_filename", default=None,
                   help=f"the file to write (default: {DEFAULT_FILENAME}; '-': print the config)")
    p.add_argument("--expand", action="store_true", help="write one file per config entity, from the node's zip")
    p.add_argument("--force", action="store_true", help="write without asking")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="only list what would change")


def _export(node: Connection, args: argparse.Namespace) -> int:
    if args.expand and args.export_filename:
        raise UsageError("sesam export: --expand and --export-filename cannot be used together")
    filename = args.export_filename or DEFAULT_FILENAME
    if filename == "-":
        sys.stdout.write(node.request("GET", "config").text)
        return 0
    if not filename.endswith(".conf.json") or os.path.basename(filename) != filename:
        raise UsageError(f"sesam export: --export-filename must be a file name ending in .conf.json, not "
                         f"{filename!r}")
    folder = Path(args.exportdir or ".")
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"'{folder}' is not a directory")
    if args.expand:
        wanted = _unzip(node.request("GET", "config", headers={"Accept": "application/zip"}).content, folder)
    else:
        wanted = {folder / filename: node.request("GET", "config").content}
    todo = changes(folder, wanted, expand=args.expand)
    if not any(todo.values()):
        print("The existing config-files are up-to-date.")
        return 0
    if args.dry_run:
        print("This is a dry run (--dry-run): no file is touched. Without it these changes would be made:")
        _list(todo, "would have been")
        return 0
    if not args.force:
        _list(todo, "will be")
        if not _agreed():
            print("Nothing was changed.")
            return 0
    _write(todo, wanted)
    _list(todo, "were")
    return 0


def _unzip(data: bytes, folder: Path) -> dict[Path, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {}
            for info in archive.infolist():
                name = os.path.normpath(info.filename)
                if info.is_dir():
                    continue
                if os.path.isabs(name) or name.startswith(".."):
                    raise ClientError(f"GET /config: the config zip holds a file outside the directory: "
                                     f"{info.filename!r}")
                files[folder / name] = archive.read(info)
            return files
    except zipfile.BadZipFile as exc:
        raise ClientError(f"GET /config: the node's config zip cannot be read: {exc}") from None


def changes(folder: Path, wanted: dict[Path, bytes], *, expand: bool) -> Changes:
    """What writing ``wanted`` changes; with ``expand`` the other ``*.conf.json`` files are deleted."""
    todo: Changes = {"deleted": [], "added": [], "modified": []}
    if expand and folder.is_dir():
        todo["deleted"] = sorted(p for p in folder.rglob("*.conf.json") if p.is_file() and p not in wanted)
    for path, data in wanted.items():
        if not path.exists():
            todo["added"].append(path)
        elif not path.is_file() or path.read_bytes() != data:
            todo["modified"].append(path)
    return todo


def _list(todo: Changes, verb: str) -> None:
    for kind, paths in todo.items():
        if paths:
            print(f"The following files {verb} {kind}:")
            for path in paths:
                print(f"  {os.path.normpath(path)}")


def _agreed() -> bool:
    try:
        answer = input("Go ahead? (yes/no) ")
    except EOFError:
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def _write(todo: Changes, wanted: dict[Path, bytes]) -> None:
    try:
        for path in todo["deleted"]:
            path.unlink()
        for path in todo["added"] + todo["modified"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(wanted[path])
    except OSError as exc:
        raise ProjectError(f"cannot write the config files: {exc}") from None
