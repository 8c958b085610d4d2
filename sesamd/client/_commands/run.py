"""``run``, ``stop`` and ``test`` (client-spec 6.6-6.8): the node's scheduler runs the uploaded config until it
is stable; ``test`` is upload, run and verify."""

from __future__ import annotations

import threading
import time
from typing import Any

from .._connection import Connection
from .._errors import ClientError
from .._output import log, spinner
from . import config, verify
from ._context import Context

__all__ = ["run", "run_once", "stop", "test"]

LOG_POLL = 1.0  # seconds between run-log reads with -print-scheduler-log
STATUS_POLL = 10.0  # seconds between status reads in async mode


def stop(context: Context, *, fail: bool = True) -> None:
    """Stop a run-all-pipes in progress (a failure is raised unless ``fail`` is false)."""
    log.info("Trying to stop a previously running scheduler..")
    try:
        context.node.stop_run_all_pipes(terminate_timeout=30)
    except ClientError as exc:
        log.error("Failed to stop running schedulers!")
        if fail:
            raise ClientError(f"Failed to stop running schedulers: {exc.message}") from None
        return
    log.info("Any previously running scheduler has been stopped")


def run(context: Context) -> Any:
    """Stop any run, then run all pipes until the node reports success; the run's ``additional_info``."""
    for name in ("enable_user_pipes", "disable_cpp_extensions", "enable_eager_ms"):
        if getattr(context.args, name):
            log.warning("Note that the -%s flag has no effect on the node outside the 'upload' or 'test' "
                        "commands", name.replace("_", "-"))
    try:
        stop(context)
        return run_once(context)
    except ClientError as exc:
        log.error("Failed to run the tests")
        raise exc from None


def _parameters(context: Context) -> dict[str, Any]:
    args = context.args
    if args.scheduler_mode is not None and args.scheduler_mode not in ("active", "poll"):
        raise ClientError("'scheduler_mode' can only be set to 'active' or 'poll'")
    if args.scheduler_request_mode not in ("sync", "async"):
        raise ClientError("'request_mode' can only be set to 'sync' or 'async'")
    params: dict[str, Any] = {"extra_zero_runs": args.scheduler_zero_runs, "max_run_time": args.scheduler_max_run_time,
                              "max_runs": args.scheduler_max_runs}
    if context.project.testdata.is_dir():
        params["delete_input_datasets"] = False
    if args.scheduler_check_input_pipes:
        params["check_input_pipes"] = True
    if args.scheduler_dont_reset_pipes_or_delete_sink_datasets:
        params["reset_pipes_and_delete_sink_datasets"] = False
    if args.output_run_statistics:
        params["output_run_statistics"] = True
    if args.scheduler_mode is not None:
        params["scheduler_mode"] = args.scheduler_mode
    params["request_mode"] = args.scheduler_request_mode
    return params


class _Runner(threading.Thread):
    """The run-all-pipes call (and in async mode the status polling) off the main thread, so the main thread
    can follow the run log."""

    def __init__(self, node: Connection, params: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.node, self.params = node, params
        self.token: str | None = None
        self.result: dict[str, Any] = {}
        self.error: str | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.node.run_all_pipes(**self.params)
            if self.params["request_mode"] == "sync":
                if self.result.get("status") != "success":
                    self.error = f"the node's run ended with status {self.result.get('status')!r}"
                return
            token = self.result.get("token")
            if not isinstance(token, str) or not token:
                self.error = "the node's answer to an async run-all-pipes has no token"
                return
            self.token = token
            while True:
                state = self.node.pipe_runner_status(token).get("status")
                if state == "success":
                    return
                if state == "failed":
                    self.error = "the node's run failed"
                    return
                if state == "not-running":
                    self.error = "Scheduler is not running"
                    return
                time.sleep(STATUS_POLL)
        except ClientError as exc:
            self.error = exc.message
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished.set()


def run_once(context: Context) -> Any:
    """One run-all-pipes to completion (no stop first); its ``additional_info``."""
    node = context.node
    params = _parameters(context)
    started = time.monotonic()
    runner = _Runner(node, params)
    follow = context.args.print_scheduler_log
    since: str | None = None
    with spinner("Running all pipes"):
        runner.start()
        while not runner.finished.wait(LOG_POLL):
            if follow:
                since = _print_log(node, since, runner.token)
    if follow:
        _print_log(node, since, runner.token)
    if runner.error is not None:
        log.error("Failed to run pipes to completion")
        raise ClientError(runner.error)
    log.info("Successfully ran all pipes to completion in %d seconds", time.monotonic() - started)
    info = runner.result.get("additional_info")
    if info is not None:
        log.info("%s", info)
    return info


def _print_log(node: Connection, since: str | None, token: str | None) -> str | None:
    """Print the run log's lines after ``since``; the timestamp of the last one printed."""
    try:
        lines = node.run_all_pipes_log(since=since, token=token)
    except ClientError as exc:
        log.debug("Could not read the run log: %s", exc.message)
        return since
    for line in lines:
        if not isinstance(line, dict):
            log.debug("A run log line was not an object: %r", line)
            break
        log.info("%s - %s - %s", line.get("timestamp"), line.get("loglevel"), line.get("logdata"))
        since = line.get("timestamp", since)
    return since


def test(context: Context) -> None:
    """Upload, wait for deployment, ``-runs`` runs, then verify."""
    info = None
    try:
        log.info("Running test: upload, run and verify..")
        config.upload(context)
        config.wait_for_deployment(context.node)
        for _ in range(max(1, context.args.runs)):
            info = run(context)
        verify.verify(context)
    except ClientError:
        log.error("Test failed!")
        raise
    log.info("Test was successful!")
    if info is not None:
        log.info("%s", info)
