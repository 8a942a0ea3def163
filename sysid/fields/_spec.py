"""Field specifications: the ``field=`` part of an estimator, which builds its torch module.

A :class:`FieldSpec` holds the settings of a kind of vector field (an MLP's widths, a
library's degree, the user's equations and parameters) and builds the module once the
data are known (:meth:`FieldSpec.build` receives a :class:`FieldContext`: state and
input names, the data's :class:`~sysid.fields.Scaling`, a seeded generator, the
dtype). Its hooks say what is particular to the field: a penalty added to the loss,
a closed-form warm start, thresholding rounds, readable results. Any
``torch.nn.Module`` whose ``forward(t, x, u)`` returns dx/dt is a field as well
(:class:`ModuleField` wraps it).
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from sysid.errors import ConfigError
from sysid.fields._scaling import Scaling
from sysid.parts import Part

#: Training points (t, x, u) in physical units, as tensors: what a penalty is evaluated on.
Points = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]

#: The module a field part builds; its hooks receive that module back.
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


@dataclass(frozen=True)
class FieldContext:
    """What a field needs to know about the data before it is built.

    Attributes
    ----------
    state_names : list of hashable (usually str)
        Observed states, in order.
    input_names : list of hashable
    n_augment : int
        Unobserved dimensions appended to the state (named ``aug0``, ``aug1``...).
    scaling : Scaling
        Centres and spreads of states and inputs, and the data's time unit.
    generator : torch.Generator
        Seeds any random initialisation.
    dtype : torch.dtype
    """

    state_names: Sequence[Hashable]
    input_names: Sequence[Hashable]
    n_augment: int
    scaling: Scaling
    generator: torch.Generator
    dtype: torch.dtype

    @property
    def n_states(self) -> int:
        """Observed states."""
        return len(self.state_names)

    @property
    def n_dims(self) -> int:
        """Dimension of the field's state: observed plus augmented."""
        return len(self.state_names) + self.n_augment

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def dim_names(self) -> list[str]:
        """Names of every state dimension: the observed ones, then ``aug0``, ``aug1``..."""
        return [str(s) for s in self.state_names] + [f"aug{i}" for i in range(self.n_augment)]

    def tensor(self, values: Any) -> torch.Tensor:
        """``values`` as a tensor of the context's dtype."""
        return torch.as_tensor(np.asarray(values, dtype=float), dtype=self.dtype)

    def probe(self, n: int = 2) -> Points:
        """``n`` copies of the data's mean state and input at t = 0 (for checking a user's function)."""
        t = torch.zeros(n, dtype=self.dtype)
        x = self.tensor(np.tile(self.scaling.center, (n, 1)))
        u = self.tensor(np.tile(self.scaling.input_center, (n, 1))) if self.n_inputs else None
        return t, x, u


class FieldSpec(Part, Generic[ModuleT]):
    """Base class of the field parts: settings now, a torch module once the data are known.

    Subclasses implement :meth:`build`; the other hooks have neutral defaults. The type
    parameter is the module :meth:`build` returns (``class MLP(FieldSpec[MLPField])``),
    which is what every hook receives as ``module``.
    """

    role = "field"

    #: Whether predictions beyond the observed states warn (:class:`~sysid.ExtrapolationWarning`).
    #: False for the user's own equations: their validity outside the data is the user's assumption.
    flags_extrapolation: ClassVar[bool] = True
    #: Why a model with this field cannot fit streamed data, or None if it can.
    streaming_unsupported: ClassVar[str | None] = None
    #: Observed values per trained parameter below which a fit warns that the data cannot
    #: determine the model (:func:`sysid.estimators.warn_if_underdetermined`). Two for
    #: parameters the data must pin down one by one (grey-box, library coefficients); far fewer
    #: for networks, whose weights are many by design and constrained by the architecture.
    observations_per_parameter: ClassVar[float] = 2.0

    def build(self, context: FieldContext) -> ModuleT:
        """The vector field module ``f(t, x, u) -> dx/dt`` (physical units, batch first)."""
        raise NotImplementedError

    def penalty(self, module: ModuleT, points: Points | None) -> torch.Tensor | None:
        """A term added to the training loss (e.g. an L1 penalty), or None.

        ``points`` are the training data's times, states and inputs (physical units).
        """
        return None

    def needs_points(self) -> bool:
        """Whether :meth:`penalty` reads the training points (they are then prepared once)."""
        return False

    def collocation_penalty(self, module: ModuleT, points: Points | None) -> torch.Tensor | None:
        """A term added to the collocation warm start's loss, or None (the default: :meth:`penalty` is for shooting)."""
        return None

    def warm_start(self, module: ModuleT, t: np.ndarray, x: np.ndarray, dx: np.ndarray, u: np.ndarray | None) -> bool:
        """Prepare the module from smoothed data before the collocation fit.

        ``t`` (n,), ``x`` (n, n_dims) smoothed states, ``dx`` (n, n_states) their time
        derivatives (NaN where unavailable), ``u`` (n, n_inputs) or None, physical units,
        every training trajectory's rows stacked. Return True if the module is now
        initialised (a closed-form fit): the generic collocation fit is then skipped.
        """
        return False

    def collocation_parameters(self, module: ModuleT) -> list[torch.nn.Parameter] | None:
        """The parameters the generic collocation fit trains after :meth:`warm_start` (None: all)."""
        return None

    def second_start(self) -> FieldSpec | None:
        """This field started another way; None: it has no other.

        A fit whose start does not reproduce its own data (free run above
        :data:`sysid.training.POOR_FREE_RUN`) trains from this one instead when it does, and a
        fit that ends above :data:`sysid.training.REFIT_FREE_RUN` is trained once more from the
        start it did not take.
        """
        return None

    def rounds(self) -> int:
        """How many times :meth:`next_round` may ask for another training (thresholding)."""
        return 0

    def next_round(self, module: ModuleT) -> bool:
        """Change the module between trainings (e.g. prune small terms); True if it changed."""
        return False

    def results(self, module: ModuleT, context: FieldContext) -> dict[str, Any]:
        """Readable fitted attributes (``coefficients_``, ``params_``...) the estimator sets."""
        return {}


