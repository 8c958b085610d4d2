"""JSON in and out of the node, in wire form.

JSON from outside (files, HTTP bodies) is parsed so that numbers with a fraction or an exponent become
Decimals that keep their literal digits: in wire form that is the transit string ``"~f" + literal``
(``22.10`` becomes ``"~f22.10"``). Integers stay ints of any size. msgspec does this fastest (measured
in ``scripts/bench/storage.py``: about 2x the stdlib with ``parse_float``, and it keeps big integers).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

import msgspec
import orjson

__all__ = ["JSONError", "parse_json", "iter_json_entities", "dumps", "canonical", "loads"]


class JSONError(ValueError):
    """Bad JSON input, with the place it was found (line and column, 1-based)."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        if line is not None and column is not None:
            where = f"line {line}, column {column}: "
        super().__init__(where + message)
        self.line = line
        self.column = column


def _decimal_literal(text: str) -> str:
    return "~f" + text


_external = msgspec.json.Decoder(float_hook=_decimal_literal)
_sorted_encoder = msgspec.json.Encoder(order="sorted")
_plain_encoder = msgspec.json.Encoder()

loads = msgspec.json.decode
"""Parse JSON that the node wrote itself (floats stay floats)."""


def _position(text: bytes | str, offset: int) -> tuple[int, int]:
    if isinstance(text, bytes):
        text = text[:offset].decode("utf-8", "replace")
        offset = len(text)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def parse_json(data: bytes | str) -> Any:
    """Parse JSON from outside into wire form (fractions become ``~f`` literals)."""
    try:
        return _external.decode(data)
    except msgspec.DecodeError as exc:
        message = str(exc)
        offset = _error_offset(message)
        if offset is None:
            raise JSONError(f"invalid JSON: {message}") from None
        line, column = _position(data, offset)
        raise JSONError(f"invalid JSON: {message}", line=line, column=column) from None


def _error_offset(message: str) -> int | None:
    marker = "(byte "
    start = message.rfind(marker)
    if start < 0:
        return None
    digits = message[start + len(marker):].rstrip(")")
    return int(digits) if digits.isdigit() else None


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of a wire-form value (any int size)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _plain_encoder.encode(value)


def canonical(value: Any) -> bytes:
    """The canonical bytes of a wire-form value: keys sorted at every depth, compact, UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _sorted_encoder.encode(value)


_stdlib_decoder = json.JSONDecoder(parse_float=_decimal_literal)
_WHITESPACE = " \t\r\n"


def iter_json_entities(stream: IO[bytes], *, chunk_size: int = 1 << 20) -> Iterator[tuple[Any, int]]:
    """Stream the items of a JSON array, or of NDJSON, from a binary file, without loading it whole.

    Yields ``(item, line)`` with the 1-based line where the item starts. Raises :class:`JSONError`
    with the line and column of the first problem.
    """
    buffer = ""
    pending = b""
    eof = False
    line_base = 1  # the line number of buffer[0]

    def fill() -> bool:
        nonlocal buffer, pending, eof
        if eof:
            return False
        chunk = stream.read(chunk_size)
        if not chunk:
            eof = True
            if pending:
                raise JSONError("invalid UTF-8 at end of input")
            return False
        data = pending + chunk
        try:
            text = data.decode("utf-8")
            pending = b""
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 3:
                line = line_base + buffer.count("\n") + data.count(b"\n", 0, exc.start)
                raise JSONError("invalid UTF-8", line=line) from None
            text, pending = data[: exc.start].decode("utf-8"), data[exc.start:]
        buffer += text
        return True

    def skip_ws(pos: int, whitespace: str = _WHITESPACE) -> int:
        while True:
            while pos < len(buffer) and buffer[pos] in whitespace:
                pos += 1
            if pos < len(buffer) or not fill():
                return pos

    def where(pos: int) -> tuple[int, int]:
        line, column = _position(buffer, pos)
        return line_base + line - 1, column

    def compact(pos: int) -> int:
        nonlocal buffer, line_base
        if pos > (1 << 16):
            line_base += buffer.count("\n", 0, pos)
            buffer = buffer[pos:]
            return 0
        return pos

    def value_at(pos: int) -> tuple[Any, int]:
        while True:
            try:
                return _stdlib_decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if fill():
                    continue
                line, column = where(exc.pos)
                raise JSONError(f"invalid JSON: {exc.msg}", line=line, column=column) from None

    pos = skip_ws(0)
    if pos >= len(buffer):
        return
    if buffer[pos] != "[":
        # NDJSON: one value per line.
        while True:
            pos = skip_ws(pos)
            if pos >= len(buffer):
                return
            start_line, _ = where(pos)
            item, end = value_at(pos)
            yield item, start_line
            pos = skip_ws(compact(end), " \t\r")  # the rest of the line must be blank
            if pos < len(buffer) and buffer[pos] != "\n":
                line, column = where(pos)
                raise JSONError("expected a new line after a value", line=line, column=column)
    pos = skip_ws(pos + 1)
    if pos < len(buffer) and buffer[pos] == "]":
        pos += 1
    else:
        while True:
            pos = skip_ws(pos)
            if pos >= len(buffer):
                line, column = where(pos)
                raise JSONError("unexpected end of input inside the array", line=line, column=column)
            start_line, _ = where(pos)
            item, end = value_at(pos)
            yield item, start_line
            pos = skip_ws(compact(end))
            if pos < len(buffer) and buffer[pos] == ",":
                pos += 1
                continue
            if pos < len(buffer) and buffer[pos] == "]":
                pos += 1
                break
            line, column = where(pos)
            raise JSONError("expected ',' or ']' after an array item", line=line, column=column)
    pos = skip_ws(pos)
    if pos < len(buffer):
        line, column = where(pos)
        raise JSONError("unexpected data after the array", line=line, column=column)
