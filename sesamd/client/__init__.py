"""The ``sesam`` client: a library for a node's API and the command line (sesam-py and sesamclient commands).

    from sesamd.client import Connection, resolve
    settings = resolve()  # -node/-jwt, then NODE/JWT, then the nearest .syncconfig
    with Connection(settings.node, settings.jwt) as node:
        node.pipes()

:class:`Project` reads a local Sesam project (config files, env profile, testdata); :func:`verify` and
:func:`update` compare a node's output with its ``expected/`` files through an :class:`OutputReader`; the
command line is ``sesam`` (:func:`sesamd.client._cli.main`).
"""

from ._connection import Connection, api_url, bearer_token
from ._errors import ApiError, AuthError, ClientError, ConfigRejected, ConnectionFailed, ProjectError, UsageError
from ._expected import Options
from ._project import Project
from ._specs import TestSpec, load_specs
from ._syncconfig import Settings, resolve
from ._verify import OutputReader, UpdateReport, VerifyReport, update, verify

__all__ = ["ApiError", "AuthError", "ClientError", "ConfigRejected", "Connection", "ConnectionFailed", "Options",
           "OutputReader", "Project", "ProjectError", "Settings", "TestSpec", "UpdateReport", "UsageError",
           "VerifyReport", "api_url", "bearer_token", "load_specs", "resolve", "update", "verify"]
