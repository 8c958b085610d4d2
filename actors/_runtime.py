"""A small Trio actor runtime: actors with mailboxes, and a supervisor that restarts them.

An actor is a Trio task that reads messages from its mailbox (a bounded memory channel); other tasks
hold an :class:`ActorRef` to send to it. Messages are frozen dataclasses; one that wants an answer is a
:class:`Request`, carrying a one-shot :class:`Reply` that the actor answers (``await ref.ask(request)``). A
request the actor never takes (it stopped or failed for good) is answered with :class:`ActorUnavailable`.

A :class:`Supervisor` runs its children in its own nursery and catches their crashes: a crashed child is
restarted after an exponential back-off, and after too many restarts inside a window it is given up on and
marked failed. A crash never reaches the siblings or the supervisor's caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import trio

__all__ = ["Actor", "ActorRef", "ActorUnavailable", "ChildStatus", "Reply", "Request", "RestartPolicy",
           "Supervisor"]

_T = TypeVar("_T")


class ActorUnavailable(RuntimeError):
    """The actor did not take the request: it has stopped or failed for good, or it was not running within
    the asker's ``accept_within``."""


class Reply(Generic[_T]):
    """The one-shot answer to a :class:`Request`: the actor :meth:`take` s the request (False: the asker gave
    up before, skip it), then :meth:`send` s a value or :meth:`fail` s with an error, once."""

    __slots__ = ("_done", "_error", "_taken", "_value", "_withdrawn")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._taken = trio.Event()
        self._withdrawn = False
        self._value: Any = None
        self._error: BaseException | None = None

    def take(self) -> bool:
        if self._withdrawn:
            return False
        self._taken.set()
        return True

    def withdraw(self) -> bool:
        """The asker gives up unless the actor took the request already; True if withdrawn."""
        if self._taken.is_set():
            return False
        self._withdrawn = True
        return True

    def send(self, value: _T) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()
            self._taken.set()

    def fail(self, error: BaseException) -> None:
        """Answer with ``error`` (also a request never taken: a refusal)."""
        if not self._done.is_set():
            self._error = error
            self._done.set()
            self._taken.set()

    @property
    def answered(self) -> bool:
        return self._done.is_set()

    async def taken(self) -> None:
        await self._taken.wait()

    async def receive(self) -> _T:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Request:
    """A message that wants an answer: the actor answers its ``reply`` (made with the message)."""

    reply: Reply[Any] = field(default_factory=Reply, kw_only=True, compare=False, repr=False)


class Actor(Protocol):
    """What a supervisor runs: ``run`` reads its mailbox until it closes or the actor is cancelled."""

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None: ...


