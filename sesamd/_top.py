"""``sesamd top``: a live terminal view of a node's pipes (rich), over its event feed.

One row per pipe: its state (running, ok, failed, disabled, invalid, never run), rate (entities per second:
the run's ``pump-progress`` rate while it runs, the last run's processed / total time after), lag (the
runtime's ``queues.source``: source entities after the pipe's offset), last run and last error, updated in
place as the events arrive. :class:`TopModel` is the view's state without I/O (``GET /api/pipes`` and feed
events in, :class:`Row` values out); :func:`watch` drives it: an initial ``GET /api/pipes?fields=runtime``,
then the websocket ``/api/events`` (trio-websocket, the token in its ``Authorization`` header), with the
pipes read again every ``refresh`` seconds and after each config change, for the lags and new pipes.

``--node URL`` (default the local node's API) and ``--token TOKEN`` (or ``SESAMD_TOKEN``) reach a remote
node; ``--once`` prints one snapshot of the table and exits. A node that cannot be reached or refuses the
token is one line ``sesamd: error: ...``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ._command_errors import CommandError

__all__ = ["DEFAULT_NODE", "Row", "TopError", "TopModel", "add_command", "render", "snapshot", "watch"]

DEFAULT_NODE = "http://127.0.0.1:9042/api"
TOKEN_ENV = "SESAMD_TOKEN"
FEED_TYPES = ("pump-started", "pump-progress", "pump-completed", "pump-failed", "pump-enabled", "pump-disabled",
              "config-applied")
STYLES = {"running": "bold cyan", "ok": "green", "failed": "bold red", "disabled": "dim", "invalid": "red",
          "never run": "yellow"}


class TopError(CommandError):
    """The node could not be reached or refused us: printed as ``sesamd: error: ...``."""


@dataclass(frozen=True)
class Row:
    """One pipe as the view shows it."""

    pipe: str
    state: str = "never run"
    rate: float | None = None  # entities per second
    lag: int | None = None
    last_run: str | None = None  # ISO time the last run ended
    last_error: str | None = None
    running: bool = False
    disabled: bool = False
    valid: bool = True
    success: bool | None = None


def _state(row: Row) -> str:
    if not row.valid:
        return "invalid"
    if row.running:
        return "running"
    if row.disabled:
        return "disabled"
    if row.success is None:
        return "never run"
    return "ok" if row.success else "failed"


def _first_line(text: Any) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    return text.strip().splitlines()[0]


class TopModel:
    """The view's state: pipes from ``GET /api/pipes`` and events from the feed in, rows out (no I/O)."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self.stale = True  # the pipes should be read again (at start, after a config change)
        self.seq = 0  # the last feed seq seen

    def load_pipes(self, pipes: Iterable[Mapping[str, Any]]) -> None:
        """The answer of ``GET /api/pipes``: the pipes there are, their runtime and lag."""
        rows = {}
        for pipe in pipes:
            pipe_id = pipe.get("_id")
            if not isinstance(pipe_id, str):
                continue
            runtime = pipe.get("runtime") or {}
            known = self._rows.get(pipe_id, Row(pipe_id))
            lag = (runtime.get("queues") or {}).get("source")
            error = None if runtime.get("success") is not False else _first_line(
                runtime.get("last-original-error-message") or runtime.get("last-message"))
            row = replace(known, running=bool(runtime.get("is-running")), disabled=bool(runtime.get("is-disabled")),
                          valid=runtime.get("is-valid-config", True) is not False, success=runtime.get("success"),
                          lag=lag if type(lag) is int else None, last_run=runtime.get("last-run") or known.last_run,
                          last_error=error if error is not None or runtime.get("success") else known.last_error)
            rows[pipe_id] = replace(row, state=_state(row))
        self._rows = rows
        self.stale = False

    def apply(self, event: Mapping[str, Any]) -> None:
        """A feed event (others than those of :data:`FEED_TYPES` are ignored)."""
        if type(event.get("seq")) is int:
            self.seq = max(self.seq, event["seq"])
        kind, pipe_id = event.get("type"), event.get("pipe")
        if kind == "config-applied":
            self.stale = True
            return
        if not isinstance(pipe_id, str) or not isinstance(kind, str):
            return
        row = self._rows.get(pipe_id)
        if row is None:  # a pipe added since the pipes were read
            self.stale = True
            row = Row(pipe_id)
        if kind == "pump-started":
            row = replace(row, running=True, rate=0.0)
        elif kind == "pump-progress":
            rate = event.get("rate")
            row = replace(row, running=True, rate=float(rate) if isinstance(rate, int | float) else row.rate)
        elif kind in ("pump-completed", "pump-failed"):
            processed, seconds = event.get("processed"), event.get("total_time")
            rate = processed / seconds if isinstance(processed, int) and isinstance(seconds, int | float) \
                and seconds > 0 else row.rate
            failed = kind == "pump-failed"
            row = replace(row, running=False, success=not failed, rate=rate,
                          last_run=event.get("end_time") or event.get("time") or row.last_run,
                          last_error=_first_line(event.get("error")) if failed else None,
                          lag=0 if not failed and event.get("skipped") is None else row.lag)
            self.stale = True  # the lag after the run comes with the next read of the pipes
        elif kind in ("pump-enabled", "pump-disabled"):
            row = replace(row, disabled=kind == "pump-disabled")
        else:
            return
        self._rows[pipe_id] = replace(row, state=_state(row))

    def rows(self) -> list[Row]:
        return [self._rows[pipe_id] for pipe_id in sorted(self._rows)]

    def row(self, pipe_id: str) -> Row | None:
        return self._rows.get(pipe_id)


