"""``sesamd token ...`` and ``sesamd user add|list|remove``: the node's tokens and login users.

They touch only the files under ``DATA_DIR/auth`` (never LevelDB), so they work while a node runs on the
same data directory; the node notices a rotated key within a second and a changed user file at once.
"""

from __future__ import annotations

import argparse
import getpass
import math
import sys
from typing import Any

from ._auth import ROLES, Authenticator, UserStore, _normal_email
from ._command_errors import CommandError

__all__ = ["CLIError", "add_commands"]


class CLIError(CommandError):
    """A problem with the user's input, reported with exit code 2."""


def add_commands(commands: Any) -> None:
    roles = ", ".join(sorted(ROLES))

    def data_dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default="data", help="the node's data directory (default: ./data)")

    p = commands.add_parser("token", help="make an API token, or rotate the signing key")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--role", help=f"the token's role ({roles})")
    action.add_argument("--rotate-key", action="store_true",
                        help="make a new signing key: every earlier token becomes invalid")
    p.add_argument("--expires", metavar="DAYS", default=None, help="days until it expires (default: never)")
    p.add_argument("--subject", default="sesamd-cli", help="the token's 'sub' claim (default: sesamd-cli)")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_token)

    user = commands.add_parser("user", help="add, list and remove the users who may log in (POST /api/jwt)")
    sub = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")

    p = sub.add_parser("add", help="add a user or change one's password and role (password from the terminal "
                                   "or the first line of standard input)")
    p.add_argument("email", help="the user's email address")
    p.add_argument("--role", default="developer", help=f"the user's role ({roles}; default: developer)")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_user_add)

    p = sub.add_parser("list", help="list the users with their roles")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_user_list)

    p = sub.add_parser("remove", help="remove a user")
    p.add_argument("email", help="the user's email address")
    data_dir_option(p)
    p.set_defaults(handler=_cmd_user_remove)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise CLIError(f"unknown role {role!r} (known roles: {', '.join(sorted(ROLES))})")


def _expires(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days <= 0:
        raise CLIError(f"--expires must be a positive number of days, not {text!r}")
    return days


def _cmd_token(args: argparse.Namespace) -> int:
    try:
        return _token(args)
    except (OSError, ValueError) as exc:  # an unreadable data dir or key file
        raise CLIError(str(exc)) from None


def _token(args: argparse.Namespace) -> int:
    if args.rotate_key:
        if args.expires is not None:
            raise CLIError("--expires goes with --role, not --rotate-key")
        Authenticator(args.data_dir).rotate_key()
        print("sesamd: the signing key was rotated: every earlier token is now invalid "
              "(a running node notices within a second)", file=sys.stderr)
        return 0
    _check_role(args.role)
    expires = _expires(args.expires)
    if not args.subject:
        raise CLIError("--subject must not be empty")
    print(Authenticator(args.data_dir).mint(args.role, subject=args.subject, expires_days=expires))
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password and getpass.getpass("Password again: ") != password:
            raise CLIError("the passwords do not match")
    else:
        password = sys.stdin.readline()
        password = password.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CLIError("the password is empty")
    return password


def _cmd_user_add(args: argparse.Namespace) -> int:
    _check_role(args.role)
    try:
        email = _normal_email(args.email)  # before asking for the password
        store = UserStore(args.data_dir)
        known = any(u["email"] == email for u in store.list())
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    password = _read_password()
    try:
        store.add(email, password, args.role)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"sesamd: user {email!r} {'updated' if known else 'added'} with the role {args.role!r}", file=sys.stderr)
    return 0


def _cmd_user_list(args: argparse.Namespace) -> int:
    try:
        users = UserStore(args.data_dir).list()
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    width = max([len("EMAIL")] + [len(u["email"]) for u in users])
    print(f"{'EMAIL':<{width}}  {'ROLE':<9}  CREATED")
    for u in users:
        print(f"{u['email']:<{width}}  {u['role']:<9}  {u['created']}")
    return 0


def _cmd_user_remove(args: argparse.Namespace) -> int:
    try:
        UserStore(args.data_dir).remove(args.email)
    except KeyError as exc:
        raise CLIError(exc.args[0]) from None
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"sesamd: user {args.email.lower()!r} removed", file=sys.stderr)
    return 0
