"""A scratch OpenLDAP directory for the ``ldap`` components' tests: a real ``slapd`` of its own.

:func:`scratch_directory` starts ``/usr/sbin/slapd`` on 127.0.0.1 on a free port, with its own data directory
(a ``slapd.conf`` with one ``mdb`` database for :data:`SUFFIX`, its root DN and password, the core, cosine
and inetorgperson schemas of ``/etc/ldap/schema``), waits until it answers, and at the end kills it, waits
for it and removes its files. The :class:`ScratchDirectory` adds, modifies and deletes entries (as the root
DN, through ``ldap3``) and gives the config of a ``system:ldap`` on it. Besides the suffix's entry the
directory has ``ou=people`` and a reader account (:data:`READER`) that binds with :data:`READER_PASSWORD`
and, unlike the root DN, is held to the server's size limit (``size_limit``), so that a search that would
return more entries than that without paging fails. Runs as root (slapd keeps the user it was started as).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

__all__ = ["READER", "READER_PASSWORD", "ROOT", "ROOT_PASSWORD", "SLAPD", "SUFFIX", "ScratchDirectory",
           "scratch_directory"]

SLAPD = "/usr/sbin/slapd"
SCHEMAS = "/etc/ldap/schema"
MODULES = "/usr/lib/ldap"
SUFFIX = "dc=example,dc=org"
ROOT = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
READER = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
START_TIMEOUT = 15.0

CONFIG = """\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
modulepath {modules}
moduleload back_mdb
pidfile {directory}/slapd.pid
sizelimit size.soft={size_limit} size.hard={size_limit} size.prtotal=unlimited
database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{root}"
rootpw {root_password}
directory {directory}/data
access to * by * read
"""


class ScratchDirectory:
    """A running slapd of one test: its port, entries to add and change, and the config of a system on it."""

    def __init__(self, port: int, directory: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.directory = directory
        self.process = process
        self.host = "127.0.0.1"
        self.opened: list[Any] = []

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    def system_config(self, **extra: Any) -> dict[str, Any]:
        """A ``system:ldap`` ``dir`` on this server, bound as the reader (``extra`` wins)."""
        return {"_id": "dir", "type": "system:ldap", "host": self.host, "port": self.port, "username": READER,
                "password": READER_PASSWORD, "connect_timeout": 5, **extra}

    def system(self, **extra: Any) -> Any:
        """The ``system:ldap``, built and opened (closed when the directory goes)."""
        from .components import build_system

        system = build_system(self.system_config(**extra))
        trio.run(system.open)
        self.opened.append(system)
        return system

    def connection(self) -> Any:
        """A new connection bound as the root DN (the caller unbinds it)."""
        import ldap3

        server = ldap3.Server(self.host, port=self.port, connect_timeout=5)
        return ldap3.Connection(server, ROOT, ROOT_PASSWORD, auto_bind=True, raise_exceptions=True,
                                receive_timeout=30)

    def add(self, *entries: tuple[str, dict[str, Any]]) -> None:
        """Add entries, each ``(dn, attributes)`` with ``objectClass`` among the attributes."""
        connection = self.connection()
        try:
            for dn, attributes in entries:
                attributes = dict(attributes)
                classes = attributes.pop("objectClass")
                connection.add(dn, classes, attributes)
        finally:
            connection.unbind()

    def replace(self, dn: str, **attributes: Any) -> None:
        """Replace the values of attributes of an entry (an empty list removes the attribute)."""
        import ldap3

        connection = self.connection()
        try:
            connection.modify(dn, {name: [(ldap3.MODIFY_REPLACE, value if isinstance(value, list) else [value])]
                                   for name, value in attributes.items()})
        finally:
            connection.unbind()

    def delete(self, *dns: str) -> None:
        connection = self.connection()
        try:
            for dn in dns:
                connection.delete(dn)
        finally:
            connection.unbind()

    def stop(self) -> None:
        """Kill slapd and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    import ldap3

    try:
        connection = ldap3.Connection(ldap3.Server("127.0.0.1", port=port, connect_timeout=1), ROOT, ROOT_PASSWORD,
                                      receive_timeout=2)
        if not connection.bind():
            return False
        connection.unbind()
        return True
    except ldap3.core.exceptions.LDAPException:
        return False


def _start(directory: Path, size_limit: int) -> tuple[int, subprocess.Popen[bytes]]:
    """Start slapd on a free port (another try on a port taken in the meantime); returns it once it answers."""
    config = directory / "slapd.conf"
    config.write_text(CONFIG.format(schemas=SCHEMAS, modules=MODULES, directory=directory, suffix=SUFFIX, root=ROOT,
                                    root_password=ROOT_PASSWORD, size_limit=size_limit))
    (directory / "data").mkdir(exist_ok=True)
    failures = []
    for _attempt in range(3):
        port = free_port()
        log = (directory / "slapd.log").open("wb")
        process = subprocess.Popen([SLAPD, "-d", "0", "-f", str(config), "-h", f"ldap://127.0.0.1:{port}/"],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return port, process
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        failures.append((directory / "slapd.log").read_text(errors="replace")[-2000:])
    raise RuntimeError(f"slapd did not start: {failures[-1]}")


@contextmanager
def scratch_directory(size_limit: int = 100) -> Iterator[ScratchDirectory]:
    """A slapd of its own with the suffix, ``ou=people`` and the reader account; stopped and removed at the end."""
    if not os.path.exists(SLAPD):
        raise RuntimeError(f"{SLAPD} is not installed (apt-get install slapd; scripts/test installs it)")
    directory = Path(tempfile.mkdtemp(prefix="sesamd-slapd-"))
    process = None
    try:
        port, process = _start(directory, size_limit)
        scratch = ScratchDirectory(port, directory, process)
        scratch.add((SUFFIX, {"objectClass": ["dcObject", "organization"], "dc": "example", "o": "Example"}),
                    (f"ou=people,{SUFFIX}", {"objectClass": ["organizationalUnit"], "ou": "people"}),
                    (READER, {"objectClass": ["organizationalRole", "simpleSecurityObject"], "cn": "reader",
                              "userPassword": READER_PASSWORD}))
        try:
            yield scratch
        finally:
            for opened in scratch.opened:
                trio.run(opened.close)
    finally:
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
