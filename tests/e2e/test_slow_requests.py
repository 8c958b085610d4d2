"""Slow clients: a body that never arrives in full is dropped within seconds (408), while a client that
reads a large streamed response slowly still gets all of it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import trio

import storage
from sesamd.testing import serve_process


async def test_an_idle_body_is_dropped_and_a_slow_reader_is_not(tmp_path: Path) -> None:
    data = storage.DataDir(tmp_path / "data")
    dataset = data.open_dataset("big")
    dataset.write([{"_id": f"{i:06}", "text": "x" * 200} for i in range(50000)])
    dataset.close()
    with serve_process(tmp_path / "data") as daemon:
        host, port = daemon.url.split("//")[1].split("/")[0].split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(b"PUT /api/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Authorization: Bearer " + daemon.token.encode() + b"\r\n"
                              b"Content-Length: 100000\r\n\r\n[{\"_id\": ")
        started = time.monotonic()
        answer = b""
        with trio.fail_after(30):
            while chunk := await stream.receive_some(65536):
                answer += chunk  # the server answers, then closes the connection
        held = time.monotonic() - started
        assert 9 < held < 15, f"the connection was held {held:.1f} s"
        assert answer.startswith(b"HTTP/1.1 408") and b"request body" in answer, answer
        await stream.aclose()

        async with httpx.AsyncClient(headers=daemon.headers, timeout=60) as client:
            assert (await client.get(daemon.url + "/config")).json() == []  # nothing of it was applied
            received = 0
            async with client.stream("GET", daemon.url + "/datasets/big/entities") as response:
                async for chunk in response.aiter_bytes(65536):
                    if received == 0:
                        await trio.sleep(12)  # longer than the idle limit, reading nothing
                    received += len(chunk)
            assert received > 50000 * 200 and response.status_code == 200
        assert daemon.terminate() == 0
