"""Study 6: real data, the cascaded tanks benchmark (Schoukens et al. 2016).

The estimation record (1,024 samples, Ts = 4 s, pump voltage u -> lower-tank level y,
both in V) is read from ``../shared/data/cascaded_tanks/`` (or ``$SYSID_CASCADED_TANKS``);
the study is skipped when it is absent, and the data are never copied here. Fit on the
first 70% of the record; then simulate the whole record from the input alone: each
model gets the record with every output after the split removed (NaN), estimates its
initial state from the training part (the physics models start from the initial state
they fitted to this record; the neural model's ``predict`` estimates its own, hidden state
included, from the first samples), and its simulated level
over the last 30% is scored by RMSE in V against the measurement.

Tank physics (benchmark document, without overflow): upper level x1' = -k1 sqrt(x1) +
k4 u, lower level x2' = k2 sqrt(x1) - k3 sqrt(x2), y = x2. The upper level is never
measured. Its scale is not identifiable (x1 -> c x1 with k1, k4, k2 rescaled gives the
same y), so the physics models get one pseudo-observation x1(0) = y(0), which fixes
that gauge and nothing else; the neural model gets an augmented state instead.

- ``NeuralODE(n_augment=1)``: black box, 2-state field of (y, hidden state, u).
- ``HybridODE``: the tank physics (k1..k4 free, positive) plus a small network correction.
- ``ClassicalODE``: the tank physics by scipy least squares over simulations (4 starts).
- ``SINDy`` with control: a polynomial (degree 2) of (y, u) for dy/dt, pysindy's
  finite differences, STLSQ threshold 1e-3 (the derivatives are of order 0.01 V/s, so
  the default 0.1 would prune everything); a first-order model, since SINDy cannot
  carry the hidden tank.

Published simulation RMSEs on the *test* record (not used here) for scale: best linear
approximation 0.75 V, neural state space 0.33 V, grey box with overflow 0.18 V (the
README next to the data); a constant predictor has RMSE = std(y).

Run alone: python -m benchmarks --only cascaded_tanks [--quick]
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Study, check_mode, quiet

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "cascaded_tanks"
FILE = "cascaded_tanks_estimation.csv"
TRAIN_FRACTION = 0.7
PARAMS = {"k1": 0.05, "k2": 0.05, "k3": 0.05, "k4": 0.04}  # time constants of a few hundred seconds
BOUNDS = dict.fromkeys(PARAMS, (0.0, None))
# dy/dt is of order 0.01-0.05 V/s here: pysindy's default threshold 0.1 would prune every term.
SINDY_THRESHOLD = 1e-3
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"neural": {}, "hybrid": {}, "classical": {"n_starts": 4}},
    # quick: NeuralODE keeps its 40 Adam epochs (with 15 it had not left its start and its simulation
    # diverged), a shorter L-BFGS polish; HybridODE 40 epochs instead of 300.
    "quick": {
        "neural": {"lbfgs_steps": 20},
        "hybrid": {"max_epochs": 40, "lbfgs_steps": 20},
        "classical": {"n_starts": 1, "max_nfev": 15},
    },
    "tiny": {
        "neural": {"hidden": (8,), "max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 5},
        "hybrid": {"hidden": (4,), "max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 5},
        "classical": {"n_starts": 1, "max_nfev": 3},
        "rows": 60,
    },
}


def data_dir() -> Path:
    return Path(os.environ.get("SYSID_CASCADED_TANKS", DEFAULT_DIR))


def _sqrt(x: Any) -> Any:
    import torch

    return torch.sqrt(torch.clamp(x, min=1e-6))


def tank_torch(t: Any, x: Any, p: Any, u: Any) -> Any:
    """(upper, lower) levels -> derivatives; torch, batch-first."""
    import torch

    upper, lower = x[:, 0], x[:, 1]
    return torch.stack(
        [-p["k1"] * _sqrt(upper) + p["k4"] * u[:, 0], p["k2"] * _sqrt(upper) - p["k3"] * _sqrt(lower)], dim=-1
    )


def tank_numpy(t: float, x: np.ndarray, p: dict, u: np.ndarray) -> np.ndarray:
    upper, lower = np.sqrt(np.maximum(x, 1e-6))
    return np.array([-p["k1"] * upper + p["k4"] * u[0], p["k2"] * upper - p["k3"] * lower])


def load(rows: int | None = None) -> pd.DataFrame | None:
    path = data_dir() / FILE
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    return frame.iloc[:rows] if rows else frame


def tank_records(frame: pd.DataFrame, anchored: bool, split: int | None = None) -> tuple[Any, Any, int]:
    """(train, whole record with the outputs from ``split`` on removed, split row).

    ``split`` defaults to the first ``TRAIN_FRACTION`` of the record. ``anchored`` adds the
    never-measured upper tank as a state with one pseudo-observation upper(0) = level(0), which
    fixes its unidentifiable scale for the physics model.
    """
    import sysid

    if split is None:
        split = round(TRAIN_FRACTION * len(frame))
    t = frame["t_s"].to_numpy(float)
    u = frame[["u_V"]].to_numpy(float)
    y = frame[["y_V"]].to_numpy(float)
    names, states = ["level"], y
    if anchored:
        upper = np.full((len(frame), 1), np.nan)
        upper[0, 0] = y[0, 0]
        states, names = np.hstack([upper, y]), ["upper", "level"]
    masked = states.copy()
    masked[split:] = np.nan
    make = lambda tt, yy, uu: sysid.Trajectories.from_arrays(  # noqa: E731
        [tt], [yy], [uu], state_names=names, input_names=["pump"], names=["tanks"]
    )
    return make(t[:split], states[:split], u[:split]), make(t, masked, u), split


def _models(cfg: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    import sysid

    return {
        "NeuralODE(n_augment=1)": (sysid.NeuralODE(n_augment=1, verbose=False, random_state=0, **cfg["neural"]), False),
        "HybridODE (tank physics + NN)": (
            sysid.HybridODE(tank_torch, PARAMS, bounds=BOUNDS, verbose=False, random_state=0, **cfg["hybrid"]),
            True,
        ),
        "ClassicalODE (tank physics)": (
            sysid.ClassicalODE(tank_numpy, PARAMS, bounds=BOUNDS, random_state=0, **cfg["classical"]),
            True,
        ),
        "SINDy with control (degree 2)": (sysid.SINDy(degree=2, threshold=SINDY_THRESHOLD), False),
    }


def _explain(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row in rows:
        if row["method"].startswith("HybridODE") and row["params"]:
            values = dict(item.split("=") for item in row["params"].split(", "))
            moved = max(abs(float(values[k]) / v - 1) for k, v in PARAMS.items())
            if moved < 0.05:
                notes.append(
                    f"HybridODE left the tank parameters within {moved:.1%} of their initial guesses: the "
                    "correction network absorbed the misfit (a free physical parameter that the network can "
                    "imitate is not identifiable, as its docstring warns)."
                )
        if row["method"].startswith("NeuralODE") and np.isfinite(row["train_rmse_V"]) and row["train_rmse_V"] > 0.5:
            notes.append(
                f"NeuralODE fits even the training part poorly ({row['train_rmse_V']:.2f} V): a black box "
                "with one hidden state learned from scratch on one 717-sample record; the physics models "
                "start from the right structure."
            )
        if row["method"].startswith("SINDy"):
            notes.append(
                "SINDy sees only the lower tank: a first-order model of (y, u) cannot carry the upper tank's delay."
            )
    return notes


def run(mode: str = "full") -> Study:
    check_mode(mode)
    cfg = SETTINGS[mode]
    frame = load(cfg.get("rows"))
    title = "Real data: cascaded tanks, simulation RMSE on the last 30%"
    target = "report the simulation RMSE (V) of each model on the held-out last 30% (no numeric target)"
    if frame is None:
        return Study(
            "cascaded_tanks",
            title,
            f"{data_dir() / FILE} not found: skipped.",
            [],
            target,
            None,
            "skipped: no data",
            mode=mode,
            skipped=True,
        )
    y = frame["y_V"].to_numpy(float)
    rows = []
    for name, (model, anchored) in _models(cfg).items():
        train, masked, split = tank_records(frame, anchored)
        start = time.perf_counter()
        with quiet():
            try:
                model.fit(train)
                fit_s = time.perf_counter() - start
                # The fitted initial state of this very record where the model has one of the right size
                # (physics models); the neural model's includes its augmented state, so predict estimates it.
                x0 = getattr(model, "x0_", None)
                x0 = x0 if x0 is not None and x0.shape[1] == masked.n_states else None
                pred = model.predict(masked, x0=x0)[0].y[:, -1]
                err = y[split:] - pred[split:]
                rmse = float(np.sqrt(np.mean(err**2))) if np.all(np.isfinite(err)) else float("nan")
                train_rmse = float(np.sqrt(np.nanmean((y[:split] - pred[:split]) ** 2)))
                status = "ok" if np.isfinite(rmse) else "simulation failed (NaN)"
            except Exception as exc:  # noqa: BLE001 - a failed method is a row, not a crash
                fit_s, rmse, train_rmse, status = time.perf_counter() - start, np.nan, np.nan, f"failed: {exc}"[:80]
        params = getattr(model, "params_", None)
        rows.append(
            {
                "method": name,
                "test_rmse_V": rmse,
                "train_rmse_V": train_rmse,
                "fit_s": fit_s,
                "status": status,
                "params": "" if not params else ", ".join(f"{k}={v:.3g}" for k, v in params.items()),
            }
        )
    std = float(np.std(y[round(TRAIN_FRACTION * len(frame)) :]))
    rows.append(
        {
            "method": "constant (mean of the test part), for scale",
            "test_rmse_V": std,
            "train_rmse_V": np.nan,
            "fit_s": 0.0,
            "status": "reference",
            "params": "",
        }
    )
    best = min((r for r in rows[:-1] if np.isfinite(r["test_rmse_V"])), key=lambda r: r["test_rmse_V"], default=None)
    verdict = (
        "no model simulated the test part"
        if best is None
        else f"best: {best['method']} {best['test_rmse_V']:.3f} V (std of the test part {std:.2f} V)"
    )
    setup = (
        f"{FILE}: fit on the first {TRAIN_FRACTION:.0%} ({round(TRAIN_FRACTION * len(frame))} samples, "
        f"{frame['t_s'].iloc[round(TRAIN_FRACTION * len(frame)) - 1]:.0f} s), simulate the whole record from "
        "the input, score the rest. Budgets: "
        + "; ".join(f"{k} {v}" for k, v in cfg.items() if k != "rows" and v)
        + "."
    )
    notes = [
        *_explain(rows),
        "The sensor saturates at 10 V when the tanks overflow (47 samples of the record); no model here has an "
        "overflow term, which is what separates the published 0.18 V grey box from 0.3-0.5 V models.",
        "The published figures are on the separate test record, these on the last 30% of the estimation record: "
        "a shorter, different horizon; compare orders of magnitude only.",
    ]
    return Study("cascaded_tanks", title, setup, rows, target, None, verdict, notes, mode=mode)
