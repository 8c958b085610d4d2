"""The REST API under ``/api`` (node-spec 12): one module per resource, every route declared with its
permission through :class:`~sesamd.api._routes.Resource`, tokens checked by one guard, errors as JSON."""

from ._app import RESOURCES, create_app, routes_of
from ._errors import ApiError
from ._routes import PUBLIC, Param, Resource, Route

__all__ = ["PUBLIC", "RESOURCES", "ApiError", "Param", "Resource", "Route", "create_app", "routes_of"]
