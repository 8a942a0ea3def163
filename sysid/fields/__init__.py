"""Vector fields f(t, x, u) as torch modules (DESIGN.md step 3).

Every field maps times (batch,), states (batch, n_dims) in physical units and inputs
(batch, n_inputs) or None to dx/dt (batch, n_dims). Fields never import estimators.
"""

from sysid.fields._mlp import MLPField as MLPField

__all__ = ["MLPField"]
