"""The Trio actor runtime (mailboxes, supervision); the pipe, dataset and system actors build on it."""

from ._runtime import Actor, ActorRef, ChildStatus, RestartPolicy, Supervisor

__all__ = ["Actor", "ActorRef", "ChildStatus", "RestartPolicy", "Supervisor"]
