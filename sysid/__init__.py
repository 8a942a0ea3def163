"""sysid: identify dynamical systems from measured trajectories.

The core model is the Neural ODE (Chen et al., NeurIPS 2018); sparse, grey-box and
hybrid vector fields share its integration and training; SINDy and classical parametric
fits are baselines behind the same interface.

Data handling (``from_pandas``, ``Trajectories``...) imports without torch; the
estimators load torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from sysid.adapters import as_trajectories as as_trajectories
from sysid.adapters import from_pandas as from_pandas
from sysid.adapters import from_xarray as from_xarray
from sysid.errors import ConfigError as ConfigError
from sysid.errors import DataError as DataError
from sysid.errors import ExtrapolationWarning as ExtrapolationWarning
from sysid.errors import FitError as FitError
from sysid.errors import FitWarning as FitWarning
from sysid.errors import ModelFileError as ModelFileError
from sysid.errors import NotFittedError as NotFittedError
from sysid.errors import SolverWarning as SolverWarning
from sysid.errors import SysidError as SysidError
from sysid.registry import ESTIMATORS as _ESTIMATORS
from sysid.trajectories import LazyTrajectories as LazyTrajectories
from sysid.trajectories import Trajectories as Trajectories
from sysid.trajectories import Trajectory as Trajectory

__version__ = "0.1.0"

# Public names whose modules import torch: resolved on first access (PEP 562).
# The estimators come from the one registry (sysid.registry); the rest is listed here.
_LAZY = {
    **{entry.name: entry.module for entry in _ESTIMATORS},
    "distill": "sysid.estimators._distill",
    "compare": "sysid.comparison",
    "equations": "sysid.equations",
    "report": "sysid.report",
    "metrics": "sysid.metrics",
    "plot": "sysid.plot",
    "train_test_split": "sysid.model_selection",
    "TrajectoryKFold": "sysid.model_selection",
    "Solver": "sysid.integration",
    "Sensor": "sysid.fields",
    "Training": "sysid.training",
    "fields": "sysid.fields",
    "parts": "sysid.parts",
    "integration": "sysid.integration",
    "ODEBlock": "sysid.integration",
    "load": "sysid.io",
    "save": "sysid.io",
    "datasets": "sysid.datasets",
}

__all__ = [
    "ConfigError",
    "DataError",
    "FitError",
    "FitWarning",
    "LazyTrajectories",
    "ModelFileError",
    "NotFittedError",
    "SolverWarning",
    "ExtrapolationWarning",
    "SysidError",
    "Trajectories",
    "Trajectory",
    "__version__",
    "as_trajectories",
    "from_pandas",
    "from_xarray",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__ == f"sysid.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sysid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
