"""The ``csv_endpoint`` sink: publishes the pipe's output as CSV at ``GET /api/publishers/<pipe>/csv[/<filename>]``
(node-spec 8.6), written with Python's :mod:`csv` module as Sesam's is.

Cells: a missing or null value is empty; a decimal (``~f``) its number; a datetime (``~t``) its ISO text; a
list or object compact JSON; other strings (NIs and URIs in wire form included) as they are; booleans and
numbers as Python writes them."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import storage

from ._base import BuildContext
from ._publisher import PUBLISHER_PROPERTIES, Publisher
from ._registry import ConfigError, component

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "non-numeric": csv.QUOTE_NONNUMERIC,
           "none": csv.QUOTE_NONE}
_ONE_CHAR = {"type": "string", "minLength": 1, "maxLength": 1}


@component("sink", "csv_endpoint", {
    "required": ["columns"],
    "properties": {
        **PUBLISHER_PROPERTIES,
        "columns": {"type": "array", "minItems": 1, "items": {"type": "string"},
                    "description": "the entity keys written, in order; also the header"},
        "quoting": {"enum": list(QUOTING), "default": "minimal"},
        "delimiter": {**_ONE_CHAR, "default": ","},
        "doublequote": {"type": "boolean", "default": True},
        "escapechar": {"anyOf": [_ONE_CHAR, {"type": "null"}], "default": None},
        "lineterminator": {"type": "string", "minLength": 1, "default": "\r\n"},
        "quotechar": {**_ONE_CHAR, "default": '"'},
        "include_header": {"type": "boolean", "default": True},
        "byte_order_mark": {"type": "boolean", "default": False},
        "encoding": {"type": "string", "minLength": 1, "default": "utf-8"},
        "encode_error_strategy": {"enum": ["backslashreplace", "ignore", "replace", "xmlcharrefreplace", "strict"],
                                  "default": "backslashreplace"},
        "skip-deleted-entities": {"type": "boolean", "default": True},
    },
})
class CsvEndpointSink(Publisher):
    """Streams a header (unless ``include_header`` is false), then a row per entity, a batch per chunk."""

    publishes = "csv"
    media_type = "text/csv"

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        where = f"pipe {context.pipe_id}: {context.where}"
        self.columns: list[str] = list(config["columns"])
        self.encoding = config.get("encoding", "utf-8")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"unknown encoding {self.encoding!r}", where=f"{where}.encoding") from None
        self.errors = config.get("encode_error_strategy", "backslashreplace")
        self.dialect = {
            "quoting": QUOTING[config.get("quoting", "minimal")],
            "delimiter": config.get("delimiter", ","),
            "doublequote": config.get("doublequote", True),
            "escapechar": config.get("escapechar"),
            "lineterminator": config.get("lineterminator", "\r\n"),
            "quotechar": config.get("quotechar", '"'),
        }
        try:
            csv.writer(io.StringIO(), **self.dialect).writerow(["a b", 'c"d'])
        except (csv.Error, TypeError) as exc:
            raise ConfigError(f"the CSV dialect cannot write: {exc}", where=where) from None
        self.skip_deleted = config.get("skip-deleted-entities", True)
        self.media_type = f"text/csv; charset={self.encoding}"

    def render(self, batches: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, **self.dialect)
        encoder = codecs.getincrementalencoder(self.encoding)(self.errors)  # a utf-16 BOM once, not per chunk
        if self.config.get("byte_order_mark", False) and not self.encoding.lower().startswith(("utf-16", "utf-32")):
            buffer.write("\ufeff")
        if self.config.get("include_header", True):
            writer.writerow(self.columns)
        columns, skip = self.columns, self.skip_deleted
        for batch in batches:
            for entity in batch:
                if skip and entity.get("_deleted") is True:
                    continue
                writer.writerow([cell(entity.get(column)) for column in columns])
            yield _take(buffer, encoder)
        yield _take(buffer, encoder) + encoder.encode("", final=True)


def _take(buffer: io.StringIO, encoder: codecs.IncrementalEncoder) -> bytes:
    """What ``buffer`` holds, encoded; the buffer is emptied."""
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return encoder.encode(text)


def cell(value: Any) -> Any:
    """The CSV cell of a wire-form value (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if value.startswith("~f"):
            return storage.decode(value)
        if value.startswith("~t"):
            return value[2:]
        return value
    if isinstance(value, list | dict):
        return storage.dumps(value).decode()
    return value
