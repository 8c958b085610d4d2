"""run-all-pipes without I/O (client-spec 10): which pipes run, in which order, and when the run ends.

:func:`parse_options` reads the query parameters; :func:`classify` and :func:`plan` pick and order the
pipes (topologically by dataset edges, each strongly connected component in sorted id order, grouped into
levels whose groups may run side by side); :func:`after_pass` does the bookkeeping of each pass and says
whether to go on. The Trio driver (:mod:`sesamd._run_all`) does the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["ENDPOINT", "INPUT", "INTERNAL", "NON_USER_ORIGINS", "OUTPUT", "OptionError", "Options", "PassResult",
           "PipeNode", "PipeOutcome", "PipeStats", "Plan", "Progress", "Verdict", "after_pass", "classify",
           "is_user_pipe", "parse_options", "plan"]

INPUT, INTERNAL, OUTPUT, ENDPOINT = "input", "internal", "output", "endpoint"
NON_USER_ORIGINS = frozenset({"system", "search", "replica", "aggregator-storage-node"})
SCHEDULER_MODES = ("active", "poll")
REQUEST_MODES = ("sync", "async")


# -- options ---------------------------------------------------------------------------------------------


class OptionError(ValueError):
    """A bad query parameter: ``name`` and what is wrong with its value."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"query parameter '{name}' {message}")
        self.name = name


@dataclass(frozen=True)
class Options:
    """The parameters of one run (client-spec 6.6, 10.2)."""

    extra_zero_runs: int = 2
    max_runs: int = 100
    max_run_time: float = 900.0
    delete_input_datasets: bool = True
    reset_pipes_and_delete_sink_datasets: bool = True
    check_input_pipes: bool = False
    output_run_statistics: bool = False
    scheduler_mode: str = "active"  # accepted, no difference: the node drives the pumps either way
    request_mode: str = "sync"


_BOOLEANS = ("delete_input_datasets", "reset_pipes_and_delete_sink_datasets", "check_input_pipes",
             "output_run_statistics")


def _boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise OptionError(name, f"must be true or false (any case), not {value!r}")


def _number(name: str, value: str, minimum: float, integral: bool) -> float:
    try:
        number = int(value) if integral else float(value)
    except ValueError:
        raise OptionError(name, f"must be {'an integer' if integral else 'a number'}, not {value!r}") from None
    if number != number or number < minimum or number == float("inf"):
        raise OptionError(name, f"must be at least {minimum:g}, not {value!r}")
    return number


def parse_options(params: Mapping[str, str]) -> Options:
    """The options from query parameters (booleans in any case: ``True``/``false``/``1``); raises
    :class:`OptionError` naming the parameter. An empty value means the default; unknown names are ignored."""
    given = {name: value for name, value in params.items() if value is not None and value != ""}
    options = Options()
    changes: dict[str, Any] = {}
    if "extra_zero_runs" in given:
        changes["extra_zero_runs"] = int(_number("extra_zero_runs", given["extra_zero_runs"], 0, True))
    if "max_runs" in given:
        changes["max_runs"] = int(_number("max_runs", given["max_runs"], 1, True))
    if "max_run_time" in given:
        changes["max_run_time"] = _number("max_run_time", given["max_run_time"], 0.001, False)
    for name in _BOOLEANS:
        if name in given:
            changes[name] = _boolean(name, given[name])
    for name, allowed in (("scheduler_mode", SCHEDULER_MODES), ("request_mode", REQUEST_MODES)):
        if name in given:
            value = given[name].strip().lower()
            if value not in allowed:
                raise OptionError(name, f"must be one of {', '.join(allowed)}, not {given[name]!r}")
            changes[name] = value
    return replace(options, **changes)


# -- which pipes, in which order --------------------------------------------------------------------------


def is_user_pipe(pipe_id: str, original: Any) -> bool:
    """A user pipe (client-spec 7): its ``metadata.origin`` (default ``user``) is not a system origin and its
    id has no ``:singlenode``."""
    metadata = original.get("metadata") if isinstance(original, dict) else None
    origin = metadata.get("origin", "user") if isinstance(metadata, dict) else "user"
    return origin not in NON_USER_ORIGINS and ":singlenode" not in pipe_id


