"""Vector fields f(t, x, u) as torch modules (DESIGN.md step 3).

Every field maps times (batch,), states (batch, n_dims) in physical units and inputs
(batch, n_inputs) or None to dx/dt (batch, n_dims). Fields never import estimators.
"""

from sysid.fields._greybox import GreyBoxField as GreyBoxField
from sysid.fields._hybrid import HybridField as HybridField
from sysid.fields._mlp import MLPField as MLPField
from sysid.fields._polynomial import PolynomialField as PolynomialField

__all__ = ["GreyBoxField", "HybridField", "MLPField", "PolynomialField"]
