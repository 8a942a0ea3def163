"""``sysid demo``: four models on the lynx-hare record (or a simulated system), held-out truth first.

The demo fits a NeuralODE, a SparseODE, SINDy and (for predator-prey data) a classical
Lotka-Volterra model on the first 80% of each record's time span, scores every model on
the held-out rest (simulated from its fitted start, never seeing it) and, second, on
the data it was fitted to; prints the ranked table and the recovered equations, and
writes figures and a markdown report (:mod:`sysid.report`) to a folder.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sysid.cli._files import UsageError
from sysid.cli._settings import DEFAULT_TIME_FRACTION
from sysid.comparison import initial_states
from sysid.report import (
    display_table,
    markdown_table,
    model_notes,
    rank,
    run_comparison,
    table_note,
    write_figures,
    write_report,
)

__all__ = ["DEFAULT_TIME_FRACTION", "demo", "demo_command", "demo_datasets"]

_PUBLISHED_KEY = "carpenter_stan_posterior_mean"
_LV_START = {"alpha": 0.5, "beta": 0.03, "gamma": 0.8, "delta": 0.02}
_SKIP_SYSTEMS = {"robertson": "it is stiff (rate constants over nine decades): explicit solvers crawl through it"}


def demo_datasets() -> list[str]:
    """Names ``sysid demo --dataset`` accepts."""
    from sysid.datasets import SYSTEMS

    return ["lynx_hare", *[s for s in SYSTEMS if s not in _SKIP_SYSTEMS]]


# -- held-out scores -------------------------------------------------------------------------------
def held_out_rows(
    models: Mapping[str, Any], whole: Any, future: Any, columns: Sequence[str], model_starts: Mapping[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Scores on the held-out tails (split "extrapolation"), simulating whole trajectories from ``model_starts``."""
    from sysid import metrics

    rows = []
    for name, model in models.items():
        row: dict[str, Any] = dict.fromkeys(columns, np.nan)
        row.update(estimator=name, split="extrapolation", error=None)
        if model is None or name not in model_starts:
            row["error"] = "fit failed" if model is None else "no initial state"
            rows.append(row)
            continue
        try:
            whole_predicted = model.predict(whole, x0=model_starts[name])
            curves = [
                np.asarray(p.y, dtype=float)[tr.n_times - fut.n_times :]
                for p, tr, fut in zip(whole_predicted, whole, future)
            ]
            row.update(
                rmse=metrics.rmse(future, curves), nrmse=metrics.nrmse(future, curves), r2=metrics.r2(future, curves)
            )
            failed = [tr.name for tr, c in zip(future, curves) if not np.all(np.isfinite(c))]
            if failed:
                row["error"] = f"simulation failed for trajectories {failed}"
        except Exception as exc:  # noqa: BLE001 - reported in the table, like compare does
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


# -- the demo ----------------------------------------------------------------------------------------
def library_of(truth: Any) -> tuple[int, bool]:
    """(polynomial degree, trigonometric terms?) a library needs to hold the true equations.

    Examples
    --------
    >>> from sysid.datasets import truth
    >>> library_of(truth("van_der_pol")), library_of(truth("pendulum"))
    ((3, False), (1, True))
    """
    degree, trig = 1, False
    for terms in (truth.coefficients or {}).values():
        for term in terms:
            total = 0
            for factor in str(term).split():
                if factor.startswith(("sin(", "cos(")):
                    trig = True
                elif factor != "1":
                    _, _, power = factor.partition("^")
                    total += int(power) if power.isdigit() else 1
            degree = max(degree, total)
    return degree, trig


