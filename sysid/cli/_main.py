"""The ``sysid`` command: fit, predict, compare, info and demo over data files.

Exit status: 0 on success; 2 for bad usage or bad data (a one-line message on
stderr naming the problem, no traceback unless ``--debug``); 1 when a fit failed
(:class:`sysid.FitError`) or for an unexpected error. Tables and predictions go to
stdout, progress bars, warnings and messages to stderr, so stdout can be piped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from sysid.cli._config import load_config
from sysid.cli._files import (
    UsageError, check_not_an_input, file_format, parse_names, read_data, sha256_of, write_data, write_table,
)
from sysid.cli._models import MODEL_FLAGS
from sysid.errors import FitError, SysidError
from sysid.registry import cli_names

__all__ = ["Console", "build_parser", "main"]

_PACKAGES = ("numpy", "scipy", "pandas", "xarray", "torch", "torchdiffeq", "pysindy", "scikit-learn")
_DATA_KEYS = ("time", "states", "inputs", "trajectory", "interpolate_inputs")
MAX_N_TIMES = 10_000_000
"""The most times ``sysid predict --n-times`` simulates (more: call ``model.predict(t=...)`` in pieces)."""


# -- output ------------------------------------------------------------------------------------
def _one_line(text: Any) -> str:
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
        line = _one_line(text)
        if not self.quiet and line not in self._warned:
            self._warned.add(line)
            print(f"{self.prog}: warning: {line}", file=sys.stderr)

    def error(self, text: str) -> None:
        """The one-line error message (always shown)."""
        print(f"{self.prog}: error: {_one_line(text)}", file=sys.stderr)


@contextlib.contextmanager
def _warnings_through(ui: Console) -> Iterator[None]:
    with warnings.catch_warnings():
        if ui.quiet:
            warnings.simplefilter("ignore")

        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            ui.warn(f"{message} [{category.__name__}]" if ui.verbose else message)

        warnings.showwarning = show
        yield


# -- argparse ------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (raised, so main() can return 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
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
  sysid compare runs.csv --models sindy,sparse --time-fraction 0.8 --out report/
  sysid compare sim.csv --models sindy,sparse --truth lotka_volterra --out report/

Writes comparison.csv (one row per model and split), comparison.md, fits.png,
phase_<model>.png and comparison.png to the --out folder and prints the table."""

INFO_EPILOG = """\
examples:
  sysid info model.sysid
  sysid info model.sysid --json | python -c 'import json,sys; print(json.load(sys.stdin)["estimator"])'"""

DEMO_EPILOG = """\
examples:
  sysid demo                                  # lynx-hare, four models, ./sysid-demo/
  sysid demo --time-fraction 0.8             # hold out the last years
  sysid demo --dataset van_der_pol --out vdp/
  sysid demo --quick                          # tiny settings: a smoke test in seconds"""


def _output_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr: no progress, no warnings")
    group.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr (--quiet wins)")
    group.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    return parent


def _data_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("data columns (CSV/Parquet) or variables and dims (netCDF)")
    group.add_argument("--time", metavar="NAME", help="time column or dimension (default: t or time)")
    group.add_argument("--states", metavar="A,B", help="state columns (default: every other numeric column)")
    group.add_argument("--inputs", metavar="U,V", help="known input (control) columns")
    group.add_argument("--trajectory", metavar="NAME", help="column or dimension telling experiments apart")
    group.add_argument("--interpolate-inputs", action="store_const", const=True, default=None,
                       help="fill missing input values linearly in time")
    return parent


