"""Components: one module per source, transform, sink and system type, registered with its config spec."""

from ._base import BuildContext, Sink, Source, Transform
from ._registry import ComponentSpec, ConfigError, component, lookup, registered
from ._system_base import System, build_system, system_type

__all__ = ["BuildContext", "ComponentSpec", "ConfigError", "Sink", "Source", "System", "Transform", "build_system",
           "component", "lookup", "registered", "system_type"]
