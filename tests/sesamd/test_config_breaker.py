"""The config-upload circuit breaker (``global_defaults.use_config_circuit_breaker``, node-spec 2.8)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sesamd._config_breaker import ConfigCircuitBreakerTripped, check_config_deletions
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

ARMED = {"_id": "node", "type": "metadata", "global_defaults": {"use_config_circuit_breaker": True}}
OFF = {"_id": "node", "type": "metadata", "global_defaults": {"use_config_circuit_breaker": False}}


def pipes(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"_id": f"p{i}", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "1"}]},
             "pump": {"mode": "manual"}} for i in range(start, start + count)]


@pytest.mark.parametrize(("components", "kept", "trips"), [
    (100, 89, True),   # 11 deleted: more than 10 % and more than 10
    (100, 90, False),  # 10 deleted: not more than 10
    (200, 185, False),  # 15 deleted: more than 10 but not more than 10 %
    (12, 1, True),     # 11 of 12
    (11, 0, True),     # all 11
])
def test_the_limit_is_more_than_a_tenth_and_more_than_ten(components: int, kept: int, trips: bool) -> None:
    current = [ARMED, *pipes(components)]
    uploaded = [ARMED, *pipes(kept)]
    if trips:
        with pytest.raises(ConfigCircuitBreakerTripped) as caught:
            check_config_deletions(current, uploaded, ARMED)
        assert caught.value.components == components  # the metadata is not a component
        assert caught.value.deleted == sorted(f"p{i}" for i in range(kept, components))
        assert "use_config_circuit_breaker" in str(caught.value)
    else:
        check_config_deletions(current, uploaded, ARMED)


def test_off_or_unset_never_trips_and_additions_never_count() -> None:
    current = [*pipes(50)]
    for metadata in ({}, OFF, {"_id": "node", "type": "metadata"}):
        check_config_deletions(current, [], metadata)
    check_config_deletions(current, [*pipes(50), *pipes(500, start=50)], ARMED)
    with pytest.raises(ConfigCircuitBreakerTripped):  # a replaced id is deleted even when as many are added
        check_config_deletions(current, pipes(50, start=50), ARMED)


async def _put(client: TokenClient, config: Any, status: int, **params: Any) -> Any:
    response = await client.put("/api/config", data=json.dumps(config), headers={"Content-Type": "application/json"},
                                query_string=params)
    body = json.loads(await response.get_data())
    assert response.status_code == status, body
    return body


async def _ids(client: TokenClient) -> list[str]:
    return sorted(e["_id"] for e in json.loads(await (await client.get("/api/config")).get_data()))


async def test_the_api_refuses_an_armed_upload_that_deletes_too_much_and_changes_nothing(tmp_path: Any) -> None:
    async with open_node(tmp_path) as node:
        client = TokenClient(create_app(node))
        assert await _put(client, [ARMED, *pipes(20)], 200) == {"validation_errors": []}
        before = await _ids(client)
        for params in ({}, {"force": "true"}):  # force does not get past it (sesam-py uploads with force)
            refused = await _put(client, pipes(5), 409, **params)
            assert refused["status"] == 409 and refused["components"] == 20
            assert refused["deleted"] == sorted(f"p{i}" for i in range(5, 20))
            assert "global_defaults.use_config_circuit_breaker" in refused["detail"]
            assert await _ids(client) == before
            assert sorted(p["_id"] for p in json.loads(await (await client.get("/api/pipes")).get_data())) \
                == sorted(f"p{i}" for i in range(20))
        # an upload turning the setting off is checked by the metadata in force: still refused
        await _put(client, [OFF, *pipes(5)], 409)
        assert await _ids(client) == before
        # a small deletion passes; then the setting off, and the large one passes
        await _put(client, [ARMED, *pipes(18)], 200)
        await _put(client, [OFF, *pipes(18)], 200)
        await _put(client, [OFF, *pipes(2)], 200)
        assert await _ids(client) == ["node", "p0", "p1"]
