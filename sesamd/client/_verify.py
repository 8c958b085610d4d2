"""``sesam verify`` and ``sesam update`` (client-spec 6.9, 6.10, 8): the current output of the tested pipes
against the project's ``expected/`` folder.

The node's output comes through an :class:`OutputReader`; the project is read and written as local files.
Messages go to ``log(level, message)`` with level ``info``, ``warning`` or ``error``.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._classify import tested_pipes
from ._errors import ProjectError
from ._expected import (
    Comparison,
    Options,
    compare,
    compare_raw,
    compare_xml,
    prepare_current,
    pretty_xml,
    render_diff,
    render_expected,
)
from ._specs import EXPECTED_DIR, SPEC_SUFFIX, TestSpec, load_spec, load_specs

__all__ = ["EMPTY_EXPECTED", "EMPTY_SPEC", "FailedTest", "Log", "OutputReader", "UpdateReport", "VerifyReport",
           "update", "verify"]

Log = Callable[[str, str], None]
EMPTY_SPEC = b"{\n}"  # what update writes for a pipe without a spec (sesam-py writes no final newline)
EMPTY_EXPECTED = b"[]\n"  # what update writes for a spec whose expected file is missing


class OutputReader(abc.ABC):
    """Where the current output of a pipe comes from. Raises :class:`~sesamd.client.ApiError` for an unknown
    pipe."""

    @abc.abstractmethod
    def entities(self, pipe_id: str, stage: str | None) -> list[dict]:
        """All the pipe's entities at ``stage`` (None: the node's default, ``sink``): ``GET /pipes/<id>/entities``."""

    @abc.abstractmethod
    def publisher(self, pipe_id: str, endpoint: str, parameters: Mapping | None) -> bytes:
        """The raw body of ``GET /publishers/<id>/<endpoint>`` with ``parameters`` as the query."""


@dataclass(frozen=True)
class FailedTest:
    """A spec whose expected output differs from the current output; ``diff`` explains how."""

    name: str
    pipe: str
    spec_file: str
    diff: str


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify`. ``ok`` decides the exit code; ``ran`` counts the pipes with specs;
    ``errors`` are spec problems that stopped verify before it compared anything; ``invalid`` the tested pipes
    skipped for invalid config."""

    ok: bool
    ran: int
    failed: tuple[FailedTest, ...] = ()
    missing: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateReport:
    """The outcome of :func:`update`: expected-output files ``written``, spec files created and deleted, and the
    output files of ignored specs deleted. ``ok`` is false when there was no spec to update."""

    ok: bool
    written: tuple[Path, ...] = ()
    created_specs: tuple[Path, ...] = ()
    deleted_specs: tuple[Path, ...] = ()
    deleted_files: tuple[Path, ...] = ()

    @property
    def updated(self) -> int:
        return len(self.written)


def verify(project: Path, pipes: Sequence[Mapping], reader: OutputReader, options: Options, log: Log, *,
           whitelist: Collection[str] | None = None) -> VerifyReport:
    """Compare the current output of every tested pipe (client-spec 7) with its specs' expected output.
    ``whitelist``: the pipe ids to look at (client-spec 3.6); None for all."""
    log("info", "Verifying that expected output matches current output...")
    valid, invalid = {}, []
    for pipe in tested_pipes(pipes):
        runtime = pipe.get("runtime") or {}
        if runtime.get("is-valid-config") is True:
            valid[pipe["_id"]] = pipe
        else:
            invalid.append(pipe["_id"])
            log("error", f"The pipe '{pipe['_id']}' has invalid config, cannot verify pipe!")
            log("error", f"Config errors of pipe '{pipe['_id']}': {_config_errors(runtime)}")
    specs, errors = _verify_specs(project, valid, log, whitelist)
    if errors:
        log("error", "Verify stopped: correct the test specs above and try again")
        return VerifyReport(False, 0, errors=tuple(errors), invalid=tuple(invalid))
    if not specs:
        log("warning", "Found no tests (*.test.json) to run")
        return VerifyReport(True, 0, invalid=tuple(invalid))

    failed, missing = [], []
    for pipe_id in valid:
        if not _listed(pipe_id, whitelist, log, "Skipping verify of"):
            continue
        if pipe_id not in specs:
            log("error", f"No tests references pipe '{pipe_id}'")
            missing.append(pipe_id)
            continue
        for spec in specs[pipe_id]:
            if spec.ignore:
                continue
            comparison = _compare_spec(spec, reader, options)
            if not comparison.equal:
                details = render_diff(comparison, summary=False)
                log("error", f"Pipe verify failed! {comparison.summary}")
                log("info", details)
                failed.append(FailedTest(spec.name, spec.pipe, spec.spec_file, f"{comparison.summary}\n{details}"))
    _log_summary(log, len(specs), failed, missing)
    return VerifyReport(not failed and not missing, len(specs), tuple(failed), tuple(missing),
                        invalid=tuple(invalid))


