"""Components: one module per source, transform, sink and system type, registered with its config spec."""

from ._base import CONTINUATION_FLAGS, BuildContext, Sink, Source, Transform, global_defaults, setting
from ._errors import ComponentError, TerminalError, TransientError
from ._registry import ComponentSpec, ConfigError, component, lookup, registered
from ._system_base import System, build_system, system_type

__all__ = ["CONTINUATION_FLAGS", "BuildContext", "ComponentError", "ComponentSpec", "ConfigError", "Sink", "Source",
           "System", "TerminalError", "Transform", "TransientError", "build_system", "component", "global_defaults",
           "lookup", "registered", "setting", "system_type"]
