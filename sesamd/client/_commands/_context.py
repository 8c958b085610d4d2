"""What a command works with: the parsed options, the project in the working directory, and the node (a
:class:`~sesamd.client.Connection` made on first use from the options, ``NODE``/``JWT`` and the sync config
file, after the developer-mode check of client-spec 1.4)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .._connection import Connection
from .._errors import ClientError
from .._output import TRACE, log
from .._project import MetadataOptions, Project
from .._syncconfig import check_jwt, resolve

__all__ = ["NOT_DEVELOPER", "Context", "wait_until"]

NOT_DEVELOPER = ("The targeted Sesam subscription is not a developer environment, please contact "
                 "support@sesam.io if this is unexpected.")
REQUEST_TIMEOUT = 600.0  # seconds for one API call (sesam-py's); run-all-pipes and stop have none


@dataclass
class Context:
    """One command's options (``args``), working directory, extra words and verbosity (0-3)."""

    args: argparse.Namespace
    cwd: Path
    words: list[str] = field(default_factory=list)
    verbosity: int = 0
    force_allowed: bool = False  # set by commands that -force lets past the developer-mode check
    _project: Project | None = None
    _node: Connection | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project.open(self.cwd, profile=self.args.profile,
                                         whitelist_file=self.args.whitelist_file)
        return self._project

    @property
    def node(self) -> Connection:
        """The node, checked to be reachable, authorised and in developer mode."""
        if self._node is None:
            settings = resolve(self.args.node, self.args.jwt, file_name=self.args.sync_config_file, cwd=self.cwd)
            check_jwt(settings.jwt)
            where = f" (from {settings.file})" if settings.file else ""
            log.debug("Connecting to %s%s", settings.node, where)
            node = Connection(settings.node, settings.jwt, timeout=REQUEST_TIMEOUT,
                              verify=not self.args.skip_tls_verification)
            if self.verbosity >= 2:
                node.http.event_hooks["response"] = [_trace]
            try:
                _check_developer_mode(node, self.force_allowed, self.args.force)
            except BaseException:
                node.close()
                raise
            self._node = node
        return self._node

    def metadata_options(self) -> MetadataOptions:
        return MetadataOptions(enable_user_pipes=self.args.enable_user_pipes,
                               enable_eager_ms=self.args.enable_eager_ms,
                               disable_cpp_extensions=self.args.disable_cpp_extensions)

    def close(self) -> None:
        if self._node is not None:
            self._node.close()
            self._node = None


def _trace(response: httpx.Response) -> None:
    log.log(TRACE, "%s %s -> %d", response.request.method, response.request.url, response.status_code)


def _check_developer_mode(node: Connection, force_allowed: bool, force: bool) -> None:
    status = node.api_info().get("status")
    if not isinstance(status, dict):
        raise ClientError(f"the node at {node.url} does not say whether it is in developer mode "
                          "(its GET /api/ answer has no 'status')")
    if status.get("developer_mode") or (force_allowed and force):
        return
    raise ClientError(NOT_DEVELOPER + (" To override this check use -force flag." if force_allowed else ""))


def wait_until(done: Callable[[], bool], *, timeout: float, interval: float, what: str) -> None:
    """Call ``done`` every ``interval`` seconds until it is true; a :class:`ClientError` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise ClientError(f"{what}: timed out after {timeout:.0f} seconds")
        time.sleep(interval)
