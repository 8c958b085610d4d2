"""End to end through HTTP against a real ``sesamd serve`` process: the demo, config changes, failures, SIGTERM."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import trio

from sesamd._auth import Authenticator
from sesamd._config import parse_config, render_json
from sesamd.testing import started_process

ROOT = Path(__file__).resolve().parents[2]
DEMO = parse_config(resources.files("sesamd").joinpath("demo/sesam.conf.json").read_bytes())  # exact decimals


class Server:
    """A ``sesamd serve`` subprocess and an HTTP client for its API."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, client: httpx.AsyncClient) -> None:
        self.process, self.url, self.client = process, url, client

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(self.url + path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def put_config(self, config: Any) -> httpx.Response:
        return await self.client.put(self.url + "/config", content=render_json(config),
                                     headers={"Content-Type": "application/json"})

    async def pump(self, pipe_id: str, operation: str) -> httpx.Response:
        return await self.client.post(f"{self.url}/pipes/{pipe_id}/pump", data={"operation": operation})

    async def idle(self, pipe_id: str) -> dict[str, Any]:
        with trio.fail_after(30):
            while True:
                runtime: dict[str, Any] = (await self.get(f"/pipes/{pipe_id}/pump"))["runtime"]
                if not runtime["is-running"]:
                    return runtime
                await trio.sleep(0.05)

    async def run(self, pipe_id: str) -> dict[str, Any]:
        """Start a run (waiting out one a signal started: 409) and poll the pump until it is idle."""
        while True:
            response = await self.pump(pipe_id, "start")
            if response.status_code != 409:
                assert response.status_code == 200, response.text
                assert response.json()["runtime"]["is-running"] is True
                return await self.idle(pipe_id)
            await self.idle(pipe_id)

    async def entities(self, dataset: str, **params: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get(f"/datasets/{dataset}/entities", **params)
        return result

    async def terminate(self, timeout: float = 30) -> int:
        """SIGTERM; returns the exit code. Our keep-alive connection is closed first: hypercorn otherwise
        waits its graceful timeout (5 s) for it."""
        await self.client.aclose()
        self.process.send_signal(signal.SIGTERM)
        return await trio.to_thread.run_sync(self.process.wait, timeout)


@contextmanager
def _process(data_dir: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``sesamd serve`` until its serving line; its log lines (stdout) and stderr go to ``<data_dir>.log``."""
    argv = [sys.executable, "-m", "sesamd._cli", "serve", "--port", "0", "--data-dir", str(data_dir), *args]
    with started_process(argv, data_dir.with_name(data_dir.name + ".log"), "sesamd: serving ") as (process, line):
        yield process, line.split()[2]


@asynccontextmanager
async def serve(data_dir: Path, *args: str) -> AsyncIterator[Server]:
    with _process(data_dir, *args) as (process, url):
        token = Authenticator(data_dir).mint("admin")
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            yield Server(process, url, client)


def by_id(entities: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["_id"]: e for e in entities}


def with_order_1003(config: list[dict[str, Any]]) -> list[dict[str, Any]]:
    config = copy.deepcopy(config)
    orders = next(e for e in config if e["_id"] == "orders")
    orders["source"]["entities"].append(
        {"_id": "1003", "customer_id": "2", "items": [{"ean": "978-0000000001", "price": "~f19.95", "quantity": 1}]})
    return config


async def test_demo_end_to_end(tmp_path: Path) -> None:
    async with serve(tmp_path / "data") as node:
        assert (await node.get("/health")) == {"status": "ok"}
        response = await node.put_config(DEMO)
        assert response.status_code == 200 and response.json() == {"validation_errors": []}
        assert [p["_id"] for p in await node.get("/pipes")] == ["customers", "customers-with-orders", "orders"]

        for pipe_id in ("customers", "orders", "customers-with-orders"):
            runtime = await node.run(pipe_id)
            assert runtime["success"] is True, runtime

        first = await node.entities("customers-with-orders", history="false", deleted="false")
        assert sorted(by_id(first)) == ["1", "2"]  # Pam (3) spends nothing and is filtered out
        john, maria = by_id(first)["1"], by_id(first)["2"]
        assert (john["name"], john["total"], john["order_count"]) == ("John Smith", "~f123.90", 2)
        assert [o["total"] for o in john["orders"]] == ["~f40.00", "~f83.90"]
        assert (maria["name"], maria["total"], maria["order_count"]) == ("Maria Hawkins", "~f39.95", 1)
        assert (await node.get("/datasets/customers-with-orders"))["runtime"]["populated"] is True

        # a new order for Maria, uploaded as a config change: only the orders pipe restarts
        response = await node.put_config(with_order_1003(DEMO))
        assert response.status_code == 200, response.text
        for pipe_id in ("orders", "customers-with-orders"):
            runtime = await node.run(pipe_id)
            assert runtime["success"] is True, runtime

        history = await node.entities("customers-with-orders")
        versions = [(e["_id"], e["_updated"]) for e in history]
        assert [v for v in versions if v[0] == "1"] == [("1", john["_updated"])]  # John: no new version
        marias = [e for e in history if e["_id"] == "2"]
        assert len(marias) == 2
        new = marias[1]
        assert (new["total"], new["order_count"]) == ("~f59.90", 2)
        assert sorted(o["total"] for o in new["orders"]) == ["~f19.95", "~f39.95"]
        assert new["_previous"] == maria["_updated"]
        latest = await node.get("/datasets/customers-with-orders/entity", entity_id="2")
        assert latest["_updated"] == new["_updated"]

        assert await node.terminate() == 0


async def test_a_failing_pipe_is_logged_and_the_others_keep_running(tmp_path: Path) -> None:
    config = [*DEMO, {"_id": "broken", "type": "pipe",
                      "source": {"type": "embedded", "entities": [{"_id": "ok"}, {"name": "I have no _id"}]}}]
    async with serve(tmp_path / "data") as node:
        assert (await node.put_config(config)).status_code == 200
        runtime = await node.run("broken")
        assert runtime["success"] is False
        assert "_id" in runtime["last-message"]
        log = by_id(await node.get("/pipes/broken/log", history="false"))
        failed = log["pump-failed"]
        assert failed["pipe"] == "broken" and "_id" in failed["original_error_message"]
        assert failed["reason_why_stopped"].startswith("Pump failed")

        for pipe_id in ("customers", "orders", "customers-with-orders"):
            assert (await node.run(pipe_id))["success"] is True
        assert sorted(by_id(await node.entities("customers-with-orders", history="false"))) == ["1", "2"]
        assert (await node.get("/pipes/broken/pump"))["runtime"]["is-valid-config"] is True
        assert (await node.get("/health"))["status"] == "ok"
        assert await node.terminate() == 0


async def test_config_file_is_watched_and_restarts_only_what_changed(tmp_path: Path) -> None:
    config_file = tmp_path / "sesam.conf.json"
    config_file.write_bytes(render_json(DEMO))
    async with serve(tmp_path / "data", "--config", str(config_file), "--poll-interval", "0.1") as node:
        for pipe_id in ("customers", "orders", "customers-with-orders"):
            assert (await node.run(pipe_id))["success"] is True
        customers_pump = (await node.get("/pipes/customers/pump"))["runtime"]
        config_file.write_bytes(render_json(with_order_1003(DEMO)))
        with trio.fail_after(10):
            while len((await node.get("/pipes/orders"))["config"]["original"]["source"]["entities"]) != 4:
                await trio.sleep(0.05)
        assert (await node.run("orders"))["success"] is True
        assert (await node.run("customers-with-orders"))["success"] is True
        maria = await node.get("/datasets/customers-with-orders/entity", entity_id="2")
        assert maria["total"] == "~f59.90"
        # the unchanged customers pump kept its state (same last run), it was not restarted
        assert (await node.get("/pipes/customers/pump"))["runtime"]["last-run"] == customers_pump["last-run"]

        config_file.write_text("[{ not json")  # a bad edit is logged; the running config stays
        await trio.sleep(0.5)
        assert [e["_id"] for e in await node.get("/config")] == [e["_id"] for e in DEMO]  # in the file's order
        assert await node.terminate() == 0
    assert "keeping the running config" in (tmp_path / "data.log").read_text()


async def test_sigterm_during_a_run_commits_whole_batches_and_exits_0(tmp_path: Path) -> None:
    many = [{"_id": f"{i:06}", "n": i, "text": "x" * 200} for i in range(30000)]
    config = [{"_id": "big", "type": "pipe", "batch_size": 100, "source": {"type": "embedded", "entities": many}}]
    data = tmp_path / "data"
    async with serve(data) as node:
        assert (await node.put_config(config)).status_code == 200
        response = await node.pump("big", "start")
        assert response.status_code == 200
        await trio.sleep(0.2)
        assert await node.terminate(timeout=60) == 0  # within the unit's TimeoutStopSec, or it raises
    check = subprocess.run([sys.executable, "-m", "sesamd._cli", "dataset", "check", "big", "--data-dir", str(data)],
                           cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    async with serve(data) as node:
        count = (await node.get("/datasets/big"))["runtime"]["count-index-exists"]
        assert count % 100 == 0  # whole batches only
        log = by_id(await node.get("/pipes/big/log", history="false"))
        if count < 30000:  # stopped part way: the run says so
            assert log["pump-failed"]["reason_why_stopped"] == "Pump was stopped"
        assert (await node.run("big"))["success"] is True
        assert (await node.get("/datasets/big"))["runtime"]["count-index-exists"] == 30000
        assert await node.terminate() == 0
