"""The run id of pump events: the run's ``start_time``, distinct for each run even when the clock stands still
(or steps back), and kept across a restart of the pump from its saved state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

import storage
from actors import Datasets, Supervisor
from actors._events import EventBus, Subscription, iso_time
from actors._pump import PipeActor, start_pipe
from actors.testing import FakeRunner, run_in_thread

NOON = datetime(2024, 1, 31, 12, tzinfo=UTC)


def drain(subscription: Subscription) -> list[dict[str, Any]]:
    got = []
    while True:
        try:
            got.append(subscription.receive_nowait())
        except trio.WouldBlock:
            return got


async def test_runs_at_one_clock_reading_get_distinct_run_ids(tmp_path: Path) -> None:
    now = [NOON]
    store, datasets = storage.NodeStore(tmp_path / "node"), Datasets(tmp_path / "data")
    bus = EventBus(clock=lambda: now[0])
    events = bus.subscribe(1000)
    try:
        async with Supervisor() as supervisor:
            def actor() -> PipeActor:
                return PipeActor(FakeRunner(mode="manual"), store=store, datasets=datasets, bus=bus,
                                 clock=lambda: now[0], driver=run_in_thread)

            ref = start_pipe(supervisor, "pipe:p", actor())
            first, second = await ref.run_once(), await ref.run_once()
            now[0] = NOON - timedelta(hours=1)  # the wall clock stepped back
            third = await ref.run_once()
            restarted = start_pipe(supervisor, "pipe:p:again", actor())  # the saved state's last start
            fourth = await restarted.run_once()
    finally:
        datasets.close_all()
        store.close()
    runs = [event["run"] for event in (first, second, third, fourth)]
    assert runs[0] == iso_time(NOON) == first["start_time"]
    assert runs == sorted(runs) and len(set(runs)) == 4, runs
    assert runs[1] == "2024-01-31T12:00:00.000001Z" and runs[3] == "2024-01-31T12:00:00.000003Z"
    started = [e for e in drain(events) if e["type"] == "pump-started"]
    assert [e["run"] for e in started] == runs and all(e["start_time"] == e["run"] for e in started)
