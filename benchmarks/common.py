"""What the studies share: the study record, quiet fits, held-out errors, fast batches of data."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODES = ("full", "quick", "tiny")


@dataclass
class Study:
    """One study's outcome: a table, the target, whether it was met, and why.

    ``met`` is True/False, or None when the study could not judge (skipped, no data,
    or a budget too small to decide); ``verdict`` states the measured figure against
    the target in one line; ``notes`` explain (profiles, reasons for a miss).
    """

    name: str
    title: str
    setup: str
    rows: list[dict[str, Any]]
    target: str
    met: bool | None
    verdict: str
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # further (caption, rows)
    seconds: float = 0.0
    mode: str = "full"
    skipped: bool = False


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    return mode


@contextmanager
def quiet() -> Iterator[None]:
    """Silence FitWarning/SolverWarning chatter of deliberately small or hard fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as sw: ...`` then ``sw["seconds"]``."""
    out = {"seconds": float("nan")}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start


def relative_rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """RMSE / std per state, root-mean over states (1.0 = no better than the mean)."""
    pred = np.asarray(pred, dtype=float)[:, : truth.shape[1]]
    if not np.all(np.isfinite(pred)):
        return float("nan")
    return float(np.sqrt(np.mean(np.mean((pred - truth) ** 2, axis=0) / np.var(truth, axis=0))))


def held_out(
    system: str, seed: int = 0, n_samples: int = 60, noise: float = 0.05, holdout: str = "inside", **options: Any
):
    """3 training trajectories and an unseen 4th with its clean truth.

    ``holdout="inside"`` holds out, of the 4 simulated trajectories, the one whose clean
    orbit leaves the bounding box of the other three the least (the last such one on a
    tie): a test of generalisation to new initial states *within* the region the
    training data cover. A neural field is only learned where data are; an orbit
    outside the training box (Lotka-Volterra seed 0's ``run3`` reaches 35-41% beyond it)
    tests extrapolation instead. Or pass a trajectory name.

    Returns ``(train, test, truth, info)``: ``test`` holds the noisy held-out trajectory
    (its first samples give the model its initial state), ``truth`` the noise-free
    states at its times, ``info`` the held-out name and how far (fraction of the
    training range, per state) its orbit leaves the training box.
    """
    import sysid

    noisy = sysid.datasets.simulate(
        system, n_trajectories=4, n_samples=n_samples, noise=noise, random_state=seed, **options
    )
    clean = sysid.datasets.simulate(
        system, n_trajectories=4, n_samples=n_samples, noise=0.0, random_state=seed, **options
    )
    excess = dict(zip(clean.names, box_excess([tr.y for tr in clean])))
    if holdout == "inside":
        holdout = clean.names[most_inside(list(excess.values()))]
    train, test = noisy.split(test_trajectories=[holdout])
    info = {"held_out": holdout, "outside_training_box": [round(float(v), 3) for v in excess[holdout]]}
    return train, test, clean[holdout].y, info


def box_excess(runs: list[np.ndarray]) -> list[np.ndarray]:
    """Per run, how far its states leave the box of the other runs' states, per state, as a fraction of its side.

    Examples
    --------
    >>> [e.tolist() for e in box_excess([np.array([[0.0], [1.0]]), np.array([[0.5]]), np.array([[0.0], [2.0]])])]
    [[0.0], [0.0], [1.0]]
    """
    excess = []
    for i, y in enumerate(runs):
        others = np.concatenate([r for j, r in enumerate(runs) if j != i])
        low, high = others.min(axis=0), others.max(axis=0)
        excess.append((np.maximum(y.max(axis=0) - high, 0) + np.maximum(low - y.min(axis=0), 0)) / (high - low))
    return excess


def most_inside(excess: list[np.ndarray]) -> int:
    """Index of the run leaving the others' box the least (summed over states); the last one on a tie.

    Examples
    --------
    >>> most_inside([np.array([0.0, 0.1]), np.array([0.0, 0.0]), np.array([0.0, 0.0])])
    2
    """
    least = min(float(e.sum()) for e in excess)
    return max(i for i, e in enumerate(excess) if float(e.sum()) == least)


def warm_up(sindy: bool = True) -> None:
    """Import torch, torchdiffeq, scipy's splines (and pysindy), and run one tiny fit.

    First-use imports cost seconds (and memory); without this the first study would pay them.
    """
    import sysid

    data = sysid.datasets.simulate("lotka_volterra", n_trajectories=1, n_samples=15, random_state=0)
    with quiet():
        sysid.NeuralODE(hidden=(4,), max_epochs=1, lbfgs_steps=0, collocation_steps=2, verbose=False).fit(data)
        if sindy:
            sysid.SINDy().fit(data)


def batch_simulate(
    system: str,
    n_trajectories: int,
    n_samples: int = 60,
    noise: float = 0.05,
    t_span: tuple[float, float] | None = None,
    seed: int = 0,
):
    """Many trajectories of an autonomous system in one vectorised ``solve_ivp`` call.

    :func:`sysid.datasets.simulate` integrates trajectory by trajectory at rtol 1e-10
    (about 50 ms each here, 50 s for 1,000); the scaling study only needs plausible
    data fast. Same conventions: initial states uniform in ``truth.x0_range``, the
    first sample at ``t_span[0]`` and the others uniform random times, Gaussian noise
    of ``noise`` times each state's spread. rtol 1e-8.
    """
    from scipy.integrate import solve_ivp

    import sysid
    from sysid.trajectories import Trajectories

    tr = sysid.datasets.truth(system)
    if tr.input_names:
        raise ValueError(f"batch_simulate handles autonomous systems only; {system!r} has inputs.")
    rng = np.random.default_rng(seed)
    span = tr.t_span if t_span is None else t_span
    n = tr.n_states
    low = np.array([tr.x0_range[s][0] for s in tr.state_names])
    high = np.array([tr.x0_range[s][1] for s in tr.state_names])
    x0 = low + (high - low) * rng.random((n_trajectories, n))
    times = [
        np.concatenate([[span[0]], np.sort(rng.uniform(span[0], span[1], n_samples - 1))])
        for _ in range(n_trajectories)
    ]

    def rhs(t: float, flat: np.ndarray) -> np.ndarray:
        return tr.rhs(t, flat.reshape(n_trajectories, n)).reshape(-1)

    sol = solve_ivp(rhs, span, x0.reshape(-1), method="DOP853", rtol=1e-8, atol=1e-10, dense_output=True)
    # Dense output interval by interval for every trajectory at once (sol.sol(t) per
    # trajectory would evaluate all n_trajectories x n states at each call: 10 s for 1,000).
    all_t = np.concatenate(times)
    owner = np.repeat(np.arange(n_trajectories), [t.size for t in times])
    values = np.empty((all_t.size, n))
    interval = np.clip(np.searchsorted(sol.sol.ts, all_t, side="right") - 1, 0, len(sol.sol.interpolants) - 1)
    for k in np.unique(interval):
        sel = np.flatnonzero(interval == k)
        dense = sol.sol.interpolants[k](all_t[sel]).reshape(n_trajectories, n, sel.size)
        values[sel] = dense[owner[sel], :, np.arange(sel.size)]
    clean = np.split(values, np.cumsum([t.size for t in times])[:-1])
    spread = np.std(np.concatenate(clean), axis=0)
    noisy = [c + noise * spread * rng.standard_normal(c.shape) for c in clean]
    return Trajectories.from_arrays(
        times, noisy, None, state_names=tr.state_names, names=[f"run{i}" for i in range(n_trajectories)]
    )
