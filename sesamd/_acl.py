"""Per-object access lists (node-spec 13): ``permissions`` on a pipe or system is a list of
``["allow"|"deny", [principals...], [permissions...]]`` entries, walked in order; the first entry naming one of
the caller's principals and the permission decides. Today they serve one purpose: a pipe may grant
``group:Anonymous`` a permission (a receiver taking pushes, a publisher serving pulls without a token)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ANONYMOUS", "allows"]

ANONYMOUS = "group:Anonymous"


def allows(acl: Any, principals: Iterable[str], permission: str) -> bool | None:
    """True/False from the first entry of ``acl`` that names one of ``principals`` and ``permission`` (or
    ``*``); None when no entry does. (Pipe configs with a malformed list are rejected when loaded.)"""
    if not isinstance(acl, list):
        return None
    wanted = set(principals)
    for entry in acl:
        if not (isinstance(entry, list) and len(entry) == 3):
            return None
        action, who, what = entry
        if wanted.intersection(who) and (permission in what or "*" in what):
            return action == "allow"
    return None

