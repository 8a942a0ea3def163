"""``sysid compare``: fit several models on the same data, print the table of their errors, write a report.

Held-out error comes first, as in ``sysid demo``: without ``--test-trajectories``, each model
is also fitted on the first 80% of every trajectory's time span
(:data:`~sysid.cli._settings.DEFAULT_TIME_FRACTION`, or ``--time-fraction``) and scored on
the held-out rest (split ``extrapolation``); the table ranks the models by held-out nRMSE.
``--no-hold-out`` scores in-sample only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sysid.cli._console import Console
from sysid.cli._files import (
    UsageError,
    check_not_an_input,
    parse_names,
    read_data,
    sha256_of,
    write_table,
)
from sysid.cli._models import (
    NEEDS_RHS,
    build_estimator,
    check_model_name,
    constructor_parameters,
    load_rhs,
    model_class,
    rhs_file,
)
from sysid.cli._settings import (
    DATA_KEYS,
    DEFAULT_TIME_FRACTION,
    data_settings,
    flag_settings,
    model_settings,
    required,
    rhs_settings,
    settings_of,
)

__all__ = ["compare_command"]


def compare_command(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    """Run ``sysid compare`` with the parsed ``args``; ``argv`` is quoted in the report."""
    from sysid.adapters import as_trajectories
    from sysid.report import model_notes, run_comparison, write_figures, write_report

    keys = (
        "data",
        "out",
        "models",
        "rhs",
        "params",
        "bounds",
        "fixed",
        "test_trajectories",
        "time_fraction",
        "hold_out",
        "truth",
        "n_jobs",
        *DATA_KEYS,
    )
    settings, _ = settings_of(args, keys)
    if "model" in settings:
        raise UsageError("'model' is a fit setting; compare takes 'models' (a list).")
    data_path = required(settings, "data", "the data file DATA")
    names = [check_model_name(n) for n in parse_names(settings.get("models", "neural,sparse,sindy"), "--models") or []]
    if len(set(names)) != len(names):
        raise UsageError(f"--models lists a model twice: {names}.")
    params, bounds, fixed = rhs_settings(settings)
    time_fraction, default = _chosen_time_fraction(settings)
    flags = flag_settings(args)
    accepted = {n: set(constructor_parameters(model_class(n))) for n in names}
    unused = [k for k in flags if not any(k in accepted[n] for n in names)]
    if unused:
        raise UsageError(f"setting(s) {unused} apply to none of the models {names}.")
    if any(n in NEEDS_RHS for n in names) and not settings.get("rhs"):
        raise UsageError(
            "greybox, hybrid and classical models need --rhs file.py:function (or lotka_volterra) and --params."
        )
    estimators = {}
    for name in names:
        chosen = model_settings(settings, flags, name, accepted[name], every_flag=False)
        rhs_needed = name in NEEDS_RHS
        estimator = build_estimator(
            name,
            chosen,
            verbose=not ui.quiet,
            strict=False,
            rhs=load_rhs(settings["rhs"], name) if rhs_needed else None,
            params=params if rhs_needed else None,
            bounds=bounds if rhs_needed else None,
            fixed=fixed if rhs_needed else None,
        )
        estimators[type(estimator).__name__] = estimator
    out_dir = Path(settings["out"]) if settings.get("out") else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {str(out_dir)!r} exists and is not a folder.")
    if out_dir is not None:
        check_not_an_input(
            out_dir,
            {
                "data file": data_path,
                "config file": getattr(args, "config", None),
                "right-hand side file": rhs_file(settings.get("rhs")),
            },
            folder=True,
        )
    data_options = data_settings(settings)
    frame = read_data(data_path, time=data_options.get("time"))
    data = as_trajectories(frame, **data_options)
    train, test = data, None
    if settings.get("test_trajectories"):
        held = _trajectory_labels(data, parse_names(settings["test_trajectories"], "--test-trajectories") or [])
        train, test = data.split(test_trajectories=held)
    truth = None
    if settings.get("truth"):
        from sysid.datasets import truth as system_truth

        truth = system_truth(str(settings["truth"]))
    if default:
        time_fraction = _default_time_fraction(train, ui)
        default = time_fraction is not None
    held_out = _held_out_text(test, time_fraction)
    ui.info(
        f"comparing {', '.join(estimators)} on {data_path} ({len(train)} training"
        f"{f', {len(test)} test' if test is not None else ''} trajectories; held out: {held_out})"
    )
    table = run_comparison(
        estimators, train, test, truth=truth, time_fraction=time_fraction, n_jobs=settings.get("n_jobs"), ui=ui
    )
    from sysid.report import display_table, markdown_table, table_note

    ui.out(markdown_table(display_table(table)))
    ui.out(table_note(table).replace("`", ""))
    if default:
        ui.out(
            f"Held out by default: {held_out}; choose with --time-fraction F or --test-trajectories A,B, "
            "or --no-hold-out for in-sample scores only."
        )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_table(table, out_dir / "comparison.csv")
        models = dict(table.attrs.get("models", {}))
        figures = write_figures(out_dir, data, models, table, truth=truth, ui=ui)
        inputs = f"; inputs {', '.join(map(str, data.input_names))}" if data.input_names else ""
        about = [
            (
                f"Data: `{data_path}` (SHA-256 `{sha256_of(data_path)[:16]}…`), {len(data)} trajectories, "
                f"states {', '.join(map(str, data.state_names))}{inputs}."
            ),
            "",
            f"Held out{' (the default)' if default else ''}: {held_out}.{_fits_text(time_fraction)}",
            "",
            f"Command: `sysid {' '.join(argv)}`",
        ]
        write_report(out_dir, "Model comparison", about, table, model_notes(models), figures, name="comparison.md")
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


def _chosen_time_fraction(settings: dict[str, Any]) -> tuple[float | None, bool]:
    """``(time_fraction, use_the_default)`` as the settings give them, checked.

    The default (:data:`DEFAULT_TIME_FRACTION`) applies without ``--test-trajectories``,
    ``--time-fraction`` and ``--no-hold-out``.

    Examples
    --------
    >>> _chosen_time_fraction({}), _chosen_time_fraction({"time_fraction": 0.6})
    ((None, True), (0.6, False))
    >>> _chosen_time_fraction({"test_trajectories": "run3"}), _chosen_time_fraction({"hold_out": False})
    ((None, False), (None, False))
    """
    hold_out = settings.get("hold_out")
    if hold_out is not None and not isinstance(hold_out, bool):
        raise UsageError(f"hold_out must be true or false, got {hold_out!r}.")
    time_fraction = settings.get("time_fraction")
    if hold_out is False:
        given = [name for name in ("time_fraction", "test_trajectories") if settings.get(name) is not None]
        if given:
            raise UsageError(
                f"--no-hold-out (hold_out = false) contradicts {' and '.join(given)}: drop one or the other."
            )
        return None, False
    if time_fraction is not None:
        try:
            time_fraction = float(time_fraction)
        except (TypeError, ValueError):
            raise UsageError(f"time_fraction must be a number in (0, 1), got {time_fraction!r}.") from None
        if not 0.0 < time_fraction < 1.0:
            raise UsageError(f"time_fraction must be in (0, 1), got {time_fraction}.")
        return time_fraction, False
    return None, not settings.get("test_trajectories")


def _default_time_fraction(train: Any, ui: Console) -> float | None:
    """:data:`DEFAULT_TIME_FRACTION`, or None (with a warning) when a trajectory is too short to split."""
    from sysid.errors import DataError

    try:
        train.split(time_fraction=DEFAULT_TIME_FRACTION)
    except DataError as exc:
        ui.warn(
            f"no held-out data: the last {1 - DEFAULT_TIME_FRACTION:.0%} of each trajectory cannot be held out "
            f"({exc}); the models are scored in-sample only."
        )
        return None
    return DEFAULT_TIME_FRACTION


def _held_out_text(test: Any, time_fraction: float | None) -> str:
    """What is held out, in words.

    Examples
    --------
    >>> _held_out_text(None, 0.8)
    "the last 20% of each trajectory's time span (split extrapolation)"
    >>> _held_out_text(None, None)
    'nothing (in-sample scores only)'
    """
    parts = []
    if test is not None:
        parts.append(f"trajector{'y' if len(test) == 1 else 'ies'} {', '.join(map(str, test.names))} (split test)")
    if time_fraction is not None:
        parts.append(
            f"the last {1 - time_fraction:.0%} of each {'training ' if test is not None else ''}"
            "trajectory's time span (split extrapolation)"
        )
    return " and ".join(parts) or "nothing (in-sample scores only)"


def _fits_text(time_fraction: float | None) -> str:
    """Which fit each split's scores, equations and figures come from (for comparison.md)."""
    if time_fraction is None:
        return ""
    return (
        f" Each model is fitted twice: on the first {time_fraction:.0%} of each trajectory's span, scored on the "
        "rest (split `extrapolation`, simulated from the model's fitted start without seeing the rest; "
        "extrapolation.png), and on all the training data (split `train`: in-sample scores, the equations "
        "and the other figures)."
    )