def _model_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
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
    """The ``sysid`` argument parser (one sub-command each)."""
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
    fit.set_defaults(handler=_cmd_fit)

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
    predict.set_defaults(handler=_cmd_predict)

    compare = commands.add_parser("compare", parents=[data, model, out], formatter_class=_FORMATTER,
                                  epilog=COMPARE_EPILOG, help="fit several models and tabulate their errors",
                                  description="Fit several models on the same data; print and write a table "
                                              "of trajectory (and equation) errors, with figures.")
    compare.add_argument("data", nargs="?", metavar="DATA", help="CSV, Parquet or netCDF file")
    compare.add_argument("--config", metavar="RUN.toml", help="TOML file with the settings; flags override it")
    compare.add_argument("--models", metavar="A,B",
                         help=f"models to compare, from {', '.join(names)} (default neural,sparse,sindy)")
    compare.add_argument("--test-trajectories", metavar="A,B", help="trajectories held out for testing")
    compare.add_argument("--time-fraction", type=_fraction, metavar="F",
                         help="also fit on the first F of each trajectory's span and score the rest")
    compare.add_argument("--truth", metavar="SYSTEM", help="score equations against a simulated system's truth")
    compare.add_argument("--n-jobs", type=int, metavar="N", help="fit the models in parallel (joblib)")
    compare.add_argument("--out", metavar="DIR", help="folder for the table, report and figures")
    compare.set_defaults(handler=_cmd_compare)

    info = commands.add_parser("info", parents=[out], formatter_class=_FORMATTER, epilog=INFO_EPILOG,
                               help="describe a model file",
                               description="Describe a model file: kind, states, inputs, parameters or "
                                           "equations, training summary and provenance. Nothing is run.")
    info.add_argument("model", metavar="MODEL", help="model file")
    info.add_argument("--json", action="store_true", help="print the file's whole header as JSON")
    info.set_defaults(handler=_cmd_info)

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
    demo.add_argument("--time-fraction", type=_fraction, metavar="F", help="fit on the first F, score the rest")
    demo.add_argument("--random-state", type=int, default=0, metavar="N", help="seed (default 0)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


# -- settings: config file + flags -----------------------------------------------------------------
def _settings(args: argparse.Namespace, keys: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Config-file settings overridden by the flags that were given."""
    settings: dict[str, Any] = {}
    meta = None
    if getattr(args, "config", None):
        settings, meta = load_config(args.config)
    for key in keys:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    return settings, meta


def _data_settings(settings: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in _DATA_KEYS:
        value = settings.get(key)
        if value is None:
            continue
        if key in ("states", "inputs"):
            value = parse_names(value, f"--{key}")
        elif key == "interpolate_inputs":
            value = bool(value)
        else:
            value = str(value)
        options[key] = value
    return options


def _flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options given on the command line: --set, then the dedicated flags."""
    from sysid.cli._models import parse_set

    options = parse_set(getattr(args, "set_options", None))
    for flag in MODEL_FLAGS:
        value = getattr(args, flag.parameter, None)
        if value is not None:
            options[flag.parameter] = value
    return options


def _shared_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The config's [options] table, each key checked against every model's parameters."""
    from sysid.cli._models import constructor_parameters, model_class

    shared = dict(settings.get("options", {}))
    if not shared:
        return shared
    known: set[str] = set()
    for name in cli_names():
        with contextlib.suppress(UsageError):
            known.update(constructor_parameters(model_class(name)))
    unknown = sorted(set(shared) - known)
    if unknown:
        raise UsageError(f"[options] in the config sets {unknown}, which no model has.")
    return shared


def _model_settings(settings: dict[str, Any], flags: dict[str, Any], model: str, accepted: set[str],
                    every_flag: bool) -> dict[str, Any]:
    """Constructor options for one model: [options] (where it applies) < [model] table < --set < flags.

    The one place the precedence lives (fit and compare). ``flags`` are the command
    line's (:func:`_flag_settings`); with ``every_flag`` all of them are kept, for the
    estimator to refuse those it lacks (fit: one model, every flag meant for it), else
    only those the model has (compare: each flag goes to the models that have it).
    """
    from sysid.cli._models import model_class

    options = {k: v for k, v in _shared_options(settings).items() if k in accepted}
    table = dict(settings.get(model, {}))
    unknown = sorted(set(table) - accepted)
    if unknown:
        raise UsageError(f"[{model}] in the config sets {unknown}, which {model_class(model).__name__} does not have; "
                         f"its settings are {sorted(accepted)}.")
    options.update(table)
    options.update(flags if every_flag else {k: v for k, v in flags.items() if k in accepted})
    return options


def _required(settings: dict[str, Any], key: str, what: str) -> Any:
    value = settings.get(key)
    if value is None or value == "":
        raise UsageError(f"missing {what} (give it on the command line or as {key!r} in --config).")
    return value


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _data_record(data_path: str) -> dict[str, Any]:
    """Where the data came from: path, format, size and SHA-256 of the file as read."""
    path = Path(data_path)
    return {"path": str(data_path), "absolute_path": str(path.resolve()), "format": file_format(path),
            "bytes": path.stat().st_size, "sha256": sha256_of(path)}


def _provenance(command: str, argv: Sequence[str], config: dict[str, Any], meta: dict[str, Any] | None,
                data: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from sysid import __version__

    record = {
        "command": f"sysid {command}",
        "argv": list(argv),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sysid_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": _versions(),
        "data": data,
        "config": config,
        "config_file": meta,
    }
    record.update(extra or {})
    return record


# -- fit -------------------------------------------------------------------------------------------------
def _cmd_fit(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    from sysid.cli._models import (
        NEEDS_RHS, build_estimator, check_model_name, constructor_parameters, load_rhs, model_class, parse_bounds,
        parse_fixed, parse_params,
    )

    settings, meta = _settings(args, ("data", "out", "model", "rhs", "params", "bounds", "fixed", *_DATA_KEYS))
    for key in ("models", "test_trajectories", "time_fraction", "truth", "n_jobs"):
        if key in settings:
            raise UsageError(f"{key!r} in {args.config} is a compare setting; sysid fit does not use it.")
    data_path = _required(settings, "data", "the data file DATA")
    out = Path(_required(settings, "out", "--out (the model file to write, e.g. --out model.sysid)"))
    name = check_model_name(settings.get("model", "neural"))
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a folder; give a file name such as {str(out / 'model.sysid')!r}.")
    check_not_an_input(out, {"data file": data_path, "config file": getattr(args, "config", None),
                             "right-hand side file": _rhs_file(settings.get("rhs"))})
    data_options = _data_settings(settings)
    frame = read_data(data_path, time=data_options.get("time"))  # a missing or unreadable file fails fast
    data_record = _data_record(str(data_path))  # hashed as read, before a long fit
    cls = model_class(name)
    options = _model_settings(settings, _flag_settings(args), name, set(constructor_parameters(cls)), every_flag=True)
    rhs = load_rhs(settings["rhs"], name) if settings.get("rhs") and name in NEEDS_RHS else None
    params = parse_params(settings["params"]) if settings.get("params") is not None else None
    bounds = parse_bounds(settings["bounds"]) if settings.get("bounds") is not None else None
    fixed = parse_fixed(settings.get("fixed"))
    if settings.get("rhs") and name not in NEEDS_RHS:
        raise UsageError(f"--rhs applies to greybox, hybrid and classical models, not {name}.")
    estimator = build_estimator(name, options, rhs=rhs, params=params, bounds=bounds, fixed=fixed,
                                verbose=not ui.quiet)
    from sysid.adapters import as_trajectories

    data = as_trajectories(frame, **data_options)  # bad columns or values fail here, before any fitting
    out.parent.mkdir(parents=True, exist_ok=True)  # before the fit: a path that cannot be written fails fast
    ui.info(f"fitting {cls.__name__} to {data_path}: {len(data)} trajector{'y' if len(data) == 1 else 'ies'}, "
            f"{sum(tr.n_times for tr in data)} times, states {', '.join(map(str, data.state_names))} ...")
    ui.detail(f"settings: {estimator!r}")
    started = time.perf_counter()
    estimator.fit(frame, **data_options)
    seconds = time.perf_counter() - started
    config = {"model": name, **data_options, "options": options,
              "rhs": None if rhs is None else rhs.record(), "params": params, "bounds": bounds, "fixed": fixed}
    provenance = _provenance("fit", argv, config, meta, data_record, {"fit_seconds": seconds})
    import sysid.io

    sysid.io.save(estimator, out, extra={"provenance": provenance})
    ui.info(_fit_summary(estimator, seconds))
    for line in _model_lines(estimator):
        ui.info(f"  {line}")
    if ui.verbose:
        ui.detail(f"R^2 over the training data: {estimator.score(frame):.4f}")
    ui.info(f"wrote {out}")
    return 0


def _fit_summary(model: Any, seconds: float) -> str:
    names = ", ".join(map(str, model.state_names_))
    parts = [f"{type(model).__name__} fitted in {seconds:.1f} s (states {names}"]
    if model.input_names_:
        parts.append(f"; inputs {', '.join(map(str, model.input_names_))}")
    parts.append(")")
    stop = getattr(model, "stop_reason_", None)
    if stop:
        parts.append(f"; stopped: {stop}")
    evals = getattr(model, "n_function_evals_", None)
    if evals is not None:
        parts.append(f"; {int(evals):,} function evaluations")
    return "".join(parts)


def _model_lines(model: Any) -> list[str]:
    from sysid.report import model_notes

    if not hasattr(model, "equations") and not hasattr(model, "params_"):
        return []
    return model_notes({"m": model})["m"]


# -- predict ----------------------------------------------------------------------------------------------
def _rhs_file(spec: Any) -> str | None:
    """The Python file of an ``--rhs file.py:function`` spec (None for a built-in or no spec)."""
    if not isinstance(spec, str):
        return None
    path, sep, _ = spec.strip().rpartition(":")
    return path if sep and path else None


def _recorded_rhs(header: dict[str, Any]) -> dict[str, Any]:
    """The right-hand side `sysid fit` recorded in a model file's provenance ({} if none)."""
    record: Any = header
    for key in ("extra", "provenance", "config", "rhs"):
        record = record.get(key) if isinstance(record, dict) else None
    return record if isinstance(record, dict) else {}


def _functions_for(header: dict[str, Any], rhs_spec: str | None, ui: Console, path: str) -> dict[str, Callable]:
    """The user functions a model file needs (files hold no code), from --rhs or a built-in."""
    from sysid.cli._models import cli_name_of, load_rhs, rhs_parameter
    from sysid.io.format import FunctionRef

    params = header.get("params") if isinstance(header.get("params"), dict) else {}
    needed = [k for k, v in params.items() if isinstance(v, FunctionRef)]
    estimator = header.get("estimator")
    recorded = _recorded_rhs(header)
    if not needed:
        if rhs_spec:
            raise UsageError(f"--rhs: the {estimator} in {path} needs no right-hand side.")
        return {}
    kind = cli_name_of(estimator)
    parameter = rhs_parameter(kind) if kind is not None else None
    if needed != [parameter] or kind is None:
        raise UsageError(f"{path}: the {estimator} was saved with Python functions for {needed}; the command line "
                         "supplies only the right-hand side (--rhs). Load it in Python with sysid.load(path, ...).")
    if rhs_spec:
        spec = load_rhs(rhs_spec, kind)
        if recorded.get("sha256") and spec.sha256 and spec.sha256 != recorded["sha256"]:
            ui.warn(f"{spec.path} has changed since the model was fitted (SHA-256 differs from the one recorded).")
        return {parameter: spec.function}
    if recorded.get("builtin"):
        return {parameter: load_rhs(recorded["builtin"], kind).function}
    where = f" --rhs {recorded['spec']}" if recorded.get("spec") else " --rhs file.py:function"
    raise UsageError(
        f"the {estimator} in {path} was fitted with a Python right-hand side "
        f"({params[parameter].name}) and model files hold no code: pass it again with{where}."
    )


def _parse_x0(text: str, model: Any) -> np.ndarray:
    try:
        values = np.array([float(v) for v in str(text).split(",")], dtype=float)
    except ValueError:
        raise UsageError(f"--x0 must be comma-separated numbers like 1.0,2.0, got {text!r}.") from None
    names = list(model.state_names_)
    if values.shape[0] != len(names):
        raise UsageError(
            f"--x0 has {values.shape[0]} value(s) but the model has {len(names)} states "
            f"({', '.join(map(str, names))}); "
            f"give one value per state, e.g. --x0 {','.join(['1.0'] * len(names))}."
        )
    if not np.all(np.isfinite(values)):
        raise UsageError(f"--x0 must be finite numbers, got {text!r}.")
    return values


def _cmd_predict(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    import sysid.io
    from sysid.io.format import read_file

    if args.out and args.out != "-":
        check_not_an_input(args.out, {"model file": args.model, "data file": args.data,
                                      "right-hand side file": _rhs_file(args.rhs)})
    if args.n_times is not None and not 2 <= args.n_times <= MAX_N_TIMES:
        raise UsageError(f"--n-times must be between 2 and {MAX_N_TIMES:,}, got {args.n_times:,}; for more times, "
                         "call model.predict(t=...) in Python, in pieces.")
    header = read_file(args.model).header
    functions = _functions_for(header, args.rhs, ui, args.model)
    model = sysid.io.load(args.model, **functions)
    out_kind = file_format(args.out, "predictions file") if args.out and args.out != "-" else "csv"
    x0 = _parse_x0(args.x0, model) if args.x0 is not None else None
    grid = args.t0 is not None or args.t1 is not None or args.n_times is not None
    if args.data is None:
        result = _predict_grid(args, model, x0, out_kind)
    else:
        if grid:
            raise UsageError("give either a DATA file or a new experiment (--t0/--t1/--n-times), not both.")
        overrides = _data_settings({k: getattr(args, k) for k in _DATA_KEYS})
        options = {**(model.data_options_ or {}), **overrides}
        frame = read_data(args.data, time=options.get("time"))
        result = _in_output_family(model.predict(frame, x0=x0, **overrides), options, out_kind)
    if args.out and args.out != "-":
        write_data(result, args.out)
        what = (f"{len(result)} predicted rows" if hasattr(result, "columns")
                else f"predicted {', '.join(map(str, result.data_vars))}")
        ui.info(f"wrote {what} to {args.out}")
    else:
        keep_index = not (type(result.index).__name__ == "RangeIndex" and result.index.name is None)
        result.to_csv(sys.stdout, index=keep_index)
    return 0


def _in_output_family(obj: Any, options: dict[str, Any], kind: str) -> Any:
    """Predictions as the kind of object the output file holds (DataFrame or Dataset).

    Predictions come back in the input's format; for another output format they go
    through the adapters once more (``to_xarray``/``to_pandas``), keeping the names.
    """
    import xarray as xr

    from sysid.adapters import as_trajectories

    wants_dataset = kind == "netcdf"
    if isinstance(obj, xr.Dataset) == wants_dataset:
        return obj
    data = as_trajectories(obj, **options)
    return data.to_xarray() if wants_dataset else data.to_pandas()


def _predict_grid(args: argparse.Namespace, model: Any, x0: np.ndarray | None, kind: str) -> Any:
    import pandas as pd

    if args.t1 is None or x0 is None:
        raise UsageError(
            "predict needs a DATA file, or a new experiment: --t1 (with optional --t0, --n-times) and "
            f"--x0 with one value per state ({', '.join(map(str, model.state_names_))})."
        )
    if model.n_controls_in_:
        raise UsageError(f"the model has inputs {model.input_names_}: predict on a DATA file that gives them.")
    t0 = 0.0 if args.t0 is None else float(args.t0)
    n = 101 if args.n_times is None else int(args.n_times)
    if not (np.isfinite(t0) and np.isfinite(float(args.t1))):
        raise UsageError(f"--t0 and --t1 must be finite numbers, got --t0 {t0} and --t1 {args.t1}.")
    if not float(args.t1) > t0:
        raise UsageError(f"--t1 ({args.t1}) must be later than --t0 ({t0}).")
    t = np.linspace(t0, float(args.t1), n)
    y = np.asarray(model.predict(t=t, x0=x0), dtype=float)
    time_name = (model.data_options_ or {}).get("time") or "t"
    frame = pd.DataFrame({time_name: t, **{str(s): y[:, j] for j, s in enumerate(model.state_names_)}})
    if kind == "netcdf":
        return frame.set_index(time_name).to_xarray()
    return frame


# -- compare -------------------------------------------------------------------------------------------------
def _cmd_compare(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    from sysid.adapters import as_trajectories
    from sysid.report import model_notes, run_comparison, write_figures, write_report
    from sysid.cli._models import (
        NEEDS_RHS, build_estimator, check_model_name, constructor_parameters, load_rhs, model_class, parse_bounds,
        parse_fixed, parse_params,
    )

    keys = ("data", "out", "models", "rhs", "params", "bounds", "fixed", "test_trajectories", "time_fraction",
            "truth", "n_jobs", *_DATA_KEYS)
    settings, meta = _settings(args, keys)
    if "model" in settings:
        raise UsageError("'model' is a fit setting; compare takes 'models' (a list).")
    data_path = _required(settings, "data", "the data file DATA")
    names = [check_model_name(n) for n in parse_names(settings.get("models", "neural,sparse,sindy"), "--models")]
    if len(set(names)) != len(names):
        raise UsageError(f"--models lists a model twice: {names}.")
    params = parse_params(settings["params"]) if settings.get("params") is not None else None
    bounds = parse_bounds(settings["bounds"]) if settings.get("bounds") is not None else None
    fixed = parse_fixed(settings.get("fixed"))
    flags = _flag_settings(args)
    accepted = {n: set(constructor_parameters(model_class(n))) for n in names}
    unused = [k for k in flags if not any(k in accepted[n] for n in names)]
    if unused:
        raise UsageError(f"setting(s) {unused} apply to none of the models {names}.")
    if any(n in NEEDS_RHS for n in names) and not settings.get("rhs"):
        raise UsageError("greybox, hybrid and classical models need --rhs file.py:function (or lotka_volterra) "
                         "and --params.")
    estimators = {}
    for name in names:
        chosen = _model_settings(settings, flags, name, accepted[name], every_flag=False)
        rhs_needed = name in NEEDS_RHS
        estimator = build_estimator(name, chosen, verbose=not ui.quiet, strict=False,
                                    rhs=load_rhs(settings["rhs"], name) if rhs_needed else None,
                                    params=params if rhs_needed else None,
                                    bounds=bounds if rhs_needed else None,
                                    fixed=fixed if rhs_needed else None)
        estimators[type(estimator).__name__] = estimator
    out_dir = Path(settings["out"]) if settings.get("out") else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {str(out_dir)!r} exists and is not a folder.")
    if out_dir is not None:
        check_not_an_input(out_dir, {"data file": data_path, "config file": getattr(args, "config", None),
                                     "right-hand side file": _rhs_file(settings.get("rhs"))}, folder=True)
    data_options = _data_settings(settings)
    frame = read_data(data_path, time=data_options.get("time"))
    data = as_trajectories(frame, **data_options)
    train, test = data, None
    if settings.get("test_trajectories"):
        held = _trajectory_labels(data, parse_names(settings["test_trajectories"], "--test-trajectories"))
        train, test = data.split(test_trajectories=held)
    truth = None
    if settings.get("truth"):
        from sysid.datasets import truth as system_truth

        truth = system_truth(str(settings["truth"]))
    time_fraction = settings.get("time_fraction")
    if time_fraction is not None:
        time_fraction = float(time_fraction)
        if not 0.0 < time_fraction < 1.0:
            raise UsageError(f"time_fraction must be in (0, 1), got {time_fraction}.")
    ui.info(f"comparing {', '.join(estimators)} on {data_path} ({len(train)} training"
            f"{f', {len(test)} test' if test is not None else ''} trajectories)")
    table = run_comparison(estimators, train, test, truth=truth, time_fraction=time_fraction,
                           n_jobs=settings.get("n_jobs"), ui=ui)
    from sysid.report import display_table, markdown_table

    ui.out(markdown_table(display_table(table)))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_table(table, out_dir / "comparison.csv")
        models = dict(table.attrs.get("models", {}))
        figures = write_figures(out_dir, data, models, table, truth=truth, ui=ui)
        about = [f"Data: `{data_path}` (SHA-256 `{sha256_of(data_path)[:16]}…`), {len(data)} trajectories, "
                 f"states {', '.join(map(str, data.state_names))}"
                 f"{'; inputs ' + ', '.join(map(str, data.input_names)) if data.input_names else ''}.",
                 "", f"Command: `sysid {' '.join(argv)}`"]
        write_report(out_dir, "Model comparison", about, table, model_notes(models), figures,
                     name="comparison.md")
        ui.info(f"wrote comparison.csv, comparison.md and {len(figures)} figure(s) to {out_dir}/")
    return 0


def _trajectory_labels(data: Any, given: list[str]) -> list[Any]:
    import difflib

    by_text = {str(n): n for n in data.names}
    labels = []
    for text in given:
        if text not in by_text:
            match = difflib.get_close_matches(text, list(by_text), n=1)
            hint = f"; did you mean {match[0]!r}?" if match else "."
            raise UsageError(f"--test-trajectories: no trajectory {text!r}{hint} Trajectories: {list(by_text)}.")
        labels.append(by_text[text])
    return labels


# -- info ----------------------------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    from sysid.io.format import encode, read_file

    stored = read_file(args.model)
    if args.json:  # tuples as lists; non-finite numbers and functions in their typed form
        ui.out(json.dumps(encode(stored.header, "header", tuples=False), indent=2, allow_nan=False))
        return 0
    try:
        lines = list(_describe(args.model, stored.header, stored.tensors))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:  # a checksummed but odd header
        raise UsageError(f"{args.model!r}: its header cannot be described ({type(exc).__name__}: {exc}); "
                         "`sysid info --json` prints it as stored.") from None
    for label, value in lines:
        ui.out(f"{label:<13}{value}" if label else f"{'':<13}{value}")
    return 0


def _fmt(value: Any) -> str:
    from sysid.io.format import FunctionRef, ObjectRecord

    if isinstance(value, FunctionRef):
        return f"<function {value.name}>"
    if isinstance(value, ObjectRecord):
        return f"{value.name}(...)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _non_default_params(estimator: str, params: dict[str, Any]) -> dict[str, Any]:
    """The stored constructor parameters that differ from the defaults; a part's shown by their own names."""
    import inspect

    from sysid.io.format import ObjectRecord
    from sysid.registry import object_class

    def defaults(name: str) -> dict[str, Any] | None:
        try:
            cls = object_class(name)
            signature = inspect.signature(cls)
        except (KeyError, TypeError, ValueError):
            return None
        found = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
        for factory in (getattr(cls, "default_parts", None) or {}).values():  # flat keywords (version 1 files)
            found.update({k: v for k, v in factory().get_params(deep=False).items() if k not in found})
        return found

    def differing(name: str, values: dict[str, Any]) -> dict[str, Any]:
        known = defaults(name)
        shown: dict[str, Any] = {}
        for key, value in values.items():
            if key == "verbose":  # progress bars: not a modelling choice
                continue
            default = None if known is None else known.get(key, inspect.Parameter.empty)
            if isinstance(value, ObjectRecord) and (default is None or isinstance(default, ObjectRecord)):
                shown.update(differing(value.name, value.params))  # a part: its own settings, by their names
            elif known is None or default is inspect.Parameter.empty or value != default:
                shown[key] = value
        return shown

    return differing(estimator, params)


def _describe(path: str, header: dict[str, Any], tensors: dict[str, Any]) -> Iterator[tuple[str, str]]:
    fitted = header.get("fitted") or {}
    estimator = str(header.get("estimator"))
    size = Path(path).stat().st_size
    yield "file", f"{path} ({size / 1024:.1f} kB, {len(tensors)} tensors)"
    yield "model", f"{estimator} (saved by sysid {header.get('sysid_version')}, format {header.get('format_version')})"
    yield "states", ", ".join(map(str, fitted.get("state_names_", []))) or "?"
    yield "inputs", ", ".join(map(str, fitted.get("input_names_", []))) or "none"
    options = fitted.get("data_options_") or {}
    if options:
        yield "data columns", ", ".join(f"{k}={_fmt(v)}" for k, v in options.items())
    names = fitted.get("trajectory_names_")
    if names:
        shown = ", ".join(map(str, names[:8])) + (", ..." if len(names) > 8 else "")
        yield "trained on", f"{len(names)} trajector{'y' if len(names) == 1 else 'ies'}: {shown}"
    settings = _non_default_params(estimator, header.get("params") or {})
    yield "settings", ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items()) or "defaults"
    for i, line in enumerate(_training_lines(fitted)):
        yield ("training" if i == 0 else ""), line
    params = fitted.get("params_")
    if isinstance(params, dict) and params:
        stderr = fitted.get("params_stderr_") or {}
        first = True
        for key, value in params.items():
            err = stderr.get(key)
            shown = f" ± {err:.2g}" if isinstance(err, int | float) and np.isfinite(err) and err > 0 else ""
            yield ("parameters" if first else ""), f"{key} = {value:.6g}{shown}"
            first = False
    for i, line in enumerate(_equation_lines(path, header)):
        yield ("equations" if i == 0 else ""), line
    for i, line in enumerate(_provenance_lines(header)):
        yield ("provenance" if i == 0 else ""), line


def _training_lines(fitted: dict[str, Any]) -> list[str]:
    lines = []
    history = fitted.get("history_")
    if isinstance(history, dict) and history.get("loss"):
        stages = history.get("stage") or ["adam"] * len(history["loss"])
        adam = sum(s == "adam" for s in stages)
        lbfgs = sum(s == "lbfgs" for s in stages)
        rounds = len(set(history.get("round", [0])))
        parts = [f"{adam} Adam epoch{'s' if adam != 1 else ''}"]
        if lbfgs:
            parts.append(f"{lbfgs} L-BFGS round{'s' if lbfgs != 1 else ''} of 10 steps")
        text = " + ".join(parts) + (f" over {rounds} thresholding rounds" if rounds > 1 else "")
        stop = fitted.get("stop_reason_")
        if stop:
            text += f"; stopped: {stop}"
        if fitted.get("best_epoch_") is not None:
            text += f"; best epoch {fitted['best_epoch_']}"
        lines.append(text)
        losses = [v for v in history["loss"] if isinstance(v, int | float)]
        val = [v for v in history.get("val_loss", []) if isinstance(v, int | float) and np.isfinite(v)]
        seconds = history.get("seconds") or []
        summary = f"final loss {losses[-1]:.4g}" if losses else "no loss recorded"
        if val:
            summary += f", best validation loss {min(val):.4g}"
        if seconds:
            summary += f", {sum(_round_seconds(history)):.1f} s"
        lines.append(summary)
    if fitted.get("cost_") is not None:
        lines.append(f"least-squares cost {fitted['cost_']:.4g} over {fitted.get('n_observations_', '?')} "
                     "observed values")
    if fitted.get("n_pieces_") is not None:
        lines.append(f"regression on {fitted['n_pieces_']} trajectory piece(s)")
    if fitted.get("n_function_evals_") is not None:
        lines.append(f"{int(fitted['n_function_evals_']):,} function evaluations")
    return lines


def _round_seconds(history: dict[str, Any]) -> list[float]:
    """Training time per thresholding round (the clock restarts each round)."""
    seconds = history.get("seconds") or []
    rounds = history.get("round") or [0] * len(seconds)
    last: dict[Any, float] = {}
    for r, s in zip(rounds, seconds):
        if isinstance(s, int | float):
            last[r] = max(last.get(r, 0.0), float(s))
    return list(last.values())


def _equation_lines(path: str, header: dict[str, Any]) -> list[str]:
    """The equations of a model that has them (SINDy, SparseODE): the file is loaded, nothing else runs."""
    from sysid.io.format import FunctionRef
    from sysid.registry import estimator_class

    try:
        has_equations = hasattr(estimator_class(str(header.get("estimator"))), "equations")
    except KeyError:
        return []
    params = header.get("params") if isinstance(header.get("params"), dict) else {}
    if not has_equations or any(isinstance(v, FunctionRef) for v in params.values()):  # files hold no code
        return []
    try:
        import sysid.io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(sysid.io.load(path).equations())
    except Exception as exc:  # noqa: BLE001 - info never fails on what it only describes
        return [f"(not shown: {_one_line(exc)})"]


def _provenance_lines(header: dict[str, Any]) -> list[str]:
    record = (header.get("extra") or {}).get("provenance")
    if not record:
        return []
    lines = [f"written {record.get('created_utc', '?')} by: sysid {' '.join(record.get('argv', []))}"]
    data = record.get("data") or {}
    if data:
        lines.append(f"data {data.get('path')} ({data.get('format')}, {data.get('bytes')} bytes, "
                     f"sha256 {str(data.get('sha256'))[:16]}...)")
    config = record.get("config_file")
    if config:
        lines.append(f"config {config.get('path')} (sha256 {str(config.get('sha256'))[:16]}...)")
    rhs = (record.get("config") or {}).get("rhs")
    if rhs:
        lines.append(f"right-hand side {rhs.get('spec')}"
                     + (f" (sha256 {str(rhs.get('sha256'))[:16]}...)" if rhs.get("sha256") else " (built in)"))
    packages = record.get("packages") or {}
    lines.append(f"sysid {record.get('sysid_version')}, python {record.get('python')}"
                 + "".join(f", {k} {v}" for k, v in packages.items() if k in ("torch", "pysindy", "scipy")))
    return lines


# -- demo ------------------------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    from sysid.cli._demo import demo

    return demo(args.dataset, args.out, quick=args.quick, time_fraction=args.time_fraction,
                random_state=args.random_state, ui=ui)


# -- entry point ----------------------------------------------------------------------------------------------
def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, FitError):
        return 1
    if isinstance(exc, SysidError | OSError):
        return 2
    return 1


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
        prog = "sysid " + arguments[0] if arguments and arguments[0] in _COMMANDS else "sysid"
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    ui = Console(f"sysid {args.command}", quiet=args.quiet, verbose=args.verbose)
    try:
        with _warnings_through(ui):
            return int(args.handler(args, ui, arguments) or 0)
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `sysid predict model.sysid data.csv | head`: the reader had enough
        _silence_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit statuses
        code = _exit_code(exc)
        if args.debug:
            traceback.print_exc()
        message = _one_line(exc) or type(exc).__name__
        if isinstance(exc, FitError):
            message = f"the fit failed: {message}"
        elif code == 1:
            message = f"unexpected {type(exc).__name__}: {message} (run with --debug for the traceback)"
        elif isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"no such file: {exc.filename!r}."
        ui.error(message)
        return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured output)
        pass


_COMMANDS = ("fit", "predict", "compare", "info", "demo")
