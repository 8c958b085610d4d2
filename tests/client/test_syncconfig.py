"""Where the client finds the node and the JWT (client-spec 2): precedence, the file's search upwards, its JSON
and KEY=value forms, normalisation, and the JWT shape check."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sesamd.client import ClientError, ProjectError
from sesamd.client._syncconfig import check_jwt, find_file, parse_settings, resolve


def jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_the_option_wins_over_the_environment_and_the_environment_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".syncconfig").write_text('NODE="file-node:9042"\nJWT="file-jwt"\n')
    environ = {"NODE": "env-node", "JWT": "env-jwt"}
    chosen = resolve("http://option-node", "option-jwt", environ=environ, cwd=tmp_path)
    assert (chosen.node, chosen.jwt) == ("http://option-node/api", "option-jwt")
    chosen = resolve(None, None, environ=environ, cwd=tmp_path)
    assert (chosen.node, chosen.jwt, chosen.file) == ("https://env-node/api", "env-jwt", None)
    chosen = resolve(None, None, environ={}, cwd=tmp_path)
    assert (chosen.node, chosen.jwt) == ("https://file-node:9042/api", "file-jwt")
    assert chosen.file == tmp_path / ".syncconfig"


def test_each_setting_comes_from_its_own_first_source(tmp_path: Path) -> None:
    (tmp_path / ".syncconfig").write_text("node=http://localhost:9042\njwt=from-file\n")
    chosen = resolve(None, None, environ={"JWT": "Bearer from-env"}, cwd=tmp_path)
    assert (chosen.node, chosen.jwt) == ("http://localhost:9042/api", "from-env")


def test_the_file_is_found_in_a_parent_directory(tmp_path: Path) -> None:
    (tmp_path / ".syncconfig").write_text('{"node": "http://parent:1", "jwt": "j"}')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_file(".syncconfig", deep) == tmp_path / ".syncconfig"
    assert resolve(None, None, environ={}, cwd=deep).node == "http://parent:1/api"
    (deep / "other.cfg").write_text("NODE=x\nJWT=y\n")
    assert resolve(None, None, file_name="other.cfg", environ={}, cwd=deep).jwt == "y"


def test_key_value_lines_take_comments_quotes_and_any_case() -> None:
    text = '\ufeff# dev subscription\nNODE="datahub-1234.sesam.cloud"\n; another comment\nJwt = "eyJ.a.b"\n'
    assert parse_settings(text, ".syncconfig") == {"node": "datahub-1234.sesam.cloud", "jwt": "eyJ.a.b"}


def test_a_json_file_is_read_as_json() -> None:
    assert parse_settings('{"NODE": "n", "jwt": "\\"bearer t\\""}', "f") == {"node": "n", "jwt": '"bearer t"'}


def test_the_node_url_and_the_jwt_are_normalised(tmp_path: Path) -> None:
    chosen = resolve('"localhost:9042"', '"Bearer abc"', environ={}, cwd=tmp_path)
    assert (chosen.node, chosen.jwt) == ("https://localhost:9042/api", "abc")
    assert resolve("http://h/api/", "t", environ={}, cwd=tmp_path).node == "http://h/api"


def test_no_node_or_no_jwt_is_the_sesam_py_message(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="jwt and node must be specified either as parameter, os env or in "
                                          "syncconfig file"):
        resolve("http://node", None, environ={}, cwd=tmp_path)


def test_a_file_in_neither_form_names_the_file(tmp_path: Path) -> None:
    (tmp_path / ".syncconfig").write_text("this line has no equals sign\n")
    with pytest.raises(ProjectError, match=r"\.syncconfig: not JSON and not KEY=value lines"):
        resolve(None, None, environ={}, cwd=tmp_path)


def test_a_jwt_must_be_three_parts_with_a_json_payload() -> None:
    assert check_jwt(jwt({"sub": "me"})) == {"sub": "me"}
    for bad, reason in [("abc", "three dot-separated"), ("a.b", "three dot-separated"),
                        ("a.!!!.c", "not base64url-encoded JSON"), (f"a.{jwt({})[:0]}x.c", "base64url"),
                        (jwt({}).split(".")[0] + ".WzFd.c", "not a JSON object")]:
        with pytest.raises(ClientError, match=reason):
            check_jwt(bad)
