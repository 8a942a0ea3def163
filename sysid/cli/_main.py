"""The ``sysid`` command: read the command line, run the command it names, return the exit status.

Exit status: 0 on success; 2 for bad usage or bad data (a one-line message on stderr naming
the problem, no traceback unless ``--debug``); 1 when a fit failed (:class:`sysid.FitError`)
or for an unexpected error; 130 when interrupted. Tables and predictions go to stdout,
progress bars, warnings and messages to stderr, so stdout can be piped
(:mod:`sysid.cli._console`).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from sysid.cli._compare import compare_command
from sysid.cli._console import (
    Console,
    error_message,
    exit_code,
    one_line,
    silence_stdout,
    warnings_through,
)
from sysid.cli._demo import demo_command
from sysid.cli._files import UsageError
from sysid.cli._fit import fit_command
from sysid.cli._info import info_command
from sysid.cli._parser import COMMANDS, build_parser
from sysid.cli._predict import predict_command

__all__ = ["HANDLERS", "main"]

HANDLERS: dict[str, Callable[[argparse.Namespace, Console, Sequence[str]], int]] = {
    "fit": fit_command,
    "predict": predict_command,
    "compare": compare_command,
    "info": info_command,
    "demo": demo_command,
}
"""What runs each sub-command: ``handler(args, console, argv) -> exit status``."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sysid`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad usage or data, 1 for a failed fit or an unexpected error.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        prog = "sysid " + arguments[0] if arguments and arguments[0] in COMMANDS else "sysid"
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    ui = Console(f"sysid {args.command}", quiet=args.quiet, verbose=args.verbose)
    try:
        with warnings_through(ui):
            return int(HANDLERS[args.command](args, ui, arguments) or 0)
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `sysid predict model.sysid data.csv | head`: the reader had enough
        silence_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit statuses
        if args.debug:
            traceback.print_exc()
        ui.error(error_message(exc))
        return exit_code(exc)
