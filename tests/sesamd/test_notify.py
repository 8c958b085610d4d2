"""sd_notify: the message core, the driver against a socket the test owns, and ``sesamd serve`` under a fake
systemd (``NOTIFY_SOCKET`` + ``WATCHDOG_USEC``): READY after the API answers, STATUS with pipe counts, watchdog
pings that stop when the loop is stuck, RELOADING/READY around SIGHUP, STOPPING and exit 0 on SIGTERM with
every committed batch intact."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import storage
from sesamd import _notify
from sesamd.testing import serve_process

ROOT = Path(__file__).resolve().parents[2]


class FakeSystemd:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, abstract: bool = False) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"sesamd-test-{os.getpid()}-{id(self)}"
            self.socket.bind("\0" + name)
            self.address = "@" + name
        else:
            self._dir = tempfile.TemporaryDirectory(dir="/tmp")  # a short path: sun_path has 108 bytes
            self.address = os.path.join(self._dir.name, "notify")
            self.socket.bind(self.address)
        self.received: list[dict[str, str]] = []

    def receive(self, timeout: float = 30) -> dict[str, str] | None:
        """The next datagram as a dict of its assignments (None when nothing came within ``timeout``)."""
        self.socket.settimeout(timeout)
        try:
            data = self.socket.recv(4096)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
        self.received.append(message)
        return message

    def until(self, key: str, value: str | None = None, timeout: float = 30) -> dict[str, str]:
        """Receive until a datagram carries ``key`` (with ``value``); fails after ``timeout`` of silence."""
        while True:
            message = self.receive(timeout)
            assert message is not None, f"no {key} within {timeout} s; received {self.received}"
            if key in message and (value is None or message[key] == value):
                return message

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    fake = FakeSystemd()
    monkeypatch.setenv("NOTIFY_SOCKET", fake.address)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield fake
    fake.close()


def pipes(count: int) -> list[dict[str, object]]:
    return [{"_id": f"p{i}", "type": "pipe", "pump": {"mode": "manual"},
             "source": {"type": "embedded", "entities": [{"_id": "a"}]}} for i in range(count)]


# -- the core -------------------------------------------------------------------------------------------------


def test_messages_encode_as_sd_notify_assignments() -> None:
    assert _notify.encode(_notify.Ready()) == b"READY=1\n"
    assert _notify.encode(_notify.Ready(), _notify.Status("3 pipes:\n 3 idle")) == b"READY=1\nSTATUS=3 pipes: 3 idle\n"
    assert _notify.encode(_notify.Watchdog(), _notify.Stopping()) == b"WATCHDOG=1\nSTOPPING=1\n"
    assert _notify.encode(_notify.Reloading(1234)) == b"RELOADING=1\nMONOTONIC_USEC=1234\n"
    assert _notify.Reloading.now().monotonic_usec > 0


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process() -> None:
    assert _notify.watchdog_interval({"WATCHDOG_USEC": "30000000"}, 7) == 15.0
    assert _notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7) == 15.0
    assert _notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7) is None
    assert _notify.watchdog_interval({}, 7) is None
    assert _notify.watchdog_interval({"WATCHDOG_USEC": "soon"}, 7) is None
    assert _notify.watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert _notify.loop_healthy(0.01, 15.0) and not _notify.loop_healthy(15.0, 15.0)


@pytest.mark.parametrize("abstract", [False, True])
def test_the_driver_sends_to_a_path_or_an_abstract_socket(abstract: bool) -> None:
    fake = FakeSystemd(abstract)
    try:
        notifier = _notify.Notifier.from_environ({"NOTIFY_SOCKET": fake.address})
        assert notifier.enabled and notifier.send(_notify.Ready(), _notify.Status("up"))
        assert fake.receive(5) == {"READY": "1", "STATUS": "up"}
        notifier.close()
    finally:
        fake.close()


def test_without_notify_socket_sending_is_a_no_op_and_a_dead_socket_is_no_error(tmp_path: Path) -> None:
    quiet = _notify.Notifier.from_environ({})
    assert not quiet.enabled and quiet.send(_notify.Ready()) is False
    gone = _notify.Notifier(str(tmp_path / "nobody-listens"))
    assert gone.send(_notify.Watchdog()) is False  # logged once, never raised
    assert gone.send(_notify.Watchdog()) is False


def test_the_stall_hook_is_read_only_from_its_variable() -> None:
    assert _notify.testing_stall_after({}) is None
    assert _notify.testing_stall_after({"SESAMD_TEST_STALL_AFTER": "1.5"}) == 1.5


# -- sesamd serve under a fake systemd ---------------------------------------------------------------------------


def test_ready_after_the_api_answers_then_status_and_pings_and_sighup_reloads(
        tmp_path: Path, systemd: FakeSystemd) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(pipes(3)))
    with serve_process(tmp_path / "data", "--config", str(config)) as daemon:
        ready = systemd.until("READY")
        assert httpx.get(daemon.url + "/ready").json() == {"ready": True}  # the API answered before READY
        assert ready["STATUS"] == "3 pipes: 3 idle, 0 running, 0 failed"
        pings = [systemd.until("WATCHDOG", "1", timeout=5) for _ in range(3)]
        assert len(pings) == 3
        refreshed = systemd.until("STATUS", timeout=15)  # the periodic STATUS line
        assert refreshed["STATUS"] == "3 pipes: 3 idle, 0 running, 0 failed"

        config.write_text(json.dumps(pipes(4)))
        daemon.process.send_signal(signal.SIGHUP)
        reloading = systemd.until("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        again = systemd.until("READY")
        assert again["STATUS"] == "4 pipes: 4 idle, 0 running, 0 failed"
        listed = httpx.get(daemon.url + "/pipes", headers=daemon.headers).json()
        assert sorted(p["_id"] for p in listed) == ["p0", "p1", "p2", "p3"]

        assert daemon.terminate() == 0
    assert systemd.until("STOPPING")["STOPPING"] == "1"


def test_sighup_with_an_invalid_config_file_keeps_the_running_config(tmp_path: Path, systemd: FakeSystemd) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(pipes(2)))
    with serve_process(tmp_path / "data", "--config", str(config), "--poll-interval", "3600") as daemon:
        systemd.until("READY")
        config.write_text("[{")
        daemon.process.send_signal(signal.SIGHUP)
        systemd.until("RELOADING")
        assert systemd.until("READY")["STATUS"] == "2 pipes: 2 idle, 0 running, 0 failed"
        assert daemon.terminate() == 0
    assert "keeping the running config" in daemon.log.read_text()


def test_a_stalled_loop_stops_the_pings(tmp_path: Path, systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESAMD_TEST_STALL_AFTER", "1")
    with serve_process(tmp_path / "data") as daemon:
        systemd.until("READY")
        assert systemd.until("WATCHDOG", timeout=5)  # pinging while the loop runs
        # after the stall begins nothing comes: a silence of ten ping intervals, twice
        while systemd.receive(timeout=2) is not None:
            pass
        assert systemd.receive(timeout=2) is None
        assert daemon.process.poll() is None  # alive, but stuck: systemd would restart it
    assert "blocking the event loop" in daemon.log.read_text()


def test_sigterm_during_a_long_pump_says_stopping_exits_0_and_keeps_whole_batches(
        tmp_path: Path, systemd: FakeSystemd) -> None:
    many = [{"_id": f"{i:06}", "n": i, "text": "x" * 200} for i in range(30000)]
    config = tmp_path / "config.json"
    config.write_text(json.dumps([{"_id": "big", "type": "pipe", "batch_size": 100, "pump": {"mode": "manual"},
                                   "source": {"type": "embedded", "entities": many}}]))
    data = tmp_path / "data"
    with serve_process(data, "--config", str(config)) as daemon:
        systemd.until("READY")
        started = httpx.post(daemon.url + "/pipes/big/pump", data={"operation": "start"}, headers=daemon.headers)
        assert started.status_code == 200, started.text
        pump = httpx.get(daemon.url + "/pipes/big/pump", headers=daemon.headers).json()
        assert pump["runtime"]["is-running"] is True
        daemon.process.send_signal(signal.SIGTERM)
        assert systemd.until("STOPPING")["STOPPING"] == "1"
        assert daemon.process.wait(60) == 0
    check = subprocess.run([sys.executable, "-m", "sesamd._cli", "dataset", "check", "big", "--data-dir", str(data)],
                           cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with storage.DataDir(data).open_dataset("big", create=False) as dataset:
        assert storage.check_dataset(dataset) == []
        count = dataset.counts()["log"]
        assert count % 100 == 0 and count > 0  # whole batches only
        ids = [e["_id"] for e in dataset.iter_entities()]
    assert ids == [f"{i:06}" for i in range(count)]  # the first batches, each entity once
