"""A local Sesam project (client-spec 3-5): its config files, env profile, whitelist, ``.jinja_vars`` and
testdata; the upload zip built from them and the node's zip unpacked into them; the node-metadata rewrite
made on upload and undone on download and status.

Only ``pipes/**/*.conf.json``, ``systems/**/*.conf.json`` and the root ``node-metadata.conf.json`` are ever
uploaded. Names in a zip always use forward slashes.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import _portal
from ._errors import ProjectError
from ._syncconfig import read_settings

__all__ = ["METADATA", "MetadataOptions", "Project", "Whitelist", "load_whitelist", "parse_json", "read_json",
           "rewrite_metadata", "undo_metadata", "unzip", "write_zip"]

METADATA = "node-metadata.conf.json"
CONFIG_FOLDERS = ("pipes", "systems")
JINJA_FILE = ".jinja_vars"
ADDITIONAL_PARAMETERS = "../.additional_parameters.json"
PLACEHOLDER = re.compile(r"\{\{@ (\S+?) @\}\}")


@dataclass(frozen=True)
class Whitelist:
    """The files (``pipes/x.conf.json``...) a whitelist file lists, and the pipe ids they name."""

    files: frozenset[str]

    @property
    def pipes(self) -> frozenset[str]:
        return frozenset(_config_id(f, "pipes/") for f in self.files if f.startswith("pipes/"))

    @property
    def systems(self) -> frozenset[str]:
        return frozenset(_config_id(f, "systems/") for f in self.files if f.startswith("systems/"))


def _config_id(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).removesuffix(".conf.json")


def load_whitelist(path: Path) -> Whitelist:
    """A whitelist file: one project path per line (blank lines ignored; ``\\`` read as ``/``)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"the whitelist file {path} cannot be read: {exc}") from None
    return Whitelist(frozenset(line.strip().replace("\\", "/").removeprefix("./") for line in lines if line.strip()))


def read_json(path: Path, what: str | None = None, *, exact: bool = True) -> Any:
    """A JSON file (UTF-8, optional BOM) with numbers kept as written (``exact`` false: as Python floats);
    a :class:`ProjectError` naming the file and the place when it is missing or malformed."""
    name = what or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError(f"{name}: no such file") from None
    except OSError as exc:
        raise ProjectError(f"{name}: cannot be read: {exc.strerror}") from None
    return parse_json(data, name, exact=exact)


def parse_json(data: bytes, name: str, *, exact: bool = True) -> Any:
    """:func:`read_json` of bytes; ``name`` is the file named in an error."""
    try:
        return _portal.loads(data) if exact else json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{name}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


@dataclass(frozen=True)
class MetadataOptions:
    """The upload's changes to the node metadata (client-spec 5.3)."""

    enable_user_pipes: bool = False
    enable_eager_ms: bool = False
    disable_cpp_extensions: bool = False


def rewrite_metadata(metadata: Mapping[str, Any], options: MetadataOptions) -> dict[str, Any]:
    """The metadata as uploaded: user pipe scheduling off (unless enabled), microservices not eagerly loaded
    (unless enabled), C++ extensions off when asked."""
    result = copy.deepcopy(dict(metadata))
    result.setdefault("task_manager", {})["disable_user_pipes"] = not options.enable_user_pipes
    defaults = result.setdefault("global_defaults", {})
    if options.disable_cpp_extensions:
        defaults["enable_cpp_extensions"] = False
    defaults["eager_load_microservices"] = options.enable_eager_ms
    return result


_UNDONE = (("task_manager", "disable_user_pipes", True), ("global_defaults", "enable_cpp_extensions", False),
           ("global_defaults", "eager_load_microservices", False))


