"""``upload``, ``download``, ``status`` and ``dump`` (client-spec 6.1-6.3, 6.13): the project's config and env
profile against the node's."""

from __future__ import annotations

import difflib
import pprint
from pathlib import Path

from .. import _portal
from .._classify import is_user_pipe
from .._connection import Connection
from .._errors import ClientError, ConfigRejected
from .._output import log, spinner
from .._project import read_json, write_zip
from . import _testdata
from ._context import Context, wait_until

__all__ = ["download", "dump", "status", "upload", "validation_report", "wait_for_deployment"]

DUMP_FILE = "sesam-config.zip"
DEPLOY_TIMEOUT = 30 * 60
DEPLOY_POLL = 5.0


def upload(context: Context) -> None:
    """Env vars, then the config (metadata rewritten for testing), then testdata."""
    project = context.project
    variables = project.read_env()
    config = project.config_zip(context.metadata_options())  # a malformed file fails before the node changes
    if context.args.dump:
        _dump(project.root / DUMP_FILE, project.config_zip())
    node = context.node
    if context.args.upload_delete_sink_datasets:
        log.info("Deleting all sink datasets...")
        node.delete_all_sink_datasets()
        log.info("Finished deleting all sink datasets")
    try:
        node.put_env(variables)
    except ClientError as exc:
        raise ClientError(f"Failed to replace environment variables in Sesam: {exc}") from None
    try:
        answer = node.put_config(config, force=context.args.force)
    except ConfigRejected as exc:
        log.error("%s", validation_report(exc.validation_errors, context.verbosity))
        raise ClientError(f"Failed to upload config to sesam: {exc.message}") from None
    _warn_errors(answer.get("validation_errors"))
    wait_for_deployment(node)
    log.info("Config uploaded successfully")
    _testdata.upload_all(context)


def _warn_errors(errors: object) -> None:
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                entity = item.get("posted-config") or {}
                for error in item.get("config-errors") or []:
                    if isinstance(error, dict) and error.get("level") == "error":
                        log.warning("%s: %s (%s)", entity.get("_id") if isinstance(entity, dict) else "?",
                                    error.get("msg"), error.get("elements"))


def validation_report(errors: list[dict[str, object]], verbosity: int) -> str:
    """The node's validation errors between sesam-py's banner lines: the ``error`` items per entity (with
    ``-vv`` every item, with ``-vvv`` the whole answer per entity)."""
    lines = ["******************Validation Errors*****************"]
    for item in errors:
        posted = item.get("posted-config")
        entity_id = posted.get("_id") if isinstance(posted, dict) else None
        found = [e for e in item.get("config-errors") or [] if isinstance(e, dict)]  # type: ignore[attr-defined]
        if verbosity >= 3:
            lines += [f"{entity_id}:", pprint.pformat(item), "-" * 50]
        elif verbosity == 2 and found:
            lines += [f"{entity_id}:", pprint.pformat(found), "-" * 50]
        else:
            for error in found:
                if error.get("level") == "error":
                    lines.append(f"{entity_id}: {error.get('msg')} (at {error.get('elements')})")
    lines.append("**************End of Validation Errors**************")
    return "\n".join(lines)


def wait_for_deployment(node: Connection) -> None:
    """Wait (up to 30 minutes) until no user pipe is ``Deploying``."""
    def deploying() -> list[str]:
        return [p.get("_id", "?") for p in node.pipes() if is_user_pipe(p)
                and (p.get("runtime") or {}).get("state") == "Deploying"]

    pending = deploying()
    log.info("Deploying %d pipes...", len(pending))
    if pending:
        with spinner("Waiting for the pipes to deploy"):
            wait_until(lambda: not deploying(), timeout=DEPLOY_TIMEOUT, interval=DEPLOY_POLL,
                       what="Waiting for pipes to deploy")


def download(context: Context) -> None:
    """The node's env vars and config replace the local ones (top-level config files first deleted)."""
    node = context.node
    project = context.project
    project.write_env(node.env())
    files = project.node_files(node.config_zip())
    if context.args.dump:
        _dump(project.root / DUMP_FILE, files)
    written = project.replace_config(files)
    log.debug("Wrote %d config files", len(written))
    log.info("Replaced local config successfully")


def status(context: Context) -> None:
    """Report each difference between the local and the node's env and config files (exit 0 either way)."""
    log.error("Comparing local and node config...")
    project = context.project
    local = project.local_files()
    node = context.node
    remote = project.node_files(node.config_zip())
    if context.args.dump:
        _dump(project.root / DUMP_FILE, remote)
    differs = False
    if project.env_path.is_file():
        mine = _portal.dumps(read_json(project.env_path, project.env_name)).encode()
        differs |= _compare(mine, _portal.dumps(node.env()).encode(), project.env_name, context.args.diff)
    else:
        log.error("Cannot locate profile file '%s'", project.env_name)
    for name in sorted(remote):
        if name not in local:
            log.info("Sesam file '%s' was not found locally", name)
            differs = True
    for name in sorted(local):
        if name not in remote:
            log.info("Local file '%s' was not found in Sesam", name)
            differs = True
        else:
            differs |= _compare(local[name], remote[name], name, context.args.diff)
    if differs:
        log.info("Sesam config is NOT in sync with local config!")
    else:
        log.info("Sesam config is up-to-date with local config!")


def _compare(local: bytes, remote: bytes, name: str, show_diff: bool) -> bool:
    if local == remote:
        return False
    log.info("File '%s' differs from Sesam!", name)
    if show_diff:
        diff = difflib.unified_diff(local.decode(errors="replace").splitlines(keepends=True),
                                    remote.decode(errors="replace").splitlines(keepends=True), name, name)
        log.info("Diff:\n%s", "".join(diff))
    return True


def dump(context: Context) -> None:
    """Write the local config as ``sesam-config.zip`` (no node call)."""
    project = context.project
    path = project.root / DUMP_FILE
    path.write_bytes(project.config_zip())
    log.info("Dumped local config to '%s'", DUMP_FILE)


def _dump(path: Path, config: bytes | dict[str, bytes]) -> None:
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        write_zip(config, path)
    log.info("Dumped config to '%s'", path.name)
