"""The problems of the generalisation study (benchmarks/generalisation.py): data, protocols, scores.

Each problem is a function of a seed returning a :class:`Case` (training data, how to score a
fitted model, the comparison models' settings), or None when its real data are absent. Real
data are read from ``../shared/data/`` (or ``$SYSID_SHARED_DATA``), never copied here. The
protocols are described in :mod:`benchmarks.generalisation`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import box_excess, held_out, relative_rmse

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout (a git worktree one level deeper also finds it), or $SYSID_SHARED_DATA
DATA = Path(
    os.environ.get("SYSID_SHARED_DATA")
    or next(
        (p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
        ROOT.parent / "shared" / "data",
    )
)


@dataclass
class Case:
    """One problem at one seed: training data, how to score a fitted model, comparison models."""

    problem: str
    seed: int
    train: Any
    score: Callable[[Any, str], dict[str, Any]]
    metric: str
    neural: dict[str, Any] = field(default_factory=dict)
    sparse: dict[str, Any] | None = field(default_factory=dict)
    sindy: dict[str, Any] | None = field(default_factory=dict)
    classical: tuple[Callable, dict[str, float], dict[str, Any]] | None = None
    notes: str = ""


# -- scores ----------------------------------------------------------------------------------
def _nrmse(pred: np.ndarray, truth: np.ndarray) -> float:
    pred = np.asarray(pred, dtype=float)
    if pred.shape != truth.shape or not np.all(np.isfinite(pred)):
        return float("nan")
    return float(np.sqrt(np.mean((pred - truth) ** 2)) / np.std(truth))


def _forecast_score(t: np.ndarray, y: np.ndarray, split: int) -> Callable[[Any, str], dict[str, Any]]:
    """Forecast rows ``split:`` from the measured state at row ``split``; nRMSE of the first state."""

    def score(model: Any, name: str) -> dict[str, Any]:
        pred = np.asarray(model.predict(t=t[split:], x0=y[split]), dtype=float)
        return {"score": _nrmse(pred[:, 0], y[split:, 0])}

    return score


def heldout_score(test: Any, truth: np.ndarray) -> Callable[[Any, str], dict[str, Any]]:
    """Relative RMSE of the held-out run: x0 estimated by the model, and (NeuralODE) from the true state."""

    def score(model: Any, name: str) -> dict[str, Any]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pred = model.predict(test)
        flagged = any(issubclass(w.category, _extrapolation_warning()) for w in caught)
        out = {"score": relative_rmse(pred[0].y, truth), "extrapolation_warning": flagged}
        if name == "NeuralODE":
            u = None if test[0].u is None else test[0].u
            from_truth = np.asarray(model.predict(t=test[0].t, x0=truth[0], u=u), dtype=float)
            out["score_true_x0"] = relative_rmse(from_truth, truth)
        return out

    return score


def _input_score(masked: Any, y: np.ndarray, split: int) -> Callable[[Any, str], dict[str, Any]]:
    """Simulate the masked record from its input (x0 estimated by the model); nRMSE of the output after ``split``."""

    def score(model: Any, name: str) -> dict[str, Any]:
        pred = model.predict(masked)[0].y[:, -1]
        if not np.all(np.isfinite(pred)):
            return {"score": float("nan")}
        return {"score": _nrmse(pred[split:], y[split:]), "train_score": _nrmse(pred[:split], y[:split])}

    return score


def _extrapolation_warning() -> type:
    import sysid

    return sysid.ExtrapolationWarning


# -- true model forms for ClassicalODE ---------------------------------------------------------
def _oscillator_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [x[1], -p["k"] * (x[0] - p["x_eq"]) - p["c"] * x[1]]


def _pendulum_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [x[1], -p["w2"] * np.sin(x[0]) - p["b"] * x[1]]


def _lotka_volterra_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [(p["alpha"] - p["beta"] * x[1]) * x[0], (p["delta"] * x[0] - p["gamma"]) * x[1]]


def _van_der_pol_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [x[1], p["mu"] * (1 - x[0] ** 2) * x[1] - x[0]]


def _duffing_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [x[1], -p["delta"] * x[1] - p["alpha"] * x[0] - p["beta"] * x[0] ** 3]


def _msd_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [x[1], (u[0] - p["c"] * x[1] - p["k"] * x[0]) / p["m"]]


def _tank_form(t: float, x: np.ndarray, p: dict, u: Any) -> np.ndarray:
    from benchmarks.cascaded_tanks import tank_numpy

    return tank_numpy(t, x, p, u)


def _emps_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    """The joint's published structure, M q'' = g vir - Fv q' - Fc sign(q') - offset, per unit mass.

    sign(q') smoothed over 1 cm/s (the joint moves at up to about 0.1 m/s), so that the field is
    not stiff at reversals.
    """
    v = x[1]
    return [v, p["gain"] * u[0] - p["viscous"] * v - p["coulomb"] * np.tanh(v / 1e-2) - p["offset"]]


# -- problems ----------------------------------------------------------------------------------
def _read(relative: str) -> pd.DataFrame | None:
    path = DATA / relative
    return pd.read_csv(path) if path.exists() else None


def _lipson(file: str, columns: list[str]) -> tuple[Any, np.ndarray, np.ndarray, int] | None:
    import sysid

    frame = _read(f"lipson_real_pendulums/{file}")
    if frame is None:
        return None
    t, y = frame["t_s"].to_numpy(float), frame[columns].to_numpy(float)
    split = round(0.7 * len(t))
    train = sysid.Trajectories.from_arrays([t[:split]], [y[:split]], state_names=columns, names=["record"])
    return train, t, y, split


def _lipson_case(problem: str, seed: int, file: str, columns: list[str], degree: int, classical: Any) -> Case | None:
    """A Lipson record's forecast case: fit the first 70%, forecast the rest from the measured state."""
    found = _lipson(file, columns)
    if found is None:
        return None
    train, t, y, split = found
    options = {"degree": degree}
    return Case(
        problem,
        seed,
        train,
        _forecast_score(t, y, split),
        f"nRMSE of {columns[0].split('_')[0]}",
        sparse=options,
        sindy=dict(options),
        classical=classical,
    )


def oscillator(seed: int) -> Case | None:
    classical = (_oscillator_form, {"k": 5.0, "c": 0.1, "x_eq": 0.0}, {})
    return _lipson_case("oscillator", seed, "real_oscillator.csv", ["x", "v"], 1, classical)


def pendulum(seed: int) -> Case | None:
    bounds = {"bounds": {"w2": (0.0, None), "b": (0.0, None)}}
    classical = (_pendulum_form, {"w2": 3.0, "b": 0.1}, bounds)
    return _lipson_case("pendulum", seed, "real_pendulum.csv", ["theta_rad", "omega_rad_s"], 3, classical)


def _tanks(seed: int, whole: bool) -> Case | None:
    from benchmarks import cascaded_tanks as ct

    frame = _read(f"cascaded_tanks/{ct.FILE}")
    if frame is None:
        return None
    y = frame["y_V"].to_numpy(float)
    split = len(frame) if whole else round(ct.TRAIN_FRACTION * len(frame))
    train, masked, _ = ct.tank_records(frame, anchored=False, split=split)
    anchored_train, anchored_masked, _ = ct.tank_records(frame, anchored=True, split=split)
    scored_from = 0 if whole else split  # the whole-record variant is scored in-sample

    def score(model: Any, name: str) -> dict[str, Any]:
        # ClassicalODE models the never-measured upper tank as a state: it starts from the initial state it
        # fitted to this record; the others estimate theirs from the record's first samples.
        record, x0 = (anchored_masked, model.x0_) if name == "ClassicalODE" else (masked, None)
        pred = model.predict(record, x0=x0)[0].y[:, -1]
        if not np.all(np.isfinite(pred)):
            return {"score": float("nan")}
        rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
        return {"score": rmse(y[scored_from:], pred[scored_from:]), "train_score": rmse(y[:split], pred[:split])}

    case = Case(
        "tanks_whole" if whole else "tanks",
        seed,
        train,
        score,
        "RMSE (V)",
        neural={"n_augment": 1},
        sparse=None,
        sindy={"degree": 2, "threshold": ct.SINDY_THRESHOLD},
        classical=(_tank_form, dict(ct.PARAMS), {"bounds": ct.BOUNDS, "n_starts": 4}),
    )
    case.notes = "in-sample (whole estimation record)" if whole else "last 30% simulated from the input"
    case.anchored_train = anchored_train  # type: ignore[attr-defined]
    return case


def tanks(seed: int) -> Case | None:
    return _tanks(seed, whole=False)


def tanks_whole(seed: int) -> Case | None:
    return _tanks(seed, whole=True)


def _simulated(problem: str, system: str, seed: int, holdout: str = "inside", **extra: Any) -> Case:
    train, test, truth, info = held_out(system, seed=seed, holdout=holdout)
    forms = {
        "lotka_volterra": (
            _lotka_volterra_form,
            {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "delta": 1.0},
            {"bounds": dict.fromkeys(("alpha", "beta", "gamma", "delta"), (0.0, None))},
        ),
        "van_der_pol": (_van_der_pol_form, {"mu": 0.5}, {}),
        "duffing": (_duffing_form, {"delta": 0.1, "alpha": -0.5, "beta": 0.5}, {}),
        "pendulum": (_pendulum_form, {"w2": 2.0, "b": 0.1}, {}),
        "mass_spring_damper": (_msd_form, {"m": 0.5, "c": 0.25, "k": 2.0}, {}),
    }
    degree = {"van_der_pol": 3, "duffing": 3, "pendulum": 1, "mass_spring_damper": 1}.get(system, 2)
    sparse = {"degree": degree, **({"include_trig": True} if system == "pendulum" else {})}
    case = Case(
        problem,
        seed,
        train,
        heldout_score(test, truth),
        "relative RMSE",
        sparse=sparse,
        sindy={"degree": degree},
        classical=forms[system],
        **extra,
    )
    case.notes = f"held out {info['held_out']}, beyond the training box by {info['outside_training_box']}"
    case.info = info  # type: ignore[attr-defined]
    return case


def lotka_volterra(seed: int) -> Case:
    return _simulated("lotka_volterra", "lotka_volterra", seed)


def lotka_volterra_outside(seed: int) -> Case:
    """The run whose orbit leaves the other three's box the most (an extrapolation)."""
    import sysid

    clean = sysid.datasets.simulate("lotka_volterra", n_trajectories=4, noise=0.0, random_state=seed)
    excess = {name: float(np.sum(e)) for name, e in zip(clean.names, box_excess([tr.y for tr in clean]))}
    return _simulated("lotka_volterra_outside", "lotka_volterra", seed, holdout=max(excess, key=excess.get))


def van_der_pol(seed: int) -> Case:
    return _simulated("van_der_pol", "van_der_pol", seed)


def duffing(seed: int) -> Case:
    return _simulated("duffing", "duffing", seed)


def pendulum_sim(seed: int) -> Case:
    return _simulated("pendulum_sim", "pendulum", seed)


def mass_spring_damper(seed: int) -> Case:
    return _simulated("mass_spring_damper", "mass_spring_damper", seed)


def light_oscillator(seed: int) -> Case:
    """A lightly damped 5 Hz oscillator sampled at 50 Hz (10 samples a period), 1% noise (draw ``seed``).

    Fit the first 800 samples (80 periods), forecast the next 400 from the measured state
    (session 7's failure of the default NeuralODE: a free run over many periods needs the
    frequency to a few tenths of a percent). Exact solution of x'' = -w^2 x - 0.02 x'.
    """
    from scipy.linalg import expm

    import sysid

    w, n, split = 2 * np.pi * 5.0, 1200, 800
    t = np.arange(n) / 50.0
    a = np.array([[0.0, 1.0], [-(w**2), -0.02]])
    y = np.array([expm(a * s) @ np.array([1.0, 0.0]) for s in t]) * np.array([1.0, 1 / w])
    y = y + 0.01 * np.random.default_rng(seed).standard_normal(y.shape)
    train = sysid.Trajectories.from_arrays([t[:split]], [y[:split]], state_names=["x", "v"], names=["record"])
    # ClassicalODE's form has x and x' as states; here v = x' / w, so its k is w and its c the damping.
    return Case(
        "light_oscillator",
        seed,
        train,
        _forecast_score(t, y, split),
        "nRMSE of x",
        sparse={"degree": 1},
        sindy={"degree": 1},
        classical=(_scaled_oscillator_form, {"w": 30.0, "c": 0.1}, {}),
    )


def _scaled_oscillator_form(t: float, x: np.ndarray, p: dict, u: Any) -> list[float]:
    return [p["w"] * x[1], -p["w"] * x[0] - p["c"] * x[1]]


def lynx_hare(seed: int) -> Case | None:
    import sysid
    from sysid import metrics

    frame = _read("lynx_hare/hudson_bay_lynx_hare_1900_1920.csv")
    if frame is None:
        return None
    t = frame["year"].to_numpy(float) - 1900.0
    y = frame[["hare_thousands", "lynx_thousands"]].to_numpy(float)
    data = sysid.Trajectories.from_arrays([t], [y], state_names=["hare", "lynx"], names=["hudson_bay"])
    train, future = data.split(time_fraction=0.8)
    n_past = train[0].n_times

    def score(model: Any, name: str) -> dict[str, Any]:
        # each model (each member of an ensemble, averaged) simulates from the initial state it fitted
        preds = []
        for member in getattr(model, "estimators_", [model]):
            x0 = getattr(member, "x0_", None)
            x0 = np.asarray(x0, dtype=float)[0, :2] if x0 is not None else y[0]
            preds.append(np.asarray(member.predict(t=t, x0=x0), dtype=float))
        pred = np.mean(preds, axis=0)
        if not np.all(np.isfinite(pred)):
            return {"score": float("nan")}
        return {
            "score": float(metrics.r2(future, [pred[n_past:]])),
            "train_score": float(metrics.r2(train, [pred[:n_past]])),
        }

    start = {"alpha": 0.5, "beta": 0.03, "gamma": 0.8, "delta": 0.02}
    return Case(
        "lynx_hare",
        seed,
        train,
        score,
        "R² (last 20%)",
        sparse={"degree": 2, "threshold": 0.005},
        sindy={"degree": 2, "threshold": 0.005, "differentiation": "spline"},
        classical=(_lotka_volterra_form, start, {"bounds": dict.fromkeys(start, (0.0, None))}),
    )


def silverbox(seed: int) -> Case | None:

    path = DATA / "silverbox" / "SNLS80mV.csv"
    if not path.exists():
        return None
    frame = pd.read_csv(path, usecols=[0, 1])
    start, rows = 40_650, 2_000  # the multisine part of the record
    u = frame.iloc[start : start + rows, 0].to_numpy(float)[:, None]
    y = frame.iloc[start : start + rows, 1].to_numpy(float)[:, None]
    t = np.arange(rows) / 610.35
    return _input_case("silverbox", seed, t, y, u, "output V2", "input V1")


def emps(seed: int) -> Case | None:
    frame = _read("emps/emps_estimation.csv")
    if frame is None:
        return None
    step = 20  # 1 kHz -> 50 Hz
    t = frame["t_s"].to_numpy(float)[::step]
    y = frame[["qm_m"]].to_numpy(float)[::step]
    u = frame[["vir"]].to_numpy(float)[::step]
    return _input_case("emps", seed, t, y, u, "position", "force")


def emps_validation(seed: int) -> Case | None:
    """EMPS as the benchmark means it: fit the whole estimation record, simulate the validation record.

    The validation record (``DATA_EMPS_PULSES``) is a separate experiment on the same joint, with
    force pulses the input does not carry. Both at 50 Hz, as :func:`emps`. The model estimates its
    initial state (the hidden dimension included) from the first 31 samples (0.6 s) of the
    validation record and simulates the rest from the input; nRMSE of the position after them.
    """
    import sysid

    frames = [_read(f"emps/emps_{part}.csv") for part in ("estimation", "validation")]
    if frames[0] is None or frames[1] is None:
        return None
    step, known = 20, 31  # 1 kHz -> 50 Hz; samples of the validation output the model may read

    def record(frame: pd.DataFrame, y: np.ndarray) -> Any:
        t, u = frame["t_s"].to_numpy(float)[::step], frame[["vir"]].to_numpy(float)[::step]
        return sysid.Trajectories.from_arrays(
            [t], [y], [u], state_names=["position"], input_names=["force"], names=["record"]
        )

    train = record(frames[0], frames[0][["qm_m"]].to_numpy(float)[::step])
    y = frames[1][["qm_m"]].to_numpy(float)[::step]
    masked = y.copy()
    masked[known:] = np.nan
    validation = record(frames[1], masked)
    neural_score = _input_score(validation, y[:, 0], known)
    # ClassicalODE models the never-measured velocity as a state; both records start at rest.
    t_val, u_val = validation[0].t, validation[0].u

    def score(model: Any, name: str) -> dict[str, Any]:
        if name != "ClassicalODE":
            return neural_score(model, name)
        pred = np.asarray(model.predict(t=t_val, x0=[y[0, 0], 0.0], u=u_val), dtype=float)[:, 0]
        return {"score": _nrmse(pred[known:], y[known:, 0]), "train_score": _nrmse(pred[:known], y[:known, 0])}

    with_velocity = np.hstack([train[0].y, np.full((len(train[0].t), 1), np.nan)])
    with_velocity[0, 1] = 0.0  # at rest
    anchored_train = sysid.Trajectories.from_arrays(
        [train[0].t], [with_velocity], [train[0].u], state_names=["position", "velocity"], input_names=["force"]
    )
    start = {"gain": 0.2, "viscous": 1.0, "coulomb": 0.1, "offset": 0.0}  # published / M: 0.37, 2.1, 0.21, -0.03
    case = Case(
        "emps_validation",
        seed,
        train,
        score,
        "nRMSE of the output",
        neural={"n_augment": 1},
        sparse=None,
        sindy={"degree": 3},
        classical=(
            _emps_form,
            start,
            {"bounds": dict.fromkeys(("gain", "viscous", "coulomb"), (0.0, None)), "n_starts": 4, "rtol": 1e-6},
        ),
    )
    case.notes = "a separate experiment (the validation record), simulated from its input"
    case.anchored_train = anchored_train  # type: ignore[attr-defined]
    return case


def _input_case(problem: str, seed: int, t: np.ndarray, y: np.ndarray, u: np.ndarray, state: str, inp: str) -> Case:
    import sysid

    split = round(0.7 * len(t))

    def make(yy):
        return sysid.Trajectories.from_arrays(
            [t[: len(yy)]], [yy], [u[: len(yy)]], state_names=[state], input_names=[inp], names=["record"]
        )

    masked = y.copy()
    masked[split:] = np.nan
    score = _input_score(make(masked), y[:, 0], split)
    return Case(
        problem,
        seed,
        make(y[:split]),
        score,
        "nRMSE of the output",
        neural={"n_augment": 1},
        sparse=None,
        sindy={"degree": 3},
    )


PROBLEMS: dict[str, Callable[[int], Case | None]] = {
    "oscillator": oscillator,
    "pendulum": pendulum,
    "tanks": tanks,
    "tanks_whole": tanks_whole,
    "lotka_volterra": lotka_volterra,
    "lotka_volterra_outside": lotka_volterra_outside,
    "lynx_hare": lynx_hare,
    "van_der_pol": van_der_pol,
    "duffing": duffing,
    "pendulum_sim": pendulum_sim,
    "mass_spring_damper": mass_spring_damper,
    "light_oscillator": light_oscillator,
    "silverbox": silverbox,
    "emps": emps,
    "emps_validation": emps_validation,
}