def update(project: Path, pipes: Sequence[Mapping], reader: OutputReader, options: Options, log: Log, *,
           whitelist: Collection[str] | None = None) -> UpdateReport:
    """Write the current output of every tested pipe as its specs' expected output (client-spec 8.1 update
    mode, 8.7). Raises :class:`ProjectError` when the project has no ``expected/`` folder."""
    log("info", "Updating expected output from current output...")
    folder = project / EXPECTED_DIR
    if not folder.is_dir():
        raise ProjectError(f"{folder}: no such folder (update writes the expected output there)")
    tested = {pipe["_id"]: pipe for pipe in tested_pipes(pipes)}
    changes = _Changes()
    specs = _update_specs(project, tested, log, whitelist, changes)
    for pipe_id in tested:
        if pipe_id not in specs and _listed(pipe_id, whitelist, log, "Not creating a spec for"):
            log("warning", f"Found no spec for pipe {pipe_id} - creating empty spec file")
            path = folder / f"{pipe_id}{SPEC_SUFFIX}"
            path.write_bytes(EMPTY_SPEC)
            changes.created_specs.append(path)
            specs[pipe_id] = [load_spec(path)]
    if not specs:
        log("error", "Found no tests (*.test.json) to update")
        return changes.report(False)
    for pipe_id in tested:
        for spec in specs.get(pipe_id, ()):
            if not spec.ignore:
                spec.file.write_bytes(_current_file(spec, reader, options, log))
                changes.written.append(spec.file)
    log("info", f"{len(changes.written)} tests updated!")
    return changes.report(True)


# -- specs -----------------------------------------------------------------------------------------------------

def _verify_specs(project: Path, pipes: Mapping[str, Any], log: Log, whitelist: Collection[str] | None
                  ) -> tuple[dict[str, list[TestSpec]], list[str]]:
    """The specs by pipe id, in verify mode, and the problems that stop verify (client-spec 8.1)."""
    specs: dict[str, list[TestSpec]] = {}
    errors = []
    for spec in load_specs(project):
        if not _listed(spec.pipe, whitelist, log, "Skipping the test spec of"):
            continue
        if spec.pipe not in pipes:
            errors.append(f"Test spec '{spec.spec_file}' references a non-exisiting output pipe '{spec.pipe}'"
                          f" - please remove '{spec.spec_file}'")
        elif not spec.ignore and not spec.file.is_file():
            errors.append(f"Test spec '{spec.spec_file}' references non-existing expected output file "
                          f"'{spec.file_name}'")
        elif spec.ignore and spec.file.exists():
            log("warning", f"Test spec '{spec.spec_file}' is ignored, but its output file '{spec.file_name}' "
                           "still exists")
        specs.setdefault(spec.pipe, []).append(spec)
    for error in errors:
        log("error", error)
    return specs, errors


@dataclass
class _Changes:
    """What update has changed so far."""

    written: list[Path] = field(default_factory=list)
    created_specs: list[Path] = field(default_factory=list)
    deleted_specs: list[Path] = field(default_factory=list)
    deleted_files: list[Path] = field(default_factory=list)

    def report(self, ok: bool) -> UpdateReport:
        return UpdateReport(ok, tuple(self.written), tuple(self.created_specs), tuple(self.deleted_specs),
                            tuple(self.deleted_files))


