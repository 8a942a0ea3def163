"""Vector fields f(t, x, u) as torch modules, and the field parts that build them (DESIGN.md step 3).

Every field maps times (batch,), states (batch, n_dims) in physical units and inputs
(batch, n_inputs) or None to dx/dt (batch, n_dims). A field *part* (:class:`MLP`,
:class:`Polynomial`, :class:`GreyBox`, :class:`Hybrid`, or any ``torch.nn.Module``)
is what an estimator's ``field=`` takes; it builds its module once the data's scaling
is known. Fields never import estimators.
"""

from sysid.fields._greybox import GreyBox as GreyBox
from sysid.fields._greybox import GreyBoxField as GreyBoxField
from sysid.fields._greybox import GreyBoxFunction as GreyBoxFunction
from sysid.fields._greybox import ParameterTransform as ParameterTransform
from sysid.fields._hybrid import Hybrid as Hybrid
from sysid.fields._hybrid import HybridField as HybridField
from sysid.fields._library import AUTO_CUBIC_VARIABLES as AUTO_CUBIC_VARIABLES
from sysid.fields._library import Polynomial as Polynomial
from sysid.fields._linear import LinearMLP as LinearMLP
from sysid.fields._linear import LinearMLPField as LinearMLPField
from sysid.fields._mlp import MLP as MLP
from sysid.fields._mlp import MLPField as MLPField
from sysid.fields._polynomial import PolynomialField as PolynomialField
from sysid.fields._polynomial import polynomial_terms as polynomial_terms
from sysid.fields._scaling import SWING_TIMES_PER_UNIT as SWING_TIMES_PER_UNIT
from sysid.fields._scaling import Scaling as Scaling
from sysid.fields._sensor import Sensor as Sensor
from sysid.fields._sensor import SensorModel as SensorModel
from sysid.fields._spec import FieldContext as FieldContext
from sysid.fields._spec import FieldSpec as FieldSpec
from sysid.fields._spec import ModuleField as ModuleField
from sysid.fields._spec import as_field_spec as as_field_spec
from sysid.fields._structured import Structured as Structured
from sysid.fields._structured import StructuredField as StructuredField
from sysid.fields._ude import UDE as UDE
from sysid.fields._ude import UDEField as UDEField

__all__ = [
    "AUTO_CUBIC_VARIABLES",
    "MLP",
    "SWING_TIMES_PER_UNIT",
    "UDE",
    "FieldContext",
    "FieldSpec",
    "GreyBox",
    "GreyBoxField",
    "GreyBoxFunction",  # shared with other sysid packages (their one public home)
    "Hybrid",
    "HybridField",
    "LinearMLP",
    "LinearMLPField",
    "MLPField",
    "ModuleField",
    "ParameterTransform",
    "Polynomial",
    "PolynomialField",
    "Scaling",
    "Sensor",
    "SensorModel",
    "Structured",
    "StructuredField",
    "UDEField",
    "as_field_spec",
    "polynomial_terms",  # shared with other sysid packages (their one public home)
]
