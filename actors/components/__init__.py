"""Pipe components: one module per source, transform and sink type, registered with its config spec."""

from ._base import BuildContext, Sink, Source, Transform
from ._registry import ComponentSpec, ConfigError, component, lookup, registered

__all__ = ["BuildContext", "ComponentSpec", "ConfigError", "Sink", "Source", "Transform", "component", "lookup",
           "registered"]
