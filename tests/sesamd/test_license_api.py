"""``GET|PUT /api/license``: the key is stored durably and described honestly; nothing is enforced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jwt
import pytest

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.api._license import MAX_KEY_BYTES
from sesamd.testing import TokenClient

CLAIMS = {"sub": "subscription-1", "licensed_to": "Example AS", "exp": 1_900_000_000}
KEY = jwt.encode(CLAIMS, "a secret sesamd never sees, 32 bytes or more", algorithm="HS256")


async def test_no_key_then_a_jwt_key_kept_across_a_restart(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        response = await client.get("/api/license")
        body = await response.get_json()
        assert response.status_code == 200 and body["enforced"] is False and body["stored"] is False
        response = await client.put("/api/license", data=KEY + "\n", headers={"Content-Type": "text/plain"})
        body = await response.get_json()
        assert response.status_code == 200, body
    async with open_node(tmp_path) as node:  # durable: a new node on the same data directory
        response = await TokenClient(create_app(node)).get("/api/license")
        again = await response.get_json()
    assert again == body
    assert body["stored"] is True and body["enforced"] is False and body["format"] == "jwt"
    assert body["jwt"]["claims"] == CLAIMS and body["jwt"]["verified"] is False
    assert body["jwt"]["header"]["alg"] == "HS256"
    assert body["expires"] == "2030-03-17T17:46:40Z"
    assert body["sha256"] == hashlib.sha256(KEY.encode()).hexdigest() and body["length"] == len(KEY)
    assert KEY not in str(body) and "without verifying" in body["message"]


async def test_a_key_that_is_no_jwt_is_kept_as_text(tmp_path: Path) -> None:
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        response = await client.put("/api/license", data="  LICENSE-1234  ")
        body = await response.get_json()
    assert response.status_code == 200 and body["format"] == "text" and "jwt" not in body
    assert body["length"] == len("LICENSE-1234")


@pytest.mark.parametrize(("data", "status", "detail"), [
    (b"", 400, "PUT /license: the body is empty"),
    (b" \n\t", 400, "PUT /license: the body is empty"),
    (b"key\xff\xfe", 400, "PUT /license: the body is not UTF-8 text (byte 3 is not)"),
    (b"k" * (MAX_KEY_BYTES + 1), 413, f"PUT /license: the license key is {MAX_KEY_BYTES + 1} bytes"),
])
async def test_a_bad_body_is_refused_and_keeps_the_stored_key(tmp_path: Path, data: bytes, status: int,
                                                              detail: str) -> None:
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        assert (await client.put("/api/license", data="FIRST")).status_code == 200
        response = await client.put("/api/license", data=data)
        body = await response.get_json()
        assert response.status_code == status and body["detail"].startswith(detail), body
        response = await client.get("/api/license")
        assert (await response.get_json())["sha256"] == hashlib.sha256(b"FIRST").hexdigest()


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_only_an_admin_reads_or_uploads_a_license(tmp_path: Path, method: str) -> None:
    async with open_node(tmp_path) as node:
        app = create_app(node)
        response = await TokenClient(app, "developer").open("/api/license", method=method, data="KEY")
        assert response.status_code == 403
        response = await TokenClient(app, None).open("/api/license", method=method, data="KEY")
        assert response.status_code == 401
