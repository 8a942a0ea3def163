"""Reports of a model comparison: ranked tables, what each model found, figures, markdown.

``sysid compare`` and ``sysid demo`` write their reports with these functions; a script
can write the same report from a :func:`sysid.compare` table::

    table = sysid.compare(estimators, train, test)
    models = table.attrs["models"]
    figures = sysid.report.write_figures(out_dir, data, models, table)
    sysid.report.write_report(
        out_dir, "My models", ["What the data are."], table, sysid.report.model_notes(models), figures
    )

Held-out error comes first everywhere: tables list the held-out splits ("test",
"extrapolation") before the in-sample one ("train") and rank the models by held-out
nRMSE (:data:`RANK_METRIC`), best first; a table without held-out data says it is
in-sample only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sysid.comparison import SPLITS, _Models

__all__ = [
    "RANK_METRIC",
    "display_table",
    "held_out_split",
    "markdown_table",
    "model_notes",
    "rank",
    "run_comparison",
    "table_note",
    "write_figures",
    "write_report",
]

RANK_METRIC = "nrmse"
"""The metric models are ranked by: nRMSE on held-out data (scale-free, lower is better)."""

_FIRST_COLUMNS = ("estimator", "split", "nrmse", "r2", "rmse", "coefficient_error")


# -- running the comparison ------------------------------------------------------------------------
def run_comparison(
    estimators: Mapping[str, Any],
    train: Any,
    test: Any = None,
    truth: Any = None,
    time_fraction: float | None = None,
    n_jobs: int | None = None,
    ui: Any = None,
) -> pd.DataFrame:
    """:func:`sysid.compare` with a progress bar over the models (one call per model).

    Parameters
    ----------
    estimators : dict name -> estimator
    train, test, truth, time_fraction, n_jobs
        As for :func:`sysid.compare`. With ``n_jobs`` the models are fitted in one
        parallel call instead (no bar).
    ui : object with ``info(str)`` and ``quiet``, optional
        Where to report each fitted model (the command line's console); None: silent,
        no bar.

    Returns
    -------
    pandas.DataFrame as from :func:`sysid.compare`, with ``attrs["models"]`` (and
    ``attrs["extrapolation_models"]`` with ``time_fraction``).
    """
    from tqdm.auto import tqdm

    from sysid.comparison import compare

    if n_jobs is not None:
        return compare(dict(estimators), train, test, truth=truth, time_fraction=time_fraction, n_jobs=n_jobs)
    tables, models, extrapolation = [], {}, {}
    bar = tqdm(
        list(estimators.items()), desc="models", unit="model", disable=ui is None or ui.quiet, dynamic_ncols=True
    )
    for name, estimator in bar:
        bar.set_postfix_str(name)
        table = compare({name: estimator}, train, test, truth=truth, time_fraction=time_fraction)
        tables.append(table)
        models.update(table.attrs.get("models", {}))
        extrapolation.update(table.attrs.get("extrapolation_models", {}))
        if ui is not None:
            failed = table["error"].dropna()
            note = f"; {failed.iloc[0]}" if len(failed) else ""
            message = f"  {name}: fitted in {float(table['fit_seconds'].iloc[0]):.1f} s{note}"
            if bar.disable:
                ui.info(message)
            else:
                bar.write(message, file=sys.stderr)  # above the bar, not through it
    bar.close()
    out = pd.concat(tables, ignore_index=True)
    out.attrs = {k: v for k, v in tables[0].attrs.items() if k not in ("models", "extrapolation_models")}
    out.attrs["models"] = _Models(models)
    if extrapolation:
        out.attrs["extrapolation_models"] = _Models(extrapolation)
    return out


# -- tables ----------------------------------------------------------------------------------------
def held_out_split(table: pd.DataFrame) -> str | None:
    """The first held-out split of a comparison table ("test", then "extrapolation"), or None."""
    present = set(table["split"])
    return next((s for s in SPLITS if s != "train" and s in present), None)


def rank(table: pd.DataFrame, metric: str = RANK_METRIC) -> pd.DataFrame:
    """The table with the models best first by ``metric`` on held-out data, held-out rows first.

    Lower is better, except for "r2". Models without a held-out score (failed) come last;
    without any held-out split the models keep their order. ``attrs`` are kept.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {"estimator": ["A", "A", "B", "B"], "split": ["train", "test"] * 2, "nrmse": [0.1, 0.5, 0.3, 0.2]}
    ... )
    >>> rank(table)[["estimator", "split"]].values.tolist()
    [['B', 'test'], ['B', 'train'], ['A', 'test'], ['A', 'train']]
    """
    order = list(dict.fromkeys(table["estimator"]))
    held = held_out_split(table)
    if held is not None and metric in table.columns:
        scores = table[table["split"] == held].drop_duplicates("estimator").set_index("estimator")[metric]
        scores = scores.reindex(order).astype(float) * (-1.0 if metric == "r2" else 1.0)
        order = list(scores.sort_values(na_position="last", kind="stable").index)
    splits = [s for s in SPLITS if s in set(table["split"])] + sorted(set(table["split"]) - set(SPLITS))
    key = table["estimator"].map(order.index) * len(splits) + table["split"].map(splits.index)
    out = table.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
    out.attrs = table.attrs
    return out


def _short(message: Any, limit: int = 100) -> Any:
    """An error message cut to ``limit`` characters at a word boundary (the CSV keeps it whole)."""
    if not isinstance(message, str):
        return message
    text = " ".join(message.replace("sysid.errors.", "").split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table ranked (:func:`rank`), error columns first, long error messages cut, empty columns dropped."""
    ranked = rank(table)
    first = [c for c in _FIRST_COLUMNS if c in ranked.columns]
    columns = first + [c for c in ranked.columns if c not in first]
    keep = [c for c in columns if c in ("estimator", "split", "nrmse", "r2", "rmse") or ranked[c].notna().any()]
    shown = ranked[keep]
    if "error" in shown.columns:
        shown = shown.assign(error=shown["error"].map(_short))
    return shown


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


