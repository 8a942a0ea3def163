"""Noisy, irregular, incomplete simulated measurements of the benchmark systems."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from sysid.datasets._systems import InputFunction, SystemTruth, check_system, truth
from sysid.errors import DataError
from sysid.trajectories import Trajectories

if TYPE_CHECKING:  # pandas is only needed for as_frame=True, through the adapters
    import pandas as pd

__all__ = ["simulate"]

_STREAMS = ("x0", "times", "inputs", "noise", "missing")


# as_frame decides the type returned; the overloads tell type checkers so.
@overload
def simulate(
    system: str,
    n_trajectories: int = 3,
    t_span: tuple[float, float] | None = None,
    n_samples: int = 60,
    noise: float = 0.05,
    irregular: bool = True,
    missing: float = 0.0,
    inputs: InputFunction | Sequence[InputFunction] | None = None,
    x0: Any = None,
    random_state: int | np.random.Generator | None = 0,
    as_frame: Literal[False] = False,
) -> Trajectories: ...


@overload
def simulate(
    system: str,
    n_trajectories: int = 3,
    t_span: tuple[float, float] | None = None,
    n_samples: int = 60,
    noise: float = 0.05,
    irregular: bool = True,
    missing: float = 0.0,
    inputs: InputFunction | Sequence[InputFunction] | None = None,
    x0: Any = None,
    random_state: int | np.random.Generator | None = 0,
    *,
    as_frame: Literal[True],
) -> pd.DataFrame: ...


@overload
def simulate(
    system: str,
    n_trajectories: int = 3,
    t_span: tuple[float, float] | None = None,
    n_samples: int = 60,
    noise: float = 0.05,
    irregular: bool = True,
    missing: float = 0.0,
    inputs: InputFunction | Sequence[InputFunction] | None = None,
    x0: Any = None,
    random_state: int | np.random.Generator | None = 0,
    as_frame: bool = False,
) -> Trajectories | pd.DataFrame: ...


def simulate(
    system: str,
    n_trajectories: int = 3,
    t_span: tuple[float, float] | None = None,
    n_samples: int = 60,
    noise: float = 0.05,
    irregular: bool = True,
    missing: float = 0.0,
    inputs: InputFunction | Sequence[InputFunction] | None = None,
    x0: Any = None,
    random_state: int | np.random.Generator | None = 0,
    as_frame: bool = False,
) -> Trajectories | pd.DataFrame:
    """Simulate noisy measurements of a benchmark system, with its ground truth kept.

    Each trajectory starts from its own initial state, is integrated with
    :func:`scipy.integrate.solve_ivp` at tight tolerance (``rtol=1e-10``,
    ``atol=1e-12``; the stiff ``robertson`` system uses LSODA with its analytic
    Jacobian), sampled at its own times, corrupted by Gaussian noise and thinned by
    missing values.

    Parameters
    ----------
    system : str
        One of :data:`sysid.datasets.SYSTEMS`: ``"lotka_volterra"``,
        ``"van_der_pol"``, ``"duffing"``, ``"pendulum"``, ``"lorenz"``,
        ``"mass_spring_damper"`` (forced, input ``"force"``) or ``"robertson"``
        (stiff; sampled log-spaced in time).
    n_trajectories : int, default 3
        Number of experiments, named ``"run0"``, ``"run1"``, ...
    t_span : (float, float), optional
        Start and end time; default the system's own ``truth(system).t_span``.
    n_samples : int, default 60
        Sample times per trajectory (at least 2).
    noise : float, default 0.05
        Relative noise level: each state gets additive Gaussian noise with standard
        deviation ``noise * std(clean state over all trajectories and times)``.
    irregular : bool, default True
        True: the first sample is at ``t_span[0]`` and the others are distinct sorted
        uniform random times in the span, different for every trajectory. False: a
        uniform grid from ``t_span[0]`` to ``t_span[1]``. For ``robertson`` the same
        applies to ``log10(t - t_span[0])`` over 10 decades below the span length
        (the grid is ``t_span[0]`` then ``geomspace(1e-10 L, L)`` with ``L`` the span).
    missing : float, default 0.0
        Fraction of state entries replaced by NaN ("not observed"), chosen at random.
        Two random rows of every trajectory are kept fully observed, so at most
        ``1 - 2 / n_samples`` can be missing.
    inputs : callable or list of callables, optional
        Only for systems with inputs. ``u(t) -> array (n_inputs,)``, one callable
        for all trajectories or a list with one per trajectory. Default: a smooth
        multisine force with random phases per trajectory (frequencies 0.07, 0.13 and
        0.21 Hz, below the 0.32 Hz natural frequency, amplitude 1 each). The inputs
        are recorded exactly (no noise) at every sample time.
    x0 : array of shape (n_trajectories, n_states) or (n_states,), optional
        Initial states at ``t_span[0]``; a single row is used for every trajectory.
        Default: drawn uniformly from ``truth(system).x0_range``.
    random_state : int, numpy.random.Generator or None, default 0
        Seed. The same int gives identical data. Initial states, times, inputs, noise
        and missing entries come from independent streams, so changing ``noise`` or
        ``missing`` alone keeps the same times, states and input signals. None draws
        fresh entropy (not reproducible).
    as_frame : bool, default False
        Return ``data.to_pandas()`` (long format: ``trajectory, t, states...,
        inputs...``) instead of the :class:`~sysid.Trajectories`.

    Returns
    -------
    Trajectories or pandas.DataFrame
        ``attrs`` records ``system``, ``params``, ``noise``, ``missing``,
        ``irregular``, ``n_samples``, ``t_span``, ``sampling``, ``seed`` (None unless
        ``random_state`` was an int), ``x0`` (list of initial states), ``inputs``
        (how the inputs were made) and ``noise_std`` (absolute noise std per state).

    Raises
    ------
    ValueError
        For an unknown system (with the closest name suggested) or an out-of-range
        scalar argument; the message names the value and the accepted ones.
    DataError
        For ``x0`` or ``inputs`` of the wrong shape or kind (a ``ValueError`` too).

    See Also
    --------
    truth : the equations, parameters and library coefficients of each system.

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> data = simulate("lotka_volterra", n_trajectories=2, n_samples=50, random_state=1)
    >>> data
    Trajectories(n_trajectories=2, states=['prey', 'predator'], inputs=[], n_times=[50, 50], time_kind='float')
    >>> data.names, data.attrs["system"], data[0].t[0]
    (['run0', 'run1'], 'lotka_volterra', np.float64(0.0))
    >>> forced = simulate("mass_spring_damper", n_trajectories=1, noise=0.0, irregular=False)
    >>> forced.input_names, forced[0].u.shape
    (('force',), (60, 1))
    """
    name = check_system(system)
    sys_truth = truth(name)
    n_traj = _check_int(n_trajectories, "n_trajectories", minimum=1)
    n = _check_int(n_samples, "n_samples", minimum=2)
    span = _check_span(t_span, sys_truth)
    noise_level = _check_fraction(noise, "noise", upper=None)
    missing_frac = _check_fraction(missing, "missing", upper=1.0)
    max_missing = 1.0 - 2.0 / n
    if missing_frac > max_missing + 1e-12:
        raise ValueError(
            f"missing={missing!r} is too large for n_samples={n}: every trajectory keeps at "
            f"least two observed rows, so missing must be at most 1 - 2/n_samples = "
            f"{max_missing:.4g}. Lower missing or raise n_samples."
        )
    for flag, label in ((irregular, "irregular"), (as_frame, "as_frame")):
        if not isinstance(flag, bool | np.bool_):
            raise ValueError(f"{label} must be True or False, got {flag!r}.")
    rng, seed = _check_random_state(random_state)
    streams = dict(zip(_STREAMS, rng.spawn(len(_STREAMS))))

    starts = _initial_states(x0, n_traj, sys_truth, streams["x0"])
    signals, input_kind = _input_signals(inputs, n_traj, sys_truth, streams["inputs"])

    times = [_sample_times(span, n, irregular, sys_truth, streams["times"]) for _ in range(n_traj)]
    us = None
    if sys_truth.input_names:  # recorded first: this also checks the user's callables
        us = [_record_input(u, t, sys_truth) for u, t in zip(signals, times) if u is not None]  # none is None
    clean = [sys_truth.simulate(t, s, u) for t, s, u in zip(times, starts, signals)]

    scale = np.std(np.concatenate(clean), axis=0)
    noise_std = noise_level * scale
    noisy = [c + noise_std * streams["noise"].standard_normal(c.shape) for c in clean]
    if missing_frac > 0:
        noisy = _drop_entries(noisy, missing_frac, streams["missing"])

    data = Trajectories.from_arrays(
        times, noisy, us,
        state_names=sys_truth.state_names,
        input_names=sys_truth.input_names,
        names=[f"run{i}" for i in range(n_traj)],
    )
    data.attrs.update({
        "source": "sysid.datasets.simulate",
        "system": name,
        "params": dict(sys_truth.params),
        "noise": float(noise_level),
        "noise_std": dict(zip(sys_truth.state_names, noise_std.tolist())),
        "missing": float(missing_frac),
        "irregular": bool(irregular),
        "n_samples": n,
        "t_span": span,
        "sampling": sys_truth.sampling,
        "seed": seed,
        "x0": starts.tolist(),
        "inputs": input_kind,
    })
    # Labelled output always has a "trajectory" column / dimension, even for one run.
    data.source.update({"time": "t", "trajectory": "trajectory"})
    return data.to_pandas() if as_frame else data


# ------------------------------------------------------------------ validation
def _check_int(value: object, label: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_fraction(value: object, label: str, upper: float | None) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if ok else float("nan")  # type: ignore[arg-type]
    if not np.isfinite(number) or number < 0 or (upper is not None and number >= upper):
        accepted = f"in [0, {upper:g})" if upper is not None else "a finite number >= 0"
        raise ValueError(f"{label} must be {accepted}, got {value!r}.")
    return number


def _check_span(t_span: object, sys_truth: SystemTruth) -> tuple[float, float]:
    if t_span is None:
        return sys_truth.t_span
    try:
        start, end = (float(v) for v in t_span)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(
            f"t_span must be a pair (t_start, t_end) of numbers, got {t_span!r}; "
            f"the default for {sys_truth.name!r} is {sys_truth.t_span}."
        ) from None
    if not (np.isfinite(start) and np.isfinite(end) and end > start):
        raise ValueError(
            f"t_span must be finite with t_end > t_start, got {t_span!r}; "
            f"the default for {sys_truth.name!r} is {sys_truth.t_span}."
        )
    return start, end


def _check_random_state(random_state: object) -> tuple[np.random.Generator, int | None]:
    if random_state is None:
        return np.random.default_rng(), None
    if isinstance(random_state, np.random.Generator):
        return random_state, None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state!r}.")
        return np.random.default_rng(int(random_state)), int(random_state)
    raise ValueError(
        f"random_state must be an int, a numpy.random.Generator or None, got {random_state!r}."
    )


def _initial_states(
    x0: Any, n_traj: int, sys_truth: SystemTruth, rng: np.random.Generator
) -> np.ndarray:
    n_states = sys_truth.n_states
    if x0 is None:
        low, high = np.array([sys_truth.x0_range[s] for s in sys_truth.state_names]).T
        return rng.uniform(low, high, size=(n_traj, n_states))
    try:
        arr = np.array(x0, dtype=float)
    except (TypeError, ValueError):
        arr = np.array([])
    if arr.ndim == 1 and arr.shape == (n_states,):
        arr = np.tile(arr, (n_traj, 1))
    if arr.shape != (n_traj, n_states) or not np.all(np.isfinite(arr)):
        raise DataError(
            f"x0 must be a finite array of shape (n_trajectories, n_states) = ({n_traj}, "
            f"{n_states}) for states {list(sys_truth.state_names)} (or one row of "
            f"{n_states} values for all), got shape {np.shape(x0)}. Set n_trajectories to "
            "the number of rows."
        )
    return arr


def _input_signals(
    inputs: Any, n_traj: int, sys_truth: SystemTruth, rng: np.random.Generator
) -> tuple[list[InputFunction | None], str | None]:
    if not sys_truth.input_names:
        if inputs is not None:
            raise DataError(
                f"{sys_truth.name!r} has no inputs, so inputs must be None, got {inputs!r}. "
                "Systems with inputs: mass_spring_damper."
            )
        return [None] * n_traj, None
    if inputs is None:
        make_input = sys_truth.make_input
        if make_input is None:  # pragma: no cover - every forced system has a default
            raise DataError(f"{sys_truth.name!r} has no default input; pass inputs=.")
        return [make_input(rng) for _ in range(n_traj)], "default multisine, random phases"
    if callable(inputs):
        return [inputs] * n_traj, "user callable"
    if isinstance(inputs, Sequence) and not isinstance(inputs, str):
        signals = list(inputs)
        if len(signals) != n_traj or not all(callable(f) for f in signals):
            raise DataError(
                f"inputs as a list needs one callable u(t) per trajectory ({n_traj}), got "
                f"{len(signals)} item(s) of types {sorted({type(f).__name__ for f in signals})}."
            )
        return signals, "user callables, one per trajectory"
    raise DataError(
        "inputs must be None (default multisine), a callable u(t) -> array "
        f"(n_inputs,) or a list of such callables, got {type(inputs).__name__}."
    )


def _record_input(u: Callable[[float], Any], t: np.ndarray, sys_truth: SystemTruth) -> np.ndarray:
    values = np.array([np.reshape(np.asarray(u(ti), dtype=float), -1) for ti in t])
    if values.shape != (t.size, sys_truth.n_inputs) or not np.all(np.isfinite(values)):
        raise DataError(
            f"the input callable must return {sys_truth.n_inputs} finite value(s) "
            f"{list(sys_truth.input_names)} for every t; got values of shape "
            f"{values.shape[1:]} (or non-finite values)."
        )
    return values


# ------------------------------------------------------------------- sampling
def _sample_times(
    span: tuple[float, float], n: int, irregular: bool, sys_truth: SystemTruth,
    rng: np.random.Generator,
) -> np.ndarray:
    start, end = span
    length = end - start
    log = sys_truth.sampling == "log"
    if not irregular:
        if log:
            offsets = length * np.logspace(-sys_truth.log_decades, 0.0, n - 1)
            return start + np.concatenate([[0.0], offsets])
        return np.linspace(start, end, n)
    while True:
        if log:
            offsets = length * 10.0 ** rng.uniform(-sys_truth.log_decades, 0.0, n - 1)
        else:
            offsets = length * rng.uniform(0.0, 1.0, n - 1)
        t = start + np.sort(np.concatenate([[0.0], offsets]))
        if np.all(np.diff(t) > 0):  # distinct, and none equal to t_start (vanishingly rare)
            return t


def _drop_entries(
    ys: list[np.ndarray], fraction: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Set ``round(fraction * total)`` entries to NaN, keeping two full rows per trajectory."""
    out = [y.copy() for y in ys]
    candidates: list[tuple[int, int, int]] = []
    total = 0
    for k, y in enumerate(out):
        n_rows, n_cols = y.shape
        total += y.size
        kept = set(rng.choice(n_rows, size=2, replace=False).tolist())
        candidates.extend((k, r, c) for r in range(n_rows) if r not in kept for c in range(n_cols))
    n_drop = min(round(fraction * total), len(candidates))  # fraction is a float: round gives an int
    for idx in rng.choice(len(candidates), size=n_drop, replace=False):
        k, r, c = candidates[idx]
        out[k][r, c] = np.nan
    return out
