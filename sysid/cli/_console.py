"""Where the ``sysid`` command writes, and how an error becomes an exit status.

Results (tables, equations, predictions) go to stdout; progress, warnings and messages to
stderr, so stdout can be piped. Exit status: 0 on success; 2 for bad usage or bad data (one
line on stderr naming the problem); 1 when a fit failed (:class:`sysid.FitError`) or for an
unexpected error; 130 when interrupted.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from sysid.errors import FitError, SysidError

__all__ = ["Console", "error_message", "exit_code", "one_line", "silence_stdout", "warnings_through"]


def one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines too) as one space.

    Examples
    --------
    >>> one_line("no such file:\\n  'x.csv'")
    "no such file: 'x.csv'"
    """
    return " ".join(str(text).split())


class Console:
    """Where the command writes: results to stdout, everything else to stderr."""

    def __init__(self, prog: str, quiet: bool = False, verbose: bool = False) -> None:
        self.prog = prog
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self._warned: set[str] = set()

    def out(self, text: str = "") -> None:
        """A result (table, equations, predictions): stdout."""
        print(text, file=sys.stdout)

    def info(self, text: str) -> None:
        """Progress and summaries: stderr, silenced by --quiet."""
        if not self.quiet:
            print(text, file=sys.stderr)

    def detail(self, text: str) -> None:
        """Extra detail: stderr with --verbose only."""
        if self.verbose:
            print(text, file=sys.stderr)

    def warn(self, text: str) -> None:
        """One line per distinct warning, silenced by --quiet."""
        line = one_line(text)
        if not self.quiet and line not in self._warned:
            self._warned.add(line)
            print(f"{self.prog}: warning: {line}", file=sys.stderr)

    def error(self, text: str) -> None:
        """The one-line error message (always shown)."""
        print(f"{self.prog}: error: {one_line(text)}", file=sys.stderr)


@contextlib.contextmanager
def warnings_through(ui: Console) -> Iterator[None]:
    """Python warnings shown as one ``warning:`` line each on ``ui`` (none with --quiet)."""
    with warnings.catch_warnings():
        if ui.quiet:
            warnings.simplefilter("ignore")

        def show(
            message: Any, category: type, filename: str, lineno: int, file: Any = None, line: str | None = None
        ) -> None:
            ui.warn(f"{message} [{category.__name__}]" if ui.verbose else message)

        warnings.showwarning = show
        yield


def exit_code(exc: BaseException) -> int:
    """1 for a failed fit or an unexpected error, 2 for the user's input (a SysidError or an OSError).

    Examples
    --------
    >>> from sysid.errors import DataError
    >>> exit_code(FitError("diverged")), exit_code(DataError("NaN times")), exit_code(KeyError("x"))
    (1, 2, 1)
    """
    if isinstance(exc, FitError):
        return 1
    if isinstance(exc, SysidError | OSError):
        return 2
    return 1


def error_message(exc: BaseException) -> str:
    """The one line that tells the user what went wrong (and, for a bug, how to see more).

    Examples
    --------
    >>> error_message(FileNotFoundError(2, "No such file or directory", "runs.csv"))
    "no such file: 'runs.csv'."
    """
    message = one_line(exc) or type(exc).__name__
    if isinstance(exc, FitError):
        return f"the fit failed: {message}"
    if exit_code(exc) == 1:
        return f"unexpected {type(exc).__name__}: {message} (run with --debug for the traceback)"
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename!r}."
    return message


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again (after a broken pipe)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured output)
        pass
