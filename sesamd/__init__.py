"""sesamd: a self-hosted data-integration node compatible with Sesam."""

__version__ = "0.1.0"
