"""``sysid fit``: fit one model to a data file and write a model file with its provenance."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sysid.cli._console import Console
from sysid.cli._files import UsageError, check_not_an_input, read_data
from sysid.cli._models import (
    NEEDS_RHS,
    build_estimator,
    check_model_name,
    constructor_parameters,
    load_rhs,
    model_class,
    rhs_file,
)
from sysid.cli._provenance import data_record, provenance_record
from sysid.cli._settings import (
    DATA_KEYS,
    data_settings,
    flag_settings,
    model_settings,
    required,
    rhs_settings,
    settings_of,
)

__all__ = ["fit_command", "fit_summary"]

_COMPARE_ONLY = ("models", "test_trajectories", "time_fraction", "hold_out", "truth", "n_jobs")


def fit_command(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    """Run ``sysid fit`` with the parsed ``args``; ``argv`` is recorded in the model file."""
    settings, meta = settings_of(args, ("data", "out", "model", "rhs", "params", "bounds", "fixed", *DATA_KEYS))
    for key in _COMPARE_ONLY:
        if key in settings:
            raise UsageError(f"{key!r} in {args.config} is a compare setting; sysid fit does not use it.")
    data_path = required(settings, "data", "the data file DATA")
    out = Path(required(settings, "out", "--out (the model file to write, e.g. --out model.sysid)"))
    name = check_model_name(settings.get("model", "neural"))
    if out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a folder; give a file name such as {str(out / 'model.sysid')!r}.")
    check_not_an_input(
        out,
        {
            "data file": data_path,
            "config file": getattr(args, "config", None),
            "right-hand side file": rhs_file(settings.get("rhs")),
        },
    )
    data_options = data_settings(settings)
    frame = read_data(data_path, time=data_options.get("time"))  # a missing or unreadable file fails fast
    data_source = data_record(str(data_path))  # hashed as read, before a long fit
    cls = model_class(name)
    options = model_settings(settings, flag_settings(args), name, set(constructor_parameters(cls)), every_flag=True)
    rhs = load_rhs(settings["rhs"], name) if settings.get("rhs") and name in NEEDS_RHS else None
    params, bounds, fixed = rhs_settings(settings)
    if settings.get("rhs") and name not in NEEDS_RHS:
        raise UsageError(f"--rhs applies to greybox, hybrid and classical models, not {name}.")
    estimator = build_estimator(name, options, rhs=rhs, params=params, bounds=bounds, fixed=fixed, verbose=not ui.quiet)
    from sysid.adapters import as_trajectories

    data = as_trajectories(frame, **data_options)  # bad columns or values fail here, before any fitting
    out.parent.mkdir(parents=True, exist_ok=True)  # before the fit: a path that cannot be written fails fast
    ui.info(
        f"fitting {cls.__name__} to {data_path}: {len(data)} trajector{'y' if len(data) == 1 else 'ies'}, "
        f"{sum(tr.n_times for tr in data)} times, states {', '.join(map(str, data.state_names))} ..."
    )
    ui.detail(f"settings: {estimator!r}")
    started = time.perf_counter()
    estimator.fit(frame, **data_options)
    seconds = time.perf_counter() - started
    config = {
        "model": name,
        **data_options,
        "options": options,
        "rhs": None if rhs is None else rhs.record(),
        "params": params,
        "bounds": bounds,
        "fixed": fixed,
    }
    provenance = provenance_record("fit", argv, config, meta, data_source, {"fit_seconds": seconds})
    import sysid.io

    sysid.io.save(estimator, out, extra={"provenance": provenance})
    ui.info(fit_summary(estimator, seconds))
    for line in _model_lines(estimator):
        ui.info(f"  {line}")
    if ui.verbose:
        ui.detail(f"R^2 over the training data: {estimator.score(frame):.4f}")
    ui.info(f"wrote {out}")
    return 0


def fit_summary(model: Any, seconds: float) -> str:
    """One line: the fitted model, its states and inputs, why it stopped and its function evaluations."""
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
    """The fitted equations or parameters (nothing for a neural model)."""
    from sysid.report import model_notes

    if not hasattr(model, "equations") and not hasattr(model, "params_"):
        return []
    return model_notes({"m": model})["m"]
