"""Live-feed subscribers for the API benchmark, in a child process of their own: one thread, ``selectors``
over N plain sockets, wsproto for the websocket handshake and frames.

Why not trio-websocket in the bench process: on the bench's 2-core machine the subscribers share the cores
with the server they measure, and a trio-websocket subscriber costs about 300 us of CPU per frame received
(Trio's task switches and the library's own work) against about 9 us for wsproto's parsing alone; 50 of them
used 3-5 s of CPU per 1M-entity run, as much CPU as a tenth of a core taken from the pump. Here a frame costs
a ``recv``, wsproto and ``orjson.loads``. The process's CPU is reported beside the pump's figures.

Child: ``python _feed_clients.py ARGS_JSON`` prints ``ready`` once every subscriber got its ``subscribed``
event, then, when every subscriber got the pipe's ``pump-completed`` (or ``-failed``), one JSON line:
``{"received": [[[receive time, event], ...] per subscriber]}``. Parent: :class:`FeedClients`.
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import psutil
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, RejectConnection, Request, TextMessage

ENDS = ("pump-completed", "pump-failed")
RECV_SIZE = 1 << 18


class _Subscriber:
    """One websocket connection and what it received, as (receive time, event)."""

    def __init__(self, host: str, port: int, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.done = False
        self._text: list[str] = []
        self.sock.sendall(self.conn.send(Request(host=f"{host}:{port}", target=target, extra_headers=headers)))

    def handshake(self) -> None:
        """Block until the server accepted the upgrade and sent the ``subscribed`` event."""
        accepted = False
        while True:
            data = self.sock.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
            self.conn.receive_data(data)
            for event in self.conn.events():
                if isinstance(event, RejectConnection):
                    raise ConnectionError(f"the feed refused the upgrade: {event.status_code}")
                if isinstance(event, AcceptConnection):
                    accepted = True
                elif accepted and isinstance(event, TextMessage):
                    self._text.append(event.data)
                    if event.message_finished:
                        first = orjson.loads("".join(self._text))
                        self._text.clear()
                        if first.get("type") != "subscribed":
                            raise ConnectionError(f"the feed answered {first}")
                        self.sock.setblocking(False)
                        return

    def readable(self, pipe: str) -> None:
        """Take what the socket holds; ``done`` once the pipe's run ended."""
        data = self.sock.recv(RECV_SIZE)
        received = time.time()
        if not data:
            raise ConnectionError("the server closed a subscriber's connection before the run ended")
        self.conn.receive_data(data)
        for event in self.conn.events():
            if isinstance(event, TextMessage):
                self._text.append(event.data)
                if not event.message_finished:
                    continue
                message = orjson.loads("".join(self._text))
                self._text.clear()
                kind = message.get("type")
                if kind in ("ping", "pong"):
                    continue
                self.got.append((received, message))
                if kind in ENDS and message.get("pipe") == pipe:
                    self.done = True
            elif isinstance(event, Ping):
                self.sock.setblocking(True)
                self.sock.sendall(self.conn.send(event.response()))
                self.sock.setblocking(False)
            elif isinstance(event, CloseConnection):
                raise ConnectionError(f"the server closed the feed: {event.code} {event.reason}")

    def close(self) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.sendall(self.conn.send(CloseConnection(code=1000)))
        except OSError:
            pass
        self.sock.close()


def subscribe(ws_url: str, token: str, pipe: str, types: str, count: int, timeout: float) -> list[list[Any]]:
    """Connect ``count`` subscribers to ``{ws_url}/events``, say ``ready``, collect until the run ended."""
    url = urlsplit(ws_url)
    target = f"{url.path}/events?pipes={pipe}&types={types}"
    headers = [(b"Authorization", f"Bearer {token}".encode())]
    subscribers = [_Subscriber(url.hostname or "127.0.0.1", url.port or 80, target, headers) for _ in range(count)]
    for subscriber in subscribers:
        subscriber.handshake()
    print("ready", flush=True)
    selector = selectors.DefaultSelector()
    for subscriber in subscribers:
        selector.register(subscriber.sock, selectors.EVENT_READ, subscriber)
    deadline = time.monotonic() + timeout
    waiting = count
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{waiting} subscribers did not see the run of {pipe} end in {timeout:.0f} s")
        for key, _mask in selector.select(1.0):
            subscriber = key.data
            subscriber.readable(pipe)
            if subscriber.done:
                selector.unregister(subscriber.sock)
                subscriber.close()
                waiting -= 1
    return [subscriber.got for subscriber in subscribers]


class FeedClients:
    """The parent's handle on a subscriber child: start, wait until subscribed, its CPU, the events."""

    def __init__(self, ws_url: str, token: str, pipe: str, types: str, count: int, timeout: float = 7200) -> None:
        args = {"ws_url": ws_url, "token": token, "pipe": pipe, "types": types, "count": count, "timeout": timeout}
        self.process = subprocess.Popen([sys.executable, __file__, json.dumps(args)], stdout=subprocess.PIPE)
        self._ps = psutil.Process(self.process.pid)

    def wait_ready(self) -> None:
        """Block until every subscriber is subscribed (the child says ``ready``)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.process.wait(30)
            raise AssertionError(f"the subscribers did not connect (exit code {self.process.returncode})")

    def cpu(self) -> float:
        """CPU seconds (user + system) the subscribers have used so far."""
        times = self._ps.cpu_times()
        return times.user + times.system

    def results(self, timeout: float) -> list[list[Any]]:
        """Block until the child ends; what every subscriber received."""
        out, _ = self.process.communicate(timeout=timeout)
        if self.process.returncode != 0:
            raise AssertionError(f"the subscribers failed (exit code {self.process.returncode})")
        return orjson.loads(out)["received"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    received = subscribe(args["ws_url"], args["token"], args["pipe"], args["types"], args["count"], args["timeout"])
    sys.stdout.buffer.write(orjson.dumps({"received": received}) + b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
