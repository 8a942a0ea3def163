"""NeuralODE: a neural network vector field trained through an adaptive ODE solver."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch

from sysid.estimators._ode_base import SolverTrainedODE
from sysid.fields import MLP, LinearMLP
from sysid.training import Training

#: NeuralODE's defaults, chosen on the generalisation panel of issue #17 (docs/neural_ode.md#defaults):
#: a linear part fitted with the network from zero (dissipative when the field reads inputs: LinearMLP's
#: stable=None), and a horizon schedule ending on whole trajectories.
DEFAULT_FIELD = partial(LinearMLP, hidden=(64, 64), linear_start="zero")
DEFAULT_TRAINING = partial(Training, horizons=(20, 80, None))


class NeuralODE(SolverTrainedODE):
    """Learn dx/dt = f(x, u, t; theta) with a neural network, from irregular noisy trajectories.

    The solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with its default parts, chosen on a panel of held-out
    experiments and real records (``docs/neural_ode.md``): a
    :class:`sysid.fields.LinearMLP` field (a linear part plus two tanh layers of 64,
    fitted together from a zero linear part, ``linear_start="zero"``; the linear part
    kept dissipative when the data have inputs, ``stable=None``), ``sysid.Solver()``
    (dopri5, rtol 1e-4, atol 1e-6, adjoint gradients) and ``sysid.Training`` with
    ``horizons=(20, 80, None)`` (multiple shooting over segments of 5 sample intervals
    after a collocation warm start, 40 Adam epochs and an L-BFGS polish, then L-BFGS
    stages on windows of 20 and 80 intervals and on whole trajectories; restore-best on
    the free-run error of whole trajectories across all of them). The parts' parameters
    can be given flat: ``NeuralODE(hidden=(32, 32), max_epochs=80, rtol=1e-6)``;
    ``NeuralODE(field=sysid.fields.MLP(), horizons=None)`` is the network alone trained
    on short windows only (the defaults before issue #17). When the zero start's free run
    over the training trajectories exceeds :data:`sysid.training.POOR_FREE_RUN` and the
    least-squares linear part's does not, the training starts from the latter
    (``field_part_.linear_start``). A fit whose kept free-run error exceeds
    :data:`sysid.training.REFIT_FREE_RUN` (0.2) is fitted once more from the start not
    taken and the better fit is kept (``history_`` column ``attempt``); if the kept one is
    above ``POOR_FREE_RUN``, a :class:`~sysid.FitWarning` says so.

    Examples
    --------
    >>> import numpy as np, sysid
    >>> t = np.linspace(0, 2, 15)
    >>> y = np.exp(-t)[:, None]
    >>> model = sysid.NeuralODE(hidden=(16,), max_epochs=10, lbfgs_steps=10, verbose=False).fit(y, t=t)
    >>> model.predict(t=t, x0=[1.0]).shape
    (15, 1)
    >>> model.field
    LinearMLP(hidden=(16,), linear_start='zero')
    """

    default_parts: ClassVar[dict[str, Any]] = {
        **SolverTrainedODE.default_parts,
        "field": DEFAULT_FIELD,
        "training": DEFAULT_TRAINING,
    }

    #: The default parts of model files written before files recorded them (session 2: a free linear
    #: part; files of the MLP default before issue #17 are recognised in :meth:`_set_fitted_state`).
    defaults_before_recorded: ClassVar[dict[str, Any]] = {
        "field": partial(LinearMLP, hidden=(64, 64), linear_start="zero", stable=False)
    }

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild a fitted model from a file; files written with the MLP default before issue #17 keep it."""
        field = self._part("field")
        # A LinearMLP field always saves its linear part: without one, the file holds the MLP field that was
        # NeuralODE's default when it was written (its field stored as "the default").
        if isinstance(field, LinearMLP) and not any(k.endswith("field.linear_state") for k in tensors):
            self.field = MLP(hidden=field.hidden, activation=field.activation, time_dependent=field.time_dependent)
        super()._set_fitted_state(state, tensors)