def _update_specs(project: Path, pipes: Mapping[str, Any], log: Log, whitelist: Collection[str] | None,
                  changes: _Changes) -> dict[str, list[TestSpec]]:
    """The specs by pipe id, in update mode: specs of missing pipes deleted (unless ignored), missing expected
    files created empty, output files of ignored specs deleted."""
    specs: dict[str, list[TestSpec]] = {}
    for spec in load_specs(project):
        if not _listed(spec.pipe, whitelist, log, "Skipping the test spec of"):
            continue
        if spec.pipe not in pipes and not spec.ignore:
            log("warning", f"Test spec '{spec.spec_file}' references a non-exisiting output pipe '{spec.pipe}'"
                           f" - removing '{spec.spec_file}'")
            spec.path.unlink()
            changes.deleted_specs.append(spec.path)
            continue
        if spec.pipe not in pipes:
            log("warning", f"Test spec '{spec.spec_file}' references a non-exisiting output pipe '{spec.pipe}'"
                           f" but is ignored - consider removing '{spec.spec_file}'")
        if not spec.ignore and not spec.file.is_file():
            log("info", f"Creating empty expected output file '{spec.file_name}'")
            spec.file.write_bytes(EMPTY_EXPECTED)
        if spec.ignore and spec.file.is_file():
            spec.file.unlink()
            changes.deleted_files.append(spec.file)
        specs.setdefault(spec.pipe, []).append(spec)
    return specs


def _listed(pipe_id: str, whitelist: Collection[str] | None, log: Log, action: str) -> bool:
    if whitelist is None or pipe_id in whitelist:
        return True
    log("warning", f"{action} pipe '{pipe_id}': it is not in the whitelist - add it if this is not correct")
    return False


# -- output ----------------------------------------------------------------------------------------------------

def _compare_spec(spec: TestSpec, reader: OutputReader, options: Options) -> Comparison:
    """The expected output of ``spec`` compared with the pipe's current output."""
    if spec.is_entities:
        expected = _expected_entities(spec)
        current = prepare_current(reader.entities(spec.pipe, spec.stage), spec, expected, options)
        return compare(expected, current, spec, options)
    expected_data = spec.file.read_bytes()
    current_data = reader.publisher(spec.pipe, spec.endpoint, spec.parameters)
    if spec.endpoint == "xml":
        return compare_xml(expected_data, current_data, spec)
    return compare_raw(expected_data, current_data, spec)


def _current_file(spec: TestSpec, reader: OutputReader, options: Options, log: Log) -> bytes:
    """The pipe's current output as ``spec``'s expected-output file."""
    if spec.is_entities:
        return render_expected(prepare_current(reader.entities(spec.pipe, spec.stage), spec, None, options), options)
    data = reader.publisher(spec.pipe, spec.endpoint, spec.parameters)
    if spec.endpoint != "xml":
        return data
    try:
        return pretty_xml(data)
    except ValueError as exc:
        log("warning", f"The xml output of pipe '{spec.pipe}' is {exc}; writing it unchanged")
        return data


def _expected_entities(spec: TestSpec) -> list[dict]:
    """The entities of ``spec``'s expected-output file, parsed as they are."""
    try:
        data = json.loads(spec.file.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{spec.file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{spec.file}: not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, list) or not all(isinstance(entity, dict) for entity in data):
        raise ProjectError(f"{spec.file}: expected output must be a JSON list of entity objects")
    return data


def _config_errors(runtime: Mapping[str, Any]) -> str:
    errors = runtime.get("config-errors")
    if not errors:
        return "unknown"
    if isinstance(errors, list):
        return "; ".join(_config_error(error) for error in errors)
    return str(errors)


def _config_error(error: Any) -> str:
    if not isinstance(error, Mapping):
        return str(error)
    where = f" (path: {error['elements']})" if error.get("elements") else ""
    return f"{error.get('level', 'error')}: {error.get('msg', '')}{where}"


def _log_summary(log: Log, ran: int, failed: list[FailedTest], missing: list[str]) -> None:
    if failed:
        log("error", f"Failed {len(failed)} of {ran} tests!")
        log("error", "Failed pipe id (spec file):")
        for test in failed:
            log("error", f"{test.pipe} ({test.spec_file})")
    if missing:
        log("error", f"Missing {len(missing)} tests!")
        log("error", "Missing test for pipe:")
        for pipe_id in missing:
            log("error", pipe_id)
    if not failed and not missing:
        log("info", f"All tests passed! Ran {ran} tests.")
