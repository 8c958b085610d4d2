"""Backup and restore of a data directory: ``sesamd backup DEST`` and ``sesamd restore SRC --data-dir DIR``.

A backup is a directory laid out as a data directory (``node``, ``datasets/<id>``, ``auth``) plus a manifest,
``sesamd-backup.json`` (node id, time, sesamd version, each dataset's counts and stored offsets), written
last: a directory without it is no backup. Each LevelDB database is copied from a snapshot into a fresh
database (iterated, written in batches), so the copy is compact and needs no lock on the source.

Consistency: a pipe's offsets live in its sink dataset's meta and commit in one batch with its data, so each
dataset's snapshot holds its data and offsets together. The node store and the datasets are separate
databases: a running node takes all their snapshots at one instant while its writers are held off
(:meth:`actors.Datasets.paused`, a few milliseconds), then copies them with writers running again.

Online (the node runs and holds the LevelDB locks): the node writes the backup itself, on its own machine,
``POST /api/admin/backup`` with ``{"destination": "/abs/path"}`` (admin). A path on the node's machine
was chosen over streaming a tar to the client: it is the simplest, copies at disk speed without holding a
request body in memory, and a remote node is backed up with its own disk (then moved with any tool).
Offline (``--data-dir`` with no node running): straight from the files, refused while a node holds them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plyvel

import storage

from . import __version__
from ._command_errors import CommandError

__all__ = ["MANIFEST", "BackupError", "add_commands", "backup_data_dir", "backup_node", "restore"]

MANIFEST = "sesamd-backup.json"
FORMAT = 1
COPY_BATCH = 10_000  # keys per write batch of a copy
DEFAULT_NODE = "http://127.0.0.1:9042"


class BackupError(CommandError):
    """A backup or restore that cannot be done (bad destination, locked data dir, bad manifest)."""


@dataclass
class _View:
    """One database at the backup's instant: a snapshot and what the manifest says of it."""

    directory: str  # relative to the data directory
    snapshot: Any
    info: dict[str, Any]


# -- taking a backup ----------------------------------------------------------------------------------------


def backup_node(node: Any, destination: str | Path) -> dict[str, Any]:
    """Back up a running node's data directory to ``destination`` (synchronous: call it in a worker thread).

    Writers are held off only while the snapshots are taken; returns the manifest."""
    dest = _fresh_destination(destination, node.data_dir.root)
    with ExitStack() as stack:
        with node.datasets.paused() as open_datasets:  # one instant for every database
            views = [_dataset_view(node.data_dir, name, dataset) for name, dataset in sorted(open_datasets.items())]
            for view in views:
                stack.callback(view.snapshot.close)
            node_view = node.store.snapshot()
            stack.callback(node_view.close)
        damaged = node.datasets.damaged()
        return _write_backup(dest, node.data_dir.root, node.node_id, node_view, views, damaged)


def backup_data_dir(data_dir: str | Path, destination: str | Path) -> dict[str, Any]:
    """Back up a data directory no node is running on; raises BackupError if one is (the LevelDB lock)."""
    root = Path(data_dir)
    if not (root / "node" / "CURRENT").exists() and not (root / "datasets").is_dir():
        raise BackupError(f"{root}: not a sesamd data directory")
    dest = _fresh_destination(destination, root)
    directory = storage.DataDir(root)
    with ExitStack() as stack, _unlocked(root):
        store = stack.enter_context(directory.open_node_store())
        node_id = store.get("meta", "node-id")
        node_view = store.snapshot()
        stack.callback(node_view.close)
        views = []
        for name in directory.dataset_names():
            dataset = stack.enter_context(directory.open_dataset(name, create=False))
            views.append(_dataset_view(directory, name, dataset))
            stack.callback(views[-1].snapshot.close)
        return _write_backup(dest, root, node_id, node_view, views, {})


@contextmanager
def _unlocked(root: Path) -> Iterator[None]:
    try:
        yield
    except plyvel.IOError as exc:
        if "lock" in str(exc).lower():
            raise BackupError(f"{root}: the data directory is in use by a running node; back it up through "
                              f"the node: sesamd backup DEST --node URL --token TOKEN") from None
        raise BackupError(f"{root}: cannot open the data directory: {exc}") from None


def _dataset_view(directory: storage.DataDir, name: str, dataset: storage.Dataset) -> _View:
    relative = dataset.path.relative_to(directory.root).as_posix()
    info = {"name": name, "directory": relative, "counts": dataset.counts(),
            "offsets": dataset.offsets(), "generation": dataset.generation}
    return _View(relative, dataset.snapshot(), info)


def _fresh_destination(destination: str | Path, root: Path) -> Path:
    dest = Path(destination)
    if not dest.is_absolute():
        raise BackupError(f"{dest}: the backup destination must be an absolute path")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest}: the backup destination exists and is not an empty directory")
    resolved = dest.resolve()
    if resolved == root.resolve() or root.resolve() in resolved.parents:
        raise BackupError(f"{dest}: the backup destination must be outside the data directory {root}")
    if not resolved.parent.is_dir():
        raise BackupError(f"{dest}: the directory {resolved.parent} does not exist")
    return dest


def _write_backup(dest: Path, root: Path, node_id: Any, node_view: Any, views: list[_View],
                  damaged: dict[str, str]) -> dict[str, Any]:
    dest.mkdir(exist_ok=True)
    try:
        _copy_view(node_view, dest / "node")
        for view in views:
            _copy_view(view.snapshot, dest / view.directory)
        if (root / "auth").is_dir():
            shutil.copytree(root / "auth", dest / "auth")  # the signing key and users: tokens stay valid
        manifest = {"format": FORMAT, "node_id": node_id, "time": datetime.now(UTC).isoformat(),
                    "sesamd_version": __version__, "datasets": [view.info for view in views],
                    "damaged": damaged}
        _write_json(dest / MANIFEST, manifest)  # last: only a complete backup has a manifest
    except OSError as exc:
        raise BackupError(f"{dest}: the backup could not be written: {exc}") from None
    return manifest


