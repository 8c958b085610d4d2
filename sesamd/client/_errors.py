"""The client's errors: one base, terminal or transient, each a one-line message for the command line."""

from __future__ import annotations

__all__ = ["ApiError", "AuthError", "ClientError", "ConfigRejected", "ConnectionFailed", "ProjectError", "UsageError"]


class ClientError(Exception):
    """Anything the client reports as one line and a non-zero exit (``exit_code``); ``transient`` when trying
    again later may succeed (the node not reachable or not ready)."""

    exit_code = 1
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConnectionFailed(ClientError):
    """The node could not be reached (refused, timed out, DNS, TLS)."""

    transient = True


class ApiError(ClientError):
    """The node answered with an error status; ``status`` and the parsed JSON ``body`` (or None)."""

    def __init__(self, message: str, *, status: int, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.transient = status in (429, 502, 503, 504)


class AuthError(ApiError):
    """401 or 403: no token, a bad or expired token, or one without the permission."""


class ConfigRejected(ApiError):
    """``PUT /config`` refused the config (400); ``validation_errors`` holds the node's items (client-spec 9.2)."""

    @property
    def validation_errors(self) -> list[dict[str, object]]:
        errors = self.body.get("validation_errors") if isinstance(self.body, dict) else None
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


class ProjectError(ClientError):
    """A local project file or setting is missing or malformed (names the file and what is wrong)."""


class UsageError(ClientError):
    """Bad command-line syntax (exit code 2, as argparse uses)."""

    exit_code = 2
