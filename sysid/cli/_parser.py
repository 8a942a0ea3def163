"""The ``sysid`` argument parser: one sub-command each, with its options, help and examples.

The parser only reads the command line; :mod:`sysid.cli._main` runs the command it names.
A usage error is raised as a :class:`~sysid.cli._files.UsageError` (one line, exit status 2)
instead of argparse's exit.
"""

from __future__ import annotations

import argparse
from typing import Any

from sysid.cli._files import UsageError
from sysid.cli._models import MODEL_FLAGS
from sysid.cli._settings import DEFAULT_TIME_FRACTION
from sysid.registry import cli_names

__all__ = ["COMMANDS", "COMPARE_EPILOG", "DEMO_EPILOG", "FIT_EPILOG", "INFO_EPILOG", "PREDICT_EPILOG", "build_parser"]

COMMANDS = ("fit", "predict", "compare", "info", "demo")
"""The sub-commands, in the order ``sysid --help`` lists them."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (raised, so main() can return 2)."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


_FORMATTER = argparse.RawDescriptionHelpFormatter

FIT_EPILOG = """\
examples:
  sysid fit runs.csv --time t --states prey,predator --trajectory run \\
      --model neural --hidden 32,32 --max-epochs 100 --out model.sysid
  sysid fit runs.parquet --model sparse --degree 2 --threshold 0.05 --out sparse.sysid
  sysid fit runs.nc --model classical --rhs lv.py:lotka_volterra \\
      --params alpha=0.5,beta=0.03,gamma=0.8,delta=0.02 --bounds alpha=0:,beta=0: --out lv.sysid
  sysid fit --config run.toml --max-epochs 20        # a flag overrides the config file

The model file stores the settings used, the sysid version and the data file's
SHA-256 (see `sysid info model.sysid`)."""

PREDICT_EPILOG = """\
examples:
  sysid predict model.sysid runs.csv --out predictions.csv      # same columns and labels
  sysid predict model.sysid runs.nc --out predictions.nc
  sysid predict model.sysid runs.csv --x0 1.0,2.0 --out pred.parquet   # own initial state
  sysid predict model.sysid --t0 0 --t1 20 --n-times 201 --x0 30,4 --out forecast.csv
  sysid predict model.sysid runs.csv | head                       # CSV on stdout

Models fitted with a right-hand side from a Python file need it again:
  sysid predict lv.sysid runs.csv --rhs lv.py:lotka_volterra --out pred.csv"""

COMPARE_EPILOG = """\
examples:
  sysid compare runs.csv --trajectory run --models neural,sparse,sindy \\
      --test-trajectories run3 --out report/
  sysid compare runs.csv --models sindy,sparse --out report/      # holds out the last 20% of each run
  sysid compare runs.csv --models sindy,sparse --time-fraction 0.6 --out report/   # hold out more
  sysid compare sim.csv --models sindy,sparse --truth lotka_volterra --out report/

Without --test-trajectories, each model is also fitted on the first 80% of every
trajectory's time span and scored on the held-out rest (split extrapolation); models are
ranked by held-out nRMSE. --no-hold-out scores in-sample only (one fit per model).
Writes comparison.csv (one row per model and split), comparison.md, fits.png,
extrapolation.png, phase_<model>.png and comparison.png to the --out folder and prints
the table."""

INFO_EPILOG = """\
examples:
  sysid info model.sysid
  sysid info model.sysid --json | python -c 'import json,sys; print(json.load(sys.stdin)["estimator"])'"""

DEMO_EPILOG = """\
examples:
  sysid demo                                  # lynx-hare, four models, ./sysid-demo/
  sysid demo --time-fraction 0.6              # hold out more: fit 1900-1912
  sysid demo --dataset van_der_pol --out vdp/
  sysid demo --quick                          # tiny settings: a smoke test in seconds"""


def _output_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr: no progress, no warnings")
    group.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr (--quiet wins)")
    group.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    return parent


def _data_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("data columns (CSV/Parquet) or variables and dims (netCDF)")
    group.add_argument("--time", metavar="NAME", help="time column or dimension (default: t or time)")
    group.add_argument("--states", metavar="A,B", help="state columns (default: every other numeric column)")
    group.add_argument("--inputs", metavar="U,V", help="known input (control) columns")
    group.add_argument("--trajectory", metavar="NAME", help="column or dimension telling experiments apart")
    group.add_argument("--interpolate-inputs", action="store_const", const=True, default=None,
                       help="fill missing input values linearly in time")
    group.add_argument("--sort", action="store_const", const=True, default=None,
                       help="sort each trajectory's rows by time (without it, times that go backwards are an error)")
    return parent


