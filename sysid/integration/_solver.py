"""Validated solver settings forwarded to torchdiffeq."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sysid.errors import ConfigError
from sysid.parts import Part

ADAPTIVE_METHODS = frozenset({"dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun"})
FIXED_METHODS = frozenset(
    {"euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams"}
)
# The methods of torchdiffeq 0.2's ``odeint`` (its own table, ``SOLVERS``, is private; scipy_solver is
# left out: it runs scipy on the CPU outside the autograd graph).
METHODS = ADAPTIVE_METHODS | FIXED_METHODS
# Options torchdiffeq's solvers accept, by family (torchdiffeq only *warns* on unknown keys).
_ADAPTIVE_OPTIONS = frozenset(
    {"first_step", "safety", "ifactor", "dfactor", "max_num_steps", "max_step", "min_step", "norm"}
)
_FIXED_OPTIONS = frozenset({"step_size", "perturb", "interp", "max_iters"})


@dataclass(frozen=True)
class SolverConfig:
    """ODE solver settings, checked against what torchdiffeq supports.

    Parameters
    ----------
    method : str
        A torchdiffeq solver name (``"dopri5"``, ``"rk4"``, ...).
    rtol, atol : float
        Tolerances of adaptive solvers, applied to the internally scaled state (order 1).
    options : mapping
        Solver options: ``max_num_steps``, ``first_step``, ``max_step`` for adaptive
        methods; ``step_size`` (in the solver's time) for fixed-step ones.

    Examples
    --------
    >>> SolverConfig("dopri5", rtol=1e-6, atol=1e-8).adaptive
    True
    >>> SolverConfig("rk45")
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: unknown solver 'rk45'; torchdiffeq provides ...
    """

    method: str = "dopri5"
    rtol: float = 1e-6
    atol: float = 1e-8
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            names = sorted(METHODS)
            close = difflib.get_close_matches(str(self.method), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown solver {self.method!r}; torchdiffeq provides {names}.{hint}")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ConfigError(f"{name} must be a positive number, got {value!r}.")
        if not isinstance(self.options, Mapping):
            raise ConfigError(
                f"solver options must be a dict such as {{'max_num_steps': 20000}}, got {self.options!r}."
            )
        allowed = _ADAPTIVE_OPTIONS if self.adaptive else _FIXED_OPTIONS
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for solver {self.method!r}; allowed: {sorted(allowed)}.")
        for name in ("max_num_steps",):
            value = self.options.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"solver option {name} must be a positive integer, got {value!r}.")
        for name in ("first_step", "max_step", "min_step", "step_size", "safety", "ifactor", "dfactor"):
            value = self.options.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value == float("inf")
            ):
                raise ConfigError(f"solver option {name} must be a positive finite number, got {value!r}.")

    @property
    def adaptive(self) -> bool:
        """Whether the method chooses its own step size."""
        return self.method in ADAPTIVE_METHODS

    def with_step_budget(self, max_num_steps: int) -> SolverConfig:
        """The same solver, giving up after ``max_num_steps`` steps between two output times.

        A smaller budget already in ``options`` stays; fixed-step methods are returned
        unchanged (they take the steps their ``step_size`` gives). Past the budget,
        :func:`~sysid.integration.solve` raises :class:`~sysid.integration.SolverFailure`.

        Examples
        --------
        >>> SolverConfig("dopri5").with_step_budget(1000).options
        {'max_num_steps': 1000}
        >>> SolverConfig("dopri5", options={"max_num_steps": 50}).with_step_budget(1000).options
        {'max_num_steps': 50}
        """
        if isinstance(max_num_steps, bool) or not isinstance(max_num_steps, int) or max_num_steps < 1:
            raise ConfigError(f"with_step_budget: max_num_steps must be a positive integer, got {max_num_steps!r}.")
        if not self.adaptive:
            return self
        own = self.options.get("max_num_steps")
        steps = max_num_steps if own is None else min(own, max_num_steps)
        return dataclasses.replace(self, options={**self.options, "max_num_steps": steps})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "options": dict(self.options)}


GRADIENTS = ("adjoint", "backprop")
INTERPOLATIONS = ("linear", "zoh")


class Solver(Part):
    """How the vector field is integrated: a torchdiffeq method, its tolerances, its gradients.

    Parameters
    ----------
    method : str, default "dopri5"
        A torchdiffeq solver: adaptive ``"dopri5"``, ``"dopri8"``, ``"bosh3"``,
        ``"fehlberg2"``, ``"adaptive_heun"``, or fixed-step ``"rk4"``, ``"euler"``,
        ``"midpoint"``...
    rtol, atol : float, default 1e-4, 1e-6
        Tolerances of adaptive methods on the internally scaled state (order one):
        solver errors 100 times below a 1% measurement noise, at a third of the cost
        of 1e-6 / 1e-8.
    options : dict, optional
        torchdiffeq options: ``max_num_steps`` (default 10,000 steps between two output
        times), ``first_step``, ``max_step`` for adaptive methods; ``step_size`` (in
        the solver's time, where a sample interval is one unit) for fixed-step ones.
        Unknown names are an error, not a warning.
    gradient : {"adjoint", "backprop"}, default "adjoint"
        Adjoint sensitivities (:func:`torchdiffeq.odeint_adjoint`, O(1) memory in the
        number of steps) or backpropagation through the solver's operations (faster
        on small problems; see benchmarks/).
    input_interpolation : {"linear", "zoh"}, default "linear"
        How inputs u(t) are read between their samples: linearly, or held (zero-order
        hold, as a digital controller does).

    Examples
    --------
    >>> import sysid
    >>> sysid.NeuralODE(solver=Solver(method="rk4", options={"step_size": 0.5})).solver
    Solver(method='rk4', options={'step_size': 0.5})
    >>> Solver(method="rk45").check()
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: unknown solver 'rk45'; torchdiffeq provides ...
    """

    role = "solver"

    def __init__(
        self,
        *,
        method: str = "dopri5",
        rtol: float = 1e-4,
        atol: float = 1e-6,
        options: Mapping[str, Any] | None = None,
        gradient: str = "adjoint",
        input_interpolation: str = "linear",
    ) -> None:
        self.method = method
        self.rtol = rtol
        self.atol = atol
        self.options = options
        self.gradient = gradient
        self.input_interpolation = input_interpolation

    def check(self) -> None:
        """Validate every parameter (a :class:`~sysid.ConfigError` names the one at fault)."""
        self.config()
        self._choice("gradient", GRADIENTS)
        self._choice("input_interpolation", INTERPOLATIONS)

    def config(self) -> SolverConfig:
        """The validated, frozen :class:`SolverConfig` the integration layer uses."""
        options = {} if self.options is None else self.options
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"Solver(options=...) must be a dict of torchdiffeq options such as {{'max_num_steps': 20000}}, "
                f"got {options!r}."
            )
        if not isinstance(self.method, str):
            raise ConfigError(f"Solver(method=...) must be a torchdiffeq method name, got {self.method!r}.")
        return SolverConfig(self.method, self.rtol, self.atol, dict(options))
