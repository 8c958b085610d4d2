"""The ``sesam`` command line, compatible with sesam-py (client-spec 1, 6): ``sesam [options] <command>``
with single-dash long options before or after the command. The sesamclient commands (``config``,
``import``, ``get-pipes``...) go to :mod:`._legacy`.

Every failure is one line on stderr and exit code 1 (2 for bad option syntax); ``-vvv`` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import _legacy
from ._commands import COMMANDS, CONNECTOR_COMMANDS, Context
from ._errors import ClientError, UsageError
from ._output import log, setup, teardown

__all__ = ["build_parser", "command_word", "main"]

COMMAND_HELP = """commands:
  wipe          Deletes all the pipes, systems, user datasets and environment variables in the node
  restart       Restarts the target node (typically used to reset the node before running tests)
  reset         Deletes the entire node database and restarts the node (a more thorough wipe)
  init          Adds conditional sources with testing and production alternatives to all input pipes
  upload        Replace node config with local config; also uploads test data when testdata/ exists
  download      Replace local config with node config
  dump          Create a zip archive of the config and store it as 'sesam-config.zip'
  status        Compare node config with local config (requires external diff command)
  run           Run configuration until it stabilizes
  update        Store current output as expected output
  convert       Convert embedded sources in input pipes to http_endpoints and extract data into files
  verify        Compare output against expected output
  test          Upload, run and verify output
  stop          Stop any running schedulers
  format        Format config files (all|pipes|systems|testdata|expected|<file.json>)
  run-pytest    Run the pytest tests (test_*.py) in a folder
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _version() -> str:
    try:
        return version("sesamd")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The sesam-py options (client-spec 1.1); the command and its words are the positional ``command``."""
    parser = _Parser(prog="sesam", usage="sesam [options] command", allow_abbrev=False, add_help=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=COMMAND_HELP,
                     description="Sesam command line client: work with a Sesam project against a node")
    flag = value = parser.add_argument  # single-dash long options: dest is the name with "_" for "-"

    flag("-h", "-help", action="help", help="show this help and exit")
    flag("-version", action="store_true", help="print the version of this client and exit")
    flag("-v", dest="verbose", action="store_true", help="be verbose (DEBUG)")
    flag("-vv", dest="extra_verbose", action="store_true", help="be extra verbose (TRACE)")
    flag("-vvv", dest="extra_extra_verbose", action="store_true",
         help="TRACE, the HTTP requests, and the traceback of a failure")
    flag("-skip-tls-verification", action="store_true", help="do not verify the node's TLS certificate")
    value("-sync-config-file", default=".syncconfig", metavar="<file>",
          help="the sync config file, searched for upwards from here (default .syncconfig)")
    value("-whitelist-file", metavar="<file>",
          help="a file listing the config files (and so the pipes) the command may touch")
    value("-node", metavar="<url>", help="the node's URL (overrides NODE and the sync config file)")
    value("-jwt", metavar="<token>", help="the JWT (overrides JWT and the sync config file)")
    value("-profile", default="test", metavar="<profile>",
          help="env profile: the variables are in <profile>-env.json (default test)")
    flag("-dump", action="store_true",
         help="upload: keep sesam-config.zip; download/status: also write the node's config as it; convert: "
              "back up first")
    flag("-print-scheduler-log", action="store_true", help="run/test: print the node's run log while waiting")
    flag("-output-run-statistics", action="store_true", help="run/test: ask the node for per-pipe statistics")
    value("-runs", type=int, default=1, metavar="<n>", help="test: run cycles before verifying (default 1)")
    value("-scheduler-request-mode", default="sync", metavar="sync|async",
          help="run/test: wait on the run-all-pipes call (sync) or poll its status (async)")
    value("-scheduler-mode", metavar="active|poll", help="run/test: passed to the node's scheduler unchanged")
    value("-scheduler-zero-runs", type=int, default=2, metavar="<n>",
          help="run/test: extra passes with no changes before the run is done (default 2)")
    value("-scheduler-max-runs", type=int, default=100, metavar="<n>",
          help="run/test: most passes allowed (default 100)")
    value("-scheduler-max-run-time", type=int, default=15 * 60, metavar="<seconds>",
          help="run/test: longest run allowed (default 900)")
    flag("-scheduler-check-input-pipes", action="store_true", help="run/test: a failing input pipe fails the run")
    flag("-scheduler-dont-reset-pipes-or-delete-sink-datasets", action="store_true",
         help="run/test: keep pipe offsets and sink datasets from before the run")
    value("-scheduler-poll-frequency", type=int, default=5000, metavar="<ms>",
          help="accepted for compatibility (the legacy external scheduler's poll interval)")
    flag("-enable-user-pipes", action="store_true", help="upload: keep the node's own pipe scheduling on")
    flag("-disable-cpp-extensions", action="store_true", help="upload: set enable_cpp_extensions false")
    flag("-enable-eager-ms", action="store_true", help="upload: load microservices eagerly")
    flag("-upload-delete-sink-datasets", action="store_true", help="upload: delete all sink datasets first")
    flag("-force", action="store_true",
         help="upload: apply a config with errors; upload/download: also on a node not in developer mode")
    flag("-unicode-encoding", action="store_true", help="update/format: write non-ASCII as \\uXXXX escapes")
    flag("-disable-json-html-escape", action="store_true", help="update/format: do not escape <, > and &")
    flag("-no-large-int-bugs", action="store_true",
         help="verify/update: do not round integers of over 16 digits through a float")
    flag("-diff", action="store_true", help="status: print a unified diff of each differing file")
    flag("-add-test-entities", action="store_true", help="init: fill test alternatives with entities from the node")
    flag("-force-add", action="store_true", help="init: replace test entities that are already there")
    value("-restart-timeout", type=int, default=15 * 60, metavar="<seconds>",
          help="restart/reset: how long to wait for the node (default 900)")
    value("-logformat", default="short", metavar="short|log|azure",
          help="log line format: the message (short), with time and level (log), or Azure DevOps (azure)")
    value("-run-pytest", dest="pytest_tests_folder", metavar="<folder>",
          help="run the pytest tests in <folder> after the command")
    value("-pytest-args", default="-rP -v", metavar="<args>", help="arguments for pytest (default '-rP -v')")
    value("--upload-workers", type=int, default=8, metavar="<n>", help="upload: testdata files sent at a time")
    value("--upload-rate", type=float, default=0.0, metavar="<per second>",
          help="upload: most testdata files started per second (0: no limit)")
    flag("-single-thread-upload", action="store_true", help="upload: send testdata files one at a time")
    flag("--do-float-as-decimal", action="store_true", help="upload: read testdata numbers as decimals")
    value("-single", metavar="<pipe>", help="accepted for compatibility; no effect")
    value("-sesamconfig-file", metavar="<file>", help="accepted for compatibility; no effect")
    deprecated = parser.add_argument_group("deprecated, no effect")
    for name in ("-scheduler-node", "-scheduler-id", "-scheduler-image-tag"):
        deprecated.add_argument(name, metavar="<value>")
    for name in ("-custom-scheduler", "-use-internal-scheduler", "-dont-remove-scheduler", "-disable-user-pipes",
                 "-compact-execution-datasets"):
        deprecated.add_argument(name, action="store_true")
    parser.add_argument("command", nargs="*", metavar="command", help="a command from the list below")
    return parser


def command_word(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value (None: there is none)."""
    takes_value = {s for a in parser._actions if a.nargs != 0 and a.option_strings for s in a.option_strings}
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            continue
        elif arg.startswith("-") and len(arg) > 1:
            skip = arg in takes_value
        else:
            return arg
    return None


