"""scikit-learn-style front doors (DESIGN.md step 6).

Torch-based estimators are imported on first use, so the baselines (SINDy,
ClassicalODE) load without torch, in worker processes too.
"""

from __future__ import annotations

import importlib
from typing import Any

from sysid.estimators._base import TrajectoryEstimator as TrajectoryEstimator  # shared with other sysid packages
from sysid.registry import ESTIMATORS

# The estimators this package defines, from the one registry (sysid.registry).
_MODULES = {entry.name: entry.module for entry in ESTIMATORS if entry.module.startswith(f"{__name__}.")}

__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = getattr(importlib.import_module(_MODULES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sysid.estimators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
__all__ += ["TrajectoryEstimator"]
