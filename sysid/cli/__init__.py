"""The ``sysid`` command line: fit, predict, compare, info and demo over data files.

Run ``sysid --help`` (or ``python -m sysid.cli --help``); the guide is ``docs/cli.md``.
:func:`main` takes the arguments as a list and returns the exit status, so the
command can also be called from Python:

>>> from sysid.cli import main
>>> main(["info", "no-such-model.sysid", "--quiet"])
2
"""

from sysid.cli._main import main as main

__all__ = ["main"]
