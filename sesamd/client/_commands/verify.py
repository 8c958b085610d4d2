"""``verify`` and ``update`` (client-spec 6.9, 6.10): the tested pipes' current output, read from the node,
against ``expected/``; :class:`NodeOutput` is the :class:`~sesamd.client._verify.OutputReader` over a
:class:`~sesamd.client.Connection`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .._connection import Connection
from .._errors import ApiError, ClientError
from .._expected import Options
from .._output import log
from .._verify import OutputReader
from .._verify import update as update_project
from .._verify import verify as verify_project
from ._context import Context

__all__ = ["NodeOutput", "options", "update", "verify"]

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class NodeOutput(OutputReader):
    """A pipe's current output from the node: its entities, or a publisher's body (the pump enabled first
    when it is disabled, client-spec 8.7)."""

    def __init__(self, node: Connection) -> None:
        self.node = node

    def entities(self, pipe_id: str, stage: str | None) -> list[dict]:
        return self.node.pipe_entities(pipe_id, stage)

    def publisher(self, pipe_id: str, endpoint: str, parameters: Mapping | None) -> bytes:
        pump = self.node.pump(pipe_id)
        if (pump.get("runtime") or {}).get("is-disabled"):
            log.debug("Enabling the disabled pump of '%s' to read its publisher", pipe_id)
            enabled = self.node.pump_operation(pipe_id, "enable")
            if (enabled.get("runtime") or {}).get("is-disabled"):
                raise ApiError(f"POST /pipes/{pipe_id}/pump: the pump is still disabled after 'enable'",
                               status=200, body=enabled)
        return self.node.publisher(pipe_id, endpoint, parameters)


def options(context: Context) -> Options:
    """The verify/update switches of the command line."""
    args = context.args
    return Options(large_int_bugs=not args.no_large_int_bugs, unicode_encoding=args.unicode_encoding,
                   html_escape=not args.disable_json_html_escape)


def _log(level: str, message: str) -> None:
    log.log(LEVELS.get(level, logging.INFO), "%s", message)


def _whitelist(context: Context) -> frozenset[str] | None:
    whitelist = context.project.whitelist
    return None if whitelist is None else whitelist.pipes


def verify(context: Context) -> None:
    """Fail unless every tested pipe's output matches its specs."""
    node = context.node
    report = verify_project(context.project.root, node.pipes(), NodeOutput(node), options(context), _log,
                            whitelist=_whitelist(context))
    if not report.ok:
        parts = [f"{len(report.failed)} of {report.ran} tests failed"] if report.failed else []
        if report.missing:
            parts.append(f"{len(report.missing)} pipes have no test")
        if report.errors:
            parts.append(f"{len(report.errors)} test specs are wrong")
        raise ClientError(f"Verify failed: {', '.join(parts) or 'see above'}")


def update(context: Context) -> None:
    """Write the tested pipes' output as their expected output."""
    node = context.node
    report = update_project(context.project.root, node.pipes(), NodeOutput(node), options(context), _log,
                            whitelist=_whitelist(context))
    if not report.ok:
        raise ClientError("Found no tests (*.test.json) to update")
