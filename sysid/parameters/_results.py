"""The fitted results every parametric estimator shares: uncertainty attributes, intervals, model-file state."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, FitWarning
from sysid.parameters._profile import profile_interval
from sysid.parameters._spec import ParameterSpec
from sysid.parameters._uncertainty import (
    Uncertainty,
    check_level,
    interval_table,
    t_quantile,
)

METHODS = ("wald", "profile")


def _outside_sysid() -> int:
    """The ``stacklevel`` of a warning raised by this module's caller that points at the user's code."""
    frame: Any = sys._getframe(2)  # the caller of the function that warns
    level = 2
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] == "sysid":
        frame = frame.f_back
        level += 1
    return level


@dataclass
class ProfileProblem:
    """What :func:`~sysid.parameters.profile_interval` needs from an estimator.

    ``residuals``/``jacobian`` act on the whole fitted vector ``x_hat`` (the free
    parameters first, in the spec's order, then nuisance quantities such as initial
    states), weighted exactly as in the fit.
    """

    residuals: Callable[[np.ndarray], np.ndarray]
    x_hat: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    jacobian: Callable[[np.ndarray], np.ndarray] | None = None
    diff_step: float | None = None


class ParametricResults:
    """Mixin of :class:`~sysid.ClassicalODE`, :class:`~sysid.GreyBoxODE`: uncertainty and intervals.

    Subclasses implement ``_spec()`` (their :class:`ParameterSpec`) and
    ``_profile_problem(data)``; after a fit they call :meth:`_store_uncertainty`.
    """

    params_: dict[str, float]
    params_stderr_: dict[str, float]
    dof_: int
    unidentifiable_: list[str]
    residual_variance_: float

    if TYPE_CHECKING:  # implemented by the estimators (this mixin comes first in their bases)
        def _spec(self) -> ParameterSpec: ...

        def _profile_problem(self, data: Any) -> ProfileProblem: ...

    def _store_uncertainty(self, spec: ParameterSpec, unc: Uncertainty, noise: Mapping[Hashable, float]) -> None:
        """Set the uncertainty attributes from :func:`~sysid.parameters.linearised_uncertainty`'s result."""
        free = spec.free_names
        stderr = unc.of(free)
        self.params_stderr_ = {n: stderr.get(n, 0.0) for n in spec.names}
        self.covariance_ = unc.covariance_frame(free)
        self.jacobian_condition_ = float(unc.condition)
        self.unidentifiable_ = list(unc.unidentifiable)
        self.n_residuals_ = int(unc.n_residuals)
        self.dof_ = int(unc.dof)
        self.residual_variance_ = float(unc.s2)
        self.noise_levels_ = dict(noise)
        if self.unidentifiable_:
            warnings.warn(
                f"{type(self).__name__}: {self.unidentifiable_} are not identifiable from these data: the residual "
                f"Jacobian is near singular (condition number {unc.condition:.3g}) along directions that change "
                "them together without changing the fit, so only combinations of them are determined. Their "
                "standard errors are set to inf. Fix some of them (fixed=[...]), reparameterise, or add experiments "
                "that excite them.",
                FitWarning, stacklevel=_outside_sysid(),
            )

    def _clear_uncertainty(self, spec: ParameterSpec) -> None:
        """Uncertainty attributes when none could be computed (NaN standard errors)."""
        free = spec.free_names
        self.params_stderr_ = {n: (math.nan if f else 0.0) for n, f in zip(spec.names, spec.free)}
        self.covariance_ = pd.DataFrame(np.full((len(free), len(free)), np.nan), index=free, columns=free)
        self.jacobian_condition_ = math.nan
        self.unidentifiable_ = []
        self.n_residuals_ = 0
        self.dof_ = 1
        self.residual_variance_ = math.nan
        self.noise_levels_ = {}

    def confidence_intervals(self, level: float = 0.95, method: str = "wald", data: Any = None) -> pd.DataFrame:
        """Confidence intervals of the parameters.

        Parameters
        ----------
        level : float in (0, 1), default 0.95
        method : {"wald", "profile"}
            ``"wald"``: estimate -/+ t * stderr, the linearisation at the optimum with
            Student's t (``dof_`` degrees of freedom), clipped to the bounds.
            ``"profile"``: profile likelihood, each parameter held at trial values while
            everything else is refitted; asymmetric where the model is nonlinear, and
            it costs dozens of refits per parameter. It needs the training data again
            (``data=``).
        data : Trajectories, DataFrame, Dataset or array, optional
            The training data, for ``method="profile"`` (read like ``predict``'s input).

        Returns
        -------
        pandas.DataFrame
            One row per parameter (index ``parameter``, fixed ones included), columns
            ``estimate``, ``stderr``, ``lower``, ``upper`` and ``status``
            (``"estimated"``, ``"fixed"``, ``"not identifiable"`` or ``"on bound"``): the
            one table of every parametric estimator (:func:`sysid.parameters.interval_table`).
        """
        check_is_fitted(self)
        level = check_level(level)
        if method not in METHODS:
            raise ConfigError(f"method must be one of {list(METHODS)}, got {method!r}.")
        spec = self._spec()
        intervals = None
        if method == "profile":
            if data is None:
                raise ConfigError("method='profile' refits the model around its estimate and needs the training "
                                  "data again: confidence_intervals(method='profile', data=train).")
            intervals = self._profile_intervals(spec, level, data)
        return interval_table(spec, self.params_, self.params_stderr_, self.dof_, level, self.unidentifiable_,
                              intervals)

    def _profile_intervals(self, spec: ParameterSpec, level: float, data: Any) -> dict[str, tuple[float, float]]:
        problem = self._profile_problem(data)
        q = t_quantile(level, self.dof_)
        threshold = self.residual_variance_ * q**2
        out = {}
        for k, name in enumerate(spec.free_names):
            if name in self.unidentifiable_:
                continue
            try:
                lo, hi, _ = profile_interval(problem.residuals, problem.x_hat, k, problem.lower, problem.upper,
                                             threshold, q * self.params_stderr_[name], problem.jacobian,
                                             problem.diff_step)
            except (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError):
                lo, hi = math.nan, math.nan
            out[name] = (lo, hi)
        return out

    # -- model files -------------------------------------------------------------------
    _RESULTS_JSON: ClassVar[tuple[str, ...]] = ("params_", "params_stderr_", "jacobian_condition_",
                                                "unidentifiable_", "n_residuals_", "dof_", "residual_variance_",
                                                "noise_levels_")
    _RESULTS_DEFAULTS: ClassVar[dict[str, Any]] = {"residual_variance_": math.nan, "noise_levels_": {},
                                                   "n_residuals_": 0, "jacobian_condition_": math.nan,
                                                   "unidentifiable_": []}

    def _results_state(self) -> dict[str, Any]:
        """JSON-ready uncertainty attributes."""
        state = {name: getattr(self, name) for name in self._RESULTS_JSON}
        state["covariance_"] = self.covariance_.to_numpy().tolist()
        return state

    def _set_results_state(self, state: dict[str, Any], spec: ParameterSpec) -> None:
        """Restore :meth:`_results_state` output (files written before these attributes existed get defaults)."""
        for name in self._RESULTS_JSON:
            value = state[name] if name in state else self._RESULTS_DEFAULTS[name]
            setattr(self, name, dict(value) if isinstance(value, dict) else value)
        self.params_ = {k: float(v) for k, v in self.params_.items()}
        self.params_stderr_ = {k: float(v) for k, v in self.params_stderr_.items()}
        for name in spec.names:  # older files list the free parameters only
            self.params_stderr_.setdefault(name, 0.0)
        free = spec.free_names
        if "covariance_" in state:
            cov = np.asarray(state["covariance_"], dtype=float).reshape(len(free), len(free))
        else:
            cov = np.full((len(free), len(free)), np.nan)
        self.covariance_ = pd.DataFrame(cov, index=free, columns=free)
