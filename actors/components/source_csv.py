"""The ``csv`` source: the rows of a CSV file as entities (node-spec 6.7).

It GETs ``url`` through the ``system`` (a ``system:url`` or ``system:microservice``; relative URLs follow the
system's rules, as for the ``json`` source) and parses the body as it arrives: bytes are decoded
incrementally and split into lines at ``\\n``, ``\\r\\n`` or ``\\r`` only, so quoted newlines and any chunking
work, and entities are yielded in batches; the body is never held whole. Every run is a full run.

* Columns come from the header row (``has_header``, default true) or ``field_names``, which override the
  header's names (the header row is still skipped). Values are strings; empty cells are left out unless
  ``preserve_empty_strings``. ``whitelist`` keeps only the columns it names, then ``blacklist`` drops some.
  A column named ``_id`` is replaced by the key.
* ``_id`` is the value of the ``primary_key`` column; for a list of columns it is their values joined with
  ``:`` in list order (``["a", "b"]`` and a row ``1,x`` give ``"1:x"``; sesamd's choice, Sesam leaves the
  format undocumented). The key is taken from the whole row, before the white/blacklists. A row without a
  value in a key column fails the run, naming the line.
* Dialect: ``dialect`` (``excel``, ``excel_tab``, ``unix_dialect``) when set; else with ``auto_dialect``
  (default true) the delimiter, quote character and ``skipinitialspace`` are sniffed from the first 32 KiB
  (doubled quotes always escape a quote); else ``excel``. An explicit ``delimiter`` wins over both.
  Parsing is strict: a malformed quote, a row with more fields than there are columns, a duplicated header
  name or a field over the csv module's limit (131072 characters) fails the run, naming the line. Rows
  with fewer fields lack the missing cells; blank lines are skipped.
* ``encoding`` (default UTF-8; a UTF-8 byte order mark is dropped, UTF-16/32 use theirs) with
  ``decode_error_strategy`` ``strict`` (undecodable bytes fail the run) or ``replace`` (U+FFFD, and a
  warning with the count). A NUL character fails the run unless ``escape_null_bytes`` turns it into ``\\0``.
* HTTP failures are those of :func:`~actors.components._http.send`: the request is retried by the pump's
  ``max_read_retries``/``read_retry_delay`` on connect errors, timeouts, 429 and 5xx; a body that breaks
  off fails the run (nothing is deleted: deletion tracking needs a completed full run).
* Local extension: a ``file:`` URL (``file:///data/x.csv``, an absolute path) reads that file on the node,
  and then ``system`` is not needed. Anyone who may upload config can read what the node process can.

Namespaces (``add_namespaces``, on by default with namespaced identifiers) are applied by the pipe, not here.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from ._base import CONTINUATION_FLAGS, BuildContext, Source, in_batches
from ._errors import TerminalError, TransientError
from ._http import RetryPolicy, SystemLink, retry_strategy, send
from ._registry import ConfigError, component

__all__ = ["CsvSource"]

log = logging.getLogger("actors.components.source_csv")

CHUNK_BYTES = 1 << 16
SNIFF_CHARS = 1 << 15
SNIFF_DELIMITERS = ",;\t|"
MAX_LINE_CHARS = 1 << 24  # one physical line; a longer one is an error, not a full memory
KEY_SEPARATOR = ":"
DIALECTS: dict[str, type[csv.Dialect]] = {"excel": csv.excel, "excel_tab": csv.excel_tab,
                                          "unix_dialect": csv.unix_dialect}
COLUMNS = {"type": "array", "items": {"type": "string"}}
_EOL = re.compile(r"\r\n|\r|\n")


@component("source", "csv", {
    "required": ["url", "primary_key"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "url": {"type": "string", "minLength": 1},
        "has_header": {"type": "boolean", "default": True},
        "field_names": {**COLUMNS, "minItems": 1, "uniqueItems": True},
        "auto_dialect": {"type": "boolean", "default": True},
        "dialect": {"enum": sorted(DIALECTS)},
        "encoding": {"type": "string", "minLength": 1, "default": "UTF-8"},
        "decode_error_strategy": {"enum": ["strict", "replace"], "default": "strict"},
        "primary_key": {"anyOf": [{"type": "string", "minLength": 1},
                                  {**COLUMNS, "minItems": 1, "uniqueItems": True}]},
        "whitelist": COLUMNS,
        "blacklist": COLUMNS,
        "preserve_empty_strings": {"type": "boolean", "default": False},
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
        "escape_null_bytes": {"type": "boolean", "default": False},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
    "if": {"properties": {"url": {"pattern": "^[Ff][Ii][Ll][Ee]:"}}},
    "else": {"required": ["system"]},
})
class CsvSource(Source):
    """Streams the rows of a CSV file, read over HTTP through a URL system (or from a ``file:`` URL)."""

    adds_namespaces = True

    settable_flags = frozenset(CONTINUATION_FLAGS)  # all three "default" (node-spec 6.0); since is not used

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.path = _file_path(config["url"], f"{self.where}.url")
        self.link = SystemLink(config, context, what="csv source") if self.path is None else None
        self.has_header: bool = config.get("has_header", True)
        self.field_names: list[str] | None = config.get("field_names")
        if not self.has_header and self.field_names is None:
            raise ConfigError("'field_names' is required when 'has_header' is false", where=f"{self.where}.field_names")
        key = config["primary_key"]
        self.key: list[str] = [key] if isinstance(key, str) else list(key)
        if self.field_names is not None:
            missing = [name for name in self.key if name not in self.field_names]
            if missing:
                raise ConfigError(f"column {missing[0]!r} is not in 'field_names'", where=f"{self.where}.primary_key")
        self.encoding: str = config.get("encoding", "UTF-8")
        try:
            b"00".decode(self.encoding)  # a bytes-to-bytes codec (hex, zip) is a LookupError here
        except UnicodeError:
            pass
        except LookupError as exc:
            raise ConfigError(str(exc).split(";")[0], where=f"{self.where}.encoding") from None
        name = codecs.lookup(self.encoding).name
        self.codec = "utf-8-sig" if name == "utf-8" else name
        self.replace = config.get("decode_error_strategy", "strict") == "replace"
        self.whitelist: set[str] | None = set(config["whitelist"]) if "whitelist" in config else None
        self.blacklist: set[str] = set(config.get("blacklist") or ())
        self.preserve_empty: bool = config.get("preserve_empty_strings", False)
        self.escape_nul: bool = config.get("escape_null_bytes", False)
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "max_read_retries", "read_retry_delay",
                                      strategy=retry_strategy(config, context))

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        return in_batches(self._entities(), batch_size)

    # -- parsing -----------------------------------------------------------------------------------------

    def _entities(self) -> Iterator[dict[str, Any]]:
        with self._open() as (what, chunks):
            lines = _Lines(chunks, self.codec, self.encoding, replace=self.replace, escape_nul=self.escape_nul,
                           what=what)
            head: list[str] = []
            size = 0
            for line in lines:
                head.append(line)
                size += len(line)
                if size >= SNIFF_CHARS:
                    break
            reader = csv.reader(chain(head, lines), self._dialect("".join(head)), strict=True)
            rows = _rows(reader, what)
            names = self.field_names
            if self.has_header:
                header = next(rows, None)
                if header is None:
                    return
                line, row = header
                names = names or self._checked_header(row, line, what)
            assert names is not None
            keys = [names.index(name) for name in self.key]
            keep = [name != "_id" and (self.whitelist is None or name in self.whitelist)
                    and name not in self.blacklist for name in names]
            width = len(names)
            for line, row in rows:
                if len(row) > width:
                    raise TerminalError(f"{what}: the row at line {line} has {len(row)} fields, but there are "
                                        f"{width} columns")
                parts = []
                for index in keys:
                    value = row[index] if index < len(row) else ""
                    if not value:
                        raise TerminalError(f"{what}: the row at line {line} has no value in the primary key "
                                            f"column {names[index]!r}")
                    parts.append(value)
                entity: dict[str, Any] = {"_id": KEY_SEPARATOR.join(parts)}
                for index, value in enumerate(row):
                    if keep[index] and (value or self.preserve_empty):
                        entity[names[index]] = value
                yield entity
            if lines.replaced:
                log.warning("%s: replaced %d undecodable byte sequence(s) with U+FFFD (pipe %s)", what,
                            lines.replaced, self.context.pipe_id)

    def _checked_header(self, row: list[str], line: int, what: str) -> list[str]:
        seen: set[str] = set()
        for name in row:
            if name in seen:
                raise TerminalError(f"{what}: the header (line {line}) names column {name!r} twice")
            seen.add(name)
        for name in self.key:
            if name not in seen:
                raise TerminalError(f"{what}: the primary_key column {name!r} is not in the header (line {line}: "
                                    f"{', '.join(row)})")
        return row

    def _dialect(self, sample: str) -> type[csv.Dialect]:
        """The configured dialect, else the sniffed one, else excel; an explicit ``delimiter`` wins."""
        chosen = self.config.get("dialect")
        delimiter = self.config.get("delimiter")
        base: type[csv.Dialect] = DIALECTS[chosen] if chosen else csv.excel
        settings: dict[str, Any] = {}
        if chosen is None and self.config.get("auto_dialect", True) and sample:
            try:
                sniffed = csv.Sniffer().sniff(sample, delimiters=delimiter or SNIFF_DELIMITERS)
            except csv.Error:
                pass
            else:
                settings = {"delimiter": sniffed.delimiter, "quotechar": sniffed.quotechar or '"',
                            "skipinitialspace": sniffed.skipinitialspace}
        if delimiter is not None:
            settings["delimiter"] = delimiter
        return type("Dialect", (base,), settings) if settings else base

    # -- input -------------------------------------------------------------------------------------------

    @contextmanager
    def _open(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        """``(what, chunks)``: a name for errors and the body's bytes; closed when done."""
        if self.path is not None:
            what = f"file {self.path}"
            try:
                file = open(self.path, "rb")  # noqa: SIM115 - closed below, after the chunks are read
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
                raise TerminalError(f"{what}: {exc.strerror or exc}") from None
            except OSError as exc:
                raise TransientError(f"{what}: {exc.strerror or exc}") from None
            with file:
                yield what, _file_chunks(file, what)
            return
        assert self.link is not None
        url = self.link.url(self.config["url"])
        response = send(self.link.client, "GET", url, policy=self.retries, stream=True, headers=self.link.headers)
        try:
            yield f"GET {url}", _body_chunks(response, f"GET {url}")
        finally:
            response.close()


