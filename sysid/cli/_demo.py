"""``sysid demo`` and the reporting ``sysid compare`` shares with it.

The demo fits a NeuralODE, a SparseODE, SINDy and (for predator-prey data) a
classical Lotka-Volterra model to the Hudson's Bay lynx-hare record or to a simulated
benchmark system, prints the comparison table and the recovered equations, and
writes figures and a markdown report to a folder.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sysid.cli._files import UsageError

__all__ = ["demo", "demo_datasets", "markdown_table", "model_notes", "run_comparison", "write_report"]

_PUBLISHED_KEY = "carpenter_stan_posterior_mean"
_LV_START = {"alpha": 0.5, "beta": 0.03, "gamma": 0.8, "delta": 0.02}
_SKIP_SYSTEMS = {"robertson": "it is stiff (rate constants over nine decades): explicit solvers crawl through it"}


def demo_datasets() -> list[str]:
    """Names ``sysid demo --dataset`` accepts."""
    from sysid.datasets import SYSTEMS

    return ["lynx_hare", *[s for s in SYSTEMS if s not in _SKIP_SYSTEMS]]


# -- running the comparison --------------------------------------------------------------------
def run_comparison(estimators: Mapping[str, Any], train: Any, test: Any = None, truth: Any = None,
                   time_fraction: float | None = None, n_jobs: int | None = None, ui: Any = None) -> pd.DataFrame:
    """:func:`sysid.compare` with a progress bar over the models (one call per model).

    With ``n_jobs`` the models are fitted in one parallel call instead (no bar).
    """
    from tqdm.auto import tqdm

    from sysid import compare

    if n_jobs is not None:
        return compare(dict(estimators), train, test, truth=truth, time_fraction=time_fraction, n_jobs=n_jobs)
    tables, models, extrapolation = [], {}, {}
    bar = tqdm(list(estimators.items()), desc="models", unit="model", disable=ui is None or ui.quiet,
               dynamic_ncols=True)
    for name, estimator in bar:
        bar.set_postfix_str(name)
        table = compare({name: estimator}, train, test, truth=truth, time_fraction=time_fraction)
        tables.append(table)
        models.update(table.attrs.get("models", {}))
        extrapolation.update(table.attrs.get("extrapolation_models", {}))
        if ui is not None:
            seconds = float(table["fit_seconds"].iloc[0])
            failed = table["error"].dropna()
            note = f"; {failed.iloc[0]}" if len(failed) else ""
            message = f"  {name}: fitted in {seconds:.1f} s{note}"
            if bar.disable:
                ui.info(message)
            else:
                bar.write(message, file=sys.stderr)  # above the bar, not through it
    bar.close()
    out = pd.concat(tables, ignore_index=True)
    out.attrs["models"] = models
    if extrapolation:
        out.attrs["extrapolation_models"] = extrapolation
    return out


def _start_of(model: Any, trajectory: Any, n_states: int) -> np.ndarray | None:
    """The initial state a model simulates ``trajectory`` from: its learned x0 if it was
    fitted on it, else (models without learned starts) the first observation if complete."""
    names = list(getattr(model, "trajectory_names_", []) or [])
    x0 = getattr(model, "x0_", None)
    if x0 is not None:
        if trajectory.name in names:
            return np.asarray(x0, dtype=float)[names.index(trajectory.name), :n_states]
        return None
    first = np.asarray(trajectory.y[0], dtype=float)
    return first if np.all(np.isfinite(first)) else None


def fitted_curves(model: Any, data: Any, n_points: int = 200) -> Any:
    """The model's trajectories for ``data``: dense from its start where known, else at the data's times."""
    from sysid.trajectories import Trajectories

    ts, ys = [], []
    for tr in data:
        start = _start_of(model, tr, data.n_states)
        if start is not None:
            t = np.linspace(tr.t[0], tr.t[-1], n_points)
            u = None
            if tr.u is not None:
                u = np.column_stack([np.interp(t, tr.t, tr.u[:, k]) for k in range(tr.u.shape[1])])
            y = np.asarray(model.predict(t=t, x0=start, u=u), dtype=float)
        else:
            t = tr.t
            y = np.asarray(model.predict(data.subset([tr]))[0].y, dtype=float)
        ts.append(t)
        ys.append(y)
    return Trajectories.from_arrays(ts, ys, state_names=list(data.state_names), names=list(data.names))


def extrapolation_rows(models: Mapping[str, Any], whole: Any, future: Any,
                       columns: Sequence[str]) -> list[dict[str, Any]]:
    """Scores on the held-out tails, simulating every trajectory from its fitted start."""
    from sysid import metrics

    rows = []
    for name, model in models.items():
        row: dict[str, Any] = {c: np.nan for c in columns}
        row.update(estimator=name, split="extrapolation", error=None)
        if model is None:
            row["error"] = "fit failed"
            rows.append(row)
            continue
        try:
            curves = []
            for tr, fut in zip(whole, future):
                start = _start_of(model, tr, whole.n_states)
                y = (model.predict(t=tr.t, x0=start) if start is not None
                     else model.predict(whole.subset([tr]))[0].y)
                curves.append(np.asarray(y, dtype=float)[tr.n_times - fut.n_times:])
            row.update(rmse=metrics.rmse(future, curves), nrmse=metrics.nrmse(future, curves),
                       r2=metrics.r2(future, curves))
        except Exception as exc:  # noqa: BLE001 - reported in the table, like compare does
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


# -- text ------------------------------------------------------------------------------------------
def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        if column == "fit_seconds":
            return f"{value:.1f}"
        if column == "n_function_evals":
            return f"{value:.0f}"
        return f"{value:.4g}"
    return " ".join(str(value).split()).replace("|", "\\|")


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table without the columns that are empty for every row."""
    keep = [c for c in table.columns
            if c in ("estimator", "split", "rmse", "nrmse", "r2") or table[c].notna().any()]
    return table[keep]


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table, numbers to four significant digits, empty cells for missing values.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"estimator": ["A"], "rmse": [0.123456]})))
    | estimator | rmse |
    |---|---|
    | A | 0.1235 |
    """
    columns = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c], str(c)) for c in table.columns) + " |")
    return "\n".join(lines)


def model_notes(models: Mapping[str, Any]) -> dict[str, list[str]]:
    """What each fitted model says about the dynamics: equations, parameters, or what it is."""
    notes: dict[str, list[str]] = {}
    for name, model in models.items():
        if model is None:
            notes[name] = ["(fit failed)"]
        elif hasattr(model, "equations"):
            try:
                notes[name] = list(model.equations())
            except Exception as exc:  # noqa: BLE001
                notes[name] = [f"(equations unavailable: {exc})"]
        elif hasattr(model, "params_"):
            stderr = getattr(model, "params_stderr_", {}) or {}
            lines = []
            for key, value in model.params_.items():
                err = stderr.get(key)
                shown = f" ± {err:.2g}" if err is not None and np.isfinite(err) and err > 0 else ""
                lines.append(f"{key} = {value:.4g}{shown}")
            notes[name] = lines
        else:
            hidden = getattr(model, "hidden", None)
            notes[name] = [f"a neural network vector field (hidden layers {tuple(hidden) if hidden else '?'}): "
                           "no closed-form equations; see the phase portrait"]
    return notes


# -- figures and report ------------------------------------------------------------------------
def write_figures(out_dir: Path, data: Any, models: Mapping[str, Any], table: pd.DataFrame | None = None,
                  truth: Any = None, cuts: Sequence[float] | None = None, grid: int = 25,
                  n_points: int = 200, ui: Any = None, max_portraits: int | None = None) -> list[Path]:
    """fits.png (data and every model), phase_<model>.png, comparison.png; returns the paths.

    ``max_portraits`` limits the phase portraits to the first few models (streamlines
    take a second or two each).
    """
    from sysid import plot

    written: list[Path] = []
    curves, labels = [], []
    for name, model in models.items():
        if model is None:
            continue
        try:
            curves.append(fitted_curves(model, data, n_points))
            labels.append(name)
        except Exception as exc:  # noqa: BLE001 - a model that cannot simulate is left out of the figure
            if ui is not None:
                ui.warn(f"{name} left out of fits.png: {type(exc).__name__}: {exc}")
    figure = plot.trajectories(data, *curves, labels=labels)
    if cuts is not None:
        for ax in figure.axes:
            for cut in cuts:
                ax.axvline(cut, color="0.5", linestyle=":", linewidth=1.0)
    written.append(_save(figure, out_dir / "fits.png"))
    if data.n_states >= 2:
        drawn = 0
        for name, model in models.items():
            if model is None or not hasattr(model, "vector_field"):
                continue
            if max_portraits is not None and drawn >= max_portraits:
                break
            drawn += 1
            try:
                figure = plot.phase_portrait(model, data, truth=truth, grid=grid)
                figure.axes[0].set_title(name)
                written.append(_save(figure, out_dir / f"phase_{_slug(name)}.png"))
            except Exception as exc:  # noqa: BLE001
                if ui is not None:
                    ui.warn(f"no phase portrait for {name}: {type(exc).__name__}: {exc}")
    if table is not None and table["rmse"].notna().any():
        written.append(_save(plot.compare(table, metric="rmse"), out_dir / "comparison.png"))
    return written


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "model"


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path


def write_report(out_dir: Path, title: str, about: Sequence[str], table: pd.DataFrame,
                 notes: Mapping[str, Sequence[str]], figures: Sequence[Path], extra: Sequence[str] = (),
                 name: str = "report.md") -> Path:
    """A short markdown report: what the data are, the table, the equations, the figures."""
    lines = [f"# {title}", "", *about, "", "## Comparison", "", markdown_table(display_table(table)), "",
             "rmse, nrmse and r2 compare each model's simulated trajectories with the observations "
             "(observed entries only); nrmse divides by each state's standard deviation, r2 = 1 is perfect.", "",
             "## What each model found", ""]
    for model, model_lines in notes.items():
        lines.append(f"**{model}**")
        lines.append("")
        lines.extend(f"    {line}" for line in model_lines)
        lines.append("")
    lines.extend(extra)
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figures]
        lines.append("")
    path = out_dir / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


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


def demo_estimators(dataset: str, quick: bool, random_state: int, n_states: int,
                    truth: Any = None, verbose: bool = True) -> dict[str, Any]:
    """The four (or three) estimators with settings that fit the time budget."""
    from sysid.cli._models import lotka_volterra_numpy, model_class

    lynx = dataset == "lynx_hare"
    degree, trig = (2, False) if truth is None else library_of(truth)
    degree = max(degree, 2)
    threshold_sparse, threshold_sindy = (0.005, 0.005) if lynx else (0.05, 0.1)
    if quick:
        neural = {"hidden": (4,), "max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 10}
        sparse = {"max_epochs": 2, "n_threshold_rounds": 0}
        classical = {"max_nfev": 30}
    else:  # measured: about a minute for all four on two busy cores (docs/cli.md)
        neural = {"hidden": (16, 16), "max_epochs": 40, "lbfgs_steps": 20}
        sparse = {"max_epochs": 40, "n_threshold_rounds": 1}
        classical = {}
    estimators = {
        "NeuralODE": model_class("neural")(gradient="backprop", random_state=random_state, verbose=verbose,
                                           **neural),
        "SparseODE": model_class("sparse")(degree=degree, include_trig=trig, threshold=threshold_sparse,
                                           gradient="backprop", random_state=random_state, verbose=verbose,
                                           **sparse),
        "SINDy": model_class("sindy")(degree=degree, threshold=threshold_sindy, differentiation="spline"),
    }
    if dataset in ("lynx_hare", "lotka_volterra") and n_states == 2:
        start = dict(_LV_START) if lynx else {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "delta": 1.0}
        estimators["ClassicalODE (Lotka-Volterra)"] = model_class("classical")(
            lotka_volterra_numpy, start, bounds={k: (0.0, None) for k in start}, random_state=random_state,
            **classical)
    return estimators


def _check_dataset(dataset: str) -> str:
    import difflib

    from sysid.datasets import SYSTEMS

    name = str(dataset).strip().lower()
    if name in _SKIP_SYSTEMS and name in SYSTEMS:
        raise UsageError(f"--dataset {name}: not in the demo, {_SKIP_SYSTEMS[name]}; "
                         "try `sysid compare` with --set solver=... instead.")
    choices = demo_datasets()
    if name not in choices:
        match = difflib.get_close_matches(name, choices, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else "."
        raise UsageError(f"unknown dataset {dataset!r}{hint} Datasets: {', '.join(choices)}.")
    return name


def demo(dataset: str = "lynx_hare", out: str | Path = "sysid-demo", quick: bool = False,
         time_fraction: float | None = None, random_state: int = 0, ui: Any = None) -> int:
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
        data = datasets.simulate(dataset, n_trajectories=n_traj, n_samples=n_samples, noise=0.05,
                                 random_state=random_state)
        truth = datasets.truth(dataset)
        about = [
            f"Simulated `{dataset}`: {n_traj} trajectories of {n_samples} irregular samples with 5% noise "
            f"(`sysid.datasets.simulate`, random_state={random_state}). True equations:", "",
            *[f"    {line}" for line in truth.equations.splitlines()], "",
            f"True parameters: {', '.join(f'{k} = {v:g}' for k, v in truth.params.items())}.",
        ]
    estimators = demo_estimators(dataset, quick, random_state, data.n_states, truth,
                                 verbose=ui is None or not ui.quiet)
    test = None
    cuts = None
    if time_fraction is not None:
        train, future = data.split(time_fraction=float(time_fraction))
        cuts = [float(tr.t[-1]) for tr in train]
        about.append("")
        about.append(f"The models were fitted on the first {time_fraction:.0%} of each trajectory's time span "
                     "and scored on the rest (split `extrapolation`), simulating from the fitted start.")
    elif truth is not None and len(data) > 1:
        train, test = data.split(test_trajectories=[data.names[-1]])
        about.append("")
        about.append(f"Trajectory {data.names[-1]!r} is held out (split `test`); the others are for fitting.")
    else:
        train = data
        about.append("")
        about.append("Every model is fitted on the whole record and scored on it: this is an **in-sample** "
                     "comparison (use `--time-fraction 0.8` to hold out the last years).")
    if ui is not None:
        ui.info(f"sysid demo: fitting {len(estimators)} models to {dataset} "
                f"({sum(tr.n_times for tr in data)} samples){' (quick settings)' if quick else ''}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*irregular.*")  # spline differentiation handles it
        table = run_comparison(estimators, train, test, truth=truth, ui=ui)
    models = dict(table.attrs["models"])
    if time_fraction is not None:
        rows = extrapolation_rows(models, data, future, list(table.columns))
        for row in rows:
            match = table[(table["estimator"] == row["estimator"])]
            if len(match):
                row["fit_seconds"] = match["fit_seconds"].iloc[0]
                row["n_function_evals"] = match["n_function_evals"].iloc[0]
                row["coefficient_error"] = match["coefficient_error"].iloc[0]
        table = pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)
        table = table.sort_values("estimator", kind="stable", key=lambda s: s.map(list(models).index))
        table = table.reset_index(drop=True)
        table.attrs["models"] = models
    notes = model_notes(models)
    extra = _published_comparison(data, models) if dataset == "lynx_hare" else []
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_figures(out_dir, data, models, table, truth=truth, cuts=cuts, grid=10 if quick else 25,
                            n_points=60 if quick else 200, ui=ui, max_portraits=1 if quick else None)
    table.to_csv(out_dir / "comparison.csv", index=False)
    seconds = time.perf_counter() - started
    command = "sysid demo" + ("" if dataset == "lynx_hare" else f" --dataset {dataset}") + (
        f" --time-fraction {time_fraction}" if time_fraction is not None else "") + (" --quick" if quick else "")
    extra = [*extra, "## Reproduce", "", f"    {command}", "",
             f"The demo ran in {seconds:.0f} s on this machine. "
             "The table is also in [comparison.csv](comparison.csv).", ""]
    title = ("Lynx and hare: four models of the Hudson's Bay record" if dataset == "lynx_hare"
             else f"{dataset}: identified models against the truth")
    report = write_report(out_dir, title, about, table, notes, figures, extra)
    _print_results(table, notes, extra if dataset == "lynx_hare" else [], about[-1], ui)
    if ui is not None:
        ui.info(f"wrote {report} and {len(figures)} figure(s) to {out_dir}/ in {seconds:.0f} s")
    return 0


def _published_comparison(data: Any, models: Mapping[str, Any]) -> list[str]:
    published = data.attrs.get("reference_params", {}).get(_PUBLISHED_KEY)
    classical = next((m for n, m in models.items() if n.startswith("ClassicalODE") and m is not None), None)
    if not published or classical is None:
        return []
    symbols = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ"}
    lines = ["## Lotka-Volterra parameters beside the published ones", "",
             "    d hare/dt = (α − β lynx) hare,   d lynx/dt = (δ hare − γ) lynx,   t in years", "",
             "| parameter | ClassicalODE (this fit) | published (Carpenter, Stan case study) |",
             "|---|---|---|"]
    for key, value in published.items():
        ours = classical.params_.get(key, float("nan"))
        lines.append(f"| {symbols.get(key, key)} ({key}) | {ours:.3g} | {value:g} |")
    lines += ["", "The published values are posterior means under lognormal measurement error; ours are "
              "least squares on the counts, so they differ somewhat.", ""]
    return lines


def _print_results(table: pd.DataFrame, notes: Mapping[str, Sequence[str]], extra: Sequence[str], note: str,
                   ui: Any) -> None:
    out = print if ui is None else ui.out
    out(markdown_table(display_table(table)))
    out(note.replace("**", ""))
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
