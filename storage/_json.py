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
    """The 1-based line and column (in characters) of an offset (in bytes for ``bytes``)."""
    if isinstance(text, bytes):
        text = text[:offset].decode("utf-8", "replace")
        offset = len(text)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def parse_json(data: bytes | str) -> Any:
    """Parse JSON from outside into wire form (fractions become ``~f`` literals)."""
    try:
        return _external.decode(data)
    except RecursionError:
        raise JSONError("invalid JSON: nested too deeply") from None
    except UnicodeEncodeError:
        raise JSONError("invalid JSON: the text holds a lone surrogate") from None
    except UnicodeDecodeError:
        raise JSONError(_not_utf8(data)) from None
    except msgspec.DecodeError as exc:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")  # msgspec reports offsets in UTF-8 bytes
        if data[:3] == b"\xef\xbb\xbf":  # a byte order mark (allowed, rare): skip it
            return parse_json(data[3:])
        message = str(exc)
        offset = _error_offset(message)
        if offset is None and "truncated" in message:
            offset = len(data)
        elif offset and "trailing characters" in message:
            offset -= 1  # msgspec points just past the first trailing character
        if offset is None:
            raise JSONError(f"invalid JSON: {message}") from None
        line, column = _position(data, offset)
        raise JSONError(f"invalid JSON: {message}", line=line, column=column) from None


