"""``sesamd dataset ...``: import, export, list and check datasets (backup, restore and seeding)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import storage

from ._entities_upload import EntityUploadError, validated_entities

__all__ = ["CLIError", "add_commands", "export_dataset", "import_file"]

IMPORT_OFFSET_KEY = "import"
BATCH_SIZE = 1000


class CLIError(Exception):
    """A problem with the user's input, reported with exit code 2."""


def add_commands(commands: Any) -> None:
    dataset = commands.add_parser("dataset", help="import, export, list and check datasets")
    sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="COMMAND")

    def data_dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default="data", help="the node's data directory (default: ./data)")

    p = sub.add_parser("import", help="import a JSON array or NDJSON file of entities into a dataset")
    p.add_argument("name", help="dataset id")
    p.add_argument("file", help="JSON array or NDJSON file of entities ('-' for standard input)")
    p.add_argument("--full", action="store_true",
                   help="a full import: ids in the dataset but not in the file get deleted versions")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_import)

    p = sub.add_parser("export", help="write a dataset as a transit-encoded JSON array to standard output")
    p.add_argument("name", help="dataset id")
    p.add_argument("--since", type=int, default=None, help="only versions after this offset")
    p.add_argument("--limit", type=int, default=None, help="at most this many entities")
    p.add_argument("--history", action="store_true", help="include older versions")
    p.add_argument("--deleted", action="store_true", help="include deleted entities")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("list", help="list datasets with their counts")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser("check", help="check a dataset's stored invariants")
    p.add_argument("name", help="dataset id")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_check)


def _data_dir(args: argparse.Namespace, options: storage.LevelDBOptions | None = None) -> storage.DataDir:
    return storage.DataDir(args.data_dir, options=options)


def _open_existing(args: argparse.Namespace) -> storage.Dataset:
    data_dir = _data_dir(args)
    try:
        storage.validate_dataset_id(args.name)
        return data_dir.open_dataset(args.name, create=False)
    except (KeyError, ValueError) as exc:
        raise CLIError(str(exc).strip('"')) from None


# -- import ------------------------------------------------------------------------------------------


def _validated(stream: IO[bytes], source: str) -> Iterator[tuple[dict[str, Any], int]]:
    """Entities of a file with their line numbers; raises CLIError naming the first bad one."""
    try:
        yield from validated_entities(stream)
    except EntityUploadError as exc:
        raise CLIError(f"{source}: {exc}") from None


def import_file(dataset: storage.Dataset, path: str, *, full: bool = False) -> dict[str, int]:
    """Validate the whole file first, then write it in batches, each with the import position.

    A bad file leaves the dataset exactly as it was. Re-importing unchanged entities adds no versions.
    """
    source = "<stdin>" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
        import io

        def open_stream() -> IO[bytes]:
            return io.BytesIO(data)
    else:
        if not os.path.isfile(path):
            raise CLIError(f"{path}: no such file")

        def open_stream() -> IO[bytes]:
            return open(path, "rb")

    with open_stream() as stream:
        total = sum(1 for _ in _validated(stream, source))
    run = dataset.begin_full_run() if full else None
    written = seen = 0
    batch: list[dict[str, Any]] = []
    with open_stream() as stream:
        for entity, _line in storage.iter_json_entities(stream):
            batch.append(entity)
            if len(batch) >= BATCH_SIZE:
                seen += len(batch)
                written += dataset.write(batch, offset_key=IMPORT_OFFSET_KEY,
                                         offset=_offset(source, seen, total), full_run=run).appended
                batch = []
        seen += len(batch)
        if batch or total == 0:
            written += dataset.write(batch, offset_key=IMPORT_OFFSET_KEY,
                                     offset=_offset(source, seen, total), full_run=run).appended
    deleted = dataset.end_full_run(run) if run is not None else 0
    return {"entities": total, "written": written, "deleted": deleted}


def _offset(source: str, position: int, total: int) -> dict[str, Any]:
    return {"source": source, "position": position, "complete": position == total}


def _cmd_import(args: argparse.Namespace) -> int:
    try:
        storage.validate_dataset_id(args.name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.name.startswith("system:"):
        raise CLIError(f"dataset {args.name!r}: ids starting with 'system:' are internal")
    # a bulk load into one dataset: the big write buffer (the node profile would make it several times slower)
    with _data_dir(args, storage.LevelDBOptions.BULK).open_dataset(args.name) as dataset:
        result = import_file(dataset, args.file, full=args.full)
    print(f"{args.name}: {result['entities']} entities read, {result['written']} versions written, "
          f"{result['deleted']} deleted", file=sys.stderr)
    return 0


# -- export ------------------------------------------------------------------------------------------


def export_dataset(
    dataset: storage.Dataset,
    out: IO[bytes],
    *,
    since: int | None = None,
    limit: int | None = None,
    history: bool = False,
    deleted: bool = False,
) -> int:
    """Stream stored versions as a JSON array, in log order; returns how many were written."""
    count = 0
    out.write(b"[")
    chunk: list[bytes] = []
    for _seq, stored in dataset.iter_stored(since, limit=limit, history=history, deleted=deleted):
        chunk.append(stored)
        if len(chunk) >= BATCH_SIZE:
            out.write((b",\n" if count else b"\n") + b",\n".join(chunk))
            count += len(chunk)
            chunk = []
    if chunk:
        out.write((b",\n" if count else b"\n") + b",\n".join(chunk))
        count += len(chunk)
    out.write(b"\n]\n" if count else b"]\n")
    return count


def _cmd_export(args: argparse.Namespace) -> int:
    for option in ("since", "limit"):
        value = getattr(args, option)
        if value is not None and value < 0:
            raise CLIError(f"--{option} must not be negative")
    with _open_existing(args) as dataset:
        export_dataset(dataset, sys.stdout.buffer, since=args.since, limit=args.limit,
                       history=args.history, deleted=args.deleted)
        sys.stdout.buffer.flush()
    return 0


# -- list and check ----------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    rows = []
    for name in data_dir.dataset_names():
        with data_dir.open_dataset(name, create=False) as dataset:
            counts = dataset.counts()
        rows.append((name, counts))
    width = max([len("DATASET")] + [len(name) for name, _ in rows])
    print(f"{'DATASET':<{width}}  {'ENTITIES':>10}  {'DELETED':>10}  {'VERSIONS':>10}")
    for name, counts in rows:
        print(f"{name:<{width}}  {counts['entities']:>10}  {counts['deleted']:>10}  {counts['log']:>10}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    with _open_existing(args) as dataset:
        problems = storage.check_dataset(dataset)
    for problem in problems:
        print(f"{args.name}: {problem}")
    if problems:
        return 1
    print(f"{args.name}: ok", file=sys.stderr)
    return 0


def _path(value: str) -> Path:
    return Path(value)
