"""The Trio actor runtime and the pipe machinery: the engine, components, datasets, pump."""

from ._datasets import Datasets, StorageLookup, index_token
from ._engine import PipeRunError, PipeRunner, RunResult, build_runner, effective_config, validate_pipe
from ._runtime import Actor, ActorRef, ChildStatus, RestartPolicy, Supervisor
from .components import ConfigError

__all__ = [
    "Actor",
    "ActorRef",
    "ChildStatus",
    "ConfigError",
    "Datasets",
    "PipeRunError",
    "PipeRunner",
    "RestartPolicy",
    "RunResult",
    "StorageLookup",
    "Supervisor",
    "build_runner",
    "effective_config",
    "index_token",
    "validate_pipe",
]
