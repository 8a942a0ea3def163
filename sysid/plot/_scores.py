"""The comparison bar chart: one metric per model and split, from a :func:`sysid.compare` table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sysid.errors import ConfigError
from sysid.plot._style import model_colours

_HELD_OUT = ("test", "extrapolation")
_HIGHER_IS_BETTER = ("r2",)


def _split_order(splits: Sequence[str]) -> list[str]:
    held = [s for s in _HELD_OUT if s in splits]
    return held + [s for s in splits if s not in held]


def scores(
    table: pd.DataFrame, metric: str = "nrmse", rank: bool = True, colors: Mapping[str, Any] | None = None
) -> Figure:
    """Bar chart of a :func:`sysid.compare` table: one group per estimator, one bar per split.

    Held-out splits ("test", "extrapolation") come first in each group, solid; the
    in-sample split ("train") last, light and hatched. Each estimator keeps its colour
    (:func:`model_colours` in the table's order). A value far beyond the others (more
    than five times the median size, e.g. a diverged model) is drawn up to the axis limit
    and labelled with its value, so it does not flatten the rest.

    Parameters
    ----------
    table : pandas.DataFrame from :func:`sysid.compare`
    metric : str, default "nrmse"
        A numeric column: "rmse", "nrmse", "r2", "coefficient_error", "fit_seconds",
        "n_function_evals". Missing values (a failed estimator) are marked "n/a".
    rank : bool, default True
        Order the estimators best first by the metric on the first held-out split
        (higher is better for "r2", lower for the others); missing values last.
        Without a held-out split the table's order is kept.
    colors : dict estimator -> colour, optional

    Returns
    -------
    matplotlib.figure.Figure with one axes; its ``containers`` hold one bar group per split.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame(
    ...     {"estimator": ["A", "A", "B", "B"], "split": ["train", "test"] * 2, "nrmse": [0.1, 0.4, 0.3, 0.2]}
    ... )
    >>> fig = scores(table)
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]  # B is better on held-out data
    ['B', 'A']
    >>> [[float(bar.get_height()) for bar in group] for group in fig.axes[0].containers]
    [[0.2, 0.4], [0.3, 0.1]]
    """
    if not isinstance(table, pd.DataFrame) or not {"estimator", "split"} <= set(table.columns):
        raise ConfigError("table must be the DataFrame returned by sysid.compare (columns estimator, split, ...).")
    numeric = [c for c in table.columns if c not in ("estimator", "split", "error")]
    if metric not in numeric:
        raise ConfigError(f"metric must be one of the table's numeric columns {numeric}, got {metric!r}.")
    original = list(dict.fromkeys(table["estimator"]))
    splits = _split_order(list(dict.fromkeys(table["split"])))
    values = table.pivot_table(index="estimator", columns="split", values=metric, aggfunc="first", dropna=False)
    values = values.reindex(index=original, columns=splits)
    held = next((s for s in _HELD_OUT if s in splits), None)
    estimators = original
    if rank and held is not None:
        key = values[held].astype(float) * (-1.0 if metric in _HIGHER_IS_BETTER else 1.0)
        estimators = list(key.sort_values(na_position="last", kind="stable").index)
        values = values.reindex(index=estimators)
    palette = model_colours(original, colors)
    fig = Figure(figsize=(max(5.5, 0.8 * len(estimators) * max(len(splits), 1) + 2.0), 4.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(splits), 1)
    positions = np.arange(len(estimators))
    finite = values.to_numpy(dtype=float)[np.isfinite(values.to_numpy(dtype=float))]
    typical = float(np.median(np.abs(finite))) if finite.size else 0.0
    inliers = finite[np.abs(finite) <= 5 * typical] if typical > 0 else finite
    top = max(float(inliers.max()), 0.0) * 1.15 if inliers.size else 1.0
    bottom = min(float(inliers.min()), 0.0) * 1.15 if inliers.size else 0.0
    styles: dict[str, dict[str, Any]] = {"train": {"alpha": 0.45, "hatch": "//"}}
    for k, split in enumerate(splits):
        heights = values[split].to_numpy(dtype=float)
        offsets = positions - 0.4 + width * (k + 0.5)
        style = styles.get(split, {"alpha": 1.0, "hatch": None if k == 0 else ".."})
        shown = np.clip(heights, bottom, top) if inliers.size < finite.size else heights
        ax.bar(
            offsets,
            shown,
            width,
            color=[palette[e] for e in estimators],
            edgecolor="black",
            linewidth=0.6,
            label=split,
            **style,
        )
        for x, h, s in zip(offsets, heights, shown):
            if not np.isfinite(h):
                ax.text(x, 0.0, "n/a", ha="center", va="bottom", fontsize="small", rotation=90)
            elif h != s:  # off the scale: a broken bar up to the axis limit, its value written on it
                for level in (0.9, 0.95):
                    ax.plot(
                        [x - 0.45 * width, x + 0.45 * width],
                        [s * (level - 0.02), s * (level + 0.02)],
                        color="white",
                        linewidth=2.5,
                        solid_capstyle="butt",
                    )
                ax.text(
                    x,
                    s,
                    f"{'↓' if h < 0 else '↑'} {h:.3g}",
                    ha="center",
                    va="top" if h < 0 else "bottom",
                    fontsize="small",
                    fontweight="bold",
                )
    if inliers.size < finite.size:
        ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.08 * (top - bottom))
    ax.set_xticks(positions, [str(e).replace(" (", "\n(") if len(str(e)) > 14 else str(e) for e in estimators])
    ax.set_xlim(-0.6, len(estimators) - 0.4)
    direction = "higher is better" if metric in _HIGHER_IS_BETTER else "lower is better"
    ax.set_ylabel(f"{metric} ({direction})")
    if rank and held is not None:
        ax.set_title(f"ranked by {metric} on held-out data ({held})", fontsize="medium")
    ax.axhline(0.0, color="0.5", linewidth=0.6)
    handles = [
        Patch(
            facecolor="0.55",
            edgecolor="black",
            label=f"{s} ({'in-sample' if s == 'train' else 'held out'})",
            **styles.get(s, {"hatch": None if k == 0 else ".."}),
        )
        for k, s in enumerate(splits)
    ]
    fig.legend(handles=handles, loc="outside upper center", fontsize="small", ncols=len(handles))
    return fig
