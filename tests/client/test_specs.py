"""Test spec discovery and defaults (client-spec 8.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sesamd.client import ProjectError
from sesamd.client._specs import TestSpec, load_spec, load_specs


def write(project: Path, name: str, text: str | bytes) -> Path:
    path = project / "expected" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "foo.test.json", "{\n}")
    assert load_specs(tmp_path) == [TestSpec(
        name="foo", path=path, pipe="foo", file=tmp_path / "expected" / "foo.json", endpoint="json", stage=None,
        parameters=None, blacklist=(), ignore=False, ignore_deletes=True, fields_to_sort_by=("_id",))]
    spec = load_specs(tmp_path)[0]
    assert (spec.spec_file, spec.file_name, spec.is_entities) == ("expected/foo.test.json", "expected/foo.json", True)


def test_all_fields(tmp_path: Path) -> None:
    write(tmp_path, "foo-A.test.json", """{"_id": "foo-A", "type": "test", "description": "d", "pipe": "foo",
        "file": "foo-a.xml", "endpoint": "xml", "stage": "source", "parameters": {"a": 1},
        "blacklist": ["x", "y.z"], "ignore": true, "ignore_deletes": false, "fields_to_sort_by": ["n", "_id"],
        "unknown": 1}""")
    spec = load_spec(tmp_path / "expected" / "foo-A.test.json")
    assert (spec.name, spec.pipe, spec.file, spec.endpoint, spec.stage) == (
        "foo-A", "foo", tmp_path / "expected" / "foo-a.xml", "xml", "source")
    assert dict(spec.parameters or {}) == {"a": 1}
    assert (spec.blacklist, spec.ignore, spec.ignore_deletes, spec.fields_to_sort_by) == (
        ("x", "y.z"), True, False, ("n", "_id"))
    assert not spec.is_entities


def test_file_already_under_expected_is_not_nested(tmp_path: Path) -> None:
    write(tmp_path, "foo.test.json", '{"file": "expected/out.csv", "endpoint": "csv"}')
    assert load_specs(tmp_path)[0].file == tmp_path / "expected" / "out.csv"


def test_utf8_bom_and_null_optionals(tmp_path: Path) -> None:
    write(tmp_path, "bom.test.json", b'\xef\xbb\xbf{"pipe": "p\xc3\xa6", "stage": null, "blacklist": null}')
    spec = load_specs(tmp_path)[0]
    assert (spec.pipe, spec.stage, spec.blacklist) == ("p\u00e6", None, ())


def test_top_level_only_sorted_by_name(tmp_path: Path) -> None:
    for name in ("b.test.json", "a.test.json", "c.json", ".hidden.test.json", "sub/d.test.json"):
        write(tmp_path, name, "{}")
    assert [spec.name for spec in load_specs(tmp_path)] == ["a", "b"]


def test_no_expected_folder_means_no_specs(tmp_path: Path) -> None:
    assert load_specs(tmp_path) == []


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "must be a JSON object, not a list"),
    ('"x"', "must be a JSON object, not a string"),
    ("{", "not valid JSON"),
    ('{"pipe": 3}', "'pipe' must be a non-empty string, not a number"),
    ('{"file": ""}', "'file' must be a non-empty string, not an empty string"),
    ('{"endpoint": null}', "'endpoint' must be a non-empty string, not null"),
    ('{"stage": 1}', "'stage' must be a string or null"),
    ('{"parameters": []}', "'parameters' must be an object or null, not a list"),
    ('{"blacklist": "foo"}', "'blacklist' must be a list of strings, not a string"),
    ('{"blacklist": ["a", 1]}', "'blacklist' must be a list of strings"),
    ('{"ignore": "true"}', "'ignore' must be true or false, not a string"),
    ('{"ignore_deletes": null}', "'ignore_deletes' must be true or false, not null"),
    ('{"fields_to_sort_by": null}', "'fields_to_sort_by' must be a list of strings, not null"),
])
def test_malformed_specs(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.test.json", text)
    with pytest.raises(ProjectError) as raised:
        load_specs(tmp_path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, "bad.test.json", b'{"pipe": "\xff"}')
    with pytest.raises(ProjectError, match="not UTF-8"):
        load_specs(tmp_path)


def test_spec_is_frozen(tmp_path: Path) -> None:
    write(tmp_path, "foo.test.json", '{"parameters": {"a": "1"}}')
    spec = load_specs(tmp_path)[0]
    with pytest.raises(AttributeError):
        spec.pipe = "other"  # type: ignore[misc]
