"""The ``http_endpoint`` source: a JSON Push receiver (node-spec 6.5, 9.1).

Entities arrive at ``POST /api/receivers/<pipe>/entities`` and go through the pipe's transforms into its
sink (the node's :mod:`sesamd._receiver`); there is no pump to run, so :meth:`read` refuses, and the pump
never schedules the pipe (``receives``). ``do_float_as_decimal`` and ``do_float_as_int`` are accepted with
their defaults only: numbers with a fraction are decimals, as everywhere in the node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._base import Source
from ._errors import TerminalError
from ._registry import component


@component("source", "http_endpoint", {
    "properties": {
        "auto_populate_dataset": {"type": "boolean"},
        "do_float_as_decimal": {"const": True},
        "do_float_as_int": {"const": True},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class HttpEndpointSource(Source):
    """Receives pushed entities; reads nothing by itself."""

    adds_namespaces = True

    receives = True

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        raise TerminalError(f"pipe {self.context.pipe_id} receives its entities at POST /api/receivers/"
                            f"{self.context.pipe_id}/entities: it has no pump to run")
