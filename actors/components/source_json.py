"""The ``json`` source: JSON Pull from a URL system (node-spec 6.6, 9.2).

It GETs ``url`` (relative to the system's ``url_pattern``/``base_url``, or absolute) with the system's
headers and its own, and streams the answer's JSON array or NDJSON in batches: the body is parsed as it
arrives, never loaded whole. With ``supports_since`` an offset is sent as ``since``; ``subset`` is sent
JSON-encoded; ``page_size`` sends ``limit`` and asks again from the last ``_updated`` until a page comes back
short. The request is retried by the pump's ``max_read_retries``/``read_retry_delay`` when it fails
transiently (connect errors, timeouts, 429 and 5xx); a body that breaks off or is not JSON fails the run,
and, as the offset of a non-chronological source only moves at the end of a good run, nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from ._base import CONTINUATION_FLAGS, BuildContext, Source
from ._errors import TerminalError
from ._http import RetryPolicy, SystemLink, json_entities, retry_strategy, send
from ._registry import ConfigError, component


@component("source", "json", {
    "required": ["system", "url"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "url": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "page_size": {"type": "integer", "minimum": 1},
        "subset": {},
        "supports_signalling": {"type": "boolean"},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class JsonSource(Source):
    """Streams the entities of a JSON Pull endpoint."""

    adds_namespaces = True

    settable_flags = frozenset(CONTINUATION_FLAGS)  # all three "default" (node-spec 6.0)

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.link = SystemLink(config, context, what="json source")
        self.page_size: int | None = config.get("page_size")
        if self.page_size is not None and not (self.supports_since and self.is_chronological
                                               and self.is_since_comparable):
            raise ConfigError("'page_size' needs supports_since, is_chronological and is_since_comparable all true",
                              where=f"{self.where}.page_size")
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "max_read_retries", "read_retry_delay",
                                      strategy=retry_strategy(config, context))

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        offset = since if self.supports_since else None
        while True:
            count, last = 0, None
            batch: list[dict[str, Any]] = []
            for entity in self._get(offset):
                batch.append(entity)
                count += 1
                last = entity.get("_updated", last)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            if self.page_size is None or count < self.page_size or last is None or last == offset:
                return
            offset = last

    def _get(self, since: Any | None) -> Iterator[dict[str, Any]]:
        params: dict[str, str] = {}
        if since is not None:
            params["since"] = since if isinstance(since, str) else orjson.dumps(since).decode()
        if "subset" in self.config:
            params["subset"] = orjson.dumps(self.config["subset"]).decode()
        if self.page_size is not None:
            params["limit"] = str(self.page_size)
        url = self.link.url(self.config["url"])
        response = send(self.link.client, "GET", url, policy=self.retries, stream=True, params=params,
                        headers=self.link.headers)
        for index, entity in enumerate(json_entities(response)):
            if type(entity) is not dict:
                raise TerminalError(f"GET {url}: item {index} of the answer is not a JSON object")
            yield entity
