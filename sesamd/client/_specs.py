"""Test specs: the ``expected/*.test.json`` files of a project, with the defaults of client-spec 8.1."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ProjectError

__all__ = ["EXPECTED_DIR", "SPEC_SUFFIX", "TestSpec", "load_spec", "load_specs"]

EXPECTED_DIR = "expected"
SPEC_SUFFIX = ".test.json"


@dataclass(frozen=True)
class TestSpec:
    """One test spec. ``name`` is the file name without ``.test.json``; ``file`` the expected-output file."""

    __test__ = False  # not a pytest test class

    name: str
    path: Path
    pipe: str
    file: Path
    endpoint: str
    stage: str | None
    parameters: Mapping[str, Any] | None
    blacklist: tuple[str, ...]
    ignore: bool
    ignore_deletes: bool
    fields_to_sort_by: tuple[str, ...]

    @property
    def spec_file(self) -> str:
        """The spec file as messages name it: ``expected/<name>.test.json``."""
        return f"{EXPECTED_DIR}/{self.path.name}"

    @property
    def file_name(self) -> str:
        """The expected-output file as messages name it, relative to the project when it lies inside it."""
        try:
            return self.file.relative_to(self.path.parent.parent).as_posix()
        except ValueError:
            return str(self.file)

    @property
    def is_entities(self) -> bool:
        """True when the output is compared as entities (the ``json`` and ``excel`` endpoints)."""
        return self.endpoint in ("json", "excel")


def load_specs(project: Path) -> list[TestSpec]:
    """Every ``expected/*.test.json`` of ``project`` (top level only), sorted by name; none without ``expected/``."""
    folder = project / EXPECTED_DIR
    if not folder.is_dir():
        return []
    paths = [path for path in folder.iterdir()
             if path.name.endswith(SPEC_SUFFIX) and not path.name.startswith(".") and path.is_file()]
    return sorted((load_spec(path) for path in paths), key=lambda spec: spec.name)


def load_spec(path: Path) -> TestSpec:
    """The spec in ``path`` (a file in a project's ``expected/`` folder), its defaults filled in."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read the test spec: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: a test spec must be a JSON object, not {_json_type(data)}")
    fields = _Fields(path, data)
    name = path.name[: -len(SPEC_SUFFIX)]
    file = fields.text("file", f"{name}.json")
    project = path.parent.parent
    return TestSpec(
        name=name,
        path=path,
        pipe=fields.text("pipe", name),
        file=project / file if Path(file).parts[:1] == (EXPECTED_DIR,) else project / EXPECTED_DIR / file,
        endpoint=fields.text("endpoint", "json"),
        stage=fields.optional("stage", str, "a string"),
        parameters=fields.optional("parameters", dict, "an object"),
        blacklist=fields.strings("blacklist", (), nullable=True),
        ignore=fields.flag("ignore", False),
        ignore_deletes=fields.flag("ignore_deletes", True),
        fields_to_sort_by=fields.strings("fields_to_sort_by", ("_id",), nullable=False),
    )


class _Fields:
    """Typed reads of a spec's fields; a :class:`ProjectError` naming the file and the field on a wrong type."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def _wrong(self, key: str, wanted: str) -> ProjectError:
        return ProjectError(f"{self.path}: '{key}' must be {wanted}, not {_json_type(self.data[key])}")

    def text(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self._wrong(key, "a non-empty string")
        return value

    def optional(self, key: str, kind: type, wanted: str) -> Any:
        value = self.data.get(key)
        if value is not None and not isinstance(value, kind):
            raise self._wrong(key, f"{wanted} or null")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def strings(self, key: str, default: tuple[str, ...], *, nullable: bool) -> tuple[str, ...]:
        value = self.data.get(key, default)
        if value is None and nullable:
            return default
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise self._wrong(key, "a list of strings")
        return tuple(value)


def _json_type(value: Any) -> str:
    if isinstance(value, str) and not value:
        return "an empty string"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
