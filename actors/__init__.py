"""The Trio actor runtime and the pipe machinery: the engine, components, datasets, pump."""

from ._dataset_actor import DatasetActor, DatasetWriters, WriterClosed
from ._datasets import Datasets, DatasetWrite, StorageLookup, index_token
from ._engine import (
    RUN_KINDS,
    PipeRun,
    PipeRunError,
    PipeRunner,
    RunResult,
    Work,
    build_runner,
    effective_config,
    validate_pipe,
)
from ._events import EventBus, Subscription
from ._pipeline import run_pipeline
from ._pump import PipeActor, PumpConflict, PumpOperationError
from ._runtime import Actor, ActorRef, ChildStatus, RestartPolicy, Supervisor
from ._systems import SystemActor
from .components import ConfigError

__all__ = [
    "RUN_KINDS",
    "DatasetActor",
    "DatasetWrite",
    "DatasetWriters",
    "PipeRun",
    "Work",
    "WriterClosed",
    "run_pipeline",
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
    "SystemActor",
    "build_runner",
    "effective_config",
    "index_token",
    "validate_pipe",
]