def classify(effective: Mapping[str, Any]) -> str:
    """input, endpoint, internal or output, from the effective config, in the order of client-spec 7."""
    source = effective.get("source") if isinstance(effective.get("source"), dict) else {}
    sink = effective.get("sink") if isinstance(effective.get("sink"), dict) else {}
    if source.get("type") == "embedded":
        return INPUT
    if isinstance(sink.get("type"), str) and sink["type"].endswith("_endpoint"):
        return ENDPOINT
    if sink.get("dataset") is None:
        return OUTPUT
    return INTERNAL


@dataclass(frozen=True)
class PipeNode:
    """A pipe as the plan sees it: ``reads`` every dataset it reads (source, hops, lookups), ``writes`` its
    sink dataset; ``pushed`` when its source takes pushed entities (``http_endpoint``: never run)."""

    id: str
    kind: str
    reads: frozenset[str] = frozenset()
    writes: str | None = None
    pushed: bool = False

    @property
    def runs(self) -> bool:
        """Whether run-all-pipes runs it: not an output or endpoint pipe, nor one filled by pushes."""
        return self.kind in (INPUT, INTERNAL) and not self.pushed


@dataclass(frozen=True)
class Plan:
    """The pipes to run: ``levels`` of groups; a level's groups may run side by side (no dataset edge
    between them, distinct sinks), a group's pipes run in order. ``order`` is the whole order, flat."""

    levels: tuple[tuple[tuple[str, ...], ...], ...]
    inputs: frozenset[str]
    order: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(p for level in self.levels for group in level for p in group))

    def for_pass(self, number: int) -> tuple[tuple[tuple[str, ...], ...], ...]:
        """The levels of pass ``number``: every pipe in pass 1, the non-input pipes after it."""
        if number == 1:
            return self.levels
        kept = (tuple(tuple(p for p in group if p not in self.inputs) for group in level) for level in self.levels)
        return tuple(level for level in (tuple(g for g in lv if g) for lv in kept) if level)