def table_note(table: pd.DataFrame) -> str:
    """One sentence saying what the table's splits are and how it is ranked."""
    held = held_out_split(table)
    if held is None:
        return (
            "In-sample only: every model is scored on the data it was fitted to, which says little about how "
            "it predicts. Hold data out (--time-fraction 0.8 or --test-trajectories) to rank models honestly."
        )
    what = {"test": "held-out trajectories", "extrapolation": "the held-out end of each trajectory"}[held]
    return (
        f"Models are ranked by {RANK_METRIC} on held-out data (split `{held}`: {what}, never used in fitting); "
        "held-out rows come first, in-sample rows (`train`) second."
    )


def model_notes(models: Mapping[str, Any]) -> dict[str, list[str]]:
    """What each fitted model says about the dynamics: equations, parameters, or what it is."""
    from sysid.equations import format_coefficient

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
            notes[name] = [
                f"{key} = {format_coefficient(value, stderr.get(key))}" for key, value in model.params_.items()
            ]
        else:
            hidden = getattr(getattr(model, "field_part_", None), "hidden", None)  # the fitted field's spec
            notes[name] = [
                f"a neural network vector field (hidden layers {tuple(hidden) if hidden else '?'}): "
                "no closed-form equations; see the phase portrait"
            ]
    return notes


