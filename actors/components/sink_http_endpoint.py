"""The ``http_endpoint`` sink: publishes the pipe's output as JSON Pull at
``GET /api/publishers/<pipe>/entities[/<filename>]`` (node-spec 8.3, 9.2)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import storage

from ._publisher import PUBLISHER_PROPERTIES, Publisher
from ._registry import component


@component("sink", "http_endpoint", {"properties": dict(PUBLISHER_PROPERTIES)})
class HttpEndpointSink(Publisher):
    """Streams the entities (deleted ones too) as one JSON array, a batch per chunk."""

    publishes = "entities"
    media_type = "application/json"

    def render(self, batches: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
        dumps = storage.dumps
        prefix = b"["
        for batch in batches:
            if batch:
                yield prefix + b",".join(dumps(e) for e in batch)
                prefix = b","
        yield b"[]" if prefix == b"[" else b"]"