def _age(moment: str | None, now: datetime) -> str:
    if not moment:
        return "-"
    try:
        then = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s"


def render(rows: Iterable[Row], *, node: str = "", now: datetime | None = None) -> Table:
    """The table of ``rows`` (last runs as ages against ``now``)."""
    now = now or datetime.now(UTC)
    table = Table(title=f"sesamd top {node}".rstrip(), title_justify="left", expand=False)
    table.add_column("pipe", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("rate", justify="right", no_wrap=True)
    table.add_column("lag", justify="right", no_wrap=True)
    table.add_column("last run", justify="right", no_wrap=True)
    table.add_column("last error", overflow="ellipsis", max_width=60)
    for row in rows:
        table.add_row(row.pipe, f"[{STYLES.get(row.state, '')}]{row.state}", _rate(row.rate),
                      "-" if row.lag is None else f"{row.lag:,}", _age(row.last_run, now),
                      row.last_error or "", style=None)
    return table


# -- I/O -----------------------------------------------------------------------------------------------------


def _refused(response: httpx.Response, url: str) -> TopError:
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text.strip() or response.reason_phrase
    if response.status_code == 401:
        return TopError(f"the node at {url} refused the token (401): {detail}")
    if response.status_code == 403:
        return TopError(f"the token may not read the pipes of the node at {url} (403): {detail}")
    return TopError(f"GET {url}/pipes answered {response.status_code}: {detail}")


async def fetch_pipes(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """``GET /pipes?fields=runtime``; raises :class:`TopError` saying why it failed."""
    try:
        response = await client.get(f"{url}/pipes", params={"fields": "runtime"})
    except httpx.HTTPError as exc:
        raise TopError(f"cannot reach the node at {url}: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise _refused(response, url)
    pipes: list[dict[str, Any]] = response.json()
    return pipes


def _client(token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def snapshot(url: str, token: str) -> TopModel:
    """The model from one read of the pipes (``--once``)."""
    model = TopModel()
    async with _client(token) as client:
        model.load_pipes(await fetch_pipes(client, url))
    return model


def _ws_url(url: str) -> str:
    return "ws" + url[len("http"):] if url.startswith("http") else url


async def watch(url: str, token: str, console: Console, *, refresh: float = 5.0,
                until: Callable[[TopModel], bool] | None = None) -> TopModel:
    """The live view on ``console`` until cancelled (Ctrl-C), or until ``until(model)`` holds after an
    update; returns the model."""
    model = TopModel()
    async with _client(token) as client:
        model.load_pipes(await fetch_pipes(client, url))
        headers = [(b"Authorization", f"Bearer {token}".encode())]
        feed = f"{_ws_url(url)}/events?types={','.join(FEED_TYPES)}"
        with Live(render(model.rows(), node=url), console=console, refresh_per_second=4, transient=False) as live:

            def show() -> bool:
                live.update(render(model.rows(), node=url))
                return until is not None and until(model)

            if show():
                return model
            try:
                async with open_websocket_url(feed, extra_headers=headers) as ws, trio.open_nursery() as nursery:
                    reread = trio.Event()

                    async def reread_pipes() -> None:
                        nonlocal reread
                        while True:
                            with trio.move_on_after(refresh):
                                await reread.wait()
                            reread = trio.Event()
                            model.load_pipes(await fetch_pipes(client, url))
                            if show():
                                nursery.cancel_scope.cancel()

                    nursery.start_soon(reread_pipes)
                    while True:
                        event = orjson.loads(await ws.get_message())
                        if event.get("type") == "error":
                            raise TopError(f"the node's event feed refused us ({event.get('status')}): "
                                           f"{event.get('detail')}")
                        model.apply(event)
                        if model.stale:
                            reread.set()
                        if show():
                            nursery.cancel_scope.cancel()
                            break
            except (OSError, HandshakeError) as exc:
                raise TopError(f"cannot open the event feed of the node at {url}: {exc}") from None
            except ConnectionClosed as exc:
                raise TopError(f"the node closed the event feed: {exc.reason}") from None
    return model


# -- the command -----------------------------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    p = commands.add_parser("top", help="a live view of a node's pipes (state, rate, lag, last run, last error)")
    p.add_argument("--node", default=os.environ.get("SESAMD_NODE", DEFAULT_NODE), metavar="URL",
                   help=f"the node's API URL (default: $SESAMD_NODE or {DEFAULT_NODE})")
    p.add_argument("--token", default=None, help=f"a token that may read config (default: ${TOKEN_ENV})")
    p.add_argument("--once", action="store_true", help="print one snapshot of the table and exit")
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="read the pipes' lags again this often (default: 5)")
    p.set_defaults(handler=_cmd_top)


def _cmd_top(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise TopError(f"no token: give --token or set {TOKEN_ENV} (sesamd token --role admin prints one)")
    url = args.node.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TopError(f"--node must be an http:// or https:// URL of the API (such as {DEFAULT_NODE}), not "
                       f"{args.node!r}")
    console = Console()
    if args.once:
        model = trio.run(snapshot, url, token)
        console.print(render(model.rows(), node=url))
        return 0
    trio.run(lambda: watch(url, token, console, refresh=args.refresh))
    return 0
