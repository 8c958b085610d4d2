"""What the sesamclient CLI's node commands share: the connection options, the connection they give, and the
``--out json|yaml|plain`` / ``--ids-only`` display of an answer."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ._connection import Connection
from ._errors import ClientError, ConnectionFailed, ProjectError
from ._legacy_settings import Settings, timeout_value

__all__ = ["DEFAULT_BASE_URL", "Command", "add_node_command", "connect", "json_argument", "read_json_file",
           "show"]

DEFAULT_BASE_URL = "http://localhost:9042/api"
Command = Callable[[Connection, argparse.Namespace], int | None]


def add_node_command(commands: argparse._SubParsersAction, name: str, text: str, run: Command, *,
                     out: bool = True, ids_only: bool = False) -> argparse.ArgumentParser:
    """A subcommand that talks to a node: the connection options, and ``--out`` (and ``--ids-only``)."""
    p = commands.add_parser(name, help=text, description=text)
    p.add_argument("--server_base_url", metavar="<server base url>",
                   help="the node's API address, e.g. http://localhost:9042/api (default: 'sesam config')")
    p.add_argument("--jwt", metavar="<jwt filename>",
                   help="a file holding the JWT to use instead of the one 'sesam login' stored")
    p.add_argument("--server_username", metavar="<username>", help="a user name for HTTP basic authentication")
    p.add_argument("--server_password", metavar="<password>", help="the password for --server_username")
    p.add_argument("--server_timeout", metavar="<timeout in seconds>", help="seconds to wait for an answer")
    if out:
        p.add_argument("--out", choices=("json", "yaml", "plain"), default="json",
                       help="how to print the answer (default: json)")
    if ids_only:
        p.add_argument("--ids-only", dest="ids_only", action="store_true", help="print only the items' ids")
    p.set_defaults(run=lambda args: _run(run, args))
    return p


def _run(run: Command, args: argparse.Namespace) -> int:
    try:
        with connect(args) as node:
            return run(node, args) or 0
    except ConnectionFailed as exc:
        if args.server_base_url or Settings().get("server.base_url"):
            raise
        raise ConnectionFailed(f"{exc} (no server base_url is set: use 'sesam config server.base_url <url>' "
                               "or --server_base_url)") from None


def connect(args: argparse.Namespace) -> Connection:
    """A connection from the options, else the settings file (else the node's default address, as sesamclient
    does)."""
    settings = Settings()
    base_url = args.server_base_url or settings.get("server.base_url") or DEFAULT_BASE_URL
    timeout_text = args.server_timeout or settings.get("server.timeout")
    where = "--server_timeout" if args.server_timeout else f"server.timeout in {settings.path}"
    timeout = timeout_value(timeout_text, where) if timeout_text else 30.0
    jwt = _read_jwt(args.jwt) if args.jwt else settings.get("server.jwt")
    node = Connection(base_url, jwt, timeout=timeout)
    username = args.server_username or settings.get("server.username")
    if not jwt and username:
        node.http.auth = httpx.BasicAuth(username, args.server_password or settings.get("server.password") or "")
    return node


def _read_jwt(filename: str) -> str:
    try:
        token = Path(filename).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ProjectError(f"the --jwt file '{filename}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"the --jwt file '{filename}' cannot be read: {exc}") from None
    if not token:
        raise ProjectError(f"the --jwt file '{filename}' is empty")
    return token


def show(args: argparse.Namespace, value: Any) -> None:
    """Print ``value`` as ``--out`` asks (JSON indented by 4, as sesamclient prints it), or only the ``_id``s
    of a list with ``--ids-only``."""
    if getattr(args, "ids_only", False) and isinstance(value, list):
        value = [item.get("_id") if isinstance(item, dict) else item for item in value]
    out = getattr(args, "out", "json")
    if out == "yaml":
        print(_yaml(value), end="")
    elif out == "plain":
        print(_plain(value))
    else:
        print(json.dumps(value, indent=4))


def _yaml(value: Any) -> str:
    try:
        import yaml
    except ImportError:
        raise ClientError("--out yaml needs the PyYAML package (pip install pyyaml)") from None
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> str:
    """Lists one item a line (an object by its ``_id``), objects one ``key: value`` a line."""
    if isinstance(value, list):
        return "\n".join(_plain_item(item) for item in value)
    if isinstance(value, dict):
        return "\n".join(f"{key}: {_plain_item(item)}" for key, item in value.items())
    return _plain_item(value)


def _plain_item(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("_id"), str):
        return value["_id"]
    return json.dumps(value)


def json_argument(text: str) -> Any:
    """An argparse type: a command-line argument parsed as JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None


def read_json_file(filename: str, what: str) -> Any:
    """The JSON in ``filename`` (``what`` names it in the one-line error)."""
    try:
        text = Path(filename).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"the {what} file '{filename}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"the {what} file '{filename}' cannot be read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"the {what} file '{filename}' is not valid JSON: {exc}") from None
