"""The ``csv`` source (node-spec 6.7) against the web server double and local files: header and field names,
dialects and sniffing, encodings, quoted newlines split across tiny chunks, primary keys, empty cells,
white/blacklists, config errors, malformed CSV, HTTP retries and cut-off bodies, a big body streamed in
bounded memory; and once through a node, into a dataset."""

from __future__ import annotations

import json
import logging
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.components import BuildContext, ConfigError, TerminalError, TransientError, build_system, lookup
from actors.components.source_csv import CsvSource
from actors.components.system_url import UrlSystem
from actors.testing import Answer, WebServer
from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

PEOPLE = b"id,name,city\n1,Ann,Oslo\n2,Bob,\n3,\"Lee, Jr.\",Bergen\n"


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


@pytest.fixture
async def svc(web: WebServer) -> AsyncIterator[UrlSystem]:
    system = build_system({"_id": "svc", "type": "system:url", "base_url": web.url("/files/"),
                           "headers": {"X-Key": "k"}})
    assert isinstance(system, UrlSystem)
    await system.open()
    yield system
    await system.close()


def build(config: dict[str, Any], *systems: Any, pump: dict[str, Any] | None = None) -> CsvSource:
    """A csv source built through the registry, as the engine builds it."""
    config = {"type": "csv", **config}
    pipe = {"_id": "p1", **({"pump": pump} if pump is not None else {})}
    context = BuildContext(pipe_id="p1", pipe=pipe, datasets=None,  # type: ignore[arg-type]
                           where="source", systems={s.id: s for s in systems})
    source = lookup("source", config, "pipe p1: source").factory(config, context)
    assert isinstance(source, CsvSource)
    return source


def serve(web: WebServer, body: bytes | None = None, *, chunks: Any = None, path: str = "/files/x.csv") -> None:
    web.route(path, Answer(body=body or b"", chunks=chunks, content_type="text/csv"))


def read(svc: UrlSystem, batch_size: int = 1000, pump: dict[str, Any] | None = None,
         **config: Any) -> list[dict[str, Any]]:
    config = {"system": "svc", "url": "x.csv", "primary_key": "id", **config}
    return [e for batch in build(config, svc, pump=pump).read(None, batch_size) for e in batch]


def failure(svc: UrlSystem, kind: type[Exception] = TerminalError, **config: Any) -> str:
    with pytest.raises(kind) as caught:
        read(svc, **config)
    return str(caught.value)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# -- columns, values and ids -----------------------------------------------------------------------------


async def test_the_header_names_the_columns(web: WebServer, svc: UrlSystem) -> None:
    serve(web, PEOPLE)
    assert read(svc) == [{"_id": "1", "id": "1", "name": "Ann", "city": "Oslo"},
                         {"_id": "2", "id": "2", "name": "Bob"},  # an empty cell is left out
                         {"_id": "3", "id": "3", "name": "Lee, Jr.", "city": "Bergen"}]
    [request] = web.of("/files/x.csv")
    assert request.method == "GET" and request.headers["x-key"] == "k"  # the system's headers


async def test_preserve_empty_strings_keeps_empty_cells(web: WebServer, svc: UrlSystem) -> None:
    serve(web, PEOPLE)
    assert read(svc, preserve_empty_strings=True)[1] == {"_id": "2", "id": "2", "name": "Bob", "city": ""}


async def test_field_names_without_a_header(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"1,Ann\n2,Bob\n")
    assert read(svc, has_header=False, field_names=["id", "name"]) == [
        {"_id": "1", "id": "1", "name": "Ann"}, {"_id": "2", "id": "2", "name": "Bob"}]


async def test_field_names_override_the_header(web: WebServer, svc: UrlSystem) -> None:
    serve(web, PEOPLE)
    entities = read(svc, field_names=["key", "who", "where"], primary_key="key")
    assert entities[0] == {"_id": "1", "key": "1", "who": "Ann", "where": "Oslo"} and len(entities) == 3


async def test_a_compound_primary_key_joins_the_values_with_a_colon(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"country,no,name\nno,1,Ann\nse,1,Bo\n")
    assert [e["_id"] for e in read(svc, primary_key=["country", "no"])] == ["no:1", "se:1"]
    assert [e["_id"] for e in read(svc, primary_key=["no", "country"])] == ["1:no", "1:se"]  # in list order


