"""``sysid predict``: simulate a saved model at a data file's times, or for a new experiment on a grid.

Predictions keep the data file's columns and labels (through the adapters) and are written
as CSV, Parquet or netCDF by the output's extension, or as CSV on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sysid.cli._console import Console
from sysid.cli._files import (
    UsageError,
    check_not_an_input,
    file_format,
    read_data,
    write_data,
)
from sysid.cli._models import cli_name_of, load_rhs, rhs_file, rhs_parameter
from sysid.cli._provenance import recorded_rhs
from sysid.cli._settings import DATA_KEYS, data_settings

__all__ = ["MAX_N_TIMES", "predict_command"]

MAX_N_TIMES = 10_000_000
"""The most times ``sysid predict --n-times`` simulates (more: call ``model.predict(t=...)`` in pieces)."""


def _functions_for(header: dict[str, Any], rhs_spec: str | None, ui: Console, path: str) -> dict[str, Callable]:
    """The user functions a model file needs (files hold no code), from --rhs or a built-in."""
    from sysid.io.format import FunctionRef

    params: dict[str, Any] = header["params"] if isinstance(header.get("params"), dict) else {}
    needed = [k for k, v in params.items() if isinstance(v, FunctionRef)]
    estimator = header.get("estimator")
    recorded = recorded_rhs(header)
    if not needed:
        if rhs_spec:
            raise UsageError(f"--rhs: the {estimator} in {path} needs no right-hand side.")
        return {}
    kind = cli_name_of(estimator)
    parameter = rhs_parameter(kind) if kind is not None else None
    if kind is None or parameter is None or needed != [parameter]:
        raise UsageError(
            f"{path}: the {estimator} was saved with Python functions for {needed}; the command line "
            "supplies only the right-hand side (--rhs). Load it in Python with sysid.load(path, ...)."
        )
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


def predict_command(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    """Run ``sysid predict`` with the parsed ``args``."""
    import sysid.io
    from sysid.io.format import read_file

    if args.out and args.out != "-":
        check_not_an_input(
            args.out, {"model file": args.model, "data file": args.data, "right-hand side file": rhs_file(args.rhs)}
        )
    if args.n_times is not None and not 2 <= args.n_times <= MAX_N_TIMES:
        raise UsageError(
            f"--n-times must be between 2 and {MAX_N_TIMES:,}, got {args.n_times:,}; for more times, "
            "call model.predict(t=...) in Python, in pieces."
        )
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
        overrides = data_settings({k: getattr(args, k) for k in DATA_KEYS})
        options = {**(model.data_options_ or {}), **overrides}
        frame = read_data(args.data, time=options.get("time"))
        result = _in_output_family(model.predict(frame, x0=x0, **overrides), options, out_kind)
    if args.out and args.out != "-":
        write_data(result, args.out)
        what = (
            f"{len(result)} predicted rows"
            if hasattr(result, "columns")
            else f"predicted {', '.join(map(str, result.data_vars))}"
        )
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
