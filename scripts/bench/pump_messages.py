#!/usr/bin/env python3
"""The cost of driving a pipe actor through its mailbox (issue 13: "actors for real").

    .venv/bin/python scripts/bench/pump_messages.py               # 2,000 operations a round, 5 rounds
    .venv/bin/python scripts/bench/pump_messages.py --n 10000 --rounds 3

Rows, each the median (min-max) over the rounds of microseconds per operation:

``stop (mailbox)``
    ``await ref.operate("stop")`` on an idle pump: an :class:`actors.Operate` through the mailbox, its
    synchronous part, and the :class:`actors.PumpStatus` answered; nothing else happens, so this is the
    round trip itself.
``stop (direct)``
    The same operation's synchronous part called on the actor (what the API did before, less the pump JSON).
``disable+enable (mailbox)``
    A pair of operations that each write the execution log (one LevelDB batch through the dataset's writer),
    per operation: the round trip next to real work.

The round trip's cost is the mailbox row minus the direct row.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import trio
from _common import format_table, scratch_dir  # before the project's packages: it puts the root first on sys.path

import storage
from actors import Datasets, EventBus, PipeActor, Supervisor, start_pipe
from actors.testing import FakeRunner, run_in_thread


async def measure(root: Path, n: int, rounds: int) -> dict[str, list[float]]:
    store = storage.NodeStore(root / "node")
    datasets = Datasets(root / "data")
    found: dict[str, list[float]] = {"stop (mailbox)": [], "stop (direct)": [], "disable+enable (mailbox)": []}
    try:
        async with Supervisor() as supervisor:
            actor = PipeActor(FakeRunner(mode="manual"), store=store, datasets=datasets, bus=EventBus(),
                              driver=run_in_thread)
            ref = start_pipe(supervisor, "pipe:p", actor)
            await ref.wait_idle()
            for _ in range(rounds):
                began = time.perf_counter()
                for _ in range(n):
                    await ref.operate("stop")
                found["stop (mailbox)"].append((time.perf_counter() - began) / n * 1e6)
                began = time.perf_counter()
                for _ in range(n):
                    actor._operate("stop", {})
                    await trio.lowlevel.checkpoint()
                found["stop (direct)"].append((time.perf_counter() - began) / n * 1e6)
                began = time.perf_counter()
                for _ in range(n // 2):
                    await ref.operate("disable")
                    await ref.operate("enable")
                found["disable+enable (mailbox)"].append((time.perf_counter() - began) / (n // 2 * 2) * 1e6)
    finally:
        datasets.close_all()
        store.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with scratch_dir() as root:
        found = trio.run(measure, root, args.n, args.rounds)
    rows = [(name, f"{statistics.median(values):.1f}", f"{min(values):.1f}-{max(values):.1f}")
            for name, values in found.items()]
    print(format_table(("operation", "us/op (median)", "min-max"), rows))


if __name__ == "__main__":
    main()
