"""What every psqs command line shares: one-line usage errors, ``-q/-v/--debug`` before or after
the subcommand, logging levels, and the one place that turns an expected failure into
``psqs: error: <message>`` and an exit status.

``psqs``, ``python3 -m psqs.host`` and ``python -m psqs.deploy.emulator`` all run their command
through :func:`run`, so a user sees the same thing whichever they typed: one line on stderr for
anything psqs expected (:class:`~psqs.common.errors.PsqsError`: exit 2 for bad input, 1 for a failed
run), ``psqs: interrupted`` and exit 130 for Ctrl-C, and a traceback only with ``--debug`` (or
for a bug). It lives in the board-side package because the board's command line needs it too.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from importlib import metadata

from psqs.common.errors import PsqsError

PREFIX = "psqs: error:"
INTERRUPTED_STATUS = 130        # 128 + SIGINT, what a shell reports for a Ctrl-C'd command


class UsageError(PsqsError):
    """An option or argument the parser refuses (argparse's own checks and the ``type=``
    validators of :mod:`psqs.common.cli_types`)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a refused command line is a :class:`UsageError` (one line, exit 2) instead of
    a usage dump and ``SystemExit``; subcommand parsers inherit this class."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def version() -> str:
    try:
        return metadata.version("psqs")
    except metadata.PackageNotFoundError:      # copied onto a board without pip
        return "unknown (not installed)"


def add_common_options(parser: argparse.ArgumentParser, subcommands=None) -> None:
    """``--version`` on ``parser``; ``-q``, ``-v`` and ``--debug`` on it and on every parser in
    ``subcommands`` (an ``add_subparsers`` action), so they may be given before or after the
    subcommand."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the psqs version and exit")
    for p, default in [(parser, False)] + [(p, argparse.SUPPRESS) for p in
                                           (subcommands.choices.values() if subcommands else ())]:
        g = p.add_argument_group("output")
        g.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="no progress bars, no informational log lines: results and errors only")
        g.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
        g.add_argument("--debug", action="store_true", default=default,
                       help="print the traceback of an error (and debug logging)")


def quiet_native_logs(argv=None) -> None:
    """Keep native libraries' own stderr logging (gRPC's C core; TensorFlow's C++ start-up lines)
    off the one-line error contract, unless ``--debug`` is on the command line. They read these
    variables when first imported, so this runs before anything imports them; a variable the user
    set wins."""
    if "--debug" in (sys.argv[1:] if argv is None else argv):
        return
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def configure_logging(args: argparse.Namespace) -> None:
    """psqs logs at INFO (DEBUG with -v/--debug, WARNING with -q); the libraries underneath only warn."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    level = (logging.DEBUG if args.verbose or args.debug else logging.WARNING if args.quiet else logging.INFO)
    logging.getLogger("psqs").setLevel(level)
    # Python warnings of the libraries underneath (pkg_resources, pynq's start-up) become log
    # records, shown only with -v/--debug
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if args.verbose or args.debug else logging.ERROR)


def report(exc: PsqsError, debug: bool) -> int:
    """Print ``exc`` as the one ``psqs: error:`` line (its first line; the rest with ``--debug``)."""
    text = str(exc).strip() or type(exc).__name__
    first, _, rest = text.partition("\n")
    if debug:
        traceback.print_exc()
        print(f"{PREFIX} {text}", file=sys.stderr)
    else:
        print(f"{PREFIX} {first}{' (details with --debug)' if rest.strip() else ''}", file=sys.stderr)
    return exc.exit_status


def parse(parser: argparse.ArgumentParser, argv):
    """``parser.parse_args(argv)``, or the exit status of a refused command line (already reported;
    argparse's own traceback would say nothing more, so there is none even with ``--debug``)."""
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        return report(exc, debug=False)


def run(func, args: argparse.Namespace) -> int:
    """``func(args)`` with every expected failure reported as one line; returns the exit status."""
    try:
        return func(args)
    except PsqsError as exc:
        return report(exc, args.debug)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("psqs: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
