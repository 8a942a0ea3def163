"""The benchmark systems: equations, true parameters, default ranges, spans and inputs.

Each system is described by a frozen :class:`SystemTruth` built fresh by :func:`truth`.
Everything here is plain numpy and scipy; nothing imports pandas, xarray or torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.integrate import solve_ivp

from sysid.errors import DataError

__all__ = ["SYSTEMS", "SystemTruth", "truth"]

InputFunction = Callable[[float], Any]
"""A known input: ``u(t)`` returning an array of shape (n_inputs,) (a scalar for one input)."""

Sampling = Literal["linear", "log"]


@dataclass(frozen=True, eq=False)
class SystemTruth:
    """The ground truth of one benchmark system.

    Attributes
    ----------
    name : str
        The system's name, one of :data:`SYSTEMS`.
    state_names : tuple of str
        State names, in the order of the state vector.
    input_names : tuple of str
        Input (control) names; empty for autonomous systems.
    params : dict of str to float
        The true parameter values (a fresh copy for every :func:`truth` call).
    rhs : callable ``rhs(t, x, u=None) -> ndarray``
        The true vector field dx/dt in numpy. ``x`` has shape (n_states,) or
        (batch, n_states); ``u`` has shape (n_inputs,) or (batch, n_inputs) and
        ``None`` means zero input. The result has the shape of ``x``.
    coefficients : dict or None
        ``{state: {term: coefficient}}``: the right-hand side written in pysindy's
        feature-name convention with the state (and input) names as features:
        ``"1"``, ``"prey"``, ``"prey predator"``, ``"x^2 v"``, ``"force"``,
        ``"sin(theta)"``. Terms absent from the inner dict have coefficient 0.
        ``None`` would mean the system has no finite library form (all systems
        shipped here have one).
    t_span : tuple of float
        Default ``(t_start, t_end)`` of a simulation.
    x0_range : dict of str to (float, float)
        Default interval, per state, from which initial states are drawn uniformly.
    sampling : {"linear", "log"}
        How default sample times are spread over the span: uniformly, or uniformly in
        ``log10(t - t_start)`` over ``log_decades`` decades (for stiff systems whose
        dynamics span many time scales).
    log_decades : float
        For ``sampling="log"``: the earliest sample after ``t_start`` is at
        ``(t_end - t_start) * 10**-log_decades``.
    method : {"RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA"}
        The :func:`scipy.integrate.solve_ivp` method used to simulate it.
    rtol, atol : float
        Solver tolerances.
    jac : callable or None
        Jacobian ``jac(t, x, u=None)`` of ``rhs`` for the stiff solver, or None.
    make_input : callable or None
        ``make_input(rng) -> u(t)``: draws the default random input signal of one
        trajectory (None for autonomous systems).
    equations : str
        The equations as text.

    Examples
    --------
    >>> from sysid.datasets import truth
    >>> lv = truth("lotka_volterra")
    >>> lv.state_names, lv.params["alpha"]
    (('prey', 'predator'), 1.5)
    >>> lv.rhs(0.0, [3.0, 1.5]).tolist()    # the equilibrium (gamma/delta, alpha/beta)
    [0.0, 0.0]
    >>> lv.coefficients["prey"]
    {'prey': 1.5, 'prey predator': -1.0}
    """

    name: str
    state_names: tuple[str, ...]
    input_names: tuple[str, ...]
    params: dict[str, float]
    rhs: Callable[..., np.ndarray]
    coefficients: dict[str, dict[str, float]] | None
    t_span: tuple[float, float]
    x0_range: dict[str, tuple[float, float]]
    sampling: Sampling = "linear"
    log_decades: float = 10.0
    method: Literal["RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA"] = "DOP853"
    rtol: float = 1e-10
    atol: float = 1e-12
    jac: Callable[..., np.ndarray] | None = None
    make_input: Callable[[np.random.Generator], InputFunction] | None = None
    equations: str = field(default="", repr=False)

    @property
    def n_states(self) -> int:
        """Number of states."""
        return len(self.state_names)

    @property
    def n_inputs(self) -> int:
        """Number of inputs."""
        return len(self.input_names)

    def simulate(self, t: Any, x0: Any, u: InputFunction | None = None) -> np.ndarray:
        """Noise-free states at times ``t`` starting from ``x0`` at ``t[0]``.

        Parameters
        ----------
        t : array of shape (n_times,)
            Strictly increasing finite times; ``x0`` is the state at ``t[0]``.
        x0 : array of shape (n_states,)
            Initial state.
        u : callable ``u(t) -> array (n_inputs,)``, optional
            The input signal for a forced system; None means zero input. Ignored
            (must be None) for autonomous systems.

        Returns
        -------
        ndarray of shape (n_times, n_states)

        Raises
        ------
        DataError
            If ``t`` or ``x0`` have the wrong shape or values.
        RuntimeError
            If the solver fails (it should not at the default settings).

        Examples
        --------
        >>> import numpy as np
        >>> from sysid.datasets import truth
        >>> msd = truth("mass_spring_damper")
        >>> msd.simulate(np.array([0.0, 1.0]), [1.0, 0.0]).shape
        (2, 2)
        """
        times = np.asarray(t, dtype=float)
        if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
            raise DataError(
                f"t must be a non-empty 1-D array of finite times, got shape {times.shape}."
            )
        if times.size > 1 and np.any(np.diff(times) <= 0):
            raise DataError("t must be strictly increasing; sort it and drop repeated times.")
        state = np.asarray(x0, dtype=float)
        if state.shape != (self.n_states,) or not np.all(np.isfinite(state)):
            raise DataError(
                f"x0 for {self.name!r} must be {self.n_states} finite values "
                f"{list(self.state_names)}, got {np.asarray(x0).tolist()!r}."
            )
        if u is not None and not self.input_names:
            raise DataError(f"{self.name!r} has no inputs, but an input signal u was given.")
        if times.size == 1:
            return state[None, :].copy()
        signal = u if u is not None else _zero_input(self.n_inputs)

        def fun(s: float, x: np.ndarray) -> np.ndarray:
            return self.rhs(s, x, signal(s) if self.input_names else None)

        options: dict[str, Any] = {}
        if self.jac is not None:  # explicit Runge-Kutta methods warn about an unused jac
            jac_fn = self.jac

            def jac(s: float, x: np.ndarray) -> np.ndarray:
                return jac_fn(s, x, signal(s) if self.input_names else None)

            options["jac"] = jac
        sol = solve_ivp(
            fun, (times[0], times[-1]), state, method=self.method, t_eval=times,
            rtol=self.rtol, atol=self.atol, **options,
        )
        if not sol.success or sol.y.shape[1] != times.size:
            raise RuntimeError(
                f"solve_ivp ({self.method}) failed to simulate {self.name!r} from x0="
                f"{state.tolist()}: {sol.message}"
            )
        return np.ascontiguousarray(sol.y.T)


def _zero_input(n_inputs: int) -> InputFunction:
    zeros = np.zeros(n_inputs)
    return lambda t: zeros


def _vector_field(
    kernel: Callable[..., list[np.ndarray]], n_states: int, n_inputs: int, name: str
) -> Callable[..., np.ndarray]:
    """Wrap ``kernel(x_columns, u_columns) -> list of derivative columns`` as ``rhs(t, x, u)``."""

    def rhs(t: float, x: Any, u: Any = None) -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        if arr.shape[-1:] != (n_states,) or arr.ndim > 2:
            raise DataError(
                f"{name}: x must have shape (n_states,) or (batch, n_states) with "
                f"n_states={n_states}, got shape {arr.shape}."
            )
        ucols: list[np.ndarray] = []
        single = arr.ndim == 1
        if n_inputs:
            uarr = np.zeros(n_inputs) if u is None else np.asarray(u, dtype=float)
            if uarr.ndim == 0 and n_inputs == 1:
                uarr = uarr[None]
            if uarr.shape[-1:] != (n_inputs,) or uarr.ndim > 2:
                raise DataError(
                    f"{name}: u must have shape (n_inputs,) or (batch, n_inputs) with "
                    f"n_inputs={n_inputs}, got shape {uarr.shape}."
                )
            ucols = [uarr[..., i] for i in range(n_inputs)]
            single = single and uarr.ndim == 1
        if single:  # the solver's case: one state, scalars all the way (fast path)
            return np.array(kernel(list(arr), ucols), dtype=float)
        cols = [arr[..., i] for i in range(n_states)]
        return np.stack(np.broadcast_arrays(*kernel(cols, ucols)), axis=-1)

    return rhs


# ------------------------------------------------------------------------- systems
def _lotka_volterra() -> SystemTruth:
    p = {"alpha": 1.5, "beta": 1.0, "gamma": 3.0, "delta": 1.0}
    a, b, g, d = p["alpha"], p["beta"], p["gamma"], p["delta"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        prey, pred = x
        return [a * prey - b * prey * pred, d * prey * pred - g * pred]

    return SystemTruth(
        name="lotka_volterra",
        state_names=("prey", "predator"),
        input_names=(),
        params=p,
        rhs=_vector_field(kernel, 2, 0, "lotka_volterra"),
        coefficients={
            "prey": {"prey": a, "prey predator": -b},
            "predator": {"predator": -g, "prey predator": d},
        },
        t_span=(0.0, 10.0),
        # Below the equilibrium prey = gamma/delta = 3: every orbit oscillates clearly
        # (prey about 0.7-8, predator about 0.17-5.4) and stays well away from zero.
        x0_range={"prey": (1.0, 2.0), "predator": (0.5, 2.5)},
        equations=(
            "d prey/dt = alpha prey - beta prey predator\n"
            "d predator/dt = delta prey predator - gamma predator"
        ),
    )


def _van_der_pol() -> SystemTruth:
    p = {"mu": 1.0}
    mu = p["mu"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        pos, vel = x
        return [vel, mu * (1.0 - pos**2) * vel - pos]

    return SystemTruth(
        name="van_der_pol",
        state_names=("x", "v"),
        input_names=(),
        params=p,
        rhs=_vector_field(kernel, 2, 0, "van_der_pol"),
        coefficients={"x": {"v": 1.0}, "v": {"x": -1.0, "v": mu, "x^2 v": -mu}},
        t_span=(0.0, 15.0),
        x0_range={"x": (-3.0, 3.0), "v": (-3.0, 3.0)},
        equations="dx/dt = v\ndv/dt = mu (1 - x^2) v - x",
    )


def _duffing() -> SystemTruth:
    p = {"delta": 0.2, "alpha": -1.0, "beta": 1.0}
    d, a, b = p["delta"], p["alpha"], p["beta"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        pos, vel = x
        return [vel, -d * vel - a * pos - b * pos**3]

    return SystemTruth(
        name="duffing",
        state_names=("x", "v"),
        input_names=(),
        params=p,
        rhs=_vector_field(kernel, 2, 0, "duffing"),
        coefficients={"x": {"v": 1.0}, "v": {"x": -a, "v": -d, "x^3": -b}},
        t_span=(0.0, 15.0),
        x0_range={"x": (-2.0, 2.0), "v": (-1.0, 1.0)},
        equations="dx/dt = v\ndv/dt = -delta v - alpha x - beta x^3   (double well at x = +-1)",
    )


def _pendulum() -> SystemTruth:
    p = {"g_over_L": 4.0, "b": 0.2}
    w2, b = p["g_over_L"], p["b"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        theta, omega = x
        return [omega, -w2 * np.sin(theta) - b * omega]

    return SystemTruth(
        name="pendulum",
        state_names=("theta", "omega"),
        input_names=(),
        params=p,
        rhs=_vector_field(kernel, 2, 0, "pendulum"),
        coefficients={"theta": {"omega": 1.0}, "omega": {"sin(theta)": -w2, "omega": -b}},
        t_span=(0.0, 10.0),
        # Energy below the separatrix (omega^2/2 + g/L (1 - cos theta) < 2 g/L): it swings,
        # never goes over the top.
        x0_range={"theta": (-2.0, 2.0), "omega": (-1.0, 1.0)},
        equations="d theta/dt = omega\nd omega/dt = -(g/L) sin(theta) - b omega",
    )


def _lorenz() -> SystemTruth:
    p = {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
    s, r, b = p["sigma"], p["rho"], p["beta"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        a, c, z = x
        return [s * (c - a), a * (r - z) - c, a * c - b * z]

    return SystemTruth(
        name="lorenz",
        state_names=("x", "y", "z"),
        input_names=(),
        params=p,
        rhs=_vector_field(kernel, 3, 0, "lorenz"),
        coefficients={
            "x": {"x": -s, "y": s},
            "y": {"x": r, "y": -1.0, "x z": -1.0},
            "z": {"x y": 1.0, "z": -b},
        },
        t_span=(0.0, 2.0),
        # A box around the attractor; the strong contraction pulls every start onto it
        # within a fraction of a time unit.
        x0_range={"x": (-15.0, 15.0), "y": (-20.0, 20.0), "z": (10.0, 40.0)},
        equations="dx/dt = sigma (y - x)\ndy/dt = x (rho - z) - y\ndz/dt = x y - beta z",
    )


MULTISINE_FREQUENCIES_HZ = (0.07, 0.13, 0.21)
"""Frequencies of the default mass-spring-damper force, below its 0.318 Hz natural frequency."""
MULTISINE_AMPLITUDE = 1.0


def _multisine(rng: np.random.Generator) -> InputFunction:
    """A smooth multisine force with random phases (one draw per trajectory)."""
    freqs = 2.0 * np.pi * np.asarray(MULTISINE_FREQUENCIES_HZ)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=freqs.size)

    def force(t: float) -> np.ndarray:
        return np.array([MULTISINE_AMPLITUDE * np.sum(np.sin(freqs * t + phases))])

    force.phases = phases  # type: ignore[attr-defined]
    return force


def _mass_spring_damper() -> SystemTruth:
    p = {"m": 1.0, "c": 0.5, "k": 4.0}
    m, c, k = p["m"], p["c"], p["k"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        pos, vel = x
        (force,) = u
        return [vel, (force - c * vel - k * pos) / m]

    return SystemTruth(
        name="mass_spring_damper",
        state_names=("position", "velocity"),
        input_names=("force",),
        params=p,
        rhs=_vector_field(kernel, 2, 1, "mass_spring_damper"),
        coefficients={
            "position": {"velocity": 1.0},
            "velocity": {"position": -k / m, "velocity": -c / m, "force": 1.0 / m},
        },
        t_span=(0.0, 20.0),
        x0_range={"position": (-1.0, 1.0), "velocity": (-1.0, 1.0)},
        make_input=_multisine,
        equations="d position/dt = velocity\nd velocity/dt = (force - c velocity - k position) / m",
    )


def _robertson() -> SystemTruth:
    p = {"k1": 0.04, "k2": 3.0e7, "k3": 1.0e4}
    k1, k2, k3 = p["k1"], p["k2"], p["k3"]

    def kernel(x: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
        y1, y2, y3 = x
        return [
            -k1 * y1 + k3 * y2 * y3,
            k1 * y1 - k3 * y2 * y3 - k2 * y2**2,
            k2 * y2**2,
        ]

    def jac(t: float, x: Any, u: Any = None) -> np.ndarray:
        _, y2, y3 = np.asarray(x, dtype=float)
        return np.array([
            [-k1, k3 * y3, k3 * y2],
            [k1, -k3 * y3 - 2.0 * k2 * y2, -k3 * y2],
            [0.0, 2.0 * k2 * y2, 0.0],
        ])

    return SystemTruth(
        name="robertson",
        state_names=("y1", "y2", "y3"),
        input_names=(),
        params=p,
        rhs=_vector_field(kernel, 3, 0, "robertson"),
        coefficients={
            "y1": {"y1": -k1, "y2 y3": k3},
            "y2": {"y1": k1, "y2 y3": -k3, "y2^2": -k2},
            "y3": {"y2^2": k2},
        },
        t_span=(0.0, 1.0e5),
        # The textbook start (1, 0, 0) with y1 perturbed by up to 10 % per trajectory.
        x0_range={"y1": (0.9, 1.1), "y2": (0.0, 0.0), "y3": (0.0, 0.0)},
        sampling="log",
        log_decades=10.0,
        # LSODA switches to BDF on stiffness; with the analytic Jacobian it is ~20x faster
        # than Radau here and agrees with a Radau rtol=1e-12 reference to ~1e-8 relative.
        method="LSODA",
        rtol=1e-10,
        atol=1e-14,
        jac=jac,
        equations=(
            "dy1/dt = -k1 y1 + k3 y2 y3\n"
            "dy2/dt = k1 y1 - k3 y2 y3 - k2 y2^2\n"
            "dy3/dt = k2 y2^2"
        ),
    )


_FACTORIES: Mapping[str, Callable[[], SystemTruth]] = {
    "lotka_volterra": _lotka_volterra,
    "van_der_pol": _van_der_pol,
    "duffing": _duffing,
    "pendulum": _pendulum,
    "lorenz": _lorenz,
    "mass_spring_damper": _mass_spring_damper,
    "robertson": _robertson,
}

SYSTEMS: tuple[str, ...] = tuple(_FACTORIES)
"""Names of the benchmark systems accepted by :func:`truth` and :func:`simulate`."""


def check_system(system: object) -> str:
    """Return ``system`` if it names a known system, else raise a ValueError with a suggestion."""
    if isinstance(system, str) and system in _FACTORIES:
        return system
    hint = ""
    if isinstance(system, str):
        close = difflib.get_close_matches(system, SYSTEMS, n=1, cutoff=0.5)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    raise ValueError(
        f"unknown system {system!r}.{hint} Accepted systems: {', '.join(SYSTEMS)}."
    )


def truth(system: str) -> SystemTruth:
    """The ground truth of a benchmark system: equations, parameters and defaults.

    Parameters
    ----------
    system : str
        One of :data:`SYSTEMS`.

    Returns
    -------
    SystemTruth
        A new object on every call, so changing its ``params`` dict changes nothing else.

    Raises
    ------
    ValueError
        For an unknown name; the message suggests the closest known one.

    Examples
    --------
    >>> from sysid.datasets import truth
    >>> pend = truth("pendulum")
    >>> pend.params
    {'g_over_L': 4.0, 'b': 0.2}
    >>> pend.coefficients["omega"]
    {'sin(theta)': -4.0, 'omega': -0.2}
    >>> truth("lorentz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown system 'lorentz'. Did you mean 'lorenz'? Accepted systems: ...
    """
    return _FACTORIES[check_system(system)]()
