"""Upload's last step (client-spec 6.1 step 8): each ``testdata/**/<pipe-id>.json`` POSTed to the pipe's
receiver, several files at a time, retrying while the node is not ready."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .._connection import Connection
from .._errors import ApiError, ClientError, ConnectionFailed
from .._output import log, progress
from .._project import parse_json
from ._context import Context

__all__ = ["upload_all", "upload_file"]

NOT_READY_FOR = 60.0  # seconds a 503 ("not ready yet") is retried, once a second
RETRIES = 3  # further tries after a transport error, a 429 or another 5xx


@dataclass(frozen=True)
class Failure:
    path: Path
    pipe_id: str
    error: str


class _Rate:
    """At most ``per_second`` starts per second across threads (0: no limit)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


def upload_all(context: Context) -> None:
    """Upload every testdata file (whitelist applied); a :class:`ClientError` listing the failures."""
    project = context.project
    if not project.testdata.is_dir():
        log.info("No test data found to upload")
        return
    jobs = list(project.testdata_files())
    if not jobs:
        log.info("No test data found to upload")
        return
    args = context.args
    workers = 1 if args.single_thread_upload else max(1, min(args.upload_workers, len(jobs)))
    if args.upload_workers < 1 or args.upload_rate < 0:
        raise ClientError("--upload-workers must be at least 1 and --upload-rate at least 0")
    rate = _Rate(args.upload_rate)
    node = context.node
    failures: list[Failure] = []
    started = time.monotonic()
    with progress("Uploading test data", len(jobs)) as counter, ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_job, node, pipe_id, path, rate): (pipe_id, path)
                   for pipe_id, path in jobs}
        for future in as_completed(futures):
            pipe_id, path = futures[future]
            error = future.exception()
            if error is not None:
                failures.append(Failure(path, pipe_id, str(error)))
            counter.advance()
            log.debug("Test data upload progress: processed=%d/%d, failed=%d", counter.done, len(jobs),
                      len(failures))
    log.info("Test data upload summary: total=%d, uploaded=%d, failed=%d, elapsed=%.1fs", len(jobs),
             len(jobs) - len(failures), len(failures), time.monotonic() - started)
    if failures:
        listed = "\n".join(f"- {f.path.relative_to(project.root)} ({f.pipe_id}): {f.error}" for f in failures)
        raise ClientError(f"Testdata upload failed for {len(failures)} file(s):\n{listed}")
    log.info("Test data uploaded successfully")


def _job(node: Connection, pipe_id: str, path: Path, rate: _Rate) -> None:
    rate.wait()
    upload_file(node, pipe_id, path)


def upload_file(node: Connection, pipe_id: str, path: Path) -> bool:
    """POST one file's entities to ``pipe_id``'s receiver (False: the file holds ``null``, nothing sent).
    The file's bytes are sent as they are, so numbers keep their digits (what ``--do-float-as-decimal``
    asks of sesam-py)."""
    data = path.read_bytes()
    entities = parse_json(data, str(path))
    if entities is None:
        return False
    if node.pipe(pipe_id) is None:
        raise ClientError(f"the node has no pipe '{pipe_id}'")
    log.info("Uploading entities for %s", pipe_id)
    body = data.removeprefix(b"\xef\xbb\xbf")  # sent as written: numbers keep their digits
    not_ready_until = time.monotonic() + NOT_READY_FOR
    attempt = 0
    while True:
        try:
            node.receive(pipe_id, body)
            return True
        except ApiError as exc:
            if exc.status == 503 and time.monotonic() < not_ready_until:
                time.sleep(1.0)
                continue
            if not (exc.status == 429 or exc.status >= 500) or attempt >= RETRIES:
                raise
        except ConnectionFailed:
            if attempt >= RETRIES:
                raise
        attempt += 1
        time.sleep(2 ** (attempt - 1) + random.random())

