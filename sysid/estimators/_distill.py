"""Distil readable equations from any fitted model's vector field (symbolic distillation).

Sample states over the region the training data covered, evaluate the fitted model's
``vector_field`` there, and fit a sparse library regression (pysindy's library and
optimizer) to those exact, noise-free derivatives. No numerical differentiation is
involved: the derivatives come from the model itself.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any

import numpy as np
import pandas as pd

from sysid.equations import EquationsMixin
from sysid.errors import ConfigError, DataError, NotFittedError

_PADDING = 0.05  # fraction of the data range added on each side of the sampling box


class DistilledEquations(EquationsMixin):
    """Equations distilled from a model's vector field (the result of :func:`distill`).

    Attributes
    ----------
    coefficients_ : pandas.DataFrame
        Library terms x states (the model's state names), zeros for pruned terms.
    state_names_, input_names_ : list of str
    score_ : float
        R^2 of the equations against the model's vector field at the samples (1 is exact).
    box_ : pandas.DataFrame
        The sampled region: ``low``/``high`` per state (and input).
    library_ : pysindy feature library (fitted)
    optimizer_ : pysindy optimizer (fitted)
    """

    def __init__(
        self,
        coefficients: pd.DataFrame,
        state_names: list[str],
        input_names: list[str],
        score: float,
        box: pd.DataFrame,
        library: Any,
        optimizer: Any,
    ) -> None:
        self.coefficients_ = coefficients
        self.state_names_ = state_names
        self.input_names_ = input_names
        self.score_ = score
        self.box_ = box
        self.library_ = library
        self.optimizer_ = optimizer

    def vector_field(self, x: Any, u: Any = None) -> np.ndarray:
        """dx/dt of the distilled equations at states ``x`` (n_points, n_states) or (n_states,)."""
        x_arr = np.asarray(x, dtype=float)
        single = x_arr.ndim == 1
        x2 = np.atleast_2d(x_arr)
        if x2.shape[1] != len(self.state_names_):
            raise DataError(f"x must have {len(self.state_names_)} columns {self.state_names_}, got {x_arr.shape}.")
        if self.input_names_:
            if u is None:
                raise DataError(f"the equations have inputs {self.input_names_}: pass u=.")
            x2 = np.concatenate(
                [x2, np.broadcast_to(np.atleast_2d(np.asarray(u, dtype=float)), (x2.shape[0], len(self.input_names_)))],
                axis=1,
            )
        theta = np.asarray(self.library_.transform(x2))
        out = theta @ self.coefficients_.to_numpy()
        return out[0] if single else out

    def __repr__(self) -> str:
        lines = "\n".join(f"  {line}" for line in self.equations())
        return f"DistilledEquations(R^2={self.score_:.4f}):\n{lines}"


def _check_model(model: Any) -> None:
    if not callable(getattr(model, "vector_field", None)):
        raise ConfigError(f"distill needs a fitted sysid model with a vector_field method, got {type(model).__name__}.")
    fitted = model.__sklearn_is_fitted__() if hasattr(model, "__sklearn_is_fitted__") else True
    if not fitted or not hasattr(model, "state_names_"):
        raise NotFittedError(f"this {type(model).__name__} is not fitted yet; call fit before distill.")


def _box(model: Any, data: Any, bounds: Any, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Low and high corners of the sampling box over states then inputs."""
    n_states = len(model.state_names_)
    if bounds is not None:
        arr = np.asarray(bounds, dtype=float)
        if arr.shape != (len(names), 2) or not np.all(np.isfinite(arr)) or np.any(arr[:, 0] >= arr[:, 1]):
            raise ConfigError(
                f"bounds must be an array (n_states + n_inputs, 2) = ({len(names)}, 2) of finite (low, high) rows "
                f"with low < high, for {names}; got {np.asarray(bounds).tolist()!r}."
            )
        return arr[:, 0], arr[:, 1]
    if data is not None:
        from sysid.adapters import as_trajectories

        options = dict(getattr(model, "data_options_", {}) or {})
        trajectories = as_trajectories(data, **options)
        if list(trajectories.state_names) != list(model.state_names_):
            raise DataError(f"data has states {list(trajectories.state_names)}, the model {list(model.state_names_)}.")
        low, high = trajectories.observed_range()
        if trajectories.n_inputs:
            u = np.concatenate([tr.u for tr in trajectories])
            low, high = np.concatenate([low, u.min(axis=0)]), np.concatenate([high, u.max(axis=0)])
        pad = _PADDING * np.where(high > low, high - low, 1.0)
        return low - pad, high + pad
    scaling = getattr(model, "scaling_", None)
    if scaling is None:
        raise ConfigError(
            f"cannot tell which states {type(model).__name__} was trained on: pass data= (the training data) "
            "or bounds=."
        )
    center = np.concatenate([np.asarray(scaling.center, float)[:n_states], np.asarray(scaling.input_center, float)])
    spread = np.concatenate([np.asarray(scaling.spread, float)[:n_states], np.asarray(scaling.input_spread, float)])
    return center - 2 * spread, center + 2 * spread


def distill(
    model: Any,
    library: Any = "polynomial",
    degree: int = 2,
    threshold: float = 0.05,
    n_samples: int = 2000,
    random_state: int | None = 0,
    *,
    data: Any = None,
    bounds: Any = None,
) -> DistilledEquations:
    """Readable equations for a fitted model's vector field, by sparse regression on samples of it.

    States (and inputs) are sampled uniformly over a box; the model's
    ``vector_field`` gives exact derivatives there; pysindy's ``STLSQ`` sequentially
    thresholded least squares fits them on a pysindy feature library. Because the
    derivatives are exact, this recovers a sparse law well where the model is accurate
    (inside the data), unlike SINDy on noisy, irregular measurements.

    Parameters
    ----------
    model : fitted sysid model
        Anything with ``vector_field(x, t, u)`` and ``state_names_`` (``NeuralODE``,
        ``HybridODE``, ``GreyBoxODE``...).
    library : "polynomial" or a pysindy feature library, default "polynomial"
        ``"polynomial"`` is ``pysindy.PolynomialLibrary(degree=degree)``; a library
        instance is copied, never fitted in place.
    degree : int, default 2
    threshold : float, default 0.05
        STLSQ threshold: coefficients smaller in magnitude are pruned (physical units).
    n_samples : int, default 2000
    random_state : int or None, default 0
    data : training data, optional (keyword only)
        Sample over its observed range (padded by 5%). Recommended for neural models,
        which are only trustworthy where they saw data.
    bounds : array (n_states + n_inputs, 2), optional (keyword only)
        An explicit (low, high) per state, then per input.

    Without ``data`` or ``bounds`` the box is the model's scaling center +/- 2 spreads
    (mean +/- 2 standard deviations of the training data).

    Returns
    -------
    DistilledEquations
        With ``coefficients_`` (terms x states), ``equations()`` and ``score_``.

    Raises
    ------
    NotFittedError
        If the model is not fitted.
    ConfigError
        For an unknown library, bad degree/threshold/n_samples or bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> class Decay:  # any fitted model with a vector field
    ...     state_names_, input_names_ = ["x"], []
    ...     scaling_ = SimpleNamespace(center=[1.0], spread=[0.5], input_center=[], input_spread=[])
    ...
    ...     def __sklearn_is_fitted__(self):
    ...         return True
    ...
    ...     def vector_field(self, x, t=0.0, u=None):
    ...         return -0.7 * np.asarray(x)
    >>> distill(Decay()).equations()
    ['d x/dt = -0.700 x']
    """
    import pysindy as ps

    _check_model(model)
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 1:
        raise ConfigError(f"degree must be a positive integer, got {degree!r}.")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not threshold >= 0:
        raise ConfigError(f"threshold must be a non-negative number, got {threshold!r}.")
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 2:
        raise ConfigError(f"n_samples must be an integer >= 2, got {n_samples!r}.")
    if isinstance(library, str):
        if library != "polynomial":
            raise ConfigError(f"library must be 'polynomial' or a pysindy feature library, got {library!r}.")
        lib = ps.PolynomialLibrary(degree=int(degree))
    elif hasattr(library, "fit") and hasattr(library, "transform") and hasattr(library, "get_feature_names"):
        lib = copy.deepcopy(library)
    else:
        raise ConfigError(f"library must be 'polynomial' or a pysindy feature library, got {type(library).__name__}.")
    states = [str(s) for s in model.state_names_]
    inputs = [str(s) for s in (getattr(model, "input_names_", None) or [])]
    names = states + inputs
    low, high = _box(model, data, bounds, names)
    rng = np.random.default_rng(random_state)
    samples = low + (high - low) * rng.random((int(n_samples), len(names)))
    x, u = samples[:, : len(states)], samples[:, len(states) :]
    dx = np.asarray(model.vector_field(x, 0.0, u if inputs else None), dtype=float).reshape(len(x), len(states))
    if not np.all(np.isfinite(dx)):
        raise DataError(
            "the model's vector field is not finite everywhere in the sampling box; pass a smaller bounds= or data=."
        )
    lib.fit(samples)
    theta = np.asarray(lib.transform(samples))
    optimizer = ps.STLSQ(threshold=float(threshold))
    optimizer.fit(theta, dx)
    coef = np.asarray(optimizer.coef_, dtype=float).T
    terms = [str(n) for n in lib.get_feature_names(input_features=names)]
    table = pd.DataFrame(coef, index=pd.Index(terms, name="term"), columns=pd.Index(states, name="state"))
    fitted = theta @ coef
    total = np.sum((dx - dx.mean(axis=0)) ** 2, axis=0)
    resid = np.sum((dx - fitted) ** 2, axis=0)
    score = float(np.mean(np.where(total > 0, 1 - resid / np.where(total > 0, total, 1), resid == 0)))
    box = pd.DataFrame({"low": low, "high": high}, index=pd.Index(names, name="variable"))
    return DistilledEquations(table, states, inputs, score, box, lib, optimizer)
