"""scikit-learn-style front doors (DESIGN.md step 6)."""

from sysid.estimators._neural import NeuralODE as NeuralODE

__all__ = ["NeuralODE"]