class ModuleField(FieldSpec[torch.nn.Module]):
    """A field given as a ``torch.nn.Module``: ``module.forward(t, x, u)`` returns dx/dt.

    ``t`` is (batch,), ``x`` (batch, n_dims) physical states (observed, then augmented),
    ``u`` (batch, n_inputs) or None without inputs; the result has x's shape (batch
    first, as torchdiffeq's ``func(t, y)`` with the inputs added). A module whose
    ``uses_time`` attribute is False may receive ``t=None``. The estimator trains a copy:
    the module you pass is never modified.

    Parameters
    ----------
    module : torch.nn.Module

    Examples
    --------
    >>> import numpy as np, torch, sysid
    >>> class Decay(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.rate = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))
    ...
    ...     def forward(self, t, x, u):
    ...         return -self.rate * x
    >>> t = np.linspace(0, 2, 20)
    >>> model = sysid.NeuralODE(Decay(), max_epochs=30, lbfgs_steps=10, verbose=False)
    >>> model = model.fit(np.exp(-0.7 * t)[:, None], t=t)
    >>> round(float(model.field_.rate), 2)
    0.7
    """

    observations_per_parameter = 0.01  # a user's module is usually a network

    def __init__(self, *, module: torch.nn.Module | None = None) -> None:
        self.module = module

    def check(self) -> None:
        self._checked_module()

    def _checked_module(self) -> torch.nn.Module:
        if not isinstance(self.module, torch.nn.Module):
            raise ConfigError(
                f"field must be a field part (sysid.fields.MLP(...), Polynomial(...), GreyBox(...)...) or a "
                f"torch.nn.Module whose forward(t, x, u) returns dx/dt; got {type(self.module).__name__}."
            )
        return self.module

    def build(self, context: FieldContext) -> torch.nn.Module:
        module = copy.deepcopy(self._checked_module()).to(context.dtype)
        t, x, u = context.probe()
        check_output(lambda: module(t, x, u), "the field module's forward(t, x, u)", context)
        return module


def check_output(call: Any, what: str, context: FieldContext) -> None:
    """Call a user's field once on a probe batch; a ConfigError says what went wrong.

    Examples
    --------
    >>> import torch
    >>> from sysid.fields import Scaling
    >>> s = Scaling(np.zeros(2), np.ones(2), np.zeros(0), np.ones(0), 1.0)
    >>> ctx = FieldContext(["x", "y"], [], 0, s, torch.Generator(), torch.float64)
    >>> check_output(lambda: torch.zeros(2, 3, dtype=torch.float64), "f", ctx)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: f returned shape (2, 3) for a probe batch of x with shape (2, 2); expected (2, 2) (...).
    """
    expected = (2, context.n_dims)
    try:
        with torch.no_grad():
            out = call()
    except Exception as exc:  # reported with context
        raise ConfigError(
            f"calling {what} on a probe batch x of shape {expected} ({expected[0]} points of {expected[1]} state "
            f"dimension(s), batch first) raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        hint = " (stack columns with torch.stack([...], dim=-1))" if isinstance(out, list | tuple) else ""
        raise ConfigError(
            f"{what} must return a torch tensor of shape (batch, n_states) = {expected}, got "
            f"{type(out).__name__}{hint}."
        )
    if tuple(out.shape) != expected:
        raise ConfigError(
            f"{what} returned shape {tuple(out.shape)} for a probe batch of x with shape {expected}; expected "
            f"{expected} (one derivative per state dimension, batch first)."
        )
    if not torch.isfinite(out).all():
        raise ConfigError(f"{what} returned non-finite values at the data's mean state: {out[0].tolist()}.")


def as_field_spec(field: Any) -> FieldSpec:
    """A :class:`FieldSpec` from an estimator's ``field=`` value (a spec or a torch module).

    Raises
    ------
    ConfigError
        For anything else.
    """
    if isinstance(field, FieldSpec):
        return field
    if isinstance(field, torch.nn.Module):
        return ModuleField(module=field)
    raise ConfigError(
        f"field must be a field part (sysid.fields.MLP(...), Polynomial(...), GreyBox(...), Hybrid(...)) or a "
        f"torch.nn.Module whose forward(t, x, u) returns dx/dt; got {field!r}."
    )
