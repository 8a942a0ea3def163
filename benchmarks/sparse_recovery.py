"""Study: sparse equation recovery - which terms, which coefficients - for SparseODE and SINDy.

Four parts.

1. **Panel** (simulated, truth known): every system at several noise levels, irregular
   (60 random times) and dense (200 uniform times) sampling, 3 trajectories. For each
   method: the relative coefficient error (``||C - C_true||_F / ||C_true||_F``), the
   true terms found, the false terms kept (every nonzero coefficient counts: that is
   what the printed equations show) and whether the support is exactly right.
   Methods: ``SparseODE()`` (``threshold="auto"``: candidate supports screened by
   simulation error, a sparsity path trained through the solver, chosen by an
   information criterion of the simulation errors), ``SparseODE(threshold=0.05)`` (the former default: prune below
   a fixed threshold), ``SINDy()`` defaults (finite differences, STLSQ 0.1),
   ``SINDy(threshold="auto", differentiation="spline")`` and SINDy with spline
   derivatives at the STLSQ threshold that was best in hindsight on that cell (an
   oracle: the best SINDy can do with a threshold, not a usable setting).
2. **Damped pendulum** (issue #18): ``d omega/dt = -19.62 sin(theta) - 0.35 omega``,
   one trajectory of 3 swings from 1 rad, 60 random times, noise 1-5% of each state's
   standard deviation, libraries of degree 1-3 with ``sin``/``cos``. Beside it, the
   least-squares fit of the true form (scipy ``least_squares`` over ``solve_ivp``):
   the error any estimator has at that noise.
3. **Real records** (skipped when ``../shared/data`` or ``$SYSID_SHARED_DATA`` is absent): the Lipson real
   pendulum (fit the first 70%, forecast the rest from the measured state at the split;
   nRMSE = RMSE / std of the held-out angle) and the Hudson's Bay lynx-hare pelts
   (1900-1920; the published Stan posterior 80% intervals, Carpenter 2018), with additive and with log
   errors (``errors="log"``, the Stan model's lognormal errors).
4. **Multiplicative noise** (``errors="log"``): Lotka-Volterra whose every value is multiplied by
   ``exp(0.1 N(0, 1))``, fitted with additive and with log errors: does the option recover the truth?

Run alone: python -m benchmarks --only sparse_recovery [--quick]
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Study, check_mode, quiet

# The shared real-data folder beside the repository (or $SYSID_SHARED_DATA).
DATA = Path(os.environ.get("SYSID_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PENDULUM = {"g": 19.62, "b": 0.35}
PENDULUM_TRUTH = {"theta": {"omega": 1.0}, "omega": {"sin(theta)": -19.62, "omega": -0.35}}
# Carpenter (2018), stan-dev/example-models knitr/lotka-volterra: posterior 80% intervals. The case
# study's text swaps the labels of gamma and delta and drops a zero from beta's bounds; these are
# the intervals of its printed posterior means (alpha 0.55, beta 0.028, gamma 0.80, delta 0.024).
STAN_80 = {"alpha": (0.47, 0.63), "beta": (0.023, 0.033), "gamma": (0.69, 0.91), "delta": (0.020, 0.029)}
SINDY_THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

# system -> (library degree, include_trig)
PANEL = {
    "lotka_volterra": (2, False),
    "van_der_pol": (3, False),
    "duffing": (3, False),
    "pendulum": (2, True),
    "lorenz": (2, False),
}

SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "systems": ("lotka_volterra", "van_der_pol", "duffing", "pendulum"),
        "noises": (0.01, 0.05, 0.10),
        "samplings": ("irregular", "dense"),
        "extra_cells": (("lorenz", 0.05, "irregular"),),
        "former_default_at": (0.05,),
        "sparse": {},
        "pendulum_degrees": (1, 2, 3),
        "pendulum_noises": (0.01, 0.02, 0.05),
        "pendulum_seeds": (0, 1),
        "real_degrees": (1, 2, 3),
        "real": True,
        "multiplicative_seeds": (0, 1, 2),
    },
    "quick": {
        "systems": ("lotka_volterra",),
        "noises": (0.05,),
        "samplings": ("irregular",),
        "extra_cells": (),
        "former_default_at": (0.05,),
        "sparse": {"max_epochs": 40, "gradient": "backprop"},
        "pendulum_degrees": (3,),
        "pendulum_noises": (0.02,),
        "pendulum_seeds": (0,),
        "real_degrees": (1,),
        "real": True,
        "multiplicative_seeds": (0,),
    },
    "tiny": {
        "systems": ("lotka_volterra",),
        "noises": (0.05,),
        "samplings": ("irregular",),
        "n_samples": 20,
        "extra_cells": (),
        "former_default_at": (0.05,),
        "sparse": {"max_epochs": 2, "gradient": "backprop", "collocation_steps": 5, "n_threshold_rounds": 0},
        "pendulum_degrees": (1,),
        "pendulum_noises": (0.05,),
        "pendulum_seeds": (0,),
        "real_degrees": (),
        "real": False,
    },
}
SAMPLES = {"irregular": 60, "dense": 200}


# -- data ------------------------------------------------------------------------------
def damped_pendulum(noise: float, seed: int = 0, n_samples: int = 60, theta0: float = 1.0):
    """The issue's pendulum: 3 swings from rest at ``theta0``, ``n_samples`` random times, Gaussian noise."""
    from scipy.integrate import solve_ivp

    import sysid

    g, b = PENDULUM["g"], PENDULUM["b"]
    t_end = 3 * 2 * np.pi / np.sqrt(g)
    rng = np.random.default_rng(seed)
    t = np.sort(np.concatenate([[0.0], rng.uniform(0.0, t_end, n_samples - 1)]))
    sol = solve_ivp(
        lambda _, x: [x[1], -g * np.sin(x[0]) - b * x[1]], (0.0, t_end), [theta0, 0.0], t_eval=t, rtol=1e-10, atol=1e-12
    )
    y = sol.y.T
    y = y + noise * y.std(axis=0) * rng.standard_normal(y.shape)
    return sysid.Trajectories.from_arrays([t], [y], state_names=["theta", "omega"])