async def test_whitelist_then_blacklist_choose_the_columns_but_not_the_key(web: WebServer, svc: UrlSystem) -> None:
    serve(web, PEOPLE)
    assert read(svc, whitelist=["name", "city"])[0] == {"_id": "1", "name": "Ann", "city": "Oslo"}
    assert read(svc, whitelist=["name", "city"], blacklist=["city"])[0] == {"_id": "1", "name": "Ann"}
    assert read(svc, blacklist=["id", "nothing"])[0] == {"_id": "1", "name": "Ann", "city": "Oslo"}


async def test_a_column_named_id_is_replaced_by_the_key(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"_id,no\nx,7\n")
    assert read(svc, primary_key="no") == [{"_id": "7", "no": "7"}]


async def test_blank_lines_are_skipped_and_short_rows_lack_cells(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"\nid,name,city\n\n1,Ann\n\n2\n")
    assert read(svc) == [{"_id": "1", "id": "1", "name": "Ann"}, {"_id": "2", "id": "2"}]


@pytest.mark.parametrize("body", [b"", b"id,name\n", b"\n\n"], ids=["empty", "header-only", "blank"])
async def test_no_rows_are_no_entities(web: WebServer, svc: UrlSystem, body: bytes) -> None:
    serve(web, body)
    assert list(build({"system": "svc", "url": "x.csv", "primary_key": "id", "has_header": body != b"\n\n",
                       **({"field_names": ["id"]} if body == b"\n\n" else {})}, svc).read(None, 10)) == []


