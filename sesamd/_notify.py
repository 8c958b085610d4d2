"""sd_notify: telling systemd (``Type=notify``) that the node is ready, alive, reloading or stopping.

The core is sans-IO: the messages are frozen dataclasses, :func:`encode` turns them into one datagram
(newline-separated ``KEY=VALUE`` assignments, as ``sd_notify(3)`` sends), and :func:`watchdog_interval` /
:func:`loop_healthy` are the watchdog's arithmetic. :class:`Notifier` is the thin driver: it sends datagrams
to ``$NOTIFY_SOCKET`` (a path, or an abstract socket written ``@name``) and does nothing when the variable is
unset, so a node run by hand behaves as before. A failed send is logged once and never stops the node.

:func:`watchdog` is the Trio task that pings: every half of ``$WATCHDOG_USEC`` it sends ``WATCHDOG=1``,
but only if its own sleep ended on time (its scheduling lag, how late the loop woke it, is under the
interval). A loop blocked by a stuck call never wakes the task at all, so the pings stop and systemd
restarts the service after ``WatchdogSec``; a loop that was merely starved for longer than the interval
skips that ping and logs it.

Test hook: :func:`testing_stall_after` reads ``SESAMD_TEST_STALL_AFTER`` (seconds). When set, ``serve`` blocks
its own Trio loop that many seconds after READY (a ``time.sleep`` in the loop's thread, for an hour), which
is how the tests show that a stuck loop stops the pings. Nothing else reads it; never set it in production.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import trio

__all__ = ["Notifier", "Ready", "Reloading", "Status", "Stopping", "Watchdog", "encode", "loop_healthy",
           "stall_loop", "testing_stall_after", "watchdog",
           "watchdog_interval"]

log = logging.getLogger("sesamd.notify")


@dataclass(frozen=True)
class Ready:
    """The service is up: the API listens and the config is applied (also after a reload)."""

    def fields(self) -> dict[str, str]:
        return {"READY": "1"}


@dataclass(frozen=True)
class Status:
    """A one-line status that ``systemctl status`` shows."""

    text: str

    def fields(self) -> dict[str, str]:
        return {"STATUS": " ".join(self.text.split())}  # one line


@dataclass(frozen=True)
class Watchdog:
    """The loop is alive (``WatchdogSec=``)."""

    def fields(self) -> dict[str, str]:
        return {"WATCHDOG": "1"}


@dataclass(frozen=True)
class Stopping:
    """The service is shutting down (SIGTERM)."""

    def fields(self) -> dict[str, str]:
        return {"STOPPING": "1"}


@dataclass(frozen=True)
class Reloading:
    """A reload (SIGHUP) began at ``monotonic_usec`` (CLOCK_MONOTONIC); a :class:`Ready` ends it."""

    monotonic_usec: int

    @classmethod
    def now(cls) -> Reloading:
        return cls(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def fields(self) -> dict[str, str]:
        return {"RELOADING": "1", "MONOTONIC_USEC": str(self.monotonic_usec)}


Message = Ready | Status | Watchdog | Stopping | Reloading


def encode(*messages: Message) -> bytes:
    """One datagram with every message's assignments, in order."""
    lines = [f"{key}={value}" for message in messages for key, value in message.fields().items()]
    return ("\n".join(lines) + "\n").encode()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when the watchdog is off or meant for
    another process (``WATCHDOG_PID``)."""
    watched = environ.get("WATCHDOG_PID")
    if watched and watched.strip() != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


def loop_healthy(lag: float, interval: float) -> bool:
    """Whether a ping is due: the pinging task woke less than one interval late."""
    return lag < interval


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET``; without it (``address=None``) every send is a no-op."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        return cls((os.environ if environ is None else environ).get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *messages: Message) -> bool:
        """Send one datagram; False if there is no socket or the send failed (logged once)."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)
            self._socket.sendto(encode(*messages), target)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address, exc.strerror or exc)
                self._warned = True
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


async def watchdog(notifier: Notifier, interval: float, clock: Callable[[], float] = trio.current_time) -> None:
    """Ping every ``interval`` seconds while the loop wakes this task on time (see the module docstring)."""
    while True:
        before = clock()
        await trio.sleep(interval)
        lag = clock() - before - interval
        if loop_healthy(lag, interval):
            notifier.send(Watchdog())
        else:
            log.warning("the event loop was %.1f s late: watchdog ping skipped", lag)


def testing_stall_after(environ: Mapping[str, str] | None = None) -> float | None:
    """Test-only: the seconds after READY at which ``serve`` blocks its loop (``SESAMD_TEST_STALL_AFTER``)."""
    value = (os.environ if environ is None else environ).get("SESAMD_TEST_STALL_AFTER")
    return float(value) if value else None


def stall_loop() -> None:
    """Test-only: block the calling thread (the Trio loop) for an hour, as a stuck call would."""
    log.warning("SESAMD_TEST_STALL_AFTER: blocking the event loop (a test hook)")
    time.sleep(3600)