def _not_utf8(data: bytes | str) -> str:
    """The message for bytes that are not UTF-8, naming where the first bad byte is."""
    if isinstance(data, bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _position(data, exc.start)
            return f"invalid JSON: the text is not UTF-8 (line {line}, column {column}: byte 0x{data[exc.start]:02x})"
    return "invalid JSON: the text is not UTF-8"


def _error_offset(message: str) -> int | None:
    marker = "(byte "
    start = message.rfind(marker)
    if start < 0:
        return None
    digits = message[start + len(marker):].rstrip(")")
    return int(digits) if digits.isdigit() else None


# orjson would write datetimes, dataclasses and subclasses of JSON types on its own terms; with these
# options it raises instead, and the slow path below rejects every value that is not wire form, so a
# typed value (Decimal, datetime, bytes, NI, ...) passed by mistake is an error, not a plain string that
# hashes like one. (uuid.UUID and Enum members are still written by orjson as strings.)
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_SORTED_STRICT = orjson.OPT_SORT_KEYS | _STRICT
_WIRE_SCALARS = (str, int, float, type(None))


def _check_wire(value: Any) -> None:
    """Raise TypeError unless ``value`` holds only JSON types (dicts with string keys)."""
    if isinstance(value, _WIRE_SCALARS):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            _check_wire(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_wire(item)
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON type (transit-encode typed values first)")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of a wire-form value (any int size); TypeError for other values."""
    try:
        return orjson.dumps(value, option=_STRICT)
    except TypeError:  # a big int (beyond 64 bits), or not wire form
        _check_wire(value)
        return _plain_encoder.encode(value)


def canonical(value: Any) -> bytes:
    """The canonical bytes of a wire-form value: keys sorted at every depth, compact, UTF-8."""
    try:
        return orjson.dumps(value, option=_SORTED_STRICT)
    except TypeError:  # a big int (beyond 64 bits), or not wire form
        _check_wire(value)
        return _sorted_encoder.encode(value)


class _ConstantError(ValueError):
    """NaN, Infinity or -Infinity: the stdlib reads them, JSON does not have them."""


def _reject_constant(name: str) -> Any:
    raise _ConstantError(name)


_stdlib_decoder = json.JSONDecoder(parse_float=_decimal_literal, parse_constant=_reject_constant)
_WHITESPACE = " \t\r\n"
_BOM = "\ufeff"
# A value that parsed up to this close to the end of the buffer may go on in the next chunk (``1`` of
# ``1.5e-3``), and an error this close to the end may be a value cut by the chunk boundary.
_LOOKAHEAD = 16


def iter_json_entities(stream: IO[bytes], *, chunk_size: int = 1 << 20,
                       max_value_chars: int | None = None) -> Iterator[tuple[Any, int]]:
    """Stream the items of a JSON array, or of NDJSON, from a binary file, without loading it whole.

    Yields ``(item, line)`` with the 1-based line where the item starts. Raises :class:`JSONError`
    with the line and column of the first problem; also when one item runs past ``max_value_chars``
    characters (so an endless value cannot fill the memory).
    """
    buffer = ""
    pending = b""
    eof = False
    # Line bookkeeping, kept incrementally so that finding an item's line costs only the text since
    # the previous item: ``cursor`` is a position in ``buffer``, ``cursor_line`` its line and
    # ``cursor_line_start`` where that line starts (negative once compaction dropped its beginning).
    # ``base_line_start`` is where the line of ``buffer[0]`` starts.
    cursor = cursor_line_start = base_line_start = 0
    cursor_line = 1

    def fill() -> bool:
        nonlocal buffer, pending, eof
        if eof:
            return False
        chunk = stream.read(chunk_size)
        if not chunk:
            eof = True
            if pending:
                line, column = where(len(buffer))
                raise JSONError("invalid UTF-8 at end of input", line=line, column=column)
            return False
        data = pending + chunk
        try:
            text = data.decode("utf-8")
            pending = b""
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 3 or exc.reason != "unexpected end of data":
                line, column = where(len(buffer) + len(data[: exc.start].decode("utf-8")))
                raise JSONError("invalid UTF-8", line=line, column=column) from None
            text, pending = data[: exc.start].decode("utf-8"), data[exc.start:]
        buffer += text
        return True

    def fill_more(have: int) -> bool:
        """Read at least as much again as the ``have`` characters of an unfinished value (at least one chunk):
        a value spanning many chunks is then parsed O(log n) times, not once per chunk."""
        target = len(buffer) + max(have, 1)
        grew = False
        while len(buffer) < target and fill():
            grew = True
        return grew

    def skip_ws(pos: int, whitespace: str = _WHITESPACE) -> int:
        while True:
            while pos < len(buffer) and buffer[pos] in whitespace:
                pos += 1
            if pos < len(buffer):
                return pos
            pos = compact(pos)  # endless whitespace must not grow the buffer
            if not fill():
                return pos

    def where(pos: int) -> tuple[int, int]:
        nonlocal cursor, cursor_line, cursor_line_start
        if pos < cursor:  # rare (an error inside an item): count back from the cursor
            newline = buffer.rfind("\n", 0, pos)
            line_start = newline + 1 if newline >= 0 else base_line_start
            return cursor_line - buffer.count("\n", pos, cursor), pos - line_start + 1
        newlines = buffer.count("\n", cursor, pos)
        if newlines:
            cursor_line += newlines
            cursor_line_start = buffer.rfind("\n", cursor, pos) + 1
        cursor = pos
        return cursor_line, pos - cursor_line_start + 1

    def compact(pos: int) -> int:
        nonlocal buffer, cursor, cursor_line_start, base_line_start
        if pos > (1 << 16):
            where(pos)
            buffer = buffer[pos:]
            cursor = 0
            cursor_line_start -= pos
            base_line_start = cursor_line_start
            return 0
        return pos

    def value_at(pos: int) -> tuple[Any, int]:
        while True:
            try:
                item, end = _stdlib_decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                truncated = exc.pos >= len(buffer) - _LOOKAHEAD or exc.msg.startswith("Unterminated string")
                if truncated and max_value_chars is not None and len(buffer) - pos > max_value_chars:
                    line, column = where(pos)
                    raise JSONError(f"the value starting here is longer than {max_value_chars} characters",
                                    line=line, column=column) from None
                if truncated and fill_more(len(buffer) - pos):
                    continue
                line, column = where(exc.pos)
                raise JSONError(f"invalid JSON: {exc.msg}", line=line, column=column) from None
            except RecursionError:
                line, column = where(pos)
                raise JSONError("invalid JSON: the value starting here is nested too deeply",
                                line=line, column=column) from None
            except _ConstantError as exc:
                line, column = where(pos)
                raise JSONError(f"invalid JSON: {exc} is not a JSON value (in the value starting here)",
                                line=line, column=column) from None
            if end > len(buffer) - _LOOKAHEAD and not eof and fill():
                continue  # a number may continue in the next chunk
            if max_value_chars is not None and end - pos > max_value_chars:
                line, column = where(pos)
                raise JSONError(f"the value starting here is longer than {max_value_chars} characters",
                                line=line, column=column)
            return item, end

    while not buffer and fill():
        pass
    pos = skip_ws(1 if buffer.startswith(_BOM) else 0)
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
            if pos >= len(buffer):
                raise JSONError("unexpected end of input inside the array", line=line, column=column)
            raise JSONError("expected ',' or ']' after an array item", line=line, column=column)
    pos = skip_ws(pos)
    if pos < len(buffer):
        line, column = where(pos)
        raise JSONError("unexpected data after the array", line=line, column=column)