def _rows(reader: Any, what: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, row)`` of each non-blank row, ``line`` being where the row starts."""
    last = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TerminalError(f"{what}: line {reader.line_num}: {exc}") from None
        start, last = last + 1, reader.line_num
        if row:
            yield start, row


class _Lines:
    """The lines of a byte stream: decoded incrementally and split at ``\\n``, ``\\r\\n`` or ``\\r`` (kept, as
    ``csv.reader`` wants), with NULs checked; ``replaced`` counts the byte sequences replaced by U+FFFD."""

    def __init__(self, chunks: Iterator[bytes], codec: str, encoding: str, *, replace: bool, escape_nul: bool,
                 what: str) -> None:
        self.chunks = chunks
        self.decoder = codecs.getincrementaldecoder(codec)(_COUNTING_REPLACE if replace else "strict")
        self.encoding = encoding  # as configured, for messages
        self.escape_nul = escape_nul
        self.what = what
        self.count = 0  # lines yielded
        self.replaced = 0
        self._iterator = self._lines()

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    def _lines(self) -> Iterator[str]:
        parts: list[str] = []  # the current line so far
        size = 0
        carry = ""  # a "\r" at the end of a piece, which may start a "\r\n"
        final = False
        while not final:
            chunk = next(self.chunks, None)
            final = chunk is None
            text = carry + self._decode(chunk or b"", final)
            carry = ""
            if not final and text.endswith("\r"):
                text, carry = text[:-1], "\r"
            start = 0
            for match in _EOL.finditer(text):
                parts.append(text[start:match.end()])
                start = match.end()
                yield self._line("".join(parts))
                parts, size = [], 0
            if start < len(text):
                parts.append(text[start:])
                size += len(text) - start
                if size > MAX_LINE_CHARS:
                    raise TerminalError(f"{self.what}: line {self.count + 1} is longer than {MAX_LINE_CHARS} "
                                        "characters")
        if parts:
            yield self._line("".join(parts))

    def _decode(self, chunk: bytes, final: bool) -> str:
        before = getattr(_replacements, "count", 0)
        try:
            return str(self.decoder.decode(chunk, final))
        except UnicodeDecodeError as exc:
            line = self.count + 1 + exc.object[:exc.start].count(b"\n")
            raise TerminalError(f"{self.what}: line {line}: the bytes are not {self.encoding} ({exc.reason}); "
                                "decode_error_strategy 'replace' would replace them") from None
        finally:
            self.replaced += getattr(_replacements, "count", 0) - before

    def _line(self, line: str) -> str:
        self.count += 1
        if "\x00" in line:
            if not self.escape_nul:
                raise TerminalError(f"{self.what}: line {self.count} contains a NUL character (set "
                                    "escape_null_bytes to read it as \\0)")
            line = line.replace("\x00", "\\0")
        return line


# "replace" that counts, per thread: a decode call runs in one thread, so the count's change across it is exact
_COUNTING_REPLACE = "sesamd-csv-replace"
_replacements = threading.local()


def _count_replacement(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _replacements.count = getattr(_replacements, "count", 0) + 1
    return "\ufffd", exc.end


codecs.register_error(_COUNTING_REPLACE, _count_replacement)


def _file_path(url: str, where: str) -> str | None:
    """The local path of a ``file:`` URL (None for any other URL)."""
    if url[:5].lower() != "file:":
        return None
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"a file: URL names a file on this node, not on {parts.netloc!r}", where=where)
    path = url2pathname(parts.path)
    if not os.path.isabs(path):
        raise ConfigError("a file: URL must name an absolute path (file:///dir/file.csv)", where=where)
    return path


def _file_chunks(file: Any, what: str) -> Iterator[bytes]:
    while True:
        try:
            chunk = file.read(CHUNK_BYTES)
        except OSError as exc:
            raise TransientError(f"{what}: reading failed ({exc.strerror or exc})") from None
        if not chunk:
            return
        yield chunk


def _body_chunks(response: httpx.Response, what: str) -> Iterator[bytes]:
    chunks = response.iter_bytes(CHUNK_BYTES)
    while True:
        try:
            chunk = next(chunks, None)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what}: timed out reading the body ({type(exc).__name__}: {exc})") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"{what}: the body was cut off ({type(exc).__name__}: {exc})") from None
        if chunk is None:
            return
        yield chunk
