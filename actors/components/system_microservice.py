"""The ``system:microservice`` system (node-spec 10.4), as a URL system for a service that already runs.

Sesam runs the ``docker`` image and derives the service's URL itself; sesamd starts no containers. The config
names the running service instead, with ``base_url`` (a sesamd extension: Sesam's microservice system has no
URL property; ``url_pattern`` works too), and the system is a :class:`UrlSystem` with those URL rules, so the
json source, the json sink and the http transform use it as they use a ``system:url``. It takes every
``system:url`` property besides its own: ``docker`` (validated, not used; listed under ``unsupported`` in the
status), ``use_https`` and ``eager_load`` (validated, not used). A config with ``docker`` and no URL is a
:class:`ConfigError` that says sesamd starts no containers and names ``base_url``. The id must be a DNS label
as in Sesam (2-63 characters: an ASCII letter or digit, then letters, digits, ``_`` and ``-``).
"""

from __future__ import annotations

from typing import Any

from ._registry import ConfigError
from ._system_base import entity_path, system_type
from .system_url import STRING_MAP, URL_PROPERTIES, UrlSystem

__all__ = ["MicroserviceSystem"]

DOCKER: dict[str, Any] = {
    "type": "object",
    "required": ["image", "port"],
    "properties": {
        "image": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "environment": {"type": "object"},
        "username": {"type": "string"},
        "password": {"type": "string"},
        "memory": {"type": "integer", "minimum": 1},
        "cpu_quota": {"type": "integer", "minimum": 1},
        "cpu_period": {"type": "integer", "minimum": 1},
        "cpuset_cpus": {"type": "string"},
        "hosts": STRING_MAP,
        "skip_pull": {"type": "boolean"},
        "pull_image_cron_expression": {"type": ["string", "null"]},
    },
}


@system_type("system:microservice", {"properties": {
    **URL_PROPERTIES,
    "_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{1,62}$"},
    "docker": DOCKER,
    "use_https": {"type": "boolean"},
    "eager_load": {"type": "boolean"},
}, "allOf": [
    {"if": {"required": ["authentication"], "properties": {"authentication": {"const": "jwt"}}},
     "then": {"required": ["jwt_token"]}},
]})
class MicroserviceSystem(UrlSystem):
    """A running HTTP microservice at ``base_url``: a URL system (sesamd does not start its container)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        if "docker" in config:
            self.unsupported = sorted({*self.unsupported, "docker"})

    def _check_urls(self) -> None:
        if "base_url" not in self.config and "url_pattern" not in self.config:
            docker = self.config.get("docker")
            if docker is None:
                raise ConfigError("'base_url' is required: the URL of the running microservice (sesamd starts no "
                                  "containers)", where=entity_path())
            scheme = "https" if self.config.get("use_https") else "http"
            raise ConfigError(f"sesamd starts no containers, so it does not run the docker image "
                              f"'{docker['image']}': set 'base_url' to the URL of the already running service "
                              f"(e.g. '{scheme}://{self.id}:{docker['port']}/')", where=entity_path())
        super()._check_urls()
