"""Exception and warning types raised by sysid.

Every error a user can provoke with bad data or a bad call is one of these, with a
message that says what was received, what was expected and how to fix it.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError

__all__ = [
    "ConfigError",
    "DataError",
    "ExtrapolationWarning",
    "FitError",
    "FitWarning",
    "ModelFileError",
    "NotFittedError",
    "SolverWarning",
    "SysidError",
    "SysidWarning",
]


class SysidError(Exception):
    """Base class of every exception raised deliberately by sysid."""


class DataError(SysidError, ValueError):
    """The data handed to sysid cannot be used as given.

    The message names the trajectory, column and row at fault where there is one.
    """


class ConfigError(SysidError, ValueError):
    """An estimator or solver setting is invalid (raised in ``fit``, not ``__init__``)."""


class FitError(SysidError, RuntimeError):
    """Training failed repeatedly; the message says what happened and what to try."""


class ModelFileError(SysidError, ValueError):
    """A model file is missing, truncated, corrupted or of an unsupported format."""


class SysidWarning(UserWarning):
    """Base class of the warnings sysid emits."""


class FitWarning(SysidWarning):
    """Training hit a problem it recovered from (rolled back, lowered the rate, stopped early)."""


class ExtrapolationWarning(SysidWarning):
    """Data, inputs or predictions go beyond the states or inputs the model was fitted on."""


class SolverWarning(SysidWarning):
    """The ODE solver could not meet its tolerance or exhausted its step budget."""
