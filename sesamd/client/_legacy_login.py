"""``sesam login`` and ``sesam logout``: get a JWT for an email and password (``POST /jwt``) and keep it in
the settings file as ``server.jwt``, or forget it.

The email and password are asked for at the terminal (the password without echo). When standard input is
not a terminal they are its first two lines, so a script can pipe them in.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ._connection import Connection
from ._errors import AuthError, ClientError
from ._legacy_node import add_node_command
from ._legacy_settings import Settings

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction) -> None:
    add_node_command(commands, "login", "Log in with an email and password and store the token", _login, out=False)
    p = commands.add_parser("logout", help="Forget the stored token", description="Forget the stored token.")
    p.set_defaults(run=_logout)


def _login(node: Connection, args: argparse.Namespace) -> int:
    settings = Settings()
    print(f"Log in with the email address and password of your user on the node; the token is stored in "
          f"'{settings.path}'.")
    email, password = _credentials()
    node.http.auth = None  # log in with the email and password only, never an old token
    node.http.headers.pop("Authorization", None)
    try:
        response = node.request("POST", "jwt", data={"email": email, "password": password})
    except AuthError as exc:
        raise ClientError(f"login failed: {_reason(exc)}") from None
    token = response.text.strip().strip('"')
    if not token:
        raise ClientError(f"login failed: the node at {node.url} answered with an empty token")
    settings.set("server.jwt", token)
    settings.save()
    print(f"Logged in; the token is stored in '{settings.path}'.")
    return 0


def _credentials() -> tuple[str, str]:
    if sys.stdin.isatty():
        email = input("Email: ").strip()
        password = getpass.getpass("Password: ") if email else ""
    else:
        email = sys.stdin.readline().strip()
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not email:
        raise ClientError("login failed: no email address given")
    if not password:
        raise ClientError("login failed: no password given")
    return email, password


def _reason(exc: AuthError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return "the node refused the email and password"


def _logout(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.remove("server.jwt"):
        settings.save()
        print("Logged out: the stored token is removed.")
    else:
        print("Not logged in: no token is stored.")
    return 0