def demo_estimators(
    dataset: str, quick: bool, random_state: int, n_states: int, truth: Any = None, verbose: bool = True
) -> dict[str, Any]:
    """The four (or three) estimators with settings that fit the time budget."""
    from sysid.cli._models import lotka_volterra_numpy, model_class

    lynx = dataset == "lynx_hare"
    degree, trig = (2, False) if truth is None else library_of(truth)
    degree = max(degree, 2)
    threshold_sindy = 0.005 if lynx else 0.1
    if quick:
        neural = {"hidden": (4,), "max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 10}
        # from zero coefficients: the collocation start diverges in free runs on 17 lynx-hare
        # samples, and two epochs are too few to bring it back (a FitError)
        sparse = {"max_epochs": 2, "n_threshold_rounds": 0, "collocation_steps": 0}
        classical = {"max_nfev": 30}
    else:  # the estimators' own defaults (NeuralODE's and SparseODE's selection); about a minute for all four
        neural = {}
        sparse = {"max_epochs": 40}
        classical = {}
    estimators = {
        "NeuralODE": model_class("neural")(random_state=random_state, verbose=verbose, **neural),
        "SparseODE": model_class("sparse")(
            degree=degree,
            include_trig=trig,
            gradient="backprop",
            random_state=random_state,
            verbose=verbose,
            **sparse,
        ),
        "SINDy": model_class("sindy")(degree=degree, threshold=threshold_sindy, differentiation="spline"),
    }
    if dataset in ("lynx_hare", "lotka_volterra") and n_states == 2:
        start = dict(_LV_START) if lynx else {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "delta": 1.0}
        estimators["ClassicalODE (Lotka-Volterra)"] = model_class("classical")(
            lotka_volterra_numpy,
            start,
            bounds=dict.fromkeys(start, (0.0, None)),
            random_state=random_state,
            **classical,
        )
    return estimators


def _check_dataset(dataset: str) -> str:
    import difflib

    from sysid.datasets import SYSTEMS

    name = str(dataset).strip().lower()
    if name in _SKIP_SYSTEMS and name in SYSTEMS:
        raise UsageError(
            f"--dataset {name}: not in the demo, {_SKIP_SYSTEMS[name]}; "
            "try `sysid compare` with --set solver=... instead."
        )
    choices = demo_datasets()
    if name not in choices:
        match = difflib.get_close_matches(name, choices, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else "."
        raise UsageError(f"unknown dataset {dataset!r}{hint} Datasets: {', '.join(choices)}.")
    return name


def demo(
    dataset: str = "lynx_hare",
    out: str | Path = "sysid-demo",
    quick: bool = False,
    time_fraction: float | None = None,
    random_state: int = 0,
    ui: Any = None,
) -> int:
    """Run the demo; print the table and equations to stdout; write figures and report.md."""
    import warnings

    from sysid import datasets

    dataset = _check_dataset(dataset)
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {str(out_dir)!r} exists and is not a folder.")
    if time_fraction is not None and not 0.0 < float(time_fraction) < 1.0:
        raise UsageError(f"--time-fraction must be in (0, 1), got {time_fraction}.")
    started = time.perf_counter()
    truth = None
    if dataset == "lynx_hare":
        data = datasets.load_lynx_hare()
        about = [
            "The Hudson's Bay Company pelt counts of snowshoe hare (prey) and Canada lynx (predator), "
            "1900-1920: 21 annual values in thousands of pelts, a noisy proxy for the populations "
            "(Howard 2009, as circulated in B. Carpenter's Stan case study). t is years since 1900.",
        ]
    else:
        n_traj, n_samples = (2, 25) if quick else (3, 60)
        data = datasets.simulate(
            dataset, n_trajectories=n_traj, n_samples=n_samples, noise=0.05, random_state=random_state
        )
        truth = datasets.truth(dataset)
        about = [
            f"Simulated `{dataset}`: {n_traj} trajectories of {n_samples} irregular samples with 5% noise "
            f"(`sysid.datasets.simulate`, random_state={random_state}). True equations:",
            "",
            *[f"    {line}" for line in truth.equations.splitlines()],
            "",
            f"True parameters: {', '.join(f'{k} = {v:g}' for k, v in truth.params.items())}.",
        ]
    estimators = demo_estimators(dataset, quick, random_state, data.n_states, truth, verbose=ui is None or not ui.quiet)
    fraction = DEFAULT_TIME_FRACTION if time_fraction is None else float(time_fraction)
    train, future = data.split(time_fraction=fraction)
    held_out_from = [0.5 * (past.t[-1] + fut.t[0]) for past, fut in zip(train, future)]
    fitted, held = (
        (
            f" ({_year(data, train[0].t[0])}-{_year(data, train[0].t[-1])})",
            f"{_year(data, future[0].t[0])}-{_year(data, future[0].t[-1])}, ",
        )
        if dataset == "lynx_hare"
        else ("", "")
    )
    about += [
        "",
        f"Every model is fitted on the first {fraction:.0%} of each trajectory's time span{fitted} and "
        f"scored on the held-out rest ({held}split `extrapolation`), simulated from the start the model "
        "fitted, without seeing the held-out part. In-sample scores (split `train`, the data each model was "
        "fitted to) come second.",
    ]
    if ui is not None:
        ui.info(
            f"sysid demo: fitting {len(estimators)} models to {dataset} "
            f"({sum(tr.n_times for tr in train)} of {sum(tr.n_times for tr in data)} samples; the rest held out)"
            f"{' (quick settings)' if quick else ''}"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*irregular.*")  # spline differentiation handles it
        table = run_comparison(estimators, train, None, truth=truth, ui=ui)
    models = dict(table.attrs["models"])
    model_starts: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extrapolation and diverging simulations show in the table and figures
        for name, model in models.items():
            if model is None:
                continue
            try:
                model_starts[name] = initial_states(model, data)
            except Exception as exc:  # noqa: BLE001 - the table then says "no initial state"
                if ui is not None:
                    ui.warn(f"{name}: no initial state to simulate from: {type(exc).__name__}: {exc}")
        rows = held_out_rows(models, data, future, list(table.columns), model_starts)
    for row in rows:
        match = table[table["estimator"] == row["estimator"]]
        if len(match):
            for column in ("fit_seconds", "n_function_evals", "coefficient_error"):
                row[column] = match[column].iloc[0]
    shared = table.attrs["models"]  # never deep-copied by pandas
    table = rank(pd.concat([pd.DataFrame(rows, columns=table.columns), table], ignore_index=True))
    table.attrs["models"] = shared
    ranked = {name: models[name] for name in dict.fromkeys(table["estimator"])}
    notes = model_notes(ranked)
    extra = _published_comparison(data, models, fraction) if dataset == "lynx_hare" else []
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figures = write_figures(
            out_dir,
            data,
            models,
            table,
            truth=truth,
            held_out_from=held_out_from,
            starts=model_starts,
            grid=10 if quick else 25,
            n_points=60 if quick else 300,
            ui=ui,
            max_portraits=1 if quick else None,
        )
    table.to_csv(out_dir / "comparison.csv", index=False)
    seconds = time.perf_counter() - started
    command = (
        "sysid demo"
        + ("" if dataset == "lynx_hare" else f" --dataset {dataset}")
        + (f" --time-fraction {time_fraction}" if time_fraction is not None else "")
        + (" --quick" if quick else "")
    )
    extra = [
        *extra,
        "## Reproduce",
        "",
        f"    {command}",
        "",
        f"The demo ran in {seconds:.0f} s on this machine. The table is also in [comparison.csv](comparison.csv).",
        "",
    ]
    title = (
        "Lynx and hare: four models of the Hudson's Bay record"
        if dataset == "lynx_hare"
        else f"{dataset}: identified models against the truth"
    )
    report = write_report(out_dir, title, about, table, notes, figures, extra)
    _print_results(table, notes, extra if dataset == "lynx_hare" else [], ui)
    if ui is not None:
        ui.info(f"wrote {report} and {len(figures)} figure(s) to {out_dir}/ in {seconds:.0f} s")
    return 0


def demo_command(args: argparse.Namespace, ui: Any, argv: Sequence[str]) -> int:
    """Run ``sysid demo`` with the parsed ``args``."""
    return demo(
        args.dataset,
        args.out,
        quick=args.quick,
        time_fraction=args.time_fraction,
        random_state=args.random_state,
        ui=ui,
    )


def _year(data: Any, t: float) -> str:
    """A time of the lynx-hare record as a calendar year."""
    return f"{data.attrs.get('time_origin_year', 0) + t:.0f}"


def _published_comparison(data: Any, models: Mapping[str, Any], fraction: float) -> list[str]:
    from sysid.equations import format_coefficient

    published = data.attrs.get("reference_params", {}).get(_PUBLISHED_KEY)
    classical = next((m for n, m in models.items() if n.startswith("ClassicalODE") and m is not None), None)
    if not published or classical is None:
        return []
    symbols = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ"}
    stderr = getattr(classical, "params_stderr_", {}) or {}
    lines = [
        "## Lotka-Volterra parameters beside the published ones",
        "",
        "    d hare/dt = (α − β lynx) hare,   d lynx/dt = (δ hare − γ) lynx,   t in years",
        "",
        f"| parameter | ClassicalODE (this fit, first {fraction:.0%} of the record) | "
        "published (Carpenter, Stan case study, whole record) |",
        "|---|---|---|",
    ]
    for key, value in published.items():
        ours = classical.params_.get(key, float("nan"))
        lines.append(f"| {symbols.get(key, key)} ({key}) | {format_coefficient(ours, stderr.get(key))} | {value:g} |")
    lines += [
        "",
        "The published values are posterior means under lognormal measurement error from the whole "
        "record; ours are least squares on the counts of the fitted years (± one standard error), so they "
        "differ somewhat.",
        "",
    ]
    return lines


def _print_results(table: pd.DataFrame, notes: Mapping[str, Sequence[str]], extra: Sequence[str], ui: Any) -> None:
    out = print if ui is None else ui.out
    out(markdown_table(display_table(table)))
    out(table_note(table).replace("`", ""))
    out("")
    for name, lines in notes.items():
        out(f"{name}:")
        for line in lines:
            out(f"    {line}")
    if extra:
        table_lines = [line for line in extra if line.startswith("|")]
        if table_lines:
            out("")
            out("\n".join(table_lines))
