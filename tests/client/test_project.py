"""The local project (client-spec 3-5): the portal format, the upload zip (what goes in, whitelist,
placeholders, the metadata rewrite), the node's zip unpacked, and the rewrite undone on the way back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sesamd.client import ProjectError, _portal
from sesamd.client._project import MetadataOptions, Project, load_whitelist, rewrite_metadata, undo_metadata

WORKED_IN = ('{"type":"pipe","_id":"p","source":{"type":"embedded","entities":[{"_id":"a","n":[1,2]}]},'
             '"transform":{"type":"dtl","rules":{"default":[["copy","*"],["add","y",["list",1,2]]]}},"_ts":1}')
WORKED_OUT = """{
  "_id": "p",
  "type": "pipe",
  "source": {
    "type": "embedded",
    "entities": [{
      "_id": "a",
      "n": [1, 2]
    }]
  },
  "transform": {
    "type": "dtl",
    "rules": {
      "default": [
        ["copy", "*"],
        ["add", "y",
          ["list", 1, 2]
        ]
      ]
    }
  },
  "_ts": 1
}
"""


def write(root: Path, name: str, value: Any) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(value if isinstance(value, bytes) else _portal.dumps(value).encode())
    return path


def zip_files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        return {name: archive.read(name) for name in archive.namelist()}


# -- portal format ------------------------------------------------------------------------------------------

def test_the_portal_format_of_the_specs_worked_example() -> None:
    assert _portal.dumps(_portal.loads(WORKED_IN)) == WORKED_OUT


def test_keys_go_known_first_then_alphabetical_then_internal() -> None:
    text = _portal.dumps({"zeta": 1, "_ts": 2, "$audit": 3, "alpha": 4, "sink": 5, "_id": "x", "$ids": 6, "type": 7})
    assert list(json.loads(text)) == ["_id", "type", "sink", "$ids", "alpha", "zeta", "$audit", "_ts"]


def test_numbers_keep_their_digits_and_non_ascii_stays_raw() -> None:
    assert _portal.dumps(_portal.loads('{"price": 22.10, "big": 12345678901234567890, "city": "Tromsø"}')) == (
        '{\n  "big": 12345678901234567890,\n  "city": "Tromsø",\n  "price": 22.10\n}\n')
    assert _portal.dumps({"e": {}, "l": [], "nested": [[]]}) == (
        '{\n  "e": {},\n  "l": [],\n  "nested": [\n    []\n  ]\n}\n')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=25)


@given(json_values)
def test_the_portal_format_is_json_of_the_same_value_and_stable(value: Any) -> None:
    text = _portal.dumps(value)
    assert json.loads(text) == value
    assert _portal.dumps(_portal.loads(text)) == text
    assert text.endswith("\n") and not text.endswith("\n\n")


# -- the upload zip -----------------------------------------------------------------------------------------

def test_the_zip_holds_only_config_files_with_their_names_and_bytes(tmp_path: Path) -> None:
    write(tmp_path, "pipes/a.conf.json", b'{"_id": "a", "type": "pipe"}')
    write(tmp_path, "pipes/sub/Input-B.conf.json", {"_id": "Input-B", "type": "pipe"})
    write(tmp_path, "pipes/notes.json", {"not": "uploaded"})
    write(tmp_path, "systems/s.conf.json", {"_id": "s", "type": "system:url"})
    write(tmp_path, "expected/a.test.json", {})
    write(tmp_path, "testdata/a.json", [])
    write(tmp_path, "test-env.json", {})
    files = zip_files(Project(tmp_path).config_zip())
    assert list(files) == ["pipes/a.conf.json", "pipes/sub/Input-B.conf.json", "systems/s.conf.json"]
    assert files["pipes/a.conf.json"] == b'{"_id": "a", "type": "pipe"}'


def test_the_whitelist_limits_the_zip_and_names_the_pipes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(tmp_path, f"pipes/{name}.conf.json", {"_id": name, "type": "pipe"})
    write(tmp_path, "node-metadata.conf.json", {"_id": "node", "type": "metadata"})
    (tmp_path / "whitelist.txt").write_text("pipes\\a.conf.json\n\nnode-metadata.conf.json\n")
    project = Project.open(tmp_path, whitelist_file="whitelist.txt")
    assert project.whitelist == load_whitelist(tmp_path / "whitelist.txt")
    assert project.whitelist is not None and project.whitelist.pipes == {"a"}
    assert list(zip_files(project.config_zip())) == ["pipes/a.conf.json", "node-metadata.conf.json"]


def test_placeholders_are_substituted_on_upload(tmp_path: Path) -> None:
    write(tmp_path, "systems/s.conf.json", b'{"_id": "s", "type": "system:url", "base_url": "{{@ host @}}/x"}')
    (tmp_path / ".jinja_vars").write_text("host=http://example.org\n")
    files = zip_files(Project.open(tmp_path).config_zip())
    assert json.loads(files["systems/s.conf.json"])["base_url"] == "http://example.org/x"


def test_a_malformed_config_file_is_named_with_its_place(tmp_path: Path) -> None:
    write(tmp_path, "pipes/bad.conf.json", b'{"_id": "bad",\n "type" "pipe"}')
    with pytest.raises(ProjectError, match=r"pipes/bad.conf.json: not valid JSON: .* \(line 2, column 9\)"):
        Project(tmp_path).config_zip()


def test_the_metadata_is_rewritten_only_when_the_project_has_a_metadata_file(tmp_path: Path) -> None:
    write(tmp_path, "pipes/a.conf.json", {"_id": "a", "type": "pipe"})
    assert "node-metadata.conf.json" not in zip_files(Project(tmp_path).config_zip(MetadataOptions()))
    write(tmp_path, "node-metadata.conf.json", b'{"_id": "node", "type": "metadata", "global_defaults": {"x": 1.50}}')
    uploaded = zip_files(Project(tmp_path).config_zip(MetadataOptions()))["node-metadata.conf.json"]
    assert uploaded == (b'{"_id": "node", "type": "metadata", "global_defaults": {"x": 1.50, '
                        b'"eager_load_microservices": false}, "task_manager": {"disable_user_pipes": true}}')


@pytest.mark.parametrize("options, changes", [
    (MetadataOptions(), {("task_manager", "disable_user_pipes"): True,
                         ("global_defaults", "eager_load_microservices"): False}),
    (MetadataOptions(enable_user_pipes=True, enable_eager_ms=True, disable_cpp_extensions=True),
     {("task_manager", "disable_user_pipes"): False, ("global_defaults", "eager_load_microservices"): True,
      ("global_defaults", "enable_cpp_extensions"): False}),
])
def test_the_rewrite_sets_the_test_settings(options: MetadataOptions, changes: dict[tuple[str, str], bool]) -> None:
    rewritten = rewrite_metadata({"_id": "node", "type": "metadata"}, options)
    assert {(s, k): rewritten[s][k] for s in ("task_manager", "global_defaults") for k in rewritten[s]} == changes


@pytest.mark.parametrize("local", [
    {"_id": "node", "type": "metadata"},
    {"_id": "node", "type": "metadata", "task_manager": {"disable_user_pipes": False, "other": 1}},
    {"_id": "node", "type": "metadata", "global_defaults": {"eager_load_microservices": True,
                                                             "enable_cpp_extensions": True}},
    {"_id": "node", "type": "metadata", "task_manager": {"disable_user_pipes": True},
     "global_defaults": {"eager_load_microservices": False, "enable_cpp_extensions": False, "keep": "me"}},
])
@pytest.mark.parametrize("options", [MetadataOptions(), MetadataOptions(disable_cpp_extensions=True)])
def test_undo_gives_back_the_local_metadata(local: dict[str, Any], options: MetadataOptions) -> None:
    assert undo_metadata(rewrite_metadata(local, options), local) == local


# -- the node's zip ------------------------------------------------------------------------------------------

def node_zip(files: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, value in files.items():
            archive.writestr(name, json.dumps(value))
    return buffer.getvalue()


def test_the_node_zip_becomes_portal_files_with_the_rewrite_undone(tmp_path: Path) -> None:
    write(tmp_path, "node-metadata.conf.json", {"_id": "node", "type": "metadata"})
    metadata = rewrite_metadata({"_id": "node", "type": "metadata"}, MetadataOptions())
    files = Project(tmp_path).node_files(node_zip({"pipes/p.conf.json": {"type": "pipe", "_id": "p"},
                                                   "node-metadata.conf.json": metadata}))
    assert files == {"pipes/p.conf.json": b'{\n  "_id": "p",\n  "type": "pipe"\n}\n',
                     "node-metadata.conf.json": b'{\n  "_id": "node",\n  "type": "metadata"\n}\n'}


def test_download_replaces_top_level_config_files_within_the_whitelist(tmp_path: Path) -> None:
    write(tmp_path, "pipes/old.conf.json", {"_id": "old"})
    write(tmp_path, "pipes/kept.conf.json", {"_id": "kept"})
    write(tmp_path, "pipes/sub/deep.conf.json", {"_id": "deep"})
    write(tmp_path, "systems/old-system.conf.json", {"_id": "old-system"})
    (tmp_path / "whitelist").write_text("pipes/old.conf.json\npipes/new.conf.json\nsystems/old-system.conf.json\n"
                                        "systems/s.conf.json\n")
    (tmp_path / ".jinja_vars").write_text('{"host": "http://example.org"}')
    project = Project.open(tmp_path, whitelist_file="whitelist")
    written = project.replace_config({"pipes/new.conf.json": b'{"_id": "new"}\n',
                                      "pipes/other.conf.json": b'{"_id": "other"}\n',
                                      "systems/s.conf.json": b'{"url": "http://example.org/x"}\n'})
    assert written == ["pipes/new.conf.json", "systems/s.conf.json"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.conf.json")) == [
        "pipes/kept.conf.json", "pipes/new.conf.json", "pipes/sub/deep.conf.json", "systems/s.conf.json"]
    assert (tmp_path / "systems/s.conf.json").read_text() == '{"url": "{{@ host @}}/x"}\n'


def test_an_unsafe_name_in_the_node_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="unsafe file name"):
        Project(tmp_path).replace_config({"../escape.conf.json": b"{}"})


# -- env and testdata ------------------------------------------------------------------------------------

def test_the_env_profile_is_read_with_a_bom_and_written_with_one(tmp_path: Path) -> None:
    project = Project(tmp_path / "node", profile="variables/test")
    project.write_env({"b": 2, "a": "å"})
    path = tmp_path / "node" / "variables" / "test-env.json"
    assert path.read_bytes() == b'\xef\xbb\xbf{\n  "a": "\xc3\xa5",\n  "b": 2\n}\n'
    (tmp_path / ".additional_parameters.json").write_text('{"b": 3}')
    assert project.read_env() == {"a": "å", "b": 3}


def test_a_missing_or_malformed_env_profile_is_a_project_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"Cannot locate profile file 'prod-env\.json'"):
        Project(tmp_path, profile="prod").read_env()
    (tmp_path / "test-env.json").write_text("[1, 2]")
    with pytest.raises(ProjectError, match=r"test-env\.json: not a JSON object"):
        Project(tmp_path).read_env()


def test_testdata_files_are_named_by_pipe_id_and_whitelisted(tmp_path: Path) -> None:
    write(tmp_path, "testdata/Input-Pipe-3.json", [])
    write(tmp_path, "testdata/more/other.JSON", [])
    write(tmp_path, "testdata/readme.txt", b"not data")
    assert [pipe for pipe, _ in Project(tmp_path).testdata_files()] == ["Input-Pipe-3", "other"]
    (tmp_path / "w").write_text("pipes/other.conf.json\n")
    assert [pipe for pipe, _ in Project.open(tmp_path, whitelist_file="w").testdata_files()] == ["other"]


def test_jinja_placeholders_match_the_names_as_written_or_ignoring_case(tmp_path: Path) -> None:
    (tmp_path / ".jinja_vars").write_text("Team=Crew\nURL=http://x\n")
    project = Project.open(tmp_path)
    assert project.jinja_vars == {"Team": "Crew", "URL": "http://x"}
    text = '{"a": "{{@ Team @}}", "b": "{{@ url @}}", "c": "{{@ other @}}", "d": "{{@Team@}}"}'
    assert project.substitute(text) == '{"a": "Crew", "b": "http://x", "c": "{{@ other @}}", "d": "{{@Team@}}"}'
