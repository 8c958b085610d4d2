"""Where the client finds the node and the JWT (client-spec 2): the ``-node``/``-jwt`` options, then the
``NODE``/``JWT`` environment variables, then the sync config file (``.syncconfig`` in the working directory
or the nearest parent). The file is JSON (``{"node": ..., "jwt": ...}``) or ``KEY=value`` lines with ``#``
comments; the same parser reads ``.jinja_vars``.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._connection import api_url, bearer_token
from ._errors import ClientError, ProjectError

__all__ = ["DEFAULT_FILE", "Settings", "check_jwt", "find_file", "parse_settings", "read_settings", "resolve"]

DEFAULT_FILE = ".syncconfig"
MISSING = "jwt and node must be specified either as parameter, os env or in syncconfig file"


@dataclass(frozen=True)
class Settings:
    """The node's API URL (normalised), the JWT (without quotes or ``bearer``), and the file read (if any)."""

    node: str
    jwt: str
    file: Path | None = None


def find_file(name: str = DEFAULT_FILE, start: Path | None = None) -> Path | None:
    """``name`` relative to ``start`` (default: the working directory), else in the nearest parent holding a
    file of that name; None when there is none."""
    start = Path.cwd() if start is None else start
    direct = start / name
    if direct.is_file():
        return direct
    for parent in start.resolve().parents:
        candidate = parent / Path(name).name
        if candidate.is_file():
            return candidate
    return None


def parse_settings(text: str, where: str, *, lower: bool = True) -> dict[str, str]:
    """The keys (lower-cased unless ``lower`` is false) and values of a settings file: a JSON object, else
    ``key=value`` lines."""
    text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(value, dict):
            return {str(k).lower() if lower else str(k): v if isinstance(v, str) else json.dumps(v)
                    for k, v in value.items()}
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"), strict=False)
    if not lower:
        parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string("[sesam]\n" + text, source=where)
    except configparser.ParsingError as exc:  # name the first bad line (the header line above is line 1)
        number = exc.errors[0][0] - 1 if exc.errors else 0
        lines = text.splitlines()
        bad = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        raise ProjectError(f"{where}: not JSON and not KEY=value lines: line {number} is {bad!r}") from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ProjectError(f"{where}: not JSON and not KEY=value lines: {first}") from None
    return {key: _unquote(value) for key, value in parser["sesam"].items()}


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def read_settings(path: Path, *, lower: bool = True) -> dict[str, str]:
    """:func:`parse_settings` of a file (a :class:`ProjectError` when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: cannot be read: {exc}") from None
    return parse_settings(text, str(path), lower=lower)


def resolve(node: str | None = None, jwt: str | None = None, *, file_name: str = DEFAULT_FILE,
            environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """The node and JWT by precedence: arguments, then ``NODE``/``JWT`` in ``environ``, then the file."""
    environ = os.environ if environ is None else environ
    node = node or environ.get("NODE") or None
    jwt = jwt or environ.get("JWT") or None
    found = None
    if node is None or jwt is None:
        found = find_file(file_name, cwd)
        if found is not None:
            values = read_settings(found)
            node = node or values.get("node") or None
            jwt = jwt or values.get("jwt") or None
    if not node or not jwt:
        lacking = " and ".join(name for name, value in (("NODE", node), ("JWT", jwt)) if not value)
        raise ClientError(MISSING + (f" ({found} has no {lacking} line)" if found is not None else ""))
    return Settings(api_url(node), bearer_token(jwt), found)


def check_jwt(token: str) -> dict[str, object]:
    """The claims of a JWT; a :class:`ClientError` unless it is three dot-separated base64url parts whose
    middle one is a JSON object (its signature is the node's business)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ClientError("the JWT is malformed: it is not three dot-separated base64url parts")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        raise ClientError("the JWT is malformed: its payload is not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise ClientError("the JWT is malformed: its payload is not a JSON object")
    return claims