# -- figures and report ----------------------------------------------------------------------------
def write_figures(
    out_dir: Path,
    data: Any,
    models: Mapping[str, Any],
    table: pd.DataFrame | None = None,
    truth: Any = None,
    held_out_from: Any = None,
    starts: Mapping[str, Any] | None = None,
    grid: int = 25,
    n_points: int = 200,
    ui: Any = None,
    max_portraits: int | None = None,
) -> list[Path]:
    """fits.png (data and every model), phase_<model>.png, comparison.png; returns the paths.

    Each model has the same colour in every figure (:func:`sysid.plot.model_colours` of
    ``models`` in order). ``starts`` maps a model name to the initial states its curves
    start from (default: those its ``predict`` uses); ``held_out_from`` marks where held-out
    data begin (see :func:`sysid.plot.trajectories`); ``max_portraits`` limits the phase
    portraits to the first few models (streamlines take a second or two each).

    A table from ``sysid.compare(..., time_fraction=...)`` (with
    ``attrs["extrapolation_models"]``) also gets extrapolation.png: the models fitted on
    the first part of each trajectory, simulated from their fitted starts
    (:func:`sysid.comparison.initial_states`) over the held-out rest, which is shaded.
    """
    from sysid import plot
    from sysid.comparison import initial_states

    out_dir = Path(out_dir)
    colours = plot.model_colours(list(models))
    written = [_fits_figure(out_dir / "fits.png", data, models, colours, n_points, held_out_from, starts or {}, ui)]
    attrs = {} if table is None else table.attrs
    if attrs.get("extrapolation_models") and attrs.get("time_fraction") and held_out_from is None:
        names = attrs.get("extrapolation_trajectories") or list(data.names)
        part = data.subset([tr for tr in data if tr.name in names])
        fraction = float(attrs["time_fraction"])
        cuts = [tr.t[0] + fraction * (tr.t[-1] - tr.t[0]) for tr in part]
        fitted = {name: m for name, m in attrs["extrapolation_models"].items() if m is not None}
        firsts = {}
        for name, model in fitted.items():
            try:
                firsts[name] = initial_states(model, part)
            except Exception:  # noqa: BLE001 - the figure then starts it where predict does
                continue
        written.append(_fits_figure(out_dir / "extrapolation.png", part, fitted, colours, n_points, cuts, firsts, ui))
    if data.n_states >= 2:
        drawn = 0
        for name, model in models.items():
            if model is None or not hasattr(model, "vector_field"):
                continue
            if max_portraits is not None and drawn >= max_portraits:
                break
            drawn += 1
            try:
                figure = plot.phase_portrait(model, data, truth=truth, grid=grid, color=colours[name], title=name)
                written.append(_save(figure, out_dir / f"phase_{_slug(name)}.png"))
            except Exception as exc:  # noqa: BLE001
                if ui is not None:
                    ui.warn(f"no phase portrait for {name}: {type(exc).__name__}: {exc}")
    if table is not None and RANK_METRIC in table.columns and table[RANK_METRIC].notna().any():
        written.append(_save(plot.scores(table, metric=RANK_METRIC, colors=colours), out_dir / "comparison.png"))
    return written


def _fits_figure(
    path: Path,
    data: Any,
    models: Mapping[str, Any],
    colours: Mapping[str, Any],
    n_points: int,
    held_out_from: Any,
    starts: Mapping[str, Any],
    ui: Any,
) -> Path:
    """Data and every model's dense curves in one figure, saved to ``path``."""
    from sysid import plot

    curves, labels = [], []
    for name, model in models.items():
        if model is None:
            continue
        try:
            curves.append(plot.predict_dense(model, data, n_points, x0=starts.get(name)))
            labels.append(name)
        except Exception as exc:  # noqa: BLE001 - a model that cannot simulate is left out of the figure
            if ui is not None:
                ui.warn(f"{name} left out of {path.name}: {type(exc).__name__}: {exc}")
    figure = plot.trajectories(data, *curves, labels=labels, colors=colours, held_out_from=held_out_from)
    return _save(figure, path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "model"


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path


def write_report(
    out_dir: Path,
    title: str,
    about: Sequence[str],
    table: pd.DataFrame,
    notes: Mapping[str, Sequence[str]],
    figures: Sequence[Path],
    extra: Sequence[str] = (),
    name: str = "report.md",
) -> Path:
    """A short markdown report: what the data are, the ranked table, the equations, the figures."""
    ranked = display_table(table)
    metrics = (
        "rmse, nrmse and r2 compare each model's simulated trajectories with the observations "
        "(observed entries only); nrmse divides by each state's standard deviation (1 is no better than "
        "the mean), r2 = 1 is perfect."
    )
    lines = [
        f"# {title}",
        "",
        *about,
        "",
        "## Comparison, best first on held-out data",
        "",
        table_note(table),
        "",
        markdown_table(ranked),
        "",
        metrics,
        "",
        "## What each model found",
        "",
    ]
    order = list(dict.fromkeys(ranked["estimator"]))
    for model in sorted(notes, key=lambda n: order.index(n) if n in order else len(order)):
        lines.append(f"**{model}**")
        lines.append("")
        lines.extend(f"    {line}" for line in notes[model])
        lines.append("")
    lines.extend(extra)
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figures]
        lines.append("")
    path = Path(out_dir) / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
