"""The live event feed (``GET /api/events``) against a real ``sesamd serve``, with trio-websocket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from sesamd._auth import Authenticator
from sesamd.testing import Daemon, serve_with_config

CONFIG = [
    {"_id": "people", "type": "pipe", "pump": {"mode": "manual"},
     "source": {"type": "embedded", "entities": [{"_id": str(i), "name": f"n{i}"} for i in range(5)]}},
    {"_id": "shout", "type": "pipe", "pump": {"mode": "manual"}, "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "loud", ["upper", "_S.name"]]]}}},
]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with serve_with_config(tmp_path / "data", CONFIG) as server:
        yield server


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", f"Bearer {token}".encode())]


async def receive(ws: WebSocketConnection, timeout: float = 10) -> dict[str, Any]:
    with trio.fail_after(timeout):
        message: dict[str, Any] = json.loads(await ws.get_message())
    return message


async def until(ws: WebSocketConnection, kind: str, pipe: str | None = None) -> list[dict[str, Any]]:
    """The events up to and including the first of ``kind`` (for ``pipe``)."""
    seen = []
    while True:
        event = await receive(ws)
        seen.append(event)
        if event["type"] == kind and (pipe is None or event.get("pipe") == pipe):
            return seen


async def start(daemon: Daemon, pipe_id: str) -> None:
    async with httpx.AsyncClient(headers=daemon.headers) as client:
        response = await client.post(f"{daemon.url}/pipes/{pipe_id}/pump", data={"operation": "start"})
        assert response.status_code == 200, response.text


async def test_a_run_reaches_a_subscriber_in_order_and_a_reconnect_resumes(daemon: Daemon) -> None:
    async with open_websocket_url(daemon.ws_url + "/events?pipes=peo*", extra_headers=bearer(daemon.token)) as ws:
        subscribed = await receive(ws)
        assert subscribed["type"] == "subscribed"
        await start(daemon, "people")
        events = await until(ws, "pump-completed", "people")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "pump-started" and "dataset-changed" in kinds
    assert {e.get("pipe") for e in events} == {"people"}  # the filter: shout's events are not here
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and all(e["time"] for e in events)
    changed = next(e for e in events if e["type"] == "dataset-changed")
    assert changed["dataset"] == "people" and changed["offset"] == 4
    assert events[-1]["processed"] == 5

    # a browser-style client: no header, the token in a first subscribe message, resuming after an event
    async with open_websocket_url(daemon.ws_url + "/events") as ws:
        await ws.send_message(json.dumps({"type": "subscribe", "token": daemon.token, "pipes": ["people"],
                                          "since": seqs[0]}))
        assert (await receive(ws))["type"] == "subscribed"
        replayed = [await receive(ws) for _ in seqs[1:]]
    assert [e["seq"] for e in replayed] == seqs[1:]


async def test_a_subscriber_sees_only_what_its_role_may_read(daemon: Daemon) -> None:
    guest = Authenticator(daemon.data_dir).mint("guest")
    async with open_websocket_url(daemon.ws_url + "/events", extra_headers=bearer(guest)) as ws:
        assert (await receive(ws))["type"] == "subscribed"
        await start(daemon, "people")
        events = await until(ws, "pump-completed", "people")
    assert "pump-started" in [e["type"] for e in events]
    assert "dataset-changed" not in [e["type"] for e in events]  # data needs read_data; a guest has not


@pytest.mark.parametrize("header", [b"Bearer nonsense", b"Basic eDp5"])
async def test_a_bad_token_gets_an_error_frame_and_4401(daemon: Daemon, header: bytes) -> None:
    async with open_websocket_url(daemon.ws_url + "/events", extra_headers=[(b"Authorization", header)]) as ws:
        error = await receive(ws)
        assert error["type"] == "error" and error["status"] == 401 and error["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.reason.code == 4401


async def test_no_token_at_all_times_out_with_401_and_a_bad_filter_is_4400(daemon: Daemon) -> None:
    async with open_websocket_url(daemon.ws_url + "/events?level=loud", extra_headers=bearer(daemon.token)) as ws:
        error = await receive(ws)
        assert error["status"] == 400 and "level" in error["detail"]
    async with open_websocket_url(daemon.ws_url + "/events") as ws:
        await ws.send_message(json.dumps({"type": "subscribe"}))
        error = await receive(ws)
        assert error["status"] == 401


async def test_a_websocket_upgrade_on_any_other_path_is_refused_cleanly(daemon: Daemon) -> None:
    for path in ("/pipes", "/datasets/people/entities", "/no/such/path", ""):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(daemon.ws_url + path, extra_headers=bearer(daemon.token)):
                pass
        assert 400 <= rejected.value.status_code < 500, (path, rejected.value)
