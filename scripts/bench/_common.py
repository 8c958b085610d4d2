"""Shared helpers for the benchmarks in ``scripts/bench``: synthetic data, timing, memory, output.

Method (see the stack check's baseline benchmark): run every measurement a few rounds, round-robin, and
report the median with min and max; the 2-core VM is noisy, so compare ratios measured in the same run
more than absolute rates. Measurements that report memory run in a child process of their own
(:func:`run_child`), so the peak RSS is that phase's and not the parent's.

Importing this module puts the project root first on ``sys.path`` and ``scripts/bench`` last
(:func:`project_first`): run as a script, a benchmark has its own directory first on ``sys.path``, where
``dtl.py`` and ``storage.py`` would shadow the packages; last, it still serves the benchmarks' own helper
modules (``_feed_clients``). So a benchmark imports ``_common`` (found in that directory) before the
project's packages, which isort does anyway: ``_common`` sorts as a third-party module, ahead of the
first-party block.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "BATCH",
    "HERE",
    "ROOT",
    "Stats",
    "entities",
    "entity",
    "environment",
    "format_table",
    "peak_rss",
    "project_first",
    "read_bodies",
    "rss",
    "run_child",
    "scratch_dir",
    "summarize",
    "write_bodies",
    "write_json",
]

HERE = Path(__file__).resolve().parent
"""``scripts/bench``."""

ROOT = Path(os.environ.get("SESAMD_BENCH_ROOT") or HERE.parents[1]).resolve()
"""The tree whose packages are measured: this checkout, or ``SESAMD_BENCH_ROOT`` (a prototype copy)."""


def project_first() -> None:
    """Put :data:`ROOT` first on ``sys.path`` and :data:`HERE` last (done when this module is imported)."""
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (HERE, ROOT)] + [str(HERE)]


project_first()

BATCH = 1000
"""Entities per batch: per POST body, per ``Dataset.write`` call, per WriteBatch."""

MIB = 1 << 20

# -- synthetic entities -----------------------------------------------------------------------------

_FIRST = ["Ola", "Kari", "Per", "Anne", "Lars", "Ingrid", "Jon", "Sofie", "Erik", "Nora"]
_LAST = ["Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen"]
_CITIES = ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Drammen"]
_TAGSETS = [["gold"], ["silver", "newsletter"], ["b2b", "vip", "gdpr-ok"], ["churn-risk"],
            ["newsletter", "gdpr-ok"], ["vip"], ["silver"], ["b2b", "gold"]]


def entity(i: int, rnd: random.Random) -> dict[str, Any]:
    """Entity number ``i``, as external JSON (before parsing): about 320 bytes compact, 12 properties.

    It has a nested list of dicts, a list of ints, a list of strings, a decimal as a JSON number with a
    fraction (``parse_json`` turns it into a ``~f`` transit string), a ``~t`` datetime and a ``~:``
    namespaced identifier.
    """
    first, last = _FIRST[rnd.randrange(10)], _LAST[rnd.randrange(7)]
    balance = rnd.randrange(-100_000, 10_000_000) / 100  # two decimals, prints like 1234.5 or 1234.56
    return {
        "_id": f"crm:customer-{i:09d}",
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{i}@example.com",
        "age": 18 + rnd.randrange(78),
        "active": rnd.random() < 0.8,
        "balance": balance,
        "created": f"~t20{10 + rnd.randrange(15)}-{1 + rnd.randrange(12):02d}-{1 + rnd.randrange(28):02d}"
                   f"T{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z",
        "segment": f"~:crm:segment-{rnd.randrange(40)}",
        "tags": list(_TAGSETS[rnd.randrange(8)]),
        "addresses": [{"street": f"Storgata {1 + rnd.randrange(200)}", "city": _CITIES[rnd.randrange(6)],
                       "zip": f"{rnd.randrange(10000):04d}"}],
        "orders": [(i * 7919 + j * 104729) % 1000003 for j in range(rnd.randrange(5))],
    }


def entities(n: int, *, start: int = 0, seed: int = 42) -> Iterator[dict[str, Any]]:
    """``n`` entities numbered from ``start``; the same seed gives the same entities."""
    rnd = random.Random(seed * 1_000_003 + start)
    for i in range(start, start + n):
        yield entity(i, rnd)


def write_bodies(path: str | Path, n: int, *, batch: int = BATCH, seed: int = 42) -> dict[str, Any]:
    """Write ``n`` entities as JSON-array bodies of ``batch`` entities, one body per line.

    Returns the entity count, the number of bodies and the average compact JSON size of an entity.
    """
    total = 0
    bodies = 0
    with open(path, "wb") as f:
        for s in range(0, n, batch):
            body = orjson.dumps(list(entities(min(batch, n - s), start=s, seed=seed)))
            total += len(body) - 2  # brackets; the commas stand in for the separators
            bodies += 1
            f.write(body + b"\n")
    return {"entities": n, "bodies": bodies, "avg_entity_bytes": total / n if n else 0.0}


def read_bodies(path: str | Path) -> Iterator[bytes]:
    """The bodies written by :func:`write_bodies`, one at a time (each ``batch`` entities of JSON)."""
    with open(path, "rb") as f:
        yield from f


# -- timing and memory ------------------------------------------------------------------------------


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> tuple[int, int]:
    """The resident set size of this process now and its anonymous part, in bytes (Linux).

    The anonymous part leaves out file pages (LevelDB maps its table files), which the kernel can drop.
    """
    with open("/proc/self/statm", "rb") as f:
        fields = f.read().split()
    resident, shared = int(fields[1]), int(fields[2])
    return resident * _PAGE, (resident - shared) * _PAGE


def peak_rss() -> int:
    """The peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class Stats(dict):
    """Median, min and max of some rounds' values (a dict, so it goes into JSON as it is)."""

    @property
    def median(self) -> float:
        return self["median"]


def summarize(values: Sequence[float]) -> Stats:
    values = sorted(values)
    return Stats(median=statistics.median(values), min=values[0], max=values[-1], rounds=len(values),
                 values=list(values))


def run_child(argv: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None) -> Any:
    """Run ``python argv...`` and return the JSON value the child printed on its last stdout line."""
    child_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
                          env=child_env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(argv)} failed with exit code {proc.returncode}:\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"child {' '.join(argv)} printed nothing:\n{proc.stderr}")
    return json.loads(lines[-1])


@contextlib.contextmanager
def scratch_dir(prefix: str = "sesamd-bench-", parent: str | None = None) -> Iterator[Path]:
    """A temporary directory, removed afterwards whatever happens."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- output ------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count()}
    with contextlib.suppress(AttributeError):
        info["affinity"] = sorted(os.sched_getaffinity(0))
    for name in ("orjson", "msgspec", "xxhash", "plyvel"):
        with contextlib.suppress(ImportError):
            module = __import__(name)
            info[name] = getattr(module, "__version__", None) or getattr(module, "VERSION", None)
            if name == "plyvel":
                info["leveldb"] = module.__leveldb_version__
    return info


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, align: str | None = None) -> str:
    """A plain-text table; ``align`` has one ``<`` or ``>`` per column (default: first left, rest right)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "<" + ">" * (len(headers) - 1)
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (``-`` for stdout)."""
    text = json.dumps(data, indent=1, sort_keys=False, default=str) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)
