"""``GET|PUT /license``: the node's license key, kept but not enforced.

sesamd is self-hosted and enforces no license: ``PUT /license`` stores the uploaded key text durably in the
node store (``meta``/``license``: one synced LevelDB write), and both routes answer what is known about it.
A key that is a JWT (as Sesam's are) has its header and claims decoded **without** verifying the signature
(sesamd has no key to verify it with), which the answer says (``"verified": false``); the key itself is not
echoed, only its SHA-256.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import jwt
import trio
from quart import Response

from .._auth import Permission
from ._context import api
from ._errors import ApiError
from ._params import body_bytes
from ._routes import Resource
from ._views import json_response

__all__ = ["MAX_KEY_BYTES", "license_info", "resource"]

resource = Resource("license")

STORE_KIND, STORE_NAME = "meta", "license"
MAX_KEY_BYTES = 64 << 10
NOT_ENFORCED = ("sesamd enforces no license: the key is kept as uploaded, and a JWT's claims are decoded "
                "without verifying its signature")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jwt_parts(key: str) -> dict[str, Any] | None:
    """The unverified header and claims of a JWT, or None when ``key`` is none."""
    try:
        header = jwt.get_unverified_header(key)
        claims = jwt.decode(key, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return {"header": header, "claims": claims, "verified": False}


def _expires(claims: dict[str, Any]) -> str | None:
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        try:
            return _iso(datetime.fromtimestamp(exp, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    return None


def license_info(stored: dict[str, Any] | None) -> dict[str, Any]:
    """What ``GET /license`` answers for the stored record (``{"key", "uploaded"}``, or None)."""
    if stored is None:
        return {"enforced": False, "stored": False, "message": "no license key has been uploaded; " + NOT_ENFORCED}
    key: str = stored["key"]
    info: dict[str, Any] = {"enforced": False, "stored": True, "uploaded": stored["uploaded"],
                            "sha256": hashlib.sha256(key.encode()).hexdigest(), "length": len(key)}
    parts = _jwt_parts(key)
    info["format"] = "text" if parts is None else "jwt"
    if parts is not None:
        info["jwt"] = parts
        info["expires"] = _expires(parts["claims"])
    info["message"] = NOT_ENFORCED
    return info


@resource.route("/license", permission=Permission.ADMIN,
                summary="The stored license key's info (JWT claims decoded unverified); sesamd enforces no license")
async def get_license() -> Response:
    node = api().node
    stored = await trio.to_thread.run_sync(node.store.get, STORE_KIND, STORE_NAME)
    return json_response(license_info(stored))


@resource.route("/license", "PUT", permission=Permission.ADMIN, body="text/plain",
                summary="Store a license key (the body: the key's text); answers its info")
async def put_license() -> Response:
    data = await body_bytes()
    if len(data) > MAX_KEY_BYTES:
        raise ApiError(413, f"PUT /license: the license key is {len(data)} bytes, more than {MAX_KEY_BYTES}")
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"PUT /license: the body is not UTF-8 text (byte {exc.start} is not)") from None
    if not key:
        raise ApiError(400, "PUT /license: the body is empty: send the license key's text")
    record = {"key": key, "uploaded": _iso(datetime.now(UTC))}
    node = api().node
    await trio.to_thread.run_sync(node.store.put, STORE_KIND, STORE_NAME, record)
    return json_response(license_info(record))
