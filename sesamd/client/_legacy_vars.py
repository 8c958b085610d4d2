"""The sesamclient CLI's environment-variable and secret commands: read, replace (PUT), add to (POST) and
delete the node's env vars (``/env``) and the global or one system's secrets (``/secrets``,
``/systems/{id}/secrets``). Values come from a JSON file of ``name: value`` pairs; each prints the answer."""

from __future__ import annotations

import argparse

from ._connection import Connection, path_id
from ._errors import ProjectError
from ._legacy_node import Command, add_node_command, read_json_file, show

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction) -> None:
    add_node_command(commands, "get-env-vars", "Show the node's environment variables",
                     lambda node, args: show(args, node.get("env")))
    for method, verb in (("PUT", "Replace the node's environment variables with"),
                         ("POST", "Add to the node's environment variables")):
        p = add_node_command(commands, f"{method.lower()}-env-vars", f"{verb} the name: value pairs of a JSON file",
                             _send_env(method))
        p.add_argument("env_file", metavar="path-to-env-vars-file", help="a JSON file of name: value pairs")
    p = add_node_command(commands, "delete-env-var", "Delete one of the node's environment variables",
                         lambda node, args: show(args, node.json("DELETE", f"env/{path_id(args.env_var)}")))
    p.add_argument("env_var", metavar="env-var", help="the variable's name")

    p = add_node_command(commands, "get-secrets", "List the names of the global secrets, or of a system's",
                         lambda node, args: show(args, node.get(_secrets(args))))
    _system_argument(p)
    for method, verb in (("PUT", "Replace the secrets with"), ("POST", "Add to the secrets")):
        p = add_node_command(commands, f"{method.lower()}-secrets", f"{verb} the name: value pairs of a JSON file",
                             _send_secrets(method))
        _system_argument(p)
        p.add_argument("secrets_file", metavar="path-to-secrets-file", help="a JSON file of name: value pairs")
        p.add_argument("--dont_encrypt", action="store_true", help="ask the node not to encrypt them (testing)")
    p = add_node_command(commands, "delete-secret", "Delete a global secret, or one of a system's",
                         lambda node, args: show(args, node.json("DELETE", f"{_secrets(args)}/"
                                                                           f"{path_id(args.secret_key)}")))
    _system_argument(p)
    p.add_argument("secret_key", metavar="secret-key", help="the secret's name")


def _system_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("system_id", metavar="system-id", nargs="?", default=None,
                   help="a system's id for its own secrets (default: the global secrets)")


def _secrets(args: argparse.Namespace) -> str:
    return f"systems/{path_id(args.system_id)}/secrets" if args.system_id else "secrets"


def _pairs(filename: str, what: str) -> dict[str, object]:
    values = read_json_file(filename, what)
    if not isinstance(values, dict):
        raise ProjectError(f"the {what} file '{filename}' must hold a JSON object of name: value pairs")
    return values


def _send_env(method: str) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        show(args, node.json(method, "env", json=_pairs(args.env_file, "environment variables")))
    return run


def _send_secrets(method: str) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        params = {"encrypt": "false" if args.dont_encrypt else "true"}
        show(args, node.json(method, _secrets(args), json=_pairs(args.secrets_file, "secrets"), params=params))
    return run
