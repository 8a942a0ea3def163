"""Named physical parameters: one spec check, one uncertainty computation, one interval table.

Shared by every parametric estimator (:class:`~sysid.ClassicalODE`,
:class:`~sysid.GreyBoxODE`, the physics of :class:`~sysid.HybridODE`):

- :func:`check_parameters` validates ``params``/``bounds``/``fixed`` with one bound rule
  (closed bounds: a start on a bound is allowed) and returns a :class:`ParameterSpec`;
- :func:`linearised_uncertainty` turns the Jacobian of the weighted residuals at the
  optimum into standard errors, a covariance and identifiability flags, with the
  noise levels from :func:`noise_levels`;
- :func:`profile_interval` gives profile-likelihood intervals on request;
- :func:`interval_table` is the one shape of ``confidence_intervals()``.

This package does not import torch; the torch module of named, bounded parameters
(``ParameterTransform``) lives in :mod:`sysid.parameters._transform`.
"""

from typing import TYPE_CHECKING

from sysid.parameters._profile import profile_interval as profile_interval
from sysid.parameters._results import ParametricResults as ParametricResults
from sysid.parameters._results import ProfileProblem as ProfileProblem
from sysid.parameters._results import _outside_sysid as warning_stacklevel
from sysid.parameters._spec import Bound as Bound
from sysid.parameters._spec import ParameterSpec as ParameterSpec
from sysid.parameters._spec import check_parameters as check_parameters
from sysid.parameters._uncertainty import REWEIGHT as REWEIGHT
from sysid.parameters._uncertainty import STATUSES as STATUSES
from sysid.parameters._uncertainty import TABLE_COLUMNS as TABLE_COLUMNS
from sysid.parameters._uncertainty import Uncertainty as Uncertainty
from sysid.parameters._uncertainty import check_level as check_level
from sysid.parameters._uncertainty import gauss_newton_distance as gauss_newton_distance
from sysid.parameters._uncertainty import interval_table as interval_table
from sysid.parameters._uncertainty import (
    linearised_uncertainty as linearised_uncertainty,
)
from sysid.parameters._uncertainty import noise_levels as noise_levels
from sysid.parameters._uncertainty import relative_change as relative_change
from sysid.parameters._uncertainty import state_spread as state_spread
from sysid.parameters._uncertainty import t_quantile as t_quantile

if TYPE_CHECKING:  # for type checkers only; at run time __getattr__ below imports it on first use
    from sysid.parameters._transform import ParameterTransform as ParameterTransform

__all__ = [
    "STATUSES",
    "TABLE_COLUMNS",
    "Bound",
    "ParameterSpec",
    "Uncertainty",
    "check_level",
    "check_parameters",
    "interval_table",
    "linearised_uncertainty",
    "noise_levels",
    "profile_interval",
    "t_quantile",
]
# Shared with other sysid packages (their one public home).
__all__ += [
    "REWEIGHT",
    "ParametricResults",
    "ProfileProblem",
    "gauss_newton_distance",
    "relative_change",
    "state_spread",
    "warning_stacklevel",
]


def __getattr__(name: str) -> object:
    # The torch module of named, bounded parameters loads on first use, so that the
    # torch-free estimators (ClassicalODE, SINDy) import this package without torch.
    if name == "ParameterTransform":
        from sysid.parameters._transform import ParameterTransform

        return ParameterTransform
    raise AttributeError(f"module 'sysid.parameters' has no attribute {name!r}")