def _components(ids: list[str], successors: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted by id."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in ids:
        if root in index:
            continue
        work = [(root, iter(sorted(successors[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def plan(pipes: Iterable[PipeNode]) -> Plan:
    """Order the pipes that run (:attr:`PipeNode.runs`): an edge goes from the pipe writing a dataset to each
    pipe reading it; a strongly connected component runs in sorted id order; a component's level is one
    more than that of the deepest component it depends on. Within a level, components writing the same
    dataset form one group (in sorted order), so two runs never write one dataset at once."""
    runnable = sorted((p for p in pipes if p.runs), key=lambda p: p.id)
    ids = [p.id for p in runnable]
    writers: dict[str, set[str]] = {}
    for pipe in runnable:
        if pipe.writes is not None:
            writers.setdefault(pipe.writes, set()).add(pipe.id)
    successors: dict[str, set[str]] = {p.id: set() for p in runnable}
    for pipe in runnable:
        for dataset in pipe.reads:
            for writer in writers.get(dataset, ()):
                successors[writer].add(pipe.id)
    components = _components(ids, successors)
    component_of = {member: i for i, component in enumerate(components) for member in component}
    predecessors: dict[int, set[int]] = {i: set() for i in range(len(components))}
    for writer, readers in successors.items():
        for reader in readers:
            if component_of[writer] != component_of[reader]:
                predecessors[component_of[reader]].add(component_of[writer])
    depth: dict[int, int] = {}

    def level_of(component: int) -> int:
        pending = [component]
        while pending:
            current = pending[-1]
            missing = [p for p in predecessors[current] if p not in depth]
            if missing:
                pending.extend(missing)
                continue
            pending.pop()
            depth[current] = 1 + max((depth[p] for p in predecessors[current]), default=-1)
        return depth[component]

    by_level: dict[int, list[list[str]]] = {}
    for i, component in enumerate(components):
        by_level.setdefault(level_of(i), []).append(component)
    sinks = {p.id: p.writes for p in runnable}
    levels = []
    for number in sorted(by_level):
        groups: list[list[str]] = []
        for component in sorted(by_level[number]):
            written = {sinks[p] for p in component if sinks[p] is not None}
            sharing = [g for g in groups if written & {sinks[p] for p in g}]
            merged = sorted({*component, *(p for g in sharing for p in g)})
            groups = [g for g in groups if g not in sharing] + [merged]
        levels.append(tuple(tuple(g) for g in sorted(groups)))
    return Plan(tuple(levels), frozenset(p.id for p in runnable if p.kind == INPUT))


# -- passes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipeOutcome:
    """One pipe's run in a pass (``ran`` false: skipped, nothing to do since its last run)."""

    pipe_id: str
    ok: bool
    changes: int = 0
    processed: int = 0
    seconds: float = 0.0
    error: str | None = None
    ran: bool = True


@dataclass(frozen=True)
class PipeStats:
    runs: int = 0
    skipped: int = 0
    changes: int = 0
    processed: int = 0
    seconds: float = 0.0
    failures: int = 0

    def add(self, outcome: PipeOutcome) -> PipeStats:
        return PipeStats(self.runs + outcome.ran, self.skipped + (not outcome.ran), self.changes + outcome.changes,
                         self.processed + outcome.processed, self.seconds + outcome.seconds,
                         self.failures + (not outcome.ok))


@dataclass(frozen=True)
class Progress:
    """The run so far: passes done, consecutive zero-change passes, changes per pass, per-pipe totals."""

    passes: int = 0
    zero_passes: int = 0
    changes: tuple[int, ...] = ()
    pipes: Mapping[str, PipeStats] = field(default_factory=dict)

    def statistics(self) -> dict[str, Any]:
        """``additional_info`` with ``output_run_statistics``."""
        return {"passes": self.passes, "changes_per_pass": list(self.changes),
                "pipes": {pipe_id: vars(stats) for pipe_id, stats in sorted(self.pipes.items())}}


@dataclass(frozen=True)
class Verdict:
    """Whether the run is over: ``status`` success or failed (None: run another pass), and why."""

    status: str | None
    reason: str = ""


@dataclass(frozen=True)
class PassResult:
    progress: Progress
    verdict: Verdict
    log: tuple[tuple[str, str], ...]  # (loglevel, logdata) lines to append


def after_pass(progress: Progress, outcomes: Iterable[PipeOutcome], options: Options, *, inputs: frozenset[str],
               elapsed: float) -> PassResult:
    """Account a finished pass: a counting failure (an input pipe's only with ``check_input_pipes``) fails the
    run; ``1 + extra_zero_runs`` passes in a row without changes end it with success; else going over
    ``max_runs`` or ``max_run_time`` fails it."""
    outcomes = list(outcomes)
    number = progress.passes + 1
    changed = sum(o.changes for o in outcomes)
    pipes = dict(progress.pipes)
    for outcome in outcomes:
        pipes[outcome.pipe_id] = pipes.get(outcome.pipe_id, PipeStats()).add(outcome)
    zero = progress.zero_passes + 1 if changed == 0 else 0
    done = Progress(number, zero, (*progress.changes, changed), pipes)
    log: list[tuple[str, str]] = []
    counting = []
    for outcome in outcomes:
        if outcome.ok:
            continue
        counts = outcome.pipe_id not in inputs or options.check_input_pipes
        log.append(("ERROR" if counts else "WARNING", f"Pipe '{outcome.pipe_id}' failed in pass #{number}: "
                    f"{outcome.error}" + ("" if counts else " (an input pipe: not counted, no check_input_pipes)")))
        if counts:
            counting.append(outcome.pipe_id)
    log.append(("INFO", f"A total of {changed} entities changed in pass #{number}"))
    if counting:
        reason = f"pipe{'s' if len(counting) > 1 else ''} {', '.join(repr(p) for p in counting)} failed in " \
                 f"pass #{number}"
        return PassResult(done, Verdict("failed", reason), (*log, ("ERROR", f"Failed: {reason}")))
    if zero >= 1 + options.extra_zero_runs:
        return PassResult(done, Verdict("success", f"Finished after {number} passes"),
                          (*log, ("INFO", f"Finished after {number} passes")))
    if number >= options.max_runs:
        reason = f"not stable after max_runs={options.max_runs} passes"
        return PassResult(done, Verdict("failed", reason), (*log, ("ERROR", f"Failed: {reason}")))
    if elapsed >= options.max_run_time:
        reason = f"max_run_time={options.max_run_time:g} seconds exceeded after {number} passes"
        return PassResult(done, Verdict("failed", reason), (*log, ("ERROR", f"Failed: {reason}")))
    return PassResult(done, Verdict(None), tuple(log))
