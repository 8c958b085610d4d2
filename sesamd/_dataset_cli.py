"""``sesamd dataset ...``: import, export, list and check datasets (backup, restore and seeding)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

import storage

from ._command_errors import CommandError
from ._entities_upload import EntityUploadError, describe, validated_entities

__all__ = ["CLIError", "add_commands", "export_dataset", "import_file"]

IMPORT_OFFSET_KEY = "import"
BATCH_SIZE = 1000  # stored versions per chunk of an export, entities per batch of a large import


class CLIError(CommandError):
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


class _Entities:
    """The entities of a stream, parsed once, as an iterator for :meth:`storage.Dataset.write`; it remembers
    the entity it gave last, to name it (position, line, ``_id``) when the write rejects it."""

    def __init__(self, stream: IO[bytes], source: str) -> None:
        self._items = storage.iter_json_entities(stream)
        self.source = source
        self.position = 0
        self.line = 0
        self.entity: Any = None

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            self.entity, self.line = next(self._items)
        except storage.JSONError as exc:
            raise CLIError(f"{self.source}: {exc} (after {self.position} valid entities)") from None
        self.position += 1
        return self.entity

    def rejected(self, exc: storage.EntityError) -> CLIError:
        return CLIError(f"{self.source}: line {self.line}, entity #{self.position}{describe(self.entity)}: {exc}")


ONE_BATCH_LIMIT = 256 << 20  # bytes: files up to this size import as one batch, larger ones validated first


def import_file(dataset: storage.Dataset, path: str, *, full: bool = False,
                one_batch_limit: int = ONE_BATCH_LIMIT) -> dict[str, int]:
    """Import a JSON array or NDJSON file (``-``: stdin) into ``dataset``, all or nothing.

    A file of up to ``one_batch_limit`` bytes (and stdin, which is read whole anyway) is parsed and prepared
    once, streaming, into a single LevelDB WriteBatch committed after the last entity, with the import
    offset: a bad entity or bad JSON anywhere, or a kill at any moment, leaves the dataset exactly as it was.
    That batch takes about the stored size of the new and changed versions (a fresh import: about the
    file's size) plus about 200 bytes per entity. A larger file would take as much memory, so it is parsed
    twice instead, in bounded memory: validated whole first (a bad file writes nothing), then written in
    batches of :data:`BATCH_SIZE`, each with the import position (a kill leaves whole batches, and importing
    the file again completes it). A ``--full`` import then deletes the ids the file lacked. Re-importing
    unchanged entities adds no versions.
    """
    source = "<stdin>" if path == "-" else path
    if path != "-" and not os.path.isfile(path):
        raise CLIError(f"{path}: no such file")
    if path != "-" and os.path.getsize(path) > one_batch_limit:
        return _import_in_batches(dataset, path, full=full)
    run = dataset.begin_full_run() if full else None
    with nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb") as stream:
        entities = _Entities(stream, source)
        try:
            written = dataset.write(entities, offset_key=IMPORT_OFFSET_KEY,
                                    offset={"source": source, "complete": True}, full_run=run).appended
        except storage.EntityError as exc:
            raise entities.rejected(exc) from None
    deleted = dataset.end_full_run(run) if run is not None else 0
    return {"entities": entities.position, "written": written, "deleted": deleted}


def _import_in_batches(dataset: storage.Dataset, path: str, *, full: bool) -> dict[str, int]:
    """A large file: validated whole first, then written in batches with the import position."""
    with open(path, "rb") as stream:
        try:
            total = sum(1 for _ in validated_entities(stream))
        except EntityUploadError as exc:
            raise CLIError(f"{path}: {exc}") from None
    run = dataset.begin_full_run() if full else None
    written = seen = 0
    batch: list[dict[str, Any]] = []
    with open(path, "rb") as stream:
        for entity, _line in storage.iter_json_entities(stream):
            batch.append(entity)
            if len(batch) >= BATCH_SIZE:
                seen += len(batch)
                written += dataset.write(batch, offset_key=IMPORT_OFFSET_KEY, full_run=run,
                                         offset={"source": path, "position": seen, "complete": seen == total}
                                         ).appended
                batch = []
        seen += len(batch)
        if batch or total == 0:
            written += dataset.write(batch, offset_key=IMPORT_OFFSET_KEY, full_run=run,
                                     offset={"source": path, "position": seen, "complete": True}).appended
    deleted = dataset.end_full_run(run) if run is not None else 0
    return {"entities": total, "written": written, "deleted": deleted}


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
    """A damaged dataset is listed as such (exit code 1); a data directory a node holds is a StorageError."""
    data_dir = _data_dir(args)
    rows: list[tuple[str, dict[str, int] | str]] = []
    for name in data_dir.dataset_names():
        try:
            with data_dir.open_dataset(name, create=False) as dataset:
                rows.append((name, dataset.counts()))
        except storage.DatasetDamaged as exc:
            rows.append((name, exc.detail))
    width = max([len("DATASET")] + [len(name) for name, _ in rows])
    print(f"{'DATASET':<{width}}  {'ENTITIES':>10}  {'DELETED':>10}  {'VERSIONS':>10}")
    for name, counts in rows:
        if isinstance(counts, str):
            print(f"{name:<{width}}  damaged: {counts}")
        else:
            print(f"{name:<{width}}  {counts['entities']:>10}  {counts['deleted']:>10}  {counts['log']:>10}")
    return 1 if any(isinstance(counts, str) for _, counts in rows) else 0


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        with _open_existing(args) as dataset:
            problems = storage.check_dataset(dataset)
    except storage.DatasetDamaged as exc:
        problems = [f"damaged: {exc.detail}"]
    for problem in problems:
        print(f"{args.name}: {problem}")
    if problems:
        return 1
    print(f"{args.name}: ok", file=sys.stderr)
    return 0


def _path(value: str) -> Path:
    return Path(value)
