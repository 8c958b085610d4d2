"""The sesamclient CLI's pipe, system and dataset commands: thin wrappers of the node's routes that print
its answer (``get-pipes``, ``add-pipes``, ``modify-pipe``, ``delete-dataset``, ``get-dataset-entities``...)."""

from __future__ import annotations

import argparse
import sys

from ._connection import Connection, path_id
from ._errors import ApiError, UsageError
from ._legacy_node import Command, add_node_command, json_argument, show

__all__ = ["add_commands"]

KINDS = (("pipe", "pipes"), ("system", "systems"))


def add_commands(commands: argparse._SubParsersAction) -> None:
    for kind, route in KINDS:
        _add_config_commands(commands, kind, route)
    add_node_command(commands, "get-datasets", "List the datasets", _get("datasets"), ids_only=True)
    p = add_node_command(commands, "get-dataset", "Show a dataset", _get("datasets", "dataset_id"))
    p.add_argument("dataset_id", help="the dataset's id")
    p = add_node_command(commands, "delete-dataset", "Delete a dataset", _delete("datasets", "dataset_id"))
    p.add_argument("dataset_id", help="the dataset's id")
    p = add_node_command(commands, "get-dataset-entities", "Print a dataset's entities", _dataset_entities)
    p.add_argument("dataset_id", help="the dataset's id")
    p.add_argument("--since", help="only entities after this offset (the _updated of the last one seen)")
    p.add_argument("--limit", help="at most this many entities")
    p.add_argument("--start", help="skip this many entities (slower than --since)")
    p.add_argument("--history", help="'true' (the default): every version; 'false': the latest only")
    p.add_argument("--deleted", help="'true' (the default): deleted entities too; 'false': not")
    p = add_node_command(commands, "get-dataset-entity", "Print one entity of a dataset (null if it has none "
                                                         "with that id)", _dataset_entity)
    p.add_argument("dataset_id", help="the dataset's id")
    p.add_argument("entity_id", help="the entity's _id")


def _add_config_commands(commands: argparse._SubParsersAction, kind: str, route: str) -> None:
    key = f"{kind}_id"
    add_node_command(commands, f"get-{route}", f"List the {route}", _get(route), ids_only=True)
    p = add_node_command(commands, f"get-{kind}", f"Show a {kind}", _get(route, key))
    p.add_argument(key, help=f"the {kind}'s id")
    p = add_node_command(commands, f"add-{route}", f"Add {route}: a JSON list of {kind} configs",
                         _add(route), ids_only=True)
    p.add_argument(f"{kind}_configurations", type=json_argument, metavar=f"{kind}_configurations",
                   help=f'a JSON list of {kind} configs, e.g. \'[{{"_id": "my-{kind}", "type": "{kind}", ...}}]\'')
    _force_option(p)
    p = add_node_command(commands, f"modify-{kind}", f"Replace a {kind}'s config (the {kind} named by its _id)",
                         _modify(route, f"{kind}_configuration"))
    p.add_argument(f"{kind}_configuration", type=json_argument,
                   help=f"the {kind}'s new config: a JSON object with the {kind}'s _id")
    _force_option(p)
    p = add_node_command(commands, f"delete-{kind}", f"Remove a {kind} from the config", _delete(route, key))
    p.add_argument(key, help=f"the {kind}'s id")


def _force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="make the node apply the config despite errors (rarely a good idea)")


def _force(args: argparse.Namespace) -> dict[str, str]:
    return {"force": "true" if args.force else "false"}


def _get(route: str, key: str | None = None) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        show(args, node.get(f"{route}/{path_id(getattr(args, key))}" if key else route))
    return run


def _delete(route: str, key: str) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        show(args, node.json("DELETE", f"{route}/{path_id(getattr(args, key))}"))
    return run


def _add(route: str) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        configs = next(value for name, value in vars(args).items() if name.endswith("_configurations"))
        if isinstance(configs, dict):
            configs = [configs]
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise UsageError(f"sesam add-{route}: the configurations must be a JSON list of objects")
        show(args, node.json("POST", route, json=configs, params=_force(args)))
    return run


def _modify(route: str, key: str) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        config = getattr(args, key)
        if not isinstance(config, dict) or not isinstance(config.get("_id"), str) or not config["_id"]:
            raise UsageError(f"sesam modify-{route[:-1]}: the configuration must be a JSON object with an '_id'")
        show(args, node.json("PUT", f"{route}/{path_id(config['_id'])}/config", json=config, params=_force(args)))
    return run


def _dataset_entities(node: Connection, args: argparse.Namespace) -> None:
    names = ("since", "limit", "start", "history", "deleted")
    params = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    text = node.request("GET", f"datasets/{path_id(args.dataset_id)}/entities", params=params).text
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _dataset_entity(node: Connection, args: argparse.Namespace) -> None:
    dataset = path_id(args.dataset_id)
    try:
        entity = node.get(f"datasets/{dataset}/entity", {"entity_id": args.entity_id})
    except ApiError as exc:
        if exc.status != 404:
            raise
        node.get(f"datasets/{dataset}")  # an unknown dataset is an error; an unknown entity is null
        entity = None
    show(args, entity)
