"""The test scheduler's routes (client-spec 6.6, 9.1, 10): ``/pipes/run-all-pipes`` and its family.

Their literal paths are matched before ``/pipes/<pipe_id>`` (static segments win in werkzeug, and the
resource is installed first); pipe ids equal to them are refused by the config checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Response, request

from .._auth import Permission
from .._run_all import Busy, UnknownPipes
from .._run_all_plan import OptionError, Options, parse_options
from ._context import api
from ._errors import ApiError
from ._params import json_body, text
from ._routes import Param, Resource
from ._views import json_response

resource = Resource("run_all")

RUN_QUERY = (
    Param("extra_zero_runs", "integer", "zero-change passes needed after the first one (default 2)"),
    Param("max_runs", "integer", "passes at most (default 100)"),
    Param("max_run_time", "integer", "seconds at most (default 900)"),
    Param("delete_input_datasets", "boolean", "delete the sink datasets of input pipes too (default true)"),
    Param("reset_pipes_and_delete_sink_datasets", "boolean", "start from scratch (default true)"),
    Param("check_input_pipes", "boolean", "a failing input pipe fails the run (default false)"),
    Param("output_run_statistics", "boolean", "per-pipe statistics in additional_info (default false)"),
    Param("scheduler_mode", description="active or poll (the same here)"),
    Param("request_mode", description="sync (answer when done, the default) or async (answer a token)"),
)
TOKEN = Param("token", description="the run's token (default: the current or latest run)")


def _developer_mode(what: str) -> None:
    if not api().node.developer_mode:
        raise ApiError(403, f"POST /pipes/{what} is part of the test workflow: only allowed in developer mode "
                            "(metadata developer_mode is false)")


def _seconds(name: str, default: float) -> float:
    value = text(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ApiError(400, f"query parameter '{name}' must be a number of seconds, not {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise ApiError(400, f"query parameter '{name}' must be a number of seconds >= 0, not {value!r}")
    return number


def _options() -> Options:
    try:
        return parse_options(request.args.to_dict())
    except OptionError as exc:
        raise ApiError(400, f"POST /pipes/run-all-pipes: {exc}", parameter=exc.name) from None


@resource.route("/pipes/run-all-pipes", "POST", permission=Permission.RUN_PUMP_OPERATION, query=RUN_QUERY,
                summary="Run the user pipes until no pass changes anything (developer mode; sync or async)")
async def run_all_pipes() -> Response:
    options = _options()
    _developer_mode("run-all-pipes")
    try:
        run = api().node.run_all.start(options)
    except Busy as exc:
        raise ApiError(409, str(exc), token=exc.run.token) from None
    if options.request_mode == "async":
        return json_response({"token": run.token, "status": "running"})
    await run.done.wait()
    return json_response(run.answer())


@resource.route("/pipes/stop-run-all-pipes", "POST", permission=Permission.RUN_PUMP_OPERATION,
                query=(Param("terminate_timeout", "integer", "seconds to wait for the run to stop (default 30)"),),
                summary="Stop the current run-all-pipes run (it ends as failed)")
async def stop_run_all_pipes() -> Response:
    timeout = _seconds("terminate_timeout", 30.0)
    run = await api().node.run_all.stop(timeout)
    if run is None:
        return json_response({"status": "not-running"})
    stopped = run.done.is_set()
    return json_response({"status": "stopped" if stopped else "stopping", "token": run.token,
                          "run_status": run.status})


@resource.route("/pipes/get-run-all-pipes-log", permission=Permission.READ_CONFIG,
                query=(Param("since", description="only lines after this timestamp (ISO-8601)"), TOKEN),
                summary="The run-all-pipes log: [{timestamp, loglevel, logdata}]")
async def get_run_all_pipes_log() -> Response:
    since = _since()
    run = api().node.run_all.find(text("token"))
    return json_response([] if run is None else run.lines(since))


def _since() -> datetime | None:
    value = text("since")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"query parameter 'since' must be an ISO-8601 timestamp (as the log gives), "
                            f"not {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@resource.route("/pipes/get-pipe-runner-status", permission=Permission.READ_CONFIG, query=(TOKEN,),
                summary="A run-all-pipes run's status: running, success, failed or not-running")
async def get_pipe_runner_status() -> Response:
    token = text("token")
    run = api().node.run_all.find(token)
    if run is None:
        return json_response({"status": "not-running", **({"token": token} if token else {})})
    return json_response(run.answer())


@resource.route("/pipes/delete-all-sink-datasets", "POST", permission=Permission.WRITE_DATA,
                summary="Delete the sink datasets of every user pipe (developer mode)")
async def delete_all_sink_datasets() -> Response:
    _developer_mode("delete-all-sink-datasets")
    try:
        deleted = await api().node.run_all.delete_sink_datasets()
    except Busy as exc:
        raise ApiError(409, str(exc), token=exc.run.token) from None
    return json_response({"deleted": deleted})


@resource.route("/pipes/run-pipes", "POST", permission=Permission.RUN_PUMP_OPERATION, body="application/json",
                query=(Param("timeout", "integer", "seconds for all the runs (default: no limit)"),),
                summary="Run the listed pipes once each, in order, and answer their changes")
async def run_pipes() -> Response:
    timeout = _seconds("timeout", -1.0)
    body: Any = await json_body("POST /pipes/run-pipes")
    if not isinstance(body, list) or not all(isinstance(p, str) for p in body):
        raise ApiError(400, "POST /pipes/run-pipes: the body must be a JSON array of pipe ids (strings)")
    try:
        answer = await api().node.run_all.run_pipes(body, None if timeout < 0 else timeout)
    except UnknownPipes as exc:
        missing = exc.args[0]
        raise ApiError(404, f"POST /pipes/run-pipes: no pipe {', '.join(repr(p) for p in missing)}",
                       pipes=missing) from None
    except Busy as exc:
        raise ApiError(409, str(exc), token=exc.run.token) from None
    return json_response(answer)