def _model_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("model settings (each applies to the models that have it)")
    for flag in MODEL_FLAGS:
        flag.add_to(group)
    group.add_argument("--set", action="append", metavar="KEY=VALUE", dest="set_options",
                       help="any other constructor parameter, value read as TOML (repeatable): --set lr=0.005")
    rhs = parent.add_argument_group("right-hand side (classical, greybox, hybrid)")
    rhs.add_argument("--rhs", metavar="FILE.py:FUNC",
                     help="f(t, x, p, u) from a Python file (it is run), or the built-in lotka_volterra")
    rhs.add_argument("--params", metavar="A=1,B=0.5", help="initial parameter values")
    rhs.add_argument("--bounds", metavar="A=0:10,B=0:", help="parameter bounds low:high (empty side: none)")
    rhs.add_argument("--fixed", metavar="A,B", help="parameters held at their initial values")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``sysid`` argument parser (one sub-command each); the command's name is ``args.command``.

    Examples
    --------
    >>> args = build_parser().parse_args(["predict", "model.sysid", "runs.csv", "--out", "pred.csv"])
    >>> args.command, args.model, args.data, args.out
    ('predict', 'model.sysid', 'runs.csv', 'pred.csv')
    """
    from sysid import __version__

    parser = _Parser(prog="sysid", formatter_class=_FORMATTER,
                     description="System identification from measured trajectories: fit Neural ODEs, sparse, "
                                 "grey-box, SINDy and classical models to data files, predict, compare.",
                     epilog="run `sysid COMMAND --help` for each command's options and examples; "
                            "`sysid demo` for a tour.")
    parser.add_argument("--version", action="version", version=f"sysid {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    out, data, model = _output_options(), _data_options(), _model_options()

    fit = commands.add_parser("fit", parents=[data, model, out], formatter_class=_FORMATTER, epilog=FIT_EPILOG,
                              help="fit a model to a data file and save it",
                              description="Fit one model to a data file and write a model file.")
    fit.add_argument("data", nargs="?", metavar="DATA", help="CSV, Parquet or netCDF file")
    fit.add_argument("--config", metavar="RUN.toml", help="TOML file with the settings; flags override it")
    names = cli_names()
    fit.add_argument("--model", metavar="NAME",
                     help=f"{names[0]} (default), {', '.join(names[1:-1])} or {names[-1]}")
    fit.add_argument("--out", metavar="MODEL.sysid", help="model file to write")

    predict = commands.add_parser("predict", parents=[data, out], formatter_class=_FORMATTER, epilog=PREDICT_EPILOG,
                                  help="simulate a saved model at a data file's times or on a new grid",
                                  description="Simulate a saved model: at the times (and with the inputs) of a "
                                              "data file, or for a new experiment on a uniform time grid.")
    predict.add_argument("model", metavar="MODEL", help="model file written by `sysid fit`")
    predict.add_argument("data", nargs="?", metavar="DATA", help="CSV, Parquet or netCDF file (optional with --t1)")
    predict.add_argument("--x0", metavar="A,B", help="initial state, one value per state (default: estimated)")
    predict.add_argument("--t0", type=float, metavar="T", help="new experiment: first time (default 0)")
    predict.add_argument("--t1", type=float, metavar="T", help="new experiment: last time")
    predict.add_argument("--n-times", type=int, metavar="N", help="new experiment: number of times (default 101)")
    predict.add_argument("--rhs", metavar="FILE.py:FUNC", help="the right-hand side the model was fitted with")
    predict.add_argument("--out", metavar="FILE", help="predictions file (.csv, .parquet, .nc); default: CSV on stdout")

    compare = commands.add_parser("compare", parents=[data, model, out], formatter_class=_FORMATTER,
                                  epilog=COMPARE_EPILOG, help="fit several models and tabulate their errors",
                                  description="Fit several models on the same data; print and write a table "
                                              "of trajectory (and equation) errors, held-out data first, "
                                              "with figures.")
    compare.add_argument("data", nargs="?", metavar="DATA", help="CSV, Parquet or netCDF file")
    compare.add_argument("--config", metavar="RUN.toml", help="TOML file with the settings; flags override it")
    compare.add_argument("--models", metavar="A,B",
                         help=f"models to compare, from {', '.join(names)} (default neural,sparse,sindy)")
    compare.add_argument("--test-trajectories", metavar="A,B", help="trajectories held out for testing")
    compare.add_argument("--time-fraction", type=_fraction, metavar="F",
                         help="also fit on the first F of each trajectory's span and score the rest "
                              f"(default {DEFAULT_TIME_FRACTION:g} without --test-trajectories)")
    compare.add_argument("--no-hold-out", action="store_const", const=False, dest="hold_out",
                         help="score the models in-sample only: one fit each, on all the data")
    compare.add_argument("--truth", metavar="SYSTEM", help="score equations against a simulated system's truth")
    compare.add_argument("--n-jobs", type=int, metavar="N", help="fit the models in parallel (joblib)")
    compare.add_argument("--out", metavar="DIR", help="folder for the table, report and figures")

    info = commands.add_parser("info", parents=[out], formatter_class=_FORMATTER, epilog=INFO_EPILOG,
                               help="describe a model file",
                               description="Describe a model file: kind, states, inputs, parameters or "
                                           "equations, training summary and provenance. Nothing is run.")
    info.add_argument("model", metavar="MODEL", help="model file")
    info.add_argument("--json", action="store_true", help="print the file's whole header as JSON")

    demo = commands.add_parser("demo", parents=[out], formatter_class=_FORMATTER, epilog=DEMO_EPILOG,
                               help="fit four models to the lynx-hare data (or a simulated system)",
                               description="Fit NeuralODE, SparseODE, SINDy and a classical Lotka-Volterra "
                                           "model, print the comparison and the equations, write figures and "
                                           "report.md.")
    demo.add_argument("--dataset", default="lynx_hare", metavar="NAME",
                      help="lynx_hare (default), lotka_volterra, van_der_pol, duffing, pendulum, lorenz, "
                           "mass_spring_damper")
    demo.add_argument("--out", default="sysid-demo", metavar="DIR", help="output folder (default ./sysid-demo/)")
    demo.add_argument("--quick", action="store_true", help="tiny settings: runs in seconds, for a smoke test")
    demo.add_argument("--time-fraction", type=_fraction, metavar="F",
                      help=f"fit on the first F of the record (default {DEFAULT_TIME_FRACTION:g}), score the rest")
    demo.add_argument("--random-state", type=int, default=0, metavar="N", help="seed (default 0)")
    return parser

