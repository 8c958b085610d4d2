#!/usr/bin/env python3
"""Benchmark of compiled DTL against hand-written Python doing the same work, in one run (issue 3).

    .venv/bin/python scripts/bench/dtl.py --quick                  # 20k entities, 3 rounds
    .venv/bin/python scripts/bench/dtl.py --json bench-dtl.json    # 200k entities, 3 rounds
    .venv/bin/python scripts/bench/dtl.py --quick --profile --breakdown  # plus cProfile and per-step costs
    .venv/bin/python scripts/bench/dtl.py --n 50000 --rounds 5 --no-jq

Workloads (typed entities in, typed entities out, run in batches of 1000 as a pipe would):

``tutorial``
    The getting-started tutorial's ``customers-with-orders`` transform (``../shared/tutorial/
    sesam.conf.json``): ``apply`` of an ``order`` rule to ``hops`` into ``orders`` joined on
    ``customer_id``, ``count``, ``sum``/``map``, ``multiply``, ``minus``, ``coalesce`` and a final
    ``filter`` with ``gt``. The tutorial's default rule emits no ``_id`` (dtl-spec open question 11), so
    ``["copy", "_id"]`` is put in front of it. Orders are read through ``dtl.testing.InMemoryLookup``.
    Data: customers shaped like the tutorial's (``_id``, ``first_name``, ``last_name``, ``age``), 1-3
    orders each with 1-3 items, prices and discounts as ``decimal.Decimal``.
``flat``
    About ten common functions on a flat entity: ``copy``, ``add``, ``concat``, ``upper``,
    ``coalesce``, ``if``, ``eq``, ``datetime-parse``, ``sum``, ``filter`` (the list function, with
    ``gt``) and a final ``filter`` transform.

Each is compared with a hand-written Python function doing the same work on the same input (the
hand-written join uses a plain dict of orders by ``customer_id``); the outputs are checked equal -
values, types, decimal exponents - on a sample, and the emitted counts on every round. Index building
(the lookup's index, the dict index) is done before timing and reported apart. ``jq`` runs the
equivalent filter on the same data as JSON lines, for reference only: its time includes parsing and
printing JSON, which the Python measurements do not do.

Median of ``--rounds`` rounds (default 3), round-robin; the garbage collector stays on. Target: compiled
DTL at >= 50 % of the hand-written Python's throughput, for both workloads.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import gc
import io
import json
import pstats
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import orjson

import dtl
from dtl.testing import InMemoryLookup
from storage import Datetime, encode

QUICK_N = 20_000
FULL_N = 200_000
BATCH = 1000
TARGET = 0.50  # compiled DTL throughput / hand-written throughput
PROFILE_N = 20_000  # entities for --profile and --breakdown
SAMPLE = 5000  # entities whose outputs are compared value by value
TUTORIAL_CONFIG = Path(__file__).resolve().parents[3] / "shared" / "tutorial" / "sesam.conf.json"  # beside the repo
TUTORIAL_PIPE = "customers-with-orders"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

WORKLOADS = ("tutorial", "flat")
KINDS = ("dtl", "hand", "jq")
# every named figure and ratio the JSON output holds (the tests check them); jq figures are null
# when jq is not installed
FIGURES = (*(f"{w}.{k}.{f}" for w in WORKLOADS for k in KINDS for f in ("entities_per_s", "us_per_entity", "seconds")),
           "tutorial.dtl.index_build_seconds", "tutorial.hand.index_build_seconds")
RATIOS = tuple(f"{w}.{k}_vs_hand" for w in WORKLOADS for k in ("dtl", "jq"))
TARGETS = WORKLOADS

# -- the DTL ----------------------------------------------------------------------------------------

# The tutorial pipe as ../shared/tutorial/sesam.conf.json has it (checked against the file when it
# is there, so a change in the tutorial shows up rather than being benchmarked silently).
TUTORIAL_RULES: dict[str, Any] = {
    "default": [
        ["add", "type", "customer"],
        ["add", "name", ["concat", ["list", "_S.first_name", " ", "_S.last_name"]]],
        ["add", "orders", ["apply", "order", ["hops", {
            "datasets": ["orders o"],
            "where": [
                ["eq", "_S._id", "o.customer_id"],
            ],
        }]]],
        ["add", "order_count", ["count", "_T.orders"]],
        ["add", "total", ["sum", ["map", "_.total", "_T.orders"]]],
        ["filter", ["gt", "_T.total", 25.00]],
    ],
    "order": [
        ["copy", "items"],
        ["copy", "discount"],
        ["add", "total",
         ["minus",
          ["coalesce", ["list", "_S.discount", 0]],
          ["sum", ["map", ["multiply", "_.quantity", "_.price"], "_S.items"]]]],
    ],
}

FLAT_RULES: dict[str, Any] = {
    "default": [
        ["copy", "_id"],
        ["copy", "email"],
        ["add", "type", "person"],
        ["add", "name", ["concat", ["list", "_S.first_name", " ", "_S.last_name"]]],
        ["add", "city", ["upper", "_S.city"]],
        ["add", "nick", ["coalesce", ["list", "_S.nickname", "_S.first_name"]]],
        ["add", "status", ["if", ["eq", "_S.status", "active"], "A", "I"]],
        ["add", "signed_up", ["datetime-parse", DATE_FORMAT, "_S.signup"]],
        ["add", "score", ["sum", ["filter", ["gt", "_.", 0], "_S.scores"]]],
        ["filter", ["gt", "_T.score", 10]],
    ],
}
DATETIME_STEP = 7  # index of the datetime-parse step in FLAT_RULES["default"]


def tutorial_transform_config(config_path: Path | None = TUTORIAL_CONFIG) -> tuple[dict[str, Any], list[str]]:
    """The benchmarked transform config (the tutorial's plus ``copy _id``) and notes about it."""
    notes = []
    rules = json.loads(json.dumps(TUTORIAL_RULES))
    if config_path is not None and config_path.exists():
        pipes = {p.get("_id"): p for p in json.loads(config_path.read_text())}
        actual = pipes[TUTORIAL_PIPE]["transform"]["rules"]
        if actual != TUTORIAL_RULES:
            raise SystemExit(f"{config_path}: the {TUTORIAL_PIPE} rules differ from this benchmark's copy; "
                             "update TUTORIAL_RULES")
        notes.append(f"tutorial rules checked against {config_path}")
    rules["default"].insert(0, ["copy", "_id"])
    notes.append('tutorial default rule prefixed with ["copy", "_id"] (it emits no _id; id_required)')
    return {"type": "dtl", "rules": rules}, notes


def flat_transform_config(*, parse_dates: bool = True) -> dict[str, Any]:
    rules = json.loads(json.dumps(FLAT_RULES))
    if not parse_dates:
        del rules["default"][DATETIME_STEP]
    return {"type": "dtl", "rules": rules}


def compile_flat() -> tuple[dtl.Transform, bool, list[str]]:
    """The compiled flat transform (with ``datetime-parse``) and notes about it."""
    return dtl.compile_transform(flat_transform_config()), True, []


# -- synthetic data ---------------------------------------------------------------------------------

_FIRST = ["John", "Maria", "Pam", "Ola", "Kari", "Per", "Anne", "Lars", "Ingrid", "Sofie", "Erik", "Nora"]
_LAST = ["Smith", "Hawkins", "Curie", "Hansen", "Johansen", "Olsen", "Larsen", "Pedersen", "Nilsen"]
_CITIES = ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Drammen", "Bodø"]
_STATUSES = ["active", "active", "active", "inactive", "pending"]


def _money(cents: int) -> Decimal:
    return Decimal(f"{cents // 100}.{cents % 100:02d}")  # two decimals, like "~f22.10"


def customers_and_orders(n: int, *, seed: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` customers and 1-3 orders for each (typed entities, the tutorial's shapes)."""
    rnd = random.Random(seed)
    customers: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for i in range(n):
        cid = f"{i + 1:09d}"
        customers.append({"_id": cid, "first_name": _FIRST[rnd.randrange(12)], "last_name": _LAST[rnd.randrange(9)],
                          "age": 18 + rnd.randrange(70)})
        for _ in range(1 + rnd.randrange(3)):
            order: dict[str, Any] = {
                "_id": f"{len(orders) + 1000:010d}",
                "customer_id": cid,
                "items": [{"ean": f"978-{rnd.randrange(10**10):010d}", "price": _money(50 + rnd.randrange(1450)),
                           "quantity": 1 + rnd.randrange(3)} for _ in range(1 + rnd.randrange(3))],
            }
            if rnd.random() < 0.4:
                order["discount"] = _money(rnd.randrange(1000))
            orders.append(order)
    return customers, orders


def people(n: int, *, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` flat person entities (typed)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        first = _FIRST[rnd.randrange(12)]
        last = _LAST[rnd.randrange(9)]
        entity: dict[str, Any] = {
            "_id": f"person-{i:09d}",
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}{i}@example.com",
            "city": _CITIES[rnd.randrange(7)],
            "status": _STATUSES[rnd.randrange(5)],
            "signup": f"20{10 + rnd.randrange(15)}-{1 + rnd.randrange(12):02d}-{1 + rnd.randrange(28):02d} "
                      f"{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}",
            "scores": [rnd.randrange(-5, 15) for _ in range(rnd.randrange(6))],
        }
        roll = rnd.random()
        if roll < 0.5:
            entity["nickname"] = first[:3].lower()
        elif roll < 0.7:
            entity["nickname"] = None
        out.append(entity)
    return out


def batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# -- the hand-written equivalents -------------------------------------------------------------------


def hand_orders_index(orders: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Orders by ``customer_id`` (in ``_id`` order, as the lookup returns them)."""
    index: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        index.setdefault(order["customer_id"], []).append(order)
    for bucket in index.values():
        bucket.sort(key=lambda o: o["_id"])
    return index


def hand_tutorial(batch: Iterable[dict[str, Any]], orders_by_customer: dict[str, list[dict[str, Any]]]
                  ) -> list[dict[str, Any]]:
    """``customers-with-orders`` written by hand."""
    out = []
    for customer in batch:
        first = customer.get("first_name")
        last = customer.get("last_name")
        name = "".join(s for s in (first, " ", last) if type(s) is str)
        orders = []
        for order in orders_by_customer.get(customer["_id"], ()):
            target: dict[str, Any] = {}
            items = order.get("items")
            if items is not None:
                target["items"] = items
            discount = order.get("discount")
            if discount is not None:
                target["discount"] = discount
            target["total"] = (sum(item["quantity"] * item["price"] for item in items or ())
                               - (0 if discount is None else discount))
            orders.append(target)
        total = sum(order["total"] for order in orders)
        if total > 25:
            out.append({"_id": customer["_id"], "type": "customer", "name": name, "orders": orders,
                        "order_count": len(orders), "total": total})
    return out


_strptime = _dt.datetime.strptime


def hand_flat(batch: Iterable[dict[str, Any]], *, parse_dates: bool = True) -> list[dict[str, Any]]:
    """The flat transform written by hand."""
    out = []
    for source in batch:
        score = sum(v for v in source.get("scores") or () if v > 0)
        if not score > 10:
            continue
        target = {"_id": source["_id"], "email": source["email"], "type": "person",
                  "name": "".join(s for s in (source.get("first_name"), " ", source.get("last_name"))
                                  if type(s) is str),
                  "city": source["city"].upper()}
        nick = source.get("nickname")
        target["nick"] = nick if nick is not None else source.get("first_name")
        target["status"] = "A" if source.get("status") == "active" else "I"
        if parse_dates:
            target["signed_up"] = Datetime.from_datetime(_strptime(source["signup"], DATE_FORMAT))
        target["score"] = score
        out.append(target)
    return out


# -- jq equivalents (reference) -----------------------------------------------------------------------

JQ_TUTORIAL = r"""
($orders | group_by(.customer_id) | map({key: .[0].customer_id, value: .}) | from_entries) as $idx
| inputs
| ([ $idx[._id][]?
     | {items} + (if .discount != null then {discount} else {} end)
       + {total: (([.items[] | .quantity * .price] | add // 0) - (.discount // 0))} ]) as $orders
| {_id, type: "customer", name: ([.first_name, " ", .last_name] | map(strings) | join("")),
   orders: $orders, order_count: ($orders | length), total: ([$orders[].total] | add // 0)}
| select(.total > 25)
"""

JQ_FLAT = r"""
inputs
| {_id, email, type: "person", name: ([.first_name, " ", .last_name] | map(strings) | join("")),
   city: (.city | ascii_upcase), nick: (.nickname // .first_name),
   status: (if .status == "active" then "A" else "I" end),
   DATES
   score: ([.scores[]? | select(. > 0)] | add // 0)}
| select(.score > 10)
"""
JQ_DATES = 'signed_up: (.signup | strptime("%Y-%m-%d %H:%M:%S") | todate),'


def jq_filter(workload: str, *, parse_dates: bool = True) -> str:
    if workload == "tutorial":
        return JQ_TUTORIAL
    return JQ_FLAT.replace("DATES", JQ_DATES if parse_dates else "")


def write_jsonl(path: Path, entities: Iterable[dict[str, Any]]) -> None:
    """Wire-form JSON lines; decimals as JSON numbers (as the tutorial's files have them)."""
    with open(path, "wb") as f:
        for entity in entities:
            f.write(orjson.dumps(_plain(entity)) + b"\n")


def _plain(value: Any) -> Any:
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain(v) for v in value]
    if type(value) is Decimal:
        return orjson.Fragment(str(value).encode())
    return encode(value)


def run_jq(workload: str, input_path: Path, *, orders_path: Path | None, parse_dates: bool) -> tuple[float, int]:
    """Seconds and output lines of one jq run (output to a pipe that is counted)."""
    argv = ["jq", "-nc"]
    if orders_path is not None:
        argv += ["--slurpfile", "orders", str(orders_path)]
    argv += [jq_filter(workload, parse_dates=parse_dates), str(input_path)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, check=True)
    seconds = time.perf_counter() - start
    return seconds, proc.stdout.count(b"\n")


# -- comparison -------------------------------------------------------------------------------------


def difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where ``a`` and ``b`` differ (types, decimal exponents, datetimes by instant and offset), or None."""
    if isinstance(a, _dt.datetime) and isinstance(b, _dt.datetime):
        if a == b and a.utcoffset() == b.utcoffset() and type(a) is type(b):
            return None
        return f"{path}: {a!r} != {b!r}"
    if type(a) is not type(b):
        return f"{path}: type {type(a).__name__} ({a!r}) != {type(b).__name__} ({b!r})"
    if type(a) is dict:
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            found = difference(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if type(a) is list:
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(a) is Decimal:
        return None if a.as_tuple() == b.as_tuple() else f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def check_same(name: str, dtl_out: list[Any], hand_out: list[Any]) -> None:
    found = difference(dtl_out, hand_out)
    if found:
        raise AssertionError(f"{name}: DTL and hand-written outputs differ at {found}")


# -- the workloads ----------------------------------------------------------------------------------


class Workload:
    """One workload: its inputs as batches and the two runners (each returns the emitted count)."""

    def __init__(self, name: str, inputs: list[dict[str, Any]], dtl_batch: Callable[[Any], list[Any]],
                 hand_batch: Callable[[Any], list[Any]]) -> None:
        self.name = name
        self.inputs = inputs
        self.batches = batches(inputs)
        self.dtl_batch = dtl_batch
        self.hand_batch = hand_batch

    def check(self, sample: int = SAMPLE) -> int:
        """Compare the outputs of the first ``sample`` entities; return how many were emitted."""
        dtl_out: list[Any] = []
        hand_out: list[Any] = []
        for batch in batches(self.inputs[:sample]):
            dtl_out += self.dtl_batch(batch)
            hand_out += self.hand_batch(batch)
        check_same(self.name, dtl_out, hand_out)
        return len(dtl_out)

    def time(self, kind: str) -> tuple[float, int]:
        """Seconds and emitted count of one runner over all batches."""
        run = self.dtl_batch if kind == "dtl" else self.hand_batch
        emitted = 0
        start = time.perf_counter()
        for batch in self.batches:
            emitted += len(run(batch))
        return time.perf_counter() - start, emitted

    def time_both(self) -> dict[str, tuple[float, int]]:
        """Both runners over all batches, interleaved batch by batch (alternating which goes first), so
        that load from other processes on the machine falls on both alike."""
        runners = (("dtl", self.dtl_batch), ("hand", self.hand_batch))
        seconds = {"dtl": 0.0, "hand": 0.0}
        emitted = {"dtl": 0, "hand": 0}
        clock = time.perf_counter
        for i, batch in enumerate(self.batches):
            for kind, run in runners if i % 2 == 0 else runners[::-1]:
                start = clock()
                count = len(run(batch))
                seconds[kind] += clock() - start
                emitted[kind] += count
        return {kind: (seconds[kind], emitted[kind]) for kind in seconds}


def build(n: int, *, config_path: Path | None = TUTORIAL_CONFIG) -> dict[str, Any]:
    """Generate the data, compile the transforms and build the indexes."""
    notes: list[str] = []
    customers, orders = customers_and_orders(n)
    tutorial_config, tutorial_notes = tutorial_transform_config(config_path)
    notes += tutorial_notes
    tutorial = dtl.compile_transform(tutorial_config)
    lookup = InMemoryLookup({"orders": orders})
    start = time.perf_counter()
    # the lookup builds its index on the first lookup; build it here, outside the timed loops
    edge = tutorial.join_plan.edges[0]
    lookup.lookup(edge.dataset, edge.index, [customers[0]["_id"]])
    dtl_index_seconds = time.perf_counter() - start
    start = time.perf_counter()
    index = hand_orders_index(orders)
    hand_index_seconds = time.perf_counter() - start

    flat, parse_dates, flat_notes = compile_flat()
    notes += flat_notes
    persons = people(n)

    workloads = {
        "tutorial": Workload("tutorial", customers, lambda b: tutorial.run(b, lookup=lookup),
                             lambda b: hand_tutorial(b, index)),
        "flat": Workload("flat", persons, flat.run, lambda b: hand_flat(b, parse_dates=parse_dates)),
    }
    return {"workloads": workloads, "orders": orders, "parse_dates": parse_dates, "notes": notes,
            "transforms": {"tutorial": tutorial, "flat": flat},
            "index_seconds": {"dtl": dtl_index_seconds, "hand": hand_index_seconds}}


def measure(n: int, *, rounds: int = 3, jq: bool = True, sample: int = SAMPLE,
            config_path: Path | None = TUTORIAL_CONFIG, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole benchmark; return the result dict (see ``FIGURES``, ``RATIOS``, ``TARGETS``)."""
    started = time.perf_counter()
    built = build(n, config_path=config_path)
    workloads: dict[str, Workload] = built["workloads"]
    notes: list[str] = built["notes"]
    log(f"data and compile: {time.perf_counter() - started:.1f} s ({n} customers, {len(built['orders'])} orders, "
        f"{n} persons)")

    checks: dict[str, Any] = {}
    for name, workload in workloads.items():
        emitted = workload.check(sample)
        checks[f"{name}.sample_entities"] = min(sample, n)
        checks[f"{name}.sample_emitted"] = emitted
        log(f"{name}: DTL and hand-written outputs equal on {min(sample, n)} entities ({emitted} emitted)")

    jq_path = shutil.which("jq") if jq else None
    if jq and jq_path is None:
        notes.append("jq not installed")
    elif not jq:
        notes.append("jq skipped (--no-jq)")

    seconds: dict[str, list[float]] = {f"{w}.{k}": [] for w in WORKLOADS for k in KINDS}
    emitted: dict[str, set[int]] = {f"{w}.{k}": set() for w in WORKLOADS for k in KINDS}
    with _common.scratch_dir("sesamd-bench-dtl-") as scratch:
        if jq_path:
            write_jsonl(scratch / "customers.jsonl", workloads["tutorial"].inputs)
            write_jsonl(scratch / "orders.jsonl", built["orders"])
            write_jsonl(scratch / "people.jsonl", workloads["flat"].inputs)
        for r in range(rounds):
            for name, workload in workloads.items():
                gc.collect()
                for kind, (took, count) in workload.time_both().items():
                    seconds[f"{name}.{kind}"].append(took)
                    emitted[f"{name}.{kind}"].add(count)
                if jq_path:
                    if name == "tutorial":
                        took, count = run_jq(name, scratch / "customers.jsonl", orders_path=scratch / "orders.jsonl",
                                             parse_dates=True)
                    else:
                        took, count = run_jq(name, scratch / "people.jsonl", orders_path=None,
                                             parse_dates=built["parse_dates"])
                    seconds[f"{name}.jq"].append(took)
                    emitted[f"{name}.jq"].add(count)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in seconds.items() if v))

    figures: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for key, values in seconds.items():
        if values:
            s = _common.summarize(values)
            stats[key] = s
            figures[f"{key}.seconds"] = s.median
            figures[f"{key}.entities_per_s"] = n / s.median if s.median else None
            figures[f"{key}.us_per_entity"] = s.median / n * 1e6 if n else None
        else:
            figures[f"{key}.seconds"] = figures[f"{key}.entities_per_s"] = figures[f"{key}.us_per_entity"] = None
    figures["tutorial.dtl.index_build_seconds"] = built["index_seconds"]["dtl"]
    figures["tutorial.hand.index_build_seconds"] = built["index_seconds"]["hand"]

    ratios: dict[str, Any] = {}
    for w in WORKLOADS:
        hand_rate = figures[f"{w}.hand.entities_per_s"]
        for k in ("dtl", "jq"):
            rate = figures[f"{w}.{k}.entities_per_s"]
            ratios[f"{w}.{k}_vs_hand"] = rate / hand_rate if rate and hand_rate else None

    # per-round ratios: DTL and hand-written run interleaved batch by batch, so these are the steadiest
    ratio_rounds = {f"{w}.dtl_vs_hand": [h / d for d, h in zip(seconds[f"{w}.dtl"], seconds[f"{w}.hand"], strict=True)]
                    for w in WORKLOADS}

    for w in WORKLOADS:
        dtl_counts, hand_counts = emitted[f"{w}.dtl"], emitted[f"{w}.hand"]
        if dtl_counts != hand_counts or len(dtl_counts) != 1:
            raise AssertionError(f"{w}: emitted counts differ: DTL {dtl_counts}, hand-written {hand_counts}")
        checks[f"{w}.emitted"] = next(iter(dtl_counts))
        if emitted[f"{w}.jq"]:
            checks[f"{w}.jq_emitted"] = sorted(emitted[f"{w}.jq"])[0]
            if emitted[f"{w}.jq"] != dtl_counts:
                notes.append(f"{w}: jq emitted {sorted(emitted[f'{w}.jq'])} entities, DTL {sorted(dtl_counts)} "
                             "(jq uses floats)")

    targets = {w: {"target": TARGET, "ratio": ratios[f"{w}.dtl_vs_hand"],
                   "met": ratios[f"{w}.dtl_vs_hand"] is not None and ratios[f"{w}.dtl_vs_hand"] >= TARGET}
               for w in WORKLOADS}
    return {"benchmark": "dtl", "n": n, "rounds": rounds, "batch": BATCH, "datetime_parse": built["parse_dates"],
            "figures": figures, "ratios": ratios, "ratio_rounds": ratio_rounds, "targets": targets,
            "checks": checks, "stats": stats,
            "notes": notes, "jq": _jq_version(jq_path), "environment": _common.environment()}


def _jq_version(path: str | None) -> str | None:
    if not path:
        return None
    return subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip() or None


# -- output -----------------------------------------------------------------------------------------

_LABELS = {
    ("tutorial", "dtl"): "tutorial customers-with-orders: compiled DTL",
    ("tutorial", "hand"): "tutorial customers-with-orders: hand-written Python",
    ("tutorial", "jq"): "tutorial customers-with-orders: jq (reference)",
    ("flat", "dtl"): "flat ~10 functions: compiled DTL",
    ("flat", "hand"): "flat ~10 functions: hand-written Python",
    ("flat", "jq"): "flat ~10 functions: jq (reference)",
}


def table(result: dict[str, Any]) -> str:
    figures, ratios, targets = result["figures"], result["ratios"], result["targets"]
    jq_missing = "jq not installed" in result["notes"]
    rows = []
    for w in WORKLOADS:
        for k in KINDS:
            rate = figures[f"{w}.{k}.entities_per_s"]
            if rate is None:
                rows.append([_LABELS[w, k], "jq not installed" if jq_missing else "skipped", "", "", "", ""])
                continue
            stats = result["stats"][f"{w}.{k}"]
            spread = f" ({n_rate(result['n'], stats['max'])}-{n_rate(result['n'], stats['min'])})"
            ratio = "1.00" if k == "hand" else f"{ratios[f'{w}.{k}_vs_hand']:.2f}"
            target = f">= {TARGET:.2f}" if k == "dtl" else ""
            met = ("yes" if targets[w]["met"] else "NO") if k == "dtl" else ""
            rows.append([_LABELS[w, k], f"{rate:,.0f}{spread}", f"{figures[f'{w}.{k}.us_per_entity']:.2f}",
                         ratio, target, met])
    return _common.format_table(["measurement", "entities/s (min-max)", "µs/entity", "vs hand-written", "target",
                                 "met?"], rows)


def n_rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds else "-"


# -- profiling --------------------------------------------------------------------------------------


def profile(n: int, *, top: int = 30, config_path: Path | None = TUTORIAL_CONFIG) -> str:
    """cProfile of each compiled DTL transform over ``n`` entities: the top functions by own time."""
    built = build(n, config_path=config_path)
    out = io.StringIO()
    for name, workload in built["workloads"].items():
        profiler = cProfile.Profile()
        profiler.enable()
        workload.time("dtl")
        profiler.disable()
        out.write(f"\n== cProfile: {name}, compiled DTL, {n} entities (sorted by own time) ==\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _step_chain(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, config) pairs that each add one step to the one before: all rules start empty, then the
    default rule's steps are added one by one, then each other rule's. The last is the whole config."""
    rules = {name: [] for name in config["rules"]}
    chain = []
    for name in ["default", *[r for r in config["rules"] if r != "default"]]:
        for i, step in enumerate(config["rules"][name]):
            rules[name].append(step)
            chain.append((f"{name}[{i}] {json.dumps(step, ensure_ascii=False)}",
                          {**config, "rules": json.loads(json.dumps(rules))}))
    return chain


def breakdown(n: int, *, repeats: int = 5, config_path: Path | None = TUTORIAL_CONFIG) -> list[tuple[str, float]]:
    """The cost of each DTL step in µs per source entity, measured as the difference between a rule set
    with that step and the same without it, adding steps one at a time in rule order (default first).
    A step of an applied rule costs per *source* entity, for all of its orders. Best of ``repeats``,
    interleaved. A ``filter`` step's row also holds the change in what is emitted after it."""
    built = build(n, config_path=config_path)
    tutorial_config, _ = tutorial_transform_config(config_path)
    flat_config = flat_transform_config(parse_dates=built["parse_dates"])
    lookup = InMemoryLookup({"orders": built["orders"]})
    rows: list[tuple[str, float]] = []
    for name, config in (("tutorial", tutorial_config), ("flat", flat_config)):
        inputs = batches(built["workloads"][name].inputs)
        chain = _step_chain(config)
        # the baseline: every rule empty; without id_required the _id-less target is dropped
        empty = {**config, "id_required": False, "rules": {r: [] for r in config["rules"]}}
        compiled = [dtl.compile_transform(empty)] + [dtl.compile_transform(v) for _, v in chain]
        best = [float("inf")] * len(compiled)
        for _ in range(repeats):
            for i, transform in enumerate(compiled):
                gc.collect()
                start = time.perf_counter()
                for batch in inputs:
                    transform.run(batch, lookup=lookup)
                best[i] = min(best[i], time.perf_counter() - start)
        us = [b / n * 1e6 for b in best]
        rows.append((f"{name}: whole transform", us[-1]))
        rows.append((f"{name}: all rules empty (the run loop)", us[0]))
        for i, (label, _) in enumerate(chain, start=1):
            rows.append((f"{name}: + {label}", us[i] - us[i - 1]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_N} entities instead of {FULL_N}")
    parser.add_argument("--n", type=int, help="entities per workload (overrides --quick)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="OUT", help="write every figure and ratio as JSON ('-' for stdout)")
    parser.add_argument("--no-jq", action="store_true", help="leave out the jq reference rows")
    parser.add_argument("--sample", type=int, default=SAMPLE, help="entities whose outputs are compared")
    parser.add_argument("--profile", type=int, metavar="N", nargs="?", const=PROFILE_N,
                        help=f"also print a cProfile of the DTL transforms over N entities (default {PROFILE_N})")
    parser.add_argument("--tutorial-config", type=Path, default=TUTORIAL_CONFIG,
                        help="the tutorial's sesam.conf.json, checked against the built-in rules if present")
    parser.add_argument("--breakdown", type=int, metavar="N", nargs="?", const=PROFILE_N,
                        help=f"also print each DTL step's cost, added one at a time, over N entities (default "
                             f"{PROFILE_N})")
    args = parser.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else FULL_N)
    log = (lambda s: print(s, file=sys.stderr)) if args.json == "-" else print

    result = measure(n, rounds=args.rounds, jq=not args.no_jq, sample=args.sample, config_path=args.tutorial_config,
                     log=log)
    log("")
    log(table(result))
    for note in result["notes"]:
        log(f"note: {note}")
    if args.json:
        _common.write_json(args.json, result)
    if args.profile is not None:
        log(profile(args.profile, config_path=args.tutorial_config))
    if args.breakdown is not None:
        rows = [[label[:110], f"{us:.2f}"] for label, us in breakdown(args.breakdown, config_path=args.tutorial_config)]
        log("\n" + _common.format_table(["DTL step (left out)", "µs/entity"], rows))
    return 0 if all(t["met"] for t in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
