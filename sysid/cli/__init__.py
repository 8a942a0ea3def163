"""The ``sysid`` command line: fit, predict, compare, info and demo over data files.

Run ``sysid --help`` (or ``python -m sysid.cli --help``); the guide is ``docs/cli.md``.
:func:`main` takes the arguments as a list and returns the exit status, so the
command can also be called from Python:

>>> from sysid.cli import main
>>> main(["info", "no-such-model.sysid", "--quiet"])
2

The modules, one purpose each: ``_main`` (the entry point: parse, run, exit status),
``_parser`` (the argument parser, help and examples), ``_console`` (stdout/stderr and
exit codes), ``_settings`` (config file + flags, per model), ``_config`` (TOML files),
``_models`` (estimators by name, model flags, right-hand sides), ``_files`` (data files),
``_provenance`` (the record a model file keeps), and one module per command: ``_fit``,
``_predict``, ``_compare``, ``_info`` (describing a model file), ``_demo``.
"""

from sysid.cli._main import main as main

__all__ = ["main"]