class ActorRef:
    """The address of an actor: send messages to its mailbox."""

    __slots__ = ("_send", "name")

    def __init__(self, name: str, send: trio.MemorySendChannel[Any]) -> None:
        self.name = name
        self._send = send

    async def send(self, message: Any) -> None:
        """Deliver a message, waiting while the mailbox is full (back-pressure)."""
        await self._send.send(message)

    async def ask(self, request: Request, *, accept_within: float | None = None) -> Any:
        """Send ``request`` and wait for its answer (raised if it is an error). With ``accept_within``, an
        actor that has not taken the request within so many seconds (it is restarting) never gets it:
        :class:`ActorUnavailable`. A stopped actor answers :class:`ActorUnavailable`."""
        with trio.move_on_after(accept_within if accept_within is not None else float("inf")):
            try:
                await self._send.send(request)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise ActorUnavailable(f"actor '{self.name}' has stopped") from None
            await request.reply.taken()
        if request.reply.withdraw():
            raise ActorUnavailable(f"actor '{self.name}' is not running (it is restarting)")
        return await request.reply.receive()

    async def tell(self, message: Any) -> bool:
        """Deliver a message, waiting while the mailbox is full; False if the actor has stopped."""
        try:
            await self._send.send(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def try_send(self, message: Any) -> bool:
        """Deliver a message if the mailbox has room; False if it is full or closed."""
        try:
            self._send.send_nowait(message)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"


@dataclass(frozen=True)
class RestartPolicy:
    """Back-off ``initial * factor**n`` capped at ``maximum``; give up after ``max_restarts`` in ``window``."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 60.0
    max_restarts: int = 5
    window: float = 300.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(attempt - 1, 0))


@dataclass
class ChildStatus:
    """What the supervisor knows about one child (shown in the API)."""

    name: str
    state: str = "starting"  # starting, running, restarting, failed, stopped
    restarts: int = 0
    last_error: str | None = None
    crash_times: deque[float] = field(default_factory=deque)


EventSink = Callable[[str, dict[str, Any]], None]


@dataclass
class _Child:
    status: ChildStatus
    ref: ActorRef
    cancel_scope: trio.CancelScope
    stopped: trio.Event


class Supervisor:
    """Runs actors under one nursery; restarts crashed ones with back-off, isolates failures.

    Use ``async with Supervisor(...) as sup`` (or :meth:`run` under ``nursery.start``); leaving the block
    cancels every child. ``on_event(kind, data)`` hears ``actor-crashed``, ``actor-restarted`` (after the
    back-off, as the child starts again) and ``actor-failed``, each with the ``actor``'s name.
    """

    def __init__(self, *, policy: RestartPolicy | None = None, on_event: EventSink | None = None,
                 mailbox_size: int = 16) -> None:
        self.policy = policy or RestartPolicy()
        self._on_event = on_event if on_event is not None else (lambda kind, data: None)
        self._mailbox_size = mailbox_size
        self._children: dict[str, _Child] = {}
        self._nursery: trio.Nursery | None = None

    async def __aenter__(self) -> Supervisor:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> bool | None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        return await self._nursery_manager.__aexit__(*exc)  # type: ignore[arg-type]

    def status(self, name: str | None = None) -> ChildStatus | dict[str, ChildStatus]:
        if name is not None:
            return self._children[name].status
        return {n: c.status for n, c in self._children.items()}

    def ref(self, name: str) -> ActorRef:
        return self._children[name].ref

    def __contains__(self, name: str) -> bool:
        return name in self._children

    def start(self, name: str, factory: Callable[[], Actor], *, policy: RestartPolicy | None = None,
              mailbox_size: int | None = None) -> ActorRef:
        """Start a child built by ``factory`` (called again for every restart); returns its address."""
        if self._nursery is None:
            raise RuntimeError("the supervisor is not running")
        if name in self._children:
            raise ValueError(f"an actor named {name!r} is already running")
        send, receive = trio.open_memory_channel[Any](mailbox_size or self._mailbox_size)
        child = _Child(ChildStatus(name), ActorRef(name, send), trio.CancelScope(), trio.Event())
        self._children[name] = child
        self._nursery.start_soon(self._keep_running, child, factory, receive, policy or self.policy)
        return child.ref

    async def stop(self, name: str) -> None:
        """Cancel a child and wait until it has stopped; it is then forgotten."""
        child = self._children.get(name)
        if child is None:
            return
        child.cancel_scope.cancel()
        await child.stopped.wait()
        self._children.pop(name, None)

    async def _keep_running(self, child: _Child, factory: Callable[[], Actor],
                            mailbox: trio.MemoryReceiveChannel[Any], policy: RestartPolicy) -> None:
        status = child.status
        try:
            with child.cancel_scope:
                attempt = 0
                while True:
                    status.state = "running"
                    try:
                        await _run_actor(factory, mailbox)
                    except Exception as exc:  # a crash: isolate, record, maybe restart
                        now = trio.current_time()
                        status.last_error = f"{type(exc).__name__}: {exc}"
                        status.crash_times.append(now)
                        while status.crash_times and status.crash_times[0] < now - policy.window:
                            status.crash_times.popleft()
                        self._on_event("actor-crashed", {"actor": status.name, "error": status.last_error})
                        if len(status.crash_times) > policy.max_restarts:
                            status.state = "failed"
                            self._on_event("actor-failed", {"actor": status.name, "error": status.last_error})
                            async for message in mailbox:  # stay visible as failed until stopped
                                _refuse(message, status.name, "has failed")
                        attempt += 1
                        status.restarts += 1
                        status.state = "restarting"
                        await trio.sleep(policy.delay(attempt))
                        self._on_event("actor-restarted", {"actor": status.name, "restarts": status.restarts,
                                                           "error": status.last_error})
                        continue
                    status.state = "stopped"  # returned normally: mailbox closed or work done
                    return
        finally:
            if status.state != "failed":
                status.state = "stopped"
            _refuse_waiting(mailbox, status.name)
            child.stopped.set()


def _refuse(message: Any, name: str, why: str) -> None:
    if isinstance(message, Request):
        message.reply.fail(ActorUnavailable(f"actor '{name}' {why}"))


def _refuse_waiting(mailbox: trio.MemoryReceiveChannel[Any], name: str) -> None:
    """Answer the requests still queued for a child that has stopped for good, and close its mailbox (later
    sends fail at once)."""
    while True:
        try:
            message = mailbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            break
        _refuse(message, name, "has stopped")
    mailbox.close()


async def _run_actor(factory: Callable[[], Actor], mailbox: trio.MemoryReceiveChannel[Any]) -> None:
    actor = factory()
    result: Awaitable[None] = actor.run(mailbox)
    await result
