"""The one check of a parametric model's ``params``/``bounds``/``fixed``, with one bound rule.

Every parametric estimator (:class:`~sysid.ClassicalODE`, :class:`~sysid.GreyBoxODE`,
the physics of :class:`~sysid.HybridODE`) validates its parameters here, in ``fit``.

The bound rule: **bounds are closed**, ``low <= value <= high``. A start on a bound is
accepted (``{"k": 0.0}`` with ``bounds={"k": (0, None)}``), and an estimate may end on
one. ``low`` must be strictly below ``high``: to hold a parameter at one value, list it
in ``fixed``. Closed bounds are what :func:`scipy.optimize.least_squares` enforces;
the smooth transforms of the gradient-trained models (:mod:`sysid.parameters._transform`)
start a parameter that sits on a bound just inside it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sysid.errors import ConfigError

Bound = tuple[float | None, float | None]


@dataclass(frozen=True, eq=False)
class ParameterSpec:
    """Named parameters with start values, closed bounds and a free/fixed flag.

    Build it with :func:`check_parameters`. Arrays are in the order of ``names``
    (the order of the ``params`` dict); open bounds are infinite.

    Attributes
    ----------
    names : tuple of str
    values : array (n_params,)
        Start values (the values of fixed parameters).
    lower, upper : arrays (n_params,)
        Closed bounds, ``-inf``/``inf`` for an open side.
    free : bool array (n_params,)

    Examples
    --------
    >>> spec = check_parameters({"k": 0.0, "c": 2.0}, {"k": (0, None)}, ["c"])
    >>> spec.free_names, spec.fixed_names, spec.bounds["k"]
    (['k'], ['c'], (0.0, None))
    >>> spec.with_free([0.7])
    {'k': 0.7, 'c': 2.0}
    """

    names: tuple[str, ...]
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    free: np.ndarray

    @property
    def free_names(self) -> list[str]:
        """Names of the free parameters, in order."""
        return [n for n, f in zip(self.names, self.free) if f]

    @property
    def fixed_names(self) -> list[str]:
        """Names of the fixed parameters, in order."""
        return [n for n, f in zip(self.names, self.free) if not f]

    @property
    def initial(self) -> dict[str, float]:
        """``{name: start value}`` of every parameter."""
        return dict(zip(self.names, self.values.tolist()))

    @property
    def bounds(self) -> dict[str, Bound]:
        """``{name: (low, high)}`` with ``None`` for an open side, for the parameters that have bounds."""
        out: dict[str, Bound] = {}
        for name, lo, hi in zip(self.names, self.lower, self.upper):
            if np.isfinite(lo) or np.isfinite(hi):
                out[name] = (float(lo) if np.isfinite(lo) else None, float(hi) if np.isfinite(hi) else None)
        return out

    def free_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` of the free parameters (infinite where open)."""
        return self.lower[self.free].copy(), self.upper[self.free].copy()

    def with_free(self, free_values: Any) -> dict[str, float]:
        """``{name: value}`` of every parameter, the free ones set to ``free_values``."""
        values = self.values.copy()
        values[self.free] = np.asarray(free_values, dtype=float).reshape(-1)
        return dict(zip(self.names, values.tolist()))

    def on_bound(self, free_values: Any, rtol: float = 1e-6) -> np.ndarray:
        """Which free values lie on (or within ``rtol`` of) a bound: bool (n_free,)."""
        v = np.asarray(free_values, dtype=float).reshape(-1)
        lo, hi = self.free_bounds()
        tol = rtol * np.maximum(np.abs(v), 1e-12)
        return (v - lo <= tol) | (hi - v <= tol)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_parameters(
    params: Any, bounds: Any = None, fixed: Any = None, owner: str = "", allow_empty: bool = True
) -> ParameterSpec:
    """Validate ``params``/``bounds``/``fixed`` and return a :class:`ParameterSpec`.

    Parameters
    ----------
    params : dict of str to float
        Every parameter with its start value (the value of a fixed one).
    bounds : dict of str to (low, high), optional
        Closed bounds, ``None`` for an open side.
    fixed : list of str, optional
        Parameters held at their value in ``params``.
    owner : str
        Prefix of error messages (the estimator's name).
    allow_empty : bool
        Whether ``params`` may be empty.

    Raises
    ------
    ConfigError
        Naming the parameter at fault: a non-numeric value, an unknown name in
        ``bounds`` or ``fixed``, a malformed pair, ``low >= high``, or a start outside
        its bounds.

    Examples
    --------
    >>> check_parameters({"k": 1.0}, {"k": (0, None)}).bounds
    {'k': (0.0, None)}
    >>> check_parameters({"k": 1.0}, {"c": (0, 1)}, owner="GreyBoxODE")
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: GreyBoxODE: bounds names 'c', which is not a parameter; the parameters are ['k'].
    >>> check_parameters({"k": 2.0}, {"k": (0, 1)})
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: the start value params['k'] = 2.0 is outside its bounds (0, 1); start inside them \
(on a bound is allowed) or widen them.
    """
    prefix = f"{owner}: " if owner else ""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{prefix}params must be a dict {{name: start value}}, got {type(params).__name__}.")
    if not params and not allow_empty:
        raise ConfigError(f"{prefix}params must be a non-empty dict {{name: start value}}, got {params!r}.")
    names: list[str] = []
    values: list[float] = []
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{prefix}parameter names must be non-empty strings, got {name!r}.")
        number = _as_float(value)
        if number is None:
            raise ConfigError(f"{prefix}params[{name!r}] must be a finite number, got {value!r}.")
        names.append(name)
        values.append(number)
    lower = np.full(len(names), -np.inf)
    upper = np.full(len(names), np.inf)
    if bounds is None:
        bounds = {}
    if not isinstance(bounds, Mapping):
        raise ConfigError(f"{prefix}bounds must be a dict {{name: (low, high)}}, got {type(bounds).__name__}.")
    for name, pair in bounds.items():
        if name not in names:
            raise ConfigError(f"{prefix}bounds names {name!r}, which is not a parameter; the parameters are {names}.")
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ConfigError(
                f"{prefix}bounds[{name!r}] must be a pair (low, high) with None for an open side, got {pair!r}."
            )
        sides = []
        for side, value in zip(("low", "high"), pair):
            number = None if value is None else _as_float(value)
            if value is not None and number is None:
                raise ConfigError(f"{prefix}bounds[{name!r}] {side} must be a finite number or None, got {value!r}.")
            sides.append(number)
        lo, hi = sides
        i = names.index(name)
        lower[i] = -np.inf if lo is None else lo
        upper[i] = np.inf if hi is None else hi
        if not lower[i] < upper[i]:
            raise ConfigError(
                f"{prefix}bounds[{name!r}] = {tuple(pair)!r}: low must be below high (to hold "
                f"{name!r} at one value, list it in fixed=)."
            )
        if not lower[i] <= values[i] <= upper[i]:
            raise ConfigError(
                f"{prefix}the start value params[{name!r}] = {values[i]!r} is outside its bounds "
                f"{tuple(pair)!r}; start inside them (on a bound is allowed) or widen them."
            )
    if fixed is None:
        fixed = []
    if isinstance(fixed, str):
        fixed = [fixed]
    if not isinstance(fixed, Sequence | set | frozenset):
        raise ConfigError(f"{prefix}fixed must be a list of parameter names, got {fixed!r}.")
    for name in fixed:
        if name not in names:
            raise ConfigError(f"{prefix}fixed names {name!r}, which is not a parameter; the parameters are {names}.")
    held = set(fixed)
    return ParameterSpec(
        tuple(names),
        np.asarray(values, dtype=float),
        lower,
        upper,
        np.array([n not in held for n in names], dtype=bool),
    )