def true_form_fit(data) -> dict[str, float]:
    """Least squares of the true pendulum form (d theta/dt = c omega) over solve_ivp: the noise's own error."""
    from scipy.integrate import solve_ivp
    from scipy.optimize import least_squares

    tr = data[0]
    scale = tr.y.std(axis=0)

    def residuals(q: np.ndarray) -> np.ndarray:
        g, b, c, th0, om0 = q
        sol = solve_ivp(
            lambda _, x: [c * x[1], -g * np.sin(x[0]) - b * x[1]],
            (tr.t[0], tr.t[-1]),
            [th0, om0],
            t_eval=tr.t,
            rtol=1e-9,
            atol=1e-11,
        )
        if not sol.success or sol.y.shape[1] != tr.t.size:
            return np.full(tr.y.size, 1e3)
        return ((sol.y.T - tr.y) / scale).ravel()

    q = least_squares(residuals, [PENDULUM["g"] * 0.9, PENDULUM["b"] * 0.8, 1.0, *tr.y[0]]).x
    return {"sin(theta)": -q[0], "omega": -q[1]}


def _named(table: pd.DataFrame) -> pd.DataFrame:
    """pysindy's Fourier names ``sin(1 theta)`` as the SparseODE library writes them, ``sin(theta)``."""
    return table.rename(index=lambda s: s.replace("(1 ", "("))


def _terms(table: pd.DataFrame, state: str) -> list[str]:
    return [str(t) for t, v in table[state].items() if v != 0.0]


# -- methods ---------------------------------------------------------------------------
def _sindy_library(degree: int, trig: bool):
    import pysindy as ps

    if not trig:
        return None
    return ps.GeneralizedLibrary([ps.PolynomialLibrary(degree=degree), ps.FourierLibrary(n_frequencies=1)])


