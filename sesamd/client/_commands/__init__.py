"""The sesam-py commands (client-spec 6), one function each taking a :class:`Context`; :data:`COMMANDS` maps
each command word to its function and whether it needs the node."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import config, local, node, run, verify
from ._context import Context

__all__ = ["COMMANDS", "CONNECTOR_COMMANDS", "Command", "Context"]


@dataclass(frozen=True)
class Command:
    """A command: ``online`` ones first check the node (reachable, authorised, developer mode), which
    ``-force`` overrides for the ``forceable`` ones."""

    run: Callable[[Context], object]
    online: Callable[[Context], bool]
    forceable: bool = False


def _always(context: Context) -> bool:
    return True


def _never(context: Context) -> bool:
    return False


COMMANDS: dict[str, Command] = {
    "upload": Command(config.upload, _always, forceable=True),
    "download": Command(config.download, _always, forceable=True),
    "status": Command(config.status, _always),
    "dump": Command(config.dump, _never),
    "run": Command(run.run, _always),
    "stop": Command(run.stop, _always),
    "test": Command(run.test, _always),
    "verify": Command(verify.verify, _always),
    "update": Command(verify.update, _always),
    "wipe": Command(node.wipe, _always),
    "restart": Command(node.restart, _always),
    "reset": Command(node.reset, _always),
    "init": Command(local.init, lambda context: bool(context.args.add_test_entities)),
    "convert": Command(local.convert, _never),
    "format": Command(local.format_files, _never),
    "run-pytest": Command(local.run_pytest, _never),
}

CONNECTOR_COMMANDS = frozenset({"authenticate", "validate", "expand", "connector-init", "connector_init",
                                "add-datatype", "update-schemas"})