def undo_metadata(node: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """The node's metadata without the upload's rewrite: each value the rewrite sets goes back to the local
    file's value, or is dropped (with its section, when that becomes empty) if the local file has none."""
    result = copy.deepcopy(dict(node))
    for section, key, value in _UNDONE:
        held = result.get(section)
        if not isinstance(held, dict) or held.get(key) is not value:
            continue
        mine = local.get(section)
        if isinstance(mine, dict) and key in mine:
            held[key] = mine[key]
        else:
            del held[key]
            if not held:
                del result[section]
    return result


@dataclass
class Project:
    """The project in ``root``: ``profile`` names the env file (``<profile>-env.json``, may hold a path)."""

    root: Path
    profile: str = "test"
    whitelist: Whitelist | None = None
    jinja_vars: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, *, profile: str = "test", whitelist_file: str | None = None) -> Project:
        """The project with its whitelist file (relative to ``root``) and ``.jinja_vars`` read."""
        whitelist = load_whitelist(root / whitelist_file) if whitelist_file else None
        jinja = root / JINJA_FILE
        variables = read_settings(jinja, lower=False) if jinja.is_file() else {}
        return cls(root, profile, whitelist, variables)

    # -- env --------------------------------------------------------------------------------------------

    @property
    def env_name(self) -> str:
        return f"{self.profile}-env.json"

    @property
    def env_path(self) -> Path:
        return self.root / self.env_name

    def read_env(self, *, additional: bool = True) -> dict[str, Any]:
        """The env profile's variables (with ``../.additional_parameters.json`` over them)."""
        if not self.env_path.is_file():
            raise ProjectError(f"Cannot locate profile file '{self.env_name}'")
        variables = read_json(self.env_path, self.env_name)
        if not isinstance(variables, dict):
            raise ProjectError(f"{self.env_name}: not a JSON object of variable names and values")
        extra_path = self.root / ADDITIONAL_PARAMETERS
        if additional and extra_path.is_file():
            extra = read_json(extra_path)
            if not isinstance(extra, dict):
                raise ProjectError(f"{extra_path}: not a JSON object")
            variables.update(extra)
        return variables

    def write_env(self, variables: Mapping[str, Any]) -> None:
        """Write the env profile in portal format with a UTF-8 BOM."""
        self.env_path.parent.mkdir(parents=True, exist_ok=True)
        self.env_path.write_bytes(b"\xef\xbb\xbf" + _portal.dumps(dict(variables)).encode())

    # -- config files ---------------------------------------------------------------------------------------

    def listed(self, name: str) -> bool:
        """Whether the whitelist (if any) lets a project file be touched."""
        return self.whitelist is None or name in self.whitelist.files

    def config_files(self) -> list[str]:
        """The project's uploadable files (zip names), whitelist applied, sorted per folder."""
        names: list[str] = []
        for folder in CONFIG_FOLDERS:
            base = self.root / folder
            if base.is_dir():
                found = (p.relative_to(self.root).as_posix() for p in base.rglob("*.conf.json") if p.is_file())
                names.extend(sorted(n for n in found if self.listed(n)))
        if (self.root / METADATA).is_file() and self.listed(METADATA):
            names.append(METADATA)
        return names

    def substitute(self, text: str) -> str:
        """``{{@ name @}}`` placeholders replaced by their ``.jinja_vars`` values. Names match as written, or
        else ignoring case (sesam-py reads the file's names lower-cased); unknown placeholders stay."""
        if not self.jinja_vars or "{{@" not in text:
            return text
        folded = {name.lower(): value for name, value in reversed(self.jinja_vars.items())}

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            found = self.jinja_vars.get(name, folded.get(name.lower()))
            return match.group(0) if found is None else found

        return PLACEHOLDER.sub(value, text)

    def restore_placeholders(self, text: str) -> str:
        """The reverse of :meth:`substitute` (each value back to its placeholder, the longest values first so
        that a value inside another one does not break it up)."""
        for name, value in sorted(self.jinja_vars.items(), key=lambda item: -len(item[1])):
            if value:
                text = text.replace(value, f"{{{{@ {name} @}}}}")
        return text

    def local_metadata(self) -> dict[str, Any]:
        """The local node metadata (``{}`` when there is no file)."""
        path = self.root / METADATA
        if not path.is_file():
            return {}
        metadata = parse_json(self.substitute(_read_text(path, METADATA)).encode(), METADATA)
        if not isinstance(metadata, dict):
            raise ProjectError(f"{METADATA}: not a JSON object")
        return metadata

    def config_zip(self, metadata: MetadataOptions | None = None) -> bytes:
        """The upload zip (client-spec 4.2): each file as on disk after placeholder substitution, checked to be
        JSON; with ``metadata``, the node metadata rewritten for a test run."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in self.config_files():
                text = self.substitute(_read_text(self.root / name, name))
                parse_json(text.encode(), name)
                if name == METADATA and metadata is not None:
                    text = _portal.compact(rewrite_metadata(self.local_metadata(), metadata))
                archive.writestr(name, text.encode())
        return buffer.getvalue()

    def local_files(self) -> dict[str, bytes]:
        """The upload zip's files without the metadata rewrite (what ``status`` compares)."""
        return unzip(self.config_zip())

    def node_files(self, node_zip: bytes) -> dict[str, bytes]:
        """The node's config zip as project files: the metadata rewrite undone, every file in portal format."""
        files: dict[str, bytes] = {}
        local = self.local_metadata() if (self.root / METADATA).is_file() else {}
        for name, data in unzip(node_zip).items():
            value = parse_json(data, f"the node's {name}")
            if name == METADATA and isinstance(value, dict):
                value = undo_metadata(value, local)
            files[name] = _portal.dumps(value).encode()
        return files

    def replace_config(self, files: Mapping[str, bytes]) -> list[str]:
        """Make the node's ``files`` the local config: the top-level ``pipes/*.conf.json`` and
        ``systems/*.conf.json`` (whitelist applied) are deleted, then the files are written with the
        placeholders put back. Returns the names written."""
        for folder in CONFIG_FOLDERS:
            base = self.root / folder
            if base.is_dir():
                for path in base.glob("*.conf.json"):
                    if path.is_file() and self.listed(f"{folder}/{path.name}"):
                        path.unlink()
        written = []
        for name, data in files.items():
            if not self.listed(name):
                continue
            target = self.root / _safe_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = data.decode()
            if name.startswith(CONFIG_FOLDERS):
                text = self.restore_placeholders(text)
            target.write_bytes(text.encode())
            written.append(name)
        return written

    # -- testdata ---------------------------------------------------------------------------------------

    @property
    def testdata(self) -> Path:
        return self.root / "testdata"

    def testdata_files(self) -> Iterator[tuple[str, Path]]:
        """``(pipe id, file)`` for each ``testdata/**/*.json``, whitelist applied."""
        if not self.testdata.is_dir():
            return
        for path in sorted(self.testdata.rglob("*")):
            if path.is_file() and path.suffix.lower() == ".json":
                pipe_id = path.name[: -len(path.suffix)]
                if self.whitelist is None or pipe_id in self.whitelist.pipes:
                    yield pipe_id, path

    def top_level(self, folder: str, pattern: str = "*.conf.json") -> list[Path]:
        """The files matching ``pattern`` directly in ``folder`` (sorted)."""
        base = self.root / folder
        return sorted(p for p in base.glob(pattern) if p.is_file()) if base.is_dir() else []


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ProjectError(f"{name}: cannot be read: {exc.strerror}") from None


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ProjectError(f"the node's config zip holds an unsafe file name: {name!r}")
    return path


def unzip(data: bytes) -> dict[str, bytes]:
    """The files of a zip by name (directories left out)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except zipfile.BadZipFile as exc:
        raise ProjectError(f"not a zip file: {exc}") from None


def write_zip(files: Mapping[str, bytes], path: Path) -> None:
    """``files`` as a ZIP_DEFLATED zip at ``path``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
