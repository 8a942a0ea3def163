"""scikit-learn-style front doors (DESIGN.md step 6).

Torch-based estimators are imported on first use, so the baselines (SINDy,
ClassicalODE) load without torch, in worker processes too.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "NeuralODE": "sysid.estimators._neural",
    "SparseODE": "sysid.estimators._sparse",
    "GreyBoxODE": "sysid.estimators._greybox",
    "HybridODE": "sysid.estimators._hybrid",
    "SINDy": "sysid.estimators._sindy",
    "ClassicalODE": "sysid.estimators._classical",
}

__all__ = list(_MODULES)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = getattr(importlib.import_module(_MODULES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sysid.estimators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
