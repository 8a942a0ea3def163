"""NeuralODE: a neural network vector field trained through an adaptive ODE solver."""

from __future__ import annotations

from sysid.estimators._ode_base import SolverTrainedODE


class NeuralODE(SolverTrainedODE):
    """Learn dx/dt = f(x, u, t; theta) with a neural network, from irregular noisy trajectories.

    The solver-trained estimator (:class:`~sysid.estimators._ode_base.SolverTrainedODE`,
    whose parameters it takes) with its default parts: an :class:`sysid.fields.MLP`
    field (two tanh layers of 64), ``sysid.Solver()`` (dopri5, rtol 1e-4, atol 1e-6,
    adjoint gradients) and ``sysid.Training()`` (multiple shooting over segments of 5
    sample intervals, a collocation warm start, 40 Adam epochs and an L-BFGS polish,
    restore-best on the free-run error of whole trajectories). The parts' parameters
    can be given flat: ``NeuralODE(hidden=(32, 32), max_epochs=80, rtol=1e-6)``.

    Examples
    --------
    >>> import numpy as np, sysid
    >>> t = np.linspace(0, 2, 15)
    >>> y = np.exp(-t)[:, None]
    >>> model = sysid.NeuralODE(hidden=(16,), max_epochs=10, lbfgs_steps=10, verbose=False).fit(y, t=t)
    >>> model.predict(t=t, x0=[1.0]).shape
    (15, 1)
    >>> model.field
    MLP(hidden=(16,))
    """