def methods(degree: int, trig: bool, cfg: dict[str, Any]) -> dict[str, Any]:
    """name -> unfitted model (the SINDy oracle is handled in :func:`measure`)."""
    import sysid

    library = _sindy_library(degree, trig)
    return {
        "SparseODE() (threshold='auto')": sysid.SparseODE(
            degree=degree, include_trig=trig, verbose=False, random_state=0, threshold="auto", **cfg["sparse"]
        ),
        "SparseODE(threshold=0.05) (former default)": sysid.SparseODE(
            degree=degree, include_trig=trig, verbose=False, random_state=0, threshold=0.05, **cfg["sparse"]
        ),
        "SINDy() defaults": sysid.SINDy(degree=degree, library=library),
        "SINDy(threshold='auto', spline)": sysid.SINDy(
            degree=degree, library=library, threshold="auto", differentiation="spline", random_state=0
        ),
    }


def score(table: pd.DataFrame, truth: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Coefficient error and support recovery (every nonzero coefficient is a kept term)."""
    from sysid.metrics import coefficient_error

    err = coefficient_error(_named(table), truth, threshold=0.0)
    found = err.n_true_terms - err.n_missed
    return {
        "coefficient_error": err.relative_error,
        "true_terms_found": f"{found}/{err.n_true_terms}",
        "false_terms": err.n_spurious,
        "exact_support": bool(err.n_missed == 0 and err.n_spurious == 0),
    }


def _fit(model: Any, data: Any) -> tuple[Any, float, str | None]:
    start = time.process_time()
    with quiet():
        try:
            model.fit(data)
            failure = None
        except Exception as exc:  # noqa: BLE001 - a failed method is a row, not a crash
            failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return model, time.process_time() - start, failure


def measure(system: str, noise: float, sampling: str, cfg: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Every method on one cell of the panel."""
    import sysid

    degree, trig = PANEL[system]
    n = cfg.get("n_samples", SAMPLES[sampling])
    data = sysid.datasets.simulate(
        system, n_trajectories=3, n_samples=n, noise=noise, irregular=sampling == "irregular", random_state=seed
    )
    truth = sysid.datasets.truth(system).coefficients
    rows = []
    base = {
        "system": system,
        "library": f"degree {degree}" + (" + sin/cos" if trig else ""),
        "sampling": f"{sampling} ({n})",
        "noise": noise,
    }
    for name, model in methods(degree, trig, cfg).items():
        if name.startswith("SparseODE(threshold=0.05)") and noise not in cfg["former_default_at"]:
            continue
        model, cpu, failure = _fit(model, data)
        result = (
            {"coefficient_error": float("nan"), "true_terms_found": "", "false_terms": "", "exact_support": False}
            if failure
            else score(model.coefficients_, truth)
        )
        rows.append({**base, "method": name, **result, "cpu_s": cpu, "failure": failure or ""})
    # SINDy with the threshold that was best in hindsight (oracle).
    best: dict[str, Any] | None = None
    start = time.process_time()
    for threshold in SINDY_THRESHOLDS:
        model, _, failure = _fit(
            sysid.SINDy(
                degree=degree, library=_sindy_library(degree, trig), threshold=threshold, differentiation="spline"
            ),
            data,
        )
        if failure:
            continue
        result = score(model.coefficients_, truth)
        if best is None or result["coefficient_error"] < best["coefficient_error"]:
            best = {**result, "method": f"SINDy(spline, threshold={threshold}) [best in hindsight]"}
    if best is not None:
        rows.append({**base, **best, "cpu_s": time.process_time() - start, "failure": ""})
    return rows


# -- the damped pendulum of the issue ------------------------------------------------------
def pendulum_rows(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    import sysid

    rows = []
    for noise in cfg["pendulum_noises"]:
        for seed in cfg["pendulum_seeds"]:
            data = damped_pendulum(noise, seed, n_samples=cfg.get("n_samples", 60))
            reference = true_form_fit(data)
            for degree in cfg["pendulum_degrees"]:
                model, cpu, failure = _fit(
                    sysid.SparseODE(
                        degree=degree,
                        include_trig=True,
                        threshold="auto",
                        verbose=False,
                        random_state=0,
                        **cfg["sparse"],
                    ),
                    data,
                )
                row: dict[str, Any] = {
                    "noise": noise,
                    "seed": seed,
                    "degree": degree,
                    "cpu_s": cpu,
                    "failure": failure or "",
                }
                if not failure:
                    table = model.coefficients_
                    coef = table["omega"]
                    row.update(
                        {
                            "d theta/dt terms": " ".join(_terms(table, "theta")),
                            "d omega/dt terms": " ".join(_terms(table, "omega")),
                            "sin(theta) error %": 100 * (coef.get("sin(theta)", 0.0) / -PENDULUM["g"] - 1),
                            "omega error %": 100 * (coef.get("omega", 0.0) / -PENDULUM["b"] - 1),
                            "exact support": score(table, PENDULUM_TRUTH)["exact_support"],
                        }
                    )
                row["true-form least squares: sin(theta) error %"] = 100 * (
                    reference["sin(theta)"] / -PENDULUM["g"] - 1
                )
                row["true-form least squares: omega error %"] = 100 * (reference["omega"] / -PENDULUM["b"] - 1)
                rows.append(row)
    return rows


# -- real records --------------------------------------------------------------------------
def lipson_rows(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    import sysid

    path = DATA / "lipson_real_pendulums" / "real_pendulum.csv"
    if not path.exists():
        return []
    df = pd.read_csv(path)
    t, y = df["t_s"].to_numpy(), df[["theta_rad", "omega_rad_s"]].to_numpy()
    n = int(np.searchsorted(t, t[0] + 0.7 * (t[-1] - t[0]), side="right"))
    train = sysid.Trajectories.from_arrays([t[:n]], [y[:n]], state_names=["theta", "omega"])
    rows = []
    candidates = [
        (
            f"SparseODE(degree={d}, include_trig=True)",
            sysid.SparseODE(
                degree=d, include_trig=True, threshold="auto", verbose=False, random_state=0, **cfg["sparse"]
            ),
        )
        for d in cfg["real_degrees"]
    ]
    candidates.append(
        (
            "SINDy(threshold='auto', spline, degree 1 + sin/cos)",
            sysid.SINDy(library=_sindy_library(1, True), threshold="auto", differentiation="spline"),
        )
    )
    for name, model in candidates:
        model, cpu, failure = _fit(model, train)
        row: dict[str, Any] = {"model": name, "cpu_s": cpu, "failure": failure or ""}
        if not failure:
            with quiet():
                forecast = np.asarray(model.predict(t=t[n - 1 :], x0=y[n - 1]))[1:, 0]
            table = _named(model.coefficients_)
            angle = [s for s in _terms(table, "omega") if "theta" in s]
            row.update(
                {
                    "d theta/dt": " ".join(_terms(table, "theta")),
                    "d omega/dt": " ".join(_terms(table, "omega")),
                    "angle terms in d omega/dt": len(angle),
                    "forecast nRMSE": float(np.sqrt(np.mean((forecast - y[n:, 0]) ** 2)) / np.std(y[n:, 0])),
                }
            )
        rows.append(row)
    return rows


def lynx_hare_rows(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    import sysid

    if not (DATA / "lynx_hare").exists():
        return []
    data = sysid.datasets.load_lynx_hare()
    rows = []
    for name, model in (
        (
            "SparseODE(degree=2)",
            sysid.SparseODE(degree=2, threshold="auto", verbose=False, random_state=0, **cfg["sparse"]),
        ),
        (
            "SparseODE(degree=2, errors='log')",
            sysid.SparseODE(degree=2, threshold="auto", errors="log", verbose=False, random_state=0, **cfg["sparse"]),
        ),
        ("SINDy(threshold='auto', spline)", sysid.SINDy(degree=2, threshold="auto", differentiation="spline")),
    ):
        model, cpu, failure = _fit(model, data)
        row: dict[str, Any] = {"model": name, "cpu_s": cpu, "failure": failure or ""}
        if not failure:
            c = model.coefficients_
            values = {
                "alpha": c.loc["hare", "hare"],
                "beta": -c.loc["hare lynx", "hare"],
                "gamma": -c.loc["lynx", "lynx"],
                "delta": c.loc["hare lynx", "lynx"],
            }
            lv = {"hare": {"hare", "hare lynx"}, "lynx": {"lynx", "hare lynx"}}
            extra = sorted(f"{s}: {t}" for s in lv for t in _terms(c, s) if t not in lv[s])
            row.update(
                {
                    "terms": "; ".join(f"d {s}/dt: {' '.join(_terms(c, s))}" for s in ("hare", "lynx")),
                    "only the 4 Lotka-Volterra terms": not extra and all(v != 0 for v in values.values()),
                }
            )
            for key, value in values.items():
                low, high = STAN_80[key]
                row[key] = float(value)
                row[f"{key} in Stan 80%"] = bool(low <= value <= high)
        rows.append(row)
    return rows


# -- multiplicative noise: errors="log" against additive ----------------------------------
def multiplicative_rows(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Lotka-Volterra, 3 x 60 irregular samples, lognormal noise (each value times exp(0.1 N(0, 1)))."""
    import sysid

    truth = sysid.datasets.truth("lotka_volterra").coefficients
    rows = []
    for seed in cfg.get("multiplicative_seeds", ()):
        clean = sysid.datasets.simulate(
            "lotka_volterra", n_trajectories=3, n_samples=60, noise=0.0, irregular=True, random_state=seed
        )
        rng = np.random.default_rng(seed)
        noisy = sysid.Trajectories.from_arrays(
            [tr.t for tr in clean],
            [tr.y * np.exp(0.1 * rng.standard_normal(tr.y.shape)) for tr in clean],
            state_names=clean.state_names,
        )
        for errors in ("additive", "log"):
            model, cpu, failure = _fit(
                sysid.SparseODE(degree=2, errors=errors, verbose=False, random_state=0, **cfg["sparse"]), noisy
            )
            row: dict[str, Any] = {"seed": seed, "method": f"SparseODE(errors={errors!r})", "cpu_s": cpu}
            row.update(score(model.coefficients_, truth) if not failure else {"failure": failure})
            rows.append(row)
    return rows


# -- the study -------------------------------------------------------------------------
def run(mode: str = "full") -> Study:
    check_mode(mode)
    cfg = SETTINGS[mode]
    cells = [
        (system, noise, sampling)
        for system in cfg["systems"]
        for sampling in cfg["samplings"]
        for noise in cfg["noises"]
    ] + list(cfg["extra_cells"])
    panel = [row for system, noise, sampling in cells for row in measure(system, noise, sampling, cfg)]
    pendulum = pendulum_rows(cfg)
    lipson = lipson_rows(cfg) if cfg["real"] else []
    lynx = lynx_hare_rows(cfg) if cfg["real"] else []
    multiplicative = multiplicative_rows(cfg)
    verdicts, met = [], []
    auto = [r for r in panel if r["method"].startswith("SparseODE()")]
    if auto:
        exact = sum(r["exact_support"] for r in auto)
        verdicts.append(f"panel: SparseODE() exact support in {exact}/{len(auto)} cells")
    if pendulum:
        ok = [
            r
            for r in pendulum
            if not r["failure"]
            and r["exact support"]
            and abs(r["sin(theta) error %"]) <= 3
            and abs(r["omega error %"]) <= 3
        ]
        exact = [r for r in pendulum if not r["failure"] and r["exact support"]]
        failed = sum(bool(r["failure"]) for r in pendulum)
        floor = [
            r
            for r in pendulum
            if abs(r["true-form least squares: omega error %"]) <= 3
            and abs(r["true-form least squares: sin(theta) error %"]) <= 3
        ]
        verdicts.append(
            f"damped pendulum: exact support in {len(exact)}/{len(pendulum)} fits, also within 3% in "
            f"{len(ok)} (the true-form least squares is within 3% in {len(floor)}), {failed} FitError"
        )
        met.append(failed == 0 and len(ok) == len(pendulum))
    sparse_lipson = [r for r in lipson if r["model"].startswith("SparseODE") and not r["failure"]]
    if sparse_lipson:
        best = min(sparse_lipson, key=lambda r: r["forecast nRMSE"])
        verdicts.append(
            "Lipson: "
            + ", ".join(
                f"{r['model'].split('(')[1].split(',')[0]} nRMSE {r['forecast nRMSE']:.3f}"
                f" ({r['angle terms in d omega/dt']} angle term(s))"
                for r in sparse_lipson
            )
        )
        met.append(best["forecast nRMSE"] <= 0.05 and best["angle terms in d omega/dt"] == 1)
    sparse_lynx = [r for r in lynx if r["model"].startswith("SparseODE") and not r["failure"]]
    lynx_met = []
    for r in sparse_lynx:
        inside = [k for k in STAN_80 if r[f"{k} in Stan 80%"]]
        verdicts.append(
            f"lynx-hare {r['model']}: LV terms only: {r['only the 4 Lotka-Volterra terms']}, inside Stan 80%: {inside}"
        )
        lynx_met.append(bool(r["only the 4 Lotka-Volterra terms"]) and len(inside) == 4)
    if lynx_met:
        met.append(any(lynx_met))
    used = {c[0] for c in cells}
    setup = (
        "Panel: 3 trajectories per system from sysid.datasets, irregular = 60 random times, dense = 200 "
        "uniform times, noise relative to each state's standard deviation, seed 0; libraries: "
        + ", ".join(f"{s} degree {d}{' + sin/cos' if t else ''}" for s, (d, t) in PANEL.items() if s in used)
        + f"; the former default SparseODE(threshold=0.05) at noise {list(cfg['former_default_at'])} only"
        + f". SparseODE budget: {cfg['sparse'] or 'defaults'}. CPU seconds (time.process_time) per fit."
    )
    notes = [
        (
            "A kept term is any nonzero coefficient (what the printed equations show); the coefficient error is over "
            "the whole table, missing terms counting as zero."
        ),
        (
            "SINDy's best-in-hindsight threshold is chosen per cell by its coefficient error against the truth: an "
            "oracle no user has, shown as SINDy's ceiling."
        ),
        (
            "The true-form least squares on the pendulum is the statistical floor at that noise: no estimator "
            "is expected to beat it; a coefficient within 3% needs data that determine it to 3%."
        ),
        (
            "Lynx-hare: the Stan model has lognormal (relative) errors; SparseODE() fits additive errors per state, "
            "SparseODE(errors='log') fits log(simulated) - log(counted), the Stan model's error model. An "
            "additive-error least squares fit of the true Lotka-Volterra form gives gamma = 0.918 (just above the "
            "Stan interval's 0.91); a fit on log counts gives 0.80."
        ),
        (
            "Lipson pendulum: cos(theta) (mean 0.72, sd 0.22 on the record: uncentred cosine 0.957 with the "
            "constant) acts as an offset; SparseODE also fits the chosen equations with the constant in its place "
            "and without it (sysid.selection.offset_terms) and keeps the lower criterion, ties to the constant."
        ),
        (
            "Lotka-Volterra with multiplicative noise: the same SparseODE with additive and with log errors on the "
            "same data (sysid.datasets' system, every value times exp(0.1 N(0, 1)))."
        ),
    ]
    tables = [
        (caption, rows)
        for caption, rows in (
            ("Damped pendulum of issue #18 (d omega/dt = -19.62 sin(theta) - 0.35 omega)", pendulum),
            ("Lipson real pendulum: fit the first 70%, forecast the rest from the measured state", lipson),
            ("Hudson's Bay lynx-hare 1900-1920 against the Stan posterior 80% intervals", lynx),
            ("Lotka-Volterra, 3 x 60 irregular, lognormal noise 10%: additive against log errors", multiplicative),
        )
        if rows
    ]
    return Study(
        "sparse_recovery",
        "Sparse equations: support and coefficient recovery",
        setup,
        panel,
        target="Issue #18: the damped pendulum's sin(theta) and omega alone within 3%, no FitError; Lipson "
        "one angle term and forecast nRMSE <= 0.05; lynx-hare the 4 Lotka-Volterra terms inside "
        "the Stan 80% intervals",
        met=all(met) if met and mode != "tiny" else None,
        verdict="; ".join(verdicts) or "nothing measured",
        notes=notes,
        tables=tables,
        mode=mode,
    )