def _verbosity(args: argparse.Namespace) -> int:
    return 3 if args.extra_extra_verbose else 2 if args.extra_verbose else 1 if args.verbose else 0


def main(argv: list[str] | None = None) -> int:
    """Run one command line; the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    word = command_word(parser, argv)
    if word is not None and word.lower() not in COMMANDS and word in _legacy.LEGACY_COMMANDS:
        return _legacy_main(argv)
    try:
        args = parser.parse_intermixed_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n\n{parser.format_help()}")
        return exc.exit_code
    except SystemExit as exc:  # -h
        return exc.code if isinstance(exc.code, int) else 0
    if args.version:
        print(f"sesam version {_version()}")
        return 0
    verbosity = _verbosity(args)
    setup(verbosity, args.logformat)
    started = time.monotonic()
    try:
        log.info("Using %s as base directory", os.getcwd())
        return _run(parser, args, verbosity)
    finally:
        log.info("Total run time was %d seconds", time.monotonic() - started)
        teardown()


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, verbosity: int) -> int:
    words = list(args.command)
    command = words[0].lower() if words else ""
    if command not in COMMANDS:
        if command in CONNECTOR_COMMANDS:
            log.error("'%s' is a connector command, which this client does not support", command)
        elif command:
            log.error("Unknown command: '%s'", command)
        else:
            log.error("No command given")
        sys.stderr.write(parser.format_usage())
        return 1
    chosen = COMMANDS[command]
    context = Context(args, Path.cwd(), words[1:], verbosity, force_allowed=chosen.forceable)
    try:
        if chosen.online(context):
            context.node  # noqa: B018 - connects and checks developer mode before the command starts
        chosen.run(context)
        if command != "run-pytest" and args.pytest_tests_folder:
            COMMANDS["run-pytest"].run(context)
    except ClientError as exc:
        log.error("%s", exc.message)
        _traceback(verbosity)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("Interrupted")
        return 130
    except Exception as exc:
        log.error("Sesam client failed! %s: %s", type(exc).__name__, exc)
        _traceback(verbosity)
        return 1
    finally:
        context.close()
    return 0


def _traceback(verbosity: int) -> None:
    if verbosity >= 3:
        log.error("The traceback was:", exc_info=True)


def _legacy_main(argv: list[str]) -> int:
    try:
        return _legacy.main(argv)
    except ClientError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