async def test_batches_have_batch_size_entities(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id\n" + b"".join(b"%d\n" % i for i in range(25)))
    batches = list(build({"system": "svc", "url": "x.csv", "primary_key": "id"}, svc).read(None, 10))
    assert [len(b) for b in batches] == [10, 10, 5] and batches[2][-1] == {"_id": "24", "id": "24"}


async def test_the_type_and_its_flags(web: WebServer, svc: UrlSystem) -> None:
    source = build({"system": "svc", "url": "x.csv", "primary_key": "id"}, svc)
    assert (source.supports_since, source.is_since_comparable, source.is_chronological) == (False, True, False)
    assert source.continuation == "none" and source.adds_namespaces
    assert build({"system": "svc", "url": "x.csv", "primary_key": "id", "supports_since": True},
                 svc).supports_since  # a "default" flag may be set
    properties = lookup("source", {"type": "csv", "system": "s", "url": "u", "primary_key": "id"}, "x").schema[
        "properties"]
    assert properties["has_header"]["default"] is True and properties["encoding"]["default"] == "UTF-8"
    assert properties["delimiter"]["default"] == "," and properties["preserve_empty_strings"]["default"] is False


# -- dialects ---------------------------------------------------------------------------------------------------


async def test_auto_dialect_sniffs_the_delimiter_and_spaces(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b'id; name; note\n1; Ann; "a; b"\n2; Bob; c\n')
    assert read(svc) == [{"_id": "1", "id": "1", "name": "Ann", "note": "a; b"},
                         {"_id": "2", "id": "2", "name": "Bob", "note": "c"}]


async def test_auto_dialect_sniffs_tabs_and_pipes(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id\tname\n1\tAnn\n2\tBob\n")
    assert read(svc)[1] == {"_id": "2", "id": "2", "name": "Bob"}
    serve(web, b"id|name\n1|Ann\n")
    assert read(svc) == [{"_id": "1", "id": "1", "name": "Ann"}]


async def test_auto_dialect_keeps_doubled_quotes_an_escape(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b'id,text\n1,plain\n' * 3000 + b'2,"say ""hi"", ok"\n')  # no quotes in the sniffed sample
    assert read(svc)[-1] == {"_id": "2", "id": "2", "text": 'say "hi", ok'}


async def test_without_auto_dialect_it_is_excel(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id;name\n1;Ann\n")
    assert read(svc, auto_dialect=False, primary_key="id;name") == [{"_id": "1;Ann", "id;name": "1;Ann"}]


async def test_an_unsniffable_file_is_excel(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id\n1\n2\n")
    assert read(svc) == [{"_id": "1", "id": "1"}, {"_id": "2", "id": "2"}]


@pytest.mark.parametrize(("dialect", "body"), [("excel", b'id,n\n1,"a,b"\n'), ("excel_tab", b'id\tn\n1\t"a,b"\n'),
                                               ("unix_dialect", b'"id","n"\n"1","a,b"\n')])
async def test_a_dialect_is_used_as_set(web: WebServer, svc: UrlSystem, dialect: str, body: bytes) -> None:
    serve(web, body)
    assert read(svc, dialect=dialect) == [{"_id": "1", "id": "1", "n": "a,b"}]


async def test_a_dialect_turns_sniffing_off(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id;n\n1;a\n")
    assert read(svc, dialect="excel", primary_key="id;n") == [{"_id": "1;a", "id;n": "1;a"}]


async def test_an_explicit_delimiter_wins_over_dialect_and_sniffing(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id;n,m\n1;a,b\n")
    assert read(svc, delimiter=";") == [{"_id": "1", "id": "1", "n,m": "a,b"}]
    assert read(svc, delimiter=";", dialect="excel_tab") == [{"_id": "1", "id": "1", "n,m": "a,b"}]
    assert read(svc, delimiter=",", primary_key="id;n") == [{"_id": "1;a", "id;n": "1;a", "m": "b"}]


# -- encodings and line ends ----------------------------------------------------------------------------------


async def test_latin_1(web: WebServer, svc: UrlSystem) -> None:
    serve(web, "id,name\n1,Ærlig Øst\n".encode("latin-1"))
    assert read(svc, encoding="latin-1") == [{"_id": "1", "id": "1", "name": "Ærlig Øst"}]


async def test_a_utf8_byte_order_mark_is_dropped(web: WebServer, svc: UrlSystem) -> None:
    serve(web, "\ufeffid,name\n1,Åse\n".encode())
    assert read(svc) == [{"_id": "1", "id": "1", "name": "Åse"}]
    assert read(svc, encoding="utf8") == [{"_id": "1", "id": "1", "name": "Åse"}]


async def test_utf16_with_its_byte_order_mark(web: WebServer, svc: UrlSystem) -> None:
    serve(web, chunks=pieces("id,name\r\n1,Åse\r\n".encode("utf-16"), 3))
    assert read(svc, encoding="UTF-16") == [{"_id": "1", "id": "1", "name": "Åse"}]


async def test_bad_bytes_fail_the_run_naming_the_line(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id,name\n1,Ann\n2,B\xf8b\n")
    message = failure(svc)
    assert message.startswith(f"GET {web.url('/files/x.csv')}: line 3: the bytes are not UTF-8 (invalid start byte)")
    assert "decode_error_strategy" in message


async def test_replace_substitutes_and_warns(web: WebServer, svc: UrlSystem, caplog: pytest.LogCaptureFixture) -> None:
    serve(web, b"id,name\n1,B\xf8b\n2,\xff\xfe\n")
    with caplog.at_level(logging.WARNING, logger="actors.components.source_csv"):
        entities = read(svc, decode_error_strategy="replace")
    assert [e["name"] for e in entities] == ["B\ufffdb", "\ufffd\ufffd"]
    [record] = caplog.records
    assert "replaced 3 undecodable" in record.getMessage() and "x.csv" in record.getMessage()


async def test_replace_without_bad_bytes_does_not_warn(web: WebServer, svc: UrlSystem,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    serve(web, "id,name\n1,\ufffd\n".encode())
    with caplog.at_level(logging.WARNING, logger="actors.components.source_csv"):
        assert read(svc, decode_error_strategy="replace")[0]["name"] == "\ufffd"
    assert caplog.records == []


async def test_quoted_newlines_and_line_ends_across_tiny_chunks(web: WebServer, svc: UrlSystem) -> None:
    body = 'id,text,n\r\n1,"two\r\nlines, ""quoted""",é\r2,"a\nb\rc",ø\n3,x,å'.encode()
    expected = [{"_id": "1", "id": "1", "text": 'two\r\nlines, "quoted"', "n": "é"},
                {"_id": "2", "id": "2", "text": "a\nb\rc", "n": "ø"},
                {"_id": "3", "id": "3", "text": "x", "n": "å"}]
    for size in (1, 2, 3, 5, 7):
        serve(web, chunks=pieces(body, size))
        assert read(svc) == expected, size


async def test_other_unicode_line_breaks_stay_in_the_value(web: WebServer, svc: UrlSystem) -> None:
    serve(web, "id,text\n1,a\u2028b\x0cc\x1dd\n".encode())
    assert read(svc) == [{"_id": "1", "id": "1", "text": "a\u2028b\x0cc\x1dd"}]


async def test_nul_fails_unless_escaped(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id,name\n1,a\x00b\n")
    assert failure(svc).endswith("line 2 contains a NUL character (set escape_null_bytes to read it as \\0)")
    assert read(svc, escape_null_bytes=True) == [{"_id": "1", "id": "1", "name": "a\\0b"}]


# -- bad data -------------------------------------------------------------------------------------------------


async def test_a_row_with_too_many_fields_fails_naming_its_line(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b'id,name\n1,Ann\n2,"multi\nline",extra\n')
    assert failure(svc) == f"GET {web.url('/files/x.csv')}: the row at line 3 has 3 fields, but there are 2 columns"


async def test_a_row_without_an_id_fails_naming_its_line(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id,name\n1,Ann\n,Bob\n")
    assert failure(svc).endswith("the row at line 3 has no value in the primary key column 'id'")
    serve(web, b"a,b,name\n1,2,Ann\n3\n")
    assert failure(svc, primary_key=["a", "b"]).endswith("the row at line 3 has no value in the primary key "
                                                         "column 'b'")


async def test_a_key_column_missing_from_the_header(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"no,name\n1,Ann\n")
    assert failure(svc).endswith("the primary_key column 'id' is not in the header (line 1: no, name)")


async def test_a_duplicated_header_name(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b"id,name,name\n1,a,b\n")
    assert failure(svc).endswith("the header (line 1) names column 'name' twice")


@pytest.mark.parametrize(("body", "text"), [(b'id,name\n1,"Ann"x\n', "line 2: ',' expected after '\"'"),
                                            (b'id,name\n1,Ann\n2,"open\nquote\n', "line 4: unexpected end of data")])
async def test_malformed_quoting_fails_naming_the_line(web: WebServer, svc: UrlSystem, body: bytes, text: str) -> None:
    serve(web, body)
    assert failure(svc) == f"GET {web.url('/files/x.csv')}: {text}"


async def test_a_field_over_the_csv_limit_fails(web: WebServer, svc: UrlSystem) -> None:
    serve(web, b'id,text\n1,"' + b"x" * 200_000 + b'"\n')
    assert "line 2: field larger than field limit" in failure(svc)


# -- config -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "where"), [
    ({"primary_key": None}, "pipe p1: source"),
    ({"primary_key": []}, "pipe p1: source.primary_key"),
    ({"primary_key": ["a", "a"]}, "pipe p1: source.primary_key"),
    ({"system": None}, "pipe p1: source"),
    ({"has_header": False}, "pipe p1: source.field_names"),
    ({"field_names": ["a", "b"]}, "pipe p1: source.primary_key"),
    ({"field_names": ["id", "id"]}, "pipe p1: source.field_names"),
    ({"delimiter": ";;"}, "pipe p1: source.delimiter"),
    ({"delimiter": ""}, "pipe p1: source.delimiter"),
    ({"dialect": "excel-tab"}, "pipe p1: source.dialect"),
    ({"encoding": "klingon"}, "pipe p1: source.encoding"),
    ({"encoding": "hex"}, "pipe p1: source.encoding"),
    ({"decode_error_strategy": "ignore"}, "pipe p1: source.decode_error_strategy"),
    ({"whitelist": "name"}, "pipe p1: source.whitelist"),
    ({"has_header": "yes"}, "pipe p1: source.has_header"),
    ({"url": "file:data/x.csv"}, "pipe p1: source.url"),
    ({"url": "file://otherhost/x.csv"}, "pipe p1: source.url"),
])
async def test_bad_config_names_the_property(svc: UrlSystem, config: dict[str, Any], where: str) -> None:
    full = {"system": "svc", "url": "x.csv", "primary_key": "id", **config}
    full = {k: v for k, v in full.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        build(full, svc)
    assert caught.value.where == where, caught.value


async def test_a_system_of_another_kind_is_a_config_error() -> None:
    other = build_system({"_id": "db", "type": "system:sqlite", "database": ":memory:"})
    with pytest.raises(ConfigError) as caught:
        build({"system": "db", "url": "x.csv", "primary_key": "id"}, other)
    assert caught.value.where == "pipe p1: source.system"


async def test_a_system_not_given_fails_the_run() -> None:
    source = build({"system": "gone", "url": "x.csv", "primary_key": "id"})
    with pytest.raises(TerminalError, match="system 'gone' is not in the config"):
        list(source.read(None, 10))


# -- HTTP -----------------------------------------------------------------------------------------------------


async def test_an_absolute_url_and_a_url_pattern(web: WebServer) -> None:
    system = build_system({"_id": "svc", "type": "system:url", "url_pattern": web.url("/api/%s?format=csv")})
    await system.open()
    try:
        serve(web, PEOPLE, path="/api/people")
        assert len(read(system, url="people")) == 3
        serve(web, PEOPLE, path="/elsewhere.csv")
        assert len(read(system, url=web.url("/elsewhere.csv"))) == 3
    finally:
        await system.close()
    assert web.of("/api/people")[0].query == {"format": "csv"}


async def test_a_500_then_success_is_retried(web: WebServer, svc: UrlSystem) -> None:
    web.route("/files/x.csv", Answer(500, b"busy"), Answer(body=PEOPLE, content_type="text/csv"))
    assert len(read(svc, pump={"max_read_retries": 2, "read_retry_delay": 0})) == 3
    assert len(web.of("/files/x.csv")) == 2


async def test_without_retries_a_500_fails_transiently(web: WebServer, svc: UrlSystem) -> None:
    web.route("/files/x.csv", Answer(500, b"busy"), Answer(body=PEOPLE))
    assert failure(svc, TransientError) == f"GET {web.url('/files/x.csv')} answered 500 Internal Server Error: busy"


async def test_a_404_is_terminal_and_not_retried(web: WebServer, svc: UrlSystem) -> None:
    web.route("/files/x.csv", Answer(404, b"no such file"))
    message = failure(svc, TerminalError, pump={"max_read_retries": 3, "read_retry_delay": 0})
    assert message.endswith("answered 404 Not Found: no such file") and len(web.of("/files/x.csv")) == 1


async def test_a_body_cut_off_fails_the_run(web: WebServer, svc: UrlSystem) -> None:
    body = b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(50_000))
    web.route("/files/x.csv", Answer(body=body, hang_up_after=len(body) // 2, content_type="text/csv"))
    source = build({"system": "svc", "url": "x.csv", "primary_key": "id"}, svc)
    got: list[dict[str, Any]] = []
    with pytest.raises(TransientError) as caught:
        for batch in source.read(None, 100):
            got.extend(batch)
    assert caught.value.message.startswith(f"GET {web.url('/files/x.csv')}: the body was cut off")
    assert 0 < len(got) < 50_000


async def test_a_big_body_streams_in_bounded_memory(web: WebServer, svc: UrlSystem) -> None:
    rows, per_chunk = 200_000, 500
    padding = b"p" * 100
    first_batch = threading.Event()
    sent = {"bytes": 0, "waited": None}

    def chunks() -> Iterator[bytes]:
        yield b"id,name,padding\n"
        for start in range(0, rows, per_chunk):
            if start == rows // 2:  # half the body is out: the source must have made a batch by now
                sent["waited"] = first_batch.wait(20)
            chunk = b"".join(b"%d,name %d,%s\n" % (i, i, padding) for i in range(start, start + per_chunk))
            sent["bytes"] += len(chunk)
            yield chunk

    serve(web, chunks=chunks())
    source = build({"system": "svc", "url": "x.csv", "primary_key": "id"}, svc)
    count = batches = 0
    sent_at_first = None
    tracemalloc.start()
    try:
        for batch in source.read(None, 1000):
            if not batches:
                sent_at_first = sent["bytes"]
                first_batch.set()
            batches += 1
            count += len(batch)
            last = batch[-1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows and batches == rows // 1000 and last["_id"] == str(rows - 1)
    total = sent["bytes"]
    assert total > 20_000_000
    assert sent["waited"] is True and sent_at_first is not None and sent_at_first < total // 2
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a {total / 1e6:.1f} MB body"


async def test_closing_the_read_early_closes_the_answer(web: WebServer, svc: UrlSystem) -> None:
    made = {"rows": 0}

    def endless() -> Iterator[bytes]:
        yield b"id\n"
        while made["rows"] < 10_000_000:
            yield b"".join(b"%d\n" % i for i in range(made["rows"], made["rows"] + 1000))
            made["rows"] += 1000

    serve(web, chunks=endless())
    reader = build({"system": "svc", "url": "x.csv", "primary_key": "id"}, svc).read(None, 100)
    assert len(next(reader)) == 100
    reader.close()  # type: ignore[attr-defined]
    await trio.sleep(0.5)
    stopped = made["rows"]
    await trio.sleep(0.3)
    assert made["rows"] == stopped < 10_000_000  # the server's writes failed: the connection is gone


# -- local files ---------------------------------------------------------------------------------------------


async def test_a_file_url_reads_a_local_file(tmp_path: Path) -> None:
    path = tmp_path / "my data.csv"
    path.write_bytes("id;name\n1;Ærlig\n2;\"a\nb\"\n".encode("latin-1"))
    url = path.as_uri()
    assert "%20" in url
    source = build({"url": url, "primary_key": "id", "encoding": "latin-1"})
    assert [e for b in source.read(None, 10) for e in b] == [{"_id": "1", "id": "1", "name": "Ærlig"},
                                                             {"_id": "2", "id": "2", "name": "a\nb"}]
    same = build({"url": f"file:{path}", "primary_key": "id", "encoding": "latin-1"})
    assert len([e for b in same.read(None, 10) for e in b]) == 2


async def test_a_missing_local_file_fails_the_run(tmp_path: Path) -> None:
    source = build({"url": (tmp_path / "nothing.csv").as_uri(), "primary_key": "id"})
    with pytest.raises(TerminalError, match=r"nothing\.csv: No such file"):
        list(source.read(None, 10))


# -- through a node ---------------------------------------------------------------------------------------------


async def test_a_pipe_reads_csv_into_its_dataset(tmp_path: Path, web: WebServer) -> None:
    config = [
        {"_id": "files", "type": "system:url", "base_url": web.url("/files/")},
        {"_id": "people", "type": "pipe", "pump": {"mode": "manual"},
         "source": {"type": "csv", "system": "files", "url": "people.csv", "primary_key": ["id", "name"]}},
    ]
    serve(web, chunks=pieces(PEOPLE, 4), path="/files/people.csv")
    async with open_node(tmp_path / "node") as node:
        assert await node.apply_config(config) == []
        actor = node.systems.actor("files")
        assert actor is not None
        with trio.fail_after(5):
            await actor.wait_open()
        client = TokenClient(create_app(node))
        runtime = await client.run_pipe("people")
        assert runtime["success"] is True, runtime

        async def entities() -> list[dict[str, Any]]:
            response = await client.get("/api/datasets/people/entities",
                                        query_string={"deleted": "false", "history": "false"})
            assert response.status_code == 200
            return [{k: v for k, v in e.items() if not k.startswith("_") or k == "_id"}
                    for e in json.loads(await response.get_data()) if not e.get("_deleted")]

        assert await entities() == [{"_id": "1:Ann", "id": "1", "name": "Ann", "city": "Oslo"},
                                    {"_id": "2:Bob", "id": "2", "name": "Bob"},
                                    {"_id": "3:Lee, Jr.", "id": "3", "name": "Lee, Jr.", "city": "Bergen"}]

        serve(web, b"id,name,city\n1,Ann,Trondheim\n", path="/files/people.csv")  # a full run: 2 and 3 go
        assert (await client.run_pipe("people"))["success"] is True
        assert await entities() == [{"_id": "1:Ann", "id": "1", "name": "Ann", "city": "Trondheim"}]

        web.route("/files/people.csv", Answer(body=b"id,name\n1,Ann,extra\n", content_type="text/csv"))
        runtime = await client.run_pipe("people")
        assert runtime["success"] is False
        assert "the row at line 2 has 3 fields" in runtime["last-original-error-message"]
        assert len(await entities()) == 1  # a failed run deletes nothing
