"""The Trio actor runtime and the pipe machinery: the engine, components, datasets, pump."""

from ._datasets import Datasets, StorageLookup, index_token
from ._engine import PipeRunError, PipeRunner, RunResult, build_runner, effective_config, validate_pipe
from ._events import EventBus, Subscription
from ._pump import PipeActor, PumpConflict, PumpOperationError
from ._runtime import Actor, ActorRef, ChildStatus, RestartPolicy, Supervisor
from .components import ConfigError

__all__ = [
    "Actor",
    "ActorRef",
    "ChildStatus",
    "ConfigError",
    "Datasets",
    "EventBus",
    "PipeActor",
    "PipeRunError",
    "PipeRunner",
    "PumpConflict",
    "PumpOperationError",
    "RestartPolicy",
    "RunResult",
    "StorageLookup",
    "Subscription",
    "Supervisor",
    "build_runner",
    "effective_config",
    "index_token",
    "validate_pipe",
]
