"""verify and update end to end on a project folder, with the output from a FakeOutputReader."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sesamd.client import ApiError, ProjectError
from sesamd.client._expected import Options
from sesamd.client._verify import OutputReader, UpdateReport, VerifyReport, update, verify
from sesamd.client.testing import FakeOutputReader, check_output_reader

ENTITIES = [{"_id": "2", "_updated": 7, "total": 39.95, "name": "b"}, {"_id": "1", "total": 25.0, "name": "a"}]
EXPECTED = b'[\n  {\n    "_id": "1",\n    "name": "a",\n    "total": 25\n  },\n' \
           b'  {\n    "_id": "2",\n    "name": "b",\n    "total": 39.95\n  }\n]\n'


def pipe(pipe_id: str, sink: str = "sql", *, valid: bool = True, source: str = "dataset") -> dict:
    effective = {"_id": pipe_id, "type": "pipe", "source": {"type": source, "dataset": "in"}, "sink": {"type": sink}}
    runtime: dict[str, Any] = {"is-valid-config": valid, "config-errors": []}
    if not valid:
        runtime["config-errors"] = [{"level": "error", "msg": "bad sink", "elements": "$['sink']"}]
    return {"_id": pipe_id, "config": {"original": effective, "effective": effective}, "runtime": runtime}


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        assert level in ("info", "warning", "error")
        self.lines.append((level, message))

    def messages(self, level: str | None = None) -> list[str]:
        return [message for lvl, message in self.lines if level in (None, lvl)]


def project(tmp_path: Path, files: Mapping[str, str | bytes]) -> Path:
    (tmp_path / "expected").mkdir()
    for name, content in files.items():
        (tmp_path / "expected" / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return tmp_path


def run_verify(root: Path, pipes: list[dict], reader: OutputReader, options: Options | None = None,
               **kwargs: Any) -> tuple[VerifyReport, Log]:
    log = Log()
    return verify(root, pipes, reader, options or Options(), log, **kwargs), log


def run_update(root: Path, pipes: list[dict], reader: OutputReader, options: Options | None = None,
               **kwargs: Any) -> tuple[UpdateReport, Log]:
    log = Log()
    return update(root, pipes, reader, options or Options(), log, **kwargs), log


# -- verify ----------------------------------------------------------------------------------------------------

def test_verify_passes(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": EXPECTED})
    reader = FakeOutputReader({"out": ENTITIES})
    report, log = run_verify(root, [pipe("out"), pipe("in", source="embedded")], reader)
    assert report == VerifyReport(True, 1)
    assert log.messages() == ["Verifying that expected output matches current output...",
                              "All tests passed! Ran 1 tests."]
    assert reader.calls == [("entities", "out", None)]


def test_verify_fails_with_a_diff_naming_entity_and_property(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": '{"stage": "sink"}', "out.json": EXPECTED})
    current = [{**ENTITIES[0], "total": 40.0}, ENTITIES[1]]
    report, log = run_verify(root, [pipe("out")], FakeOutputReader({("out", "sink"): current}))
    assert not report.ok
    assert [(test.name, test.pipe, test.spec_file) for test in report.failed] == [
        ("out", "out", "expected/out.test.json")]
    assert "entity '2': property 'total': expected 39.95, got 40" in report.failed[0].diff.splitlines()
    assert log.messages("error") == ["Pipe verify failed! Content mismatch for test spec 'expected/out.json'",
                                     "Failed 1 of 1 tests!", "Failed pipe id (spec file):",
                                     "out (expected/out.test.json)"]
    assert "entity '2': property 'total': expected 39.95, got 40" in log.messages("info")[1]


def test_verify_length_mismatch(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": EXPECTED})
    report, log = run_verify(root, [pipe("out")], FakeOutputReader({"out": ENTITIES[:1]}))
    assert not report.ok
    assert ("Pipe verify failed! Length mismatch for test spec 'expected/out.test.json': expected 2 got 1"
            in log.messages("error"))
    assert "entity '1': expected, but not in the current output" in report.failed[0].diff


def test_verify_missing_test(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": EXPECTED})
    pipes = [pipe("out"), pipe("feed", "http_endpoint")]
    report, log = run_verify(root, pipes, FakeOutputReader({"out": ENTITIES}))
    assert report == VerifyReport(False, 1, missing=("feed",))
    assert log.messages("error") == ["No tests references pipe 'feed'", "Missing 1 tests!",
                                     "Missing test for pipe:", "feed"]


def test_verify_spec_for_a_non_existing_pipe(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": EXPECTED, "gone.test.json": "{}"})
    reader = FakeOutputReader({"out": ENTITIES})
    report, log = run_verify(root, [pipe("out")], reader)
    message = ("Test spec 'expected/gone.test.json' references a non-exisiting output pipe 'gone' - "
               "please remove 'expected/gone.test.json'")
    assert not report.ok
    assert report.errors == (message,)
    assert message in log.messages("error")
    assert reader.calls == []


def test_verify_missing_expected_file(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": '{"file": "elsewhere.json"}'})
    report, log = run_verify(root, [pipe("out")], FakeOutputReader({"out": ENTITIES}))
    assert not report.ok
    assert "'expected/elsewhere.json'" in report.errors[0]
    assert report.errors[0] in log.messages("error")


def test_verify_ignored_spec(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": '{"ignore": true}', "out.json": "[]"})
    reader = FakeOutputReader({"out": ENTITIES})
    report, log = run_verify(root, [pipe("out")], reader)
    assert report == VerifyReport(True, 1)
    assert reader.calls == []
    assert log.messages("warning") == [
        "Test spec 'expected/out.test.json' is ignored, but its output file 'expected/out.json' still exists"]


def test_verify_without_specs_only_warns(tmp_path: Path) -> None:
    report, log = run_verify(project(tmp_path, {}), [pipe("out")], FakeOutputReader())
    assert report == VerifyReport(True, 0)
    assert log.messages("warning") == ["Found no tests (*.test.json) to run"]


def test_verify_skips_pipes_with_invalid_config(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": EXPECTED})
    report, log = run_verify(root, [pipe("out"), pipe("broken", valid=False)], FakeOutputReader({"out": ENTITIES}))
    assert report == VerifyReport(True, 1, invalid=("broken",))
    assert log.messages("error") == ["The pipe 'broken' has invalid config, cannot verify pipe!",
                                     "Config errors of pipe 'broken': error: bad sink (path: $['sink'])"]


def test_verify_reports_a_malformed_expected_file(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": '{"_id": "1"}'})
    with pytest.raises(ProjectError, match=r"out\.json: expected output must be a JSON list"):
        run_verify(root, [pipe("out")], FakeOutputReader({"out": ENTITIES}))


def test_verify_honours_the_whitelist(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "out.json": EXPECTED, "other.test.json": "{}"})
    report, log = run_verify(root, [pipe("out"), pipe("other")], FakeOutputReader({"out": ENTITIES}),
                             whitelist={"out"})
    assert report == VerifyReport(True, 1)
    assert len(log.messages("warning")) == 2


def test_verify_deletes(tmp_path: Path) -> None:
    current = [{"_id": "1", "_deleted": True}, {"_id": "2"}]
    reader = FakeOutputReader({"out": current})
    root = project(tmp_path, {"out.test.json": "{}", "out.json": '[{"_id": "2"}]'})
    assert run_verify(root, [pipe("out")], reader)[0].ok
    (root / "expected" / "out.json").write_text('[{"_id": "1", "_deleted": true}, {"_id": "2"}]')
    assert run_verify(root, [pipe("out")], reader)[0].ok
    (root / "expected" / "out.json").write_text('[{"_id": "2"}]')
    (root / "expected" / "out.test.json").write_text('{"ignore_deletes": false}')
    report, _ = run_verify(root, [pipe("out")], reader)
    assert not report.ok
    assert "entity '1': in the current output, but not expected" in report.failed[0].diff


# -- update ----------------------------------------------------------------------------------------------------

def test_update_creates_specs_and_round_trips(tmp_path: Path) -> None:
    root = project(tmp_path, {})
    reader = FakeOutputReader({"out": ENTITIES, "feed": []})
    pipes = [pipe("feed", "json_endpoint"), pipe("out"), pipe("in", source="embedded")]
    report, log = run_update(root, pipes, reader)
    expected = root / "expected"
    assert report == UpdateReport(True, written=(expected / "out.json", expected / "feed.json"),
                                  created_specs=(expected / "out.test.json", expected / "feed.test.json"))
    assert (expected / "out.test.json").read_bytes() == b"{\n}"
    assert (expected / "out.json").read_bytes() == EXPECTED
    assert (expected / "feed.json").read_bytes() == b"[]\n"
    assert log.messages() == ["Updating expected output from current output...",
                              "Found no spec for pipe out - creating empty spec file",
                              "Found no spec for pipe feed - creating empty spec file",
                              "2 tests updated!"]
    verified, _ = run_verify(root, pipes, reader)
    assert verified == VerifyReport(True, 2)


def test_update_deletes(tmp_path: Path) -> None:
    current = [{"_id": "1", "_deleted": True, "_ts": 5}, {"_id": "2"}]
    root = project(tmp_path, {"keep.test.json": '{"pipe": "out", "ignore_deletes": false}',
                              "drop.test.json": '{"pipe": "out"}'})
    reader = FakeOutputReader({"out": current})
    run_update(root, [pipe("out")], reader)
    assert json.loads((root / "expected" / "keep.json").read_bytes()) == [{"_id": "1", "_deleted": True},
                                                                         {"_id": "2"}]
    assert json.loads((root / "expected" / "drop.json").read_bytes()) == [{"_id": "2"}]
    assert run_verify(root, [pipe("out")], reader)[0].ok


def test_update_cleans_up_specs(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}", "gone.test.json": "{}", "gone.json": "[]",
                              "old.test.json": '{"ignore": true}', "old.json": "[]",
                              "quiet.test.json": '{"pipe": "out", "ignore": true}', "quiet.json": "[]"})
    report, log = run_update(root, [pipe("out")], FakeOutputReader({"out": []}))
    expected = root / "expected"
    assert report == UpdateReport(True, written=(expected / "out.json",), deleted_specs=(expected / "gone.test.json",),
                                  deleted_files=(expected / "old.json", expected / "quiet.json"))
    assert sorted(path.name for path in expected.iterdir()) == ["gone.json", "old.test.json", "out.json",
                                                                "out.test.json", "quiet.test.json"]
    assert log.messages("warning") == [
        "Test spec 'expected/gone.test.json' references a non-exisiting output pipe 'gone' - removing "
        "'expected/gone.test.json'",
        "Test spec 'expected/old.test.json' references a non-exisiting output pipe 'old' but is ignored - consider "
        "removing 'expected/old.test.json'"]


def test_update_leaves_an_empty_file_when_the_fetch_fails(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}"})
    with pytest.raises(ApiError):
        run_update(root, [pipe("out")], FakeOutputReader())
    assert (root / "expected" / "out.json").read_bytes() == b"[]\n"


def test_update_with_nothing_to_update_fails(tmp_path: Path) -> None:
    report, log = run_update(project(tmp_path, {}), [pipe("in", source="embedded")], FakeOutputReader())
    assert report == UpdateReport(False)
    assert log.messages("error") == ["Found no tests (*.test.json) to update"]


def test_update_needs_the_expected_folder(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="expected: no such folder"):
        run_update(tmp_path, [pipe("out")], FakeOutputReader({"out": []}))


def test_update_options(tmp_path: Path) -> None:
    root = project(tmp_path, {"out.test.json": "{}"})
    reader = FakeOutputReader({"out": [{"_id": "\u00e6", "h": "<&>", "n": 12345678901234567}]})
    run_update(root, [pipe("out")], reader)
    assert (root / "expected" / "out.json").read_bytes() == (
        b'[\n  {\n    "_id": "\xc3\xa6",\n    "h": "\\u003c\\u0026\\u003e",\n    "n": 12345678901234568\n  }\n]\n')
    options = Options(large_int_bugs=False, unicode_encoding=True, html_escape=False)
    run_update(root, [pipe("out")], reader, options)
    assert (root / "expected" / "out.json").read_bytes() == (
        b'[\n  {\n    "_id": "\\u00e6",\n    "h": "<&>",\n    "n": 12345678901234567\n  }\n]\n')
    assert run_verify(root, [pipe("out")], reader, options)[0].ok
    assert not run_verify(root, [pipe("out")], reader)[0].ok


# -- publisher endpoints ---------------------------------------------------------------------------------------

def by_parameter(parameters: Mapping[str, Any] | None) -> bytes:
    return f"id;kind\r\n1;{(parameters or {}).get('kind')}\r\n".encode()


def test_two_specs_for_one_pipe_with_parameters(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "csv-A.test.json": '{"pipe": "csv", "endpoint": "csv", "file": "csv-A.csv", "parameters": {"kind": "a"}}',
        "csv-B.test.json": '{"pipe": "csv", "endpoint": "csv", "file": "csv-B.csv", "parameters": {"kind": "b"}}'})
    reader = FakeOutputReader(publishers={("csv", "csv"): by_parameter})
    report, _ = run_update(root, [pipe("csv", "csv_endpoint")], reader)
    assert report.updated == 2
    assert (root / "expected" / "csv-A.csv").read_bytes() == b"id;kind\r\n1;a\r\n"
    assert (root / "expected" / "csv-B.csv").read_bytes() == b"id;kind\r\n1;b\r\n"
    assert reader.calls == [("publisher", "csv", "csv", {"kind": "a"}), ("publisher", "csv", "csv", {"kind": "b"})]
    assert run_verify(root, [pipe("csv", "csv_endpoint")], reader)[0] == VerifyReport(True, 1)
    (root / "expected" / "csv-B.csv").write_bytes(b"id;kind\r\n1;c\r\n")
    report, log = run_verify(root, [pipe("csv", "csv_endpoint")], reader)
    assert [test.name for test in report.failed] == ["csv-B"]
    assert "Failed 1 of 1 tests!" in log.messages("error")
    assert "-1;c\\r" in report.failed[0].diff.splitlines()


def test_xml_endpoint(tmp_path: Path) -> None:
    root = project(tmp_path, {"doc.test.json": '{"endpoint": "xml", "file": "doc.xml"}'})
    body = b"<?xml version='1.0' encoding='utf-8'?><items><item id='1'>\xc3\xa6</item></items>"
    reader = FakeOutputReader(publishers={("doc", "xml"): body})
    run_update(root, [pipe("doc", "xml_endpoint")], reader)
    assert (root / "expected" / "doc.xml").read_bytes() == (
        b"<?xml version='1.0' encoding='utf-8'?>\n<items>\n  <item id=\"1\">\xc3\xa6</item>\n</items>\n")
    assert run_verify(root, [pipe("doc", "xml_endpoint")], reader)[0].ok
    changed = FakeOutputReader(publishers={("doc", "xml"): body.replace(b"id='1'", b"id='2'")})
    report, _ = run_verify(root, [pipe("doc", "xml_endpoint")], changed)
    assert not report.ok
    assert '+  <item id="2">\u00e6</item>' in report.failed[0].diff.splitlines()


def test_xml_endpoint_that_is_not_xml(tmp_path: Path) -> None:
    root = project(tmp_path, {"doc.test.json": '{"endpoint": "xml", "file": "doc.xml"}'})
    reader = FakeOutputReader(publishers={("doc", "xml"): b"oops <"})
    _, log = run_update(root, [pipe("doc", "xml_endpoint")], reader)
    assert (root / "expected" / "doc.xml").read_bytes() == b"oops <"
    assert len(log.messages("warning")) == 1
    assert run_verify(root, [pipe("doc", "xml_endpoint")], reader)[0].ok


# -- the test double -------------------------------------------------------------------------------------------

def test_fake_reader_keeps_the_contract() -> None:
    reader = FakeOutputReader({"out": ENTITIES}, {("out", "entities"): b"[]"})
    check_output_reader(reader, "out")
    assert reader.calls[0] == ("entities", "out", None)


def test_fake_reader_returns_copies() -> None:
    reader = FakeOutputReader({"out": ENTITIES})
    reader.entities("out", None)[0]["name"] = "changed"
    assert reader.entities("out", None)[0]["name"] == "b"


class TupleReader(OutputReader):
    def entities(self, pipe_id: str, stage: str | None) -> list[dict]:
        return tuple(ENTITIES)  # type: ignore[return-value]

    def publisher(self, pipe_id: str, endpoint: str, parameters: Mapping | None) -> bytes:
        return b""


class LenientReader(TupleReader):
    def entities(self, pipe_id: str, stage: str | None) -> list[dict]:
        return []


def test_contract_check_catches_broken_readers() -> None:
    with pytest.raises(AssertionError, match="must return a list of dicts"):
        check_output_reader(TupleReader(), "out")
    with pytest.raises(AssertionError, match="unknown pipe must raise ApiError"):
        check_output_reader(LenientReader(), "out")