def _copy_view(view: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = plyvel.DB(str(path), create_if_missing=True, error_if_exists=True,
                       **storage.LevelDBOptions.BULK.plyvel_kwargs())
    try:
        batch = target.write_batch()
        for count, (key, value) in enumerate(view.iterator(), 1):
            batch.put(key, value)
            if count % COPY_BATCH == 0:
                batch.write()
                batch = target.write_batch()
        batch.write()
    finally:
        target.close()


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        out.write(storage.dumps(value) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


# -- restoring ----------------------------------------------------------------------------------------------


def read_manifest(source: str | Path) -> dict[str, Any]:
    """The manifest of a backup; BackupError if it is missing, unreadable or names missing databases."""
    src = Path(source)
    try:
        manifest = json.loads((src / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{src}: not a complete sesamd backup (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src / MANIFEST}: unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("datasets"), list):
        raise BackupError(f"{src / MANIFEST}: not a sesamd backup manifest of format {FORMAT}")
    for entry in manifest["datasets"]:
        if not (src / str(entry.get("directory")) / "CURRENT").exists():
            raise BackupError(f"{src}: dataset {entry.get('name')!r} is in the manifest but not in the backup")
    if not (src / "node" / "CURRENT").exists():
        raise BackupError(f"{src}: the node store is missing from the backup")
    return manifest


def restore(source: str | Path, data_dir: str | Path) -> dict[str, Any]:
    """Restore a backup into an empty (or missing) data directory; returns the manifest.

    The files are copied, then each restored dataset is opened and its counts compared with the manifest."""
    src, target = Path(source), Path(data_dir)
    manifest = read_manifest(src)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target}: the data directory to restore into exists and is not empty")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for item in src.iterdir():
            if item.name != MANIFEST:
                copy = shutil.copytree if item.is_dir() else shutil.copy2
                copy(item, target / item.name)
    except OSError as exc:
        raise BackupError(f"{target}: the restore could not be written: {exc}") from None
    directory = storage.DataDir(target)
    for entry in manifest["datasets"]:
        with directory.open_dataset(entry["name"], create=False) as dataset:
            counts = dataset.counts()
            if {key: counts.get(key) for key in entry["counts"]} != entry["counts"]:  # (older manifests: fewer)
                raise BackupError(f"{target}: restored dataset {entry['name']!r} has counts {dataset.counts()}, "
                                  f"the backup's manifest says {entry['counts']}")
    return manifest


# -- the command line ---------------------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    p = commands.add_parser("backup", help="back up the node store and every dataset (online or offline)")
    p.add_argument("destination", help="an empty or new directory (on the node's machine for an online backup)")
    p.add_argument("--node", default=None, help=f"the running node's URL (default: {DEFAULT_NODE})")
    p.add_argument("--token", default=None, help="an admin token (default: $SESAMD_TOKEN)")
    p.add_argument("--data-dir", default=None,
                   help="back up this data directory directly (no node may be running on it)")
    p.set_defaults(handler=_cmd_backup)

    p = commands.add_parser("restore", help="restore a backup into an empty data directory")
    p.add_argument("source", help="a directory written by 'sesamd backup'")
    p.add_argument("--data-dir", default="data", help="the data directory to create (default: ./data)")
    p.set_defaults(handler=_cmd_restore)


def _cmd_backup(args: argparse.Namespace) -> int:
    destination = os.path.abspath(args.destination)
    if args.data_dir is not None and args.node is None:
        manifest = backup_data_dir(args.data_dir, destination)
    else:
        manifest = _backup_over_api(args.node or DEFAULT_NODE, args.token or os.environ.get("SESAMD_TOKEN"),
                                    destination)
    print(_summary("backed up", manifest, destination), file=sys.stderr)
    return 0


def _backup_over_api(url: str, token: str | None, destination: str) -> dict[str, Any]:
    if not token:
        raise BackupError("an online backup needs an admin token: --token TOKEN or SESAMD_TOKEN "
                          "(or --data-dir DIR when no node is running)")
    import httpx  # only the online backup needs an HTTP client

    base = url.rstrip("/")
    endpoint = base.removesuffix("/api") + "/api/admin/backup"  # the node's URL, with or without /api
    try:
        response = httpx.post(endpoint, json={"destination": destination},
                              headers={"Authorization": f"Bearer {token}"}, timeout=None)
    except httpx.HTTPError as exc:
        raise BackupError(f"{endpoint}: no node answered ({exc}); with no node running, "
                          f"use --data-dir DIR") from None
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:200]}
    if response.status_code != 200:
        raise BackupError(f"{endpoint}: {response.status_code} {body.get('detail', body)}")
    return dict(body)


def _cmd_restore(args: argparse.Namespace) -> int:
    manifest = restore(args.source, args.data_dir)
    print(_summary("restored", manifest, args.data_dir), file=sys.stderr)
    return 0


def _summary(done: str, manifest: dict[str, Any], where: str) -> str:
    datasets = manifest["datasets"]
    versions = sum(entry["counts"]["log"] for entry in datasets)
    return (f"sesamd: {done} node {manifest['node_id']} ({len(datasets)} datasets, {versions} versions, "
            f"taken {manifest['time']}): {where}")
