"""The ``ldap`` source through a real ``sesamd serve``, against a scratch OpenLDAP ``slapd`` the test starts and
stops: a ``system:ldap`` whose password is a ``$SECRET(...)`` and a pipe reading a directory in pages into a
dataset by pump runs over the API; then a rescan after one entry changed and one was removed."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from actors.ldap_testing import READER_PASSWORD, SUFFIX, scratch_directory
from sesamd.testing import serve_process

PEOPLE = f"ou=people,{SUFFIX}"
PHOTO = b"\xff\xd8\xff\xe0\x80"


def runtime(client: httpx.Client, pipe_id: str) -> dict[str, Any]:
    response = client.get(f"/pipes/{pipe_id}/pump")
    assert response.status_code == 200, response.text
    return response.json()["runtime"]  # type: ignore[no-any-return]


def pump(client: httpx.Client, pipe_id: str, operation: str = "start", timeout: float = 30) -> dict[str, Any]:
    """Start a run and wait until the pump has finished it; returns the pump's runtime."""
    before = runtime(client, pipe_id)["last-run"]
    response = client.post(f"/pipes/{pipe_id}/pump", data={"operation": operation})
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + timeout
    while True:
        now = runtime(client, pipe_id)
        if not now["is-running"] and now["last-run"] != before:
            return now
        assert time.monotonic() < deadline, now
        time.sleep(0.05)


def entities(client: httpx.Client, dataset: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"/datasets/{dataset}/entities", params={"history": "false"})
    assert response.status_code == 200, response.text
    return {e["_id"]: e for e in response.json()}


def test_a_directory_is_pumped_into_a_dataset(tmp_path: Any) -> None:
    with scratch_directory(size_limit=50) as directory:
        directory.add(*((f"uid=u{n},{PEOPLE}", {"objectClass": ["inetOrgPerson"], "uid": f"u{n}", "cn": f"Person {n}",
                                                "sn": "Doe", "mail": [f"p{n}@example.org", f"doe{n}@example.org"],
                                                **({"jpegPhoto": PHOTO} if n == 0 else {})})
                        for n in range(120)))
        system = directory.system_config(_id="directory", password="$SECRET(ldap-password)")
        config = [system,
                  {"_id": "people", "type": "pipe", "pump": {"mode": "manual"},
                   "source": {"type": "ldap", "system": "directory", "search_base": PEOPLE, "id_attribute": "uid",
                              "page_size": 25, "attribute_blacklist": ["objectClass"]}}]
        with serve_process(tmp_path / "data") as daemon:
            with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
                response = client.put("/secrets", json={"ldap-password": READER_PASSWORD})
                assert response.status_code == 200, response.text
                response = client.put("/config", content=json.dumps(config),
                                      headers={"Content-Type": "application/json"})
                assert response.status_code == 200, response.text
                first = pump(client, "people")
                assert first["success"] is True, (first["last-message"], first["last-original-error-message"])
                found = entities(client, "people")
                assert len(found) == 120  # more than the server's size limit: read in pages
                assert {k: v for k, v in found["u0"].items() if not k.startswith("_") or k == "_id"} == {
                    "_id": "u0", "dn": f"uid=u0,{PEOPLE}", "uid": "u0", "cn": "Person 0", "sn": "Doe",
                    "mail": ["p0@example.org", "doe0@example.org"], "jpegPhoto": "~b/9j/4IA="}
                status = client.get("/systems/directory/status")
                assert status.status_code == 200 and READER_PASSWORD not in status.text

                directory.replace(f"uid=u1,{PEOPLE}", cn="Changed")
                directory.delete(f"uid=u2,{PEOPLE}")
                second = pump(client, "people", "start-rescan")
                assert second["success"] is True, (second["last-message"], second["last-original-error-message"])
                found = entities(client, "people")
                assert found["u1"]["cn"] == "Changed" and not found["u1"].get("_deleted")
                assert found["u2"]["_deleted"] is True
                assert sum(1 for e in found.values() if not e.get("_deleted")) == 119
            assert daemon.terminate() == 0
