"""Validated solver settings forwarded to torchdiffeq."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torchdiffeq._impl.odeint import SOLVERS

from sysid.errors import ConfigError

ADAPTIVE_METHODS = frozenset({"dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun"})
FIXED_METHODS = frozenset({"euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams"})
# Options torchdiffeq's solvers accept, by family (torchdiffeq only *warns* on unknown keys).
_ADAPTIVE_OPTIONS = frozenset({"first_step", "safety", "ifactor", "dfactor", "max_num_steps", "max_step", "min_step", "norm"})
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
        if self.method not in SOLVERS or self.method == "scipy_solver":
            names = sorted(k for k in SOLVERS if k != "scipy_solver")
            close = difflib.get_close_matches(str(self.method), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown solver {self.method!r}; torchdiffeq provides {names}.{hint}"
            )
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}.")
        allowed = _ADAPTIVE_OPTIONS if self.adaptive else _FIXED_OPTIONS
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {unknown} for solver {self.method!r}; allowed: {sorted(allowed)}."
            )

    @property
    def adaptive(self) -> bool:
        """Whether the method chooses its own step size."""
        return self.method in ADAPTIVE_METHODS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "options": dict(self.options)}
