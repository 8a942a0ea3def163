"""The collocation warm start of solver-trained estimators: smooth the data, fit the field to their slopes.

Before multiple shooting, the field is fitted to smoothing-spline derivatives of the
training rows (:func:`sysid.training.collocation_fit`, or the field part's own closed-form
warm start), and the smoothed states become the segments' start values.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sysid.fields import Scaling
from sysid.training import Smoothed, collocation_fit, embed_derivatives, smooth_trajectory, smoothing_strengths
from sysid.trajectories import Trajectories

if TYPE_CHECKING:
    from sysid.integration import BatchedField
    from sysid.training import Training

#: Training times, states and inputs (physical units), as the field parts' penalties read them.
TrainingPoints = tuple[np.ndarray, np.ndarray, np.ndarray | None]


class WarmStartMixin:
    """Collocation warm start of :class:`~sysid.estimators._ode_base.SolverTrainedODE`.

    Mixed into the estimator, which provides the right-hand side ``rhs_``, ``scaling_``
    and the resolved parts; subclasses may refine a step (``SparseODE`` screens candidate
    equations in :meth:`_collocation_warm_start`).
    """

    if TYPE_CHECKING:  # what SolverTrainedODE provides (declared for mypy only)
        n_augment: int
        n_dims_: int
        torch_dtype_: torch.dtype
        training_: Training
        rhs_: BatchedField
        scaling_: Scaling
        field_part_: Any  # a FieldSpec (as the estimator declares it: resolved at fit time)

        def _training_points(self, data: Trajectories) -> TrainingPoints: ...
        def _training_part(self, data: Trajectories) -> Trajectories: ...
        def _penalty_at(self, points: TrainingPoints | None, collocation: bool = False) -> torch.Tensor | None: ...

    def _collocation_warm_start(self, data: Trajectories, train_rows: list[int]) -> list[np.ndarray]:
        """Fit the field to smoothed derivatives; return the smoothed scaled states.

        The field part may initialise the field itself first (a closed-form fit); the
        generic collocation fit (Adam on the derivatives) follows unless it did.
        Augmented dimensions start as a derivative embedding of the observed states.
        """
        lam = self._smoothing_strengths(data, train_rows)
        smoothed = [self._smoothed_states(tr.t[:n], tr.y[:n], lam) for tr, n in zip(data, train_rows)]
        times = [tr.t[:n] for tr, n in zip(data, train_rows)]
        inputs = [None if tr.u is None else tr.u[:n] for tr, n in zip(data, train_rows)]
        if not self._part_warm_start(times, smoothed, inputs, data.n_states):
            collocation_fit(
                self.rhs_.field,
                times,
                smoothed,
                inputs,
                self.n_dims_,
                self.scaling_.spread,
                self.scaling_.time_unit,
                self.training_.collocation_steps,
                float(self.training_.lr),
                self.torch_dtype_,
                parameters=self.field_part_.collocation_parameters(self.rhs_.field),
                penalty=partial(self._penalty_at, self._training_points(self._training_part(data)), collocation=True)
                if self.field_part_.needs_points()
                else None,
            )
        return [self._scaled_initial(tr.n_times, sm) for tr, sm in zip(data, smoothed)]

    def _part_warm_start(
        self, times: list[np.ndarray], smoothed: list[Smoothed], inputs: list[Any], n_states: int
    ) -> bool:
        """Hand the stacked smoothed data to the field part's warm start; True if it initialised the field."""
        x = np.concatenate([s.values for s in smoothed])
        rows = np.isfinite(x[:, :n_states]).all(axis=1)
        if rows.sum() < 2:
            return False
        dims = np.zeros((int(rows.sum()), self.n_dims_))
        dims[:, : x.shape[1]] = np.nan_to_num(x[rows])
        dx = np.concatenate([s.derivatives[:, :n_states] for s in smoothed])[rows]
        u = np.concatenate(inputs)[rows] if inputs and inputs[0] is not None else None
        return bool(self.field_part_.warm_start(self.rhs_.field, np.concatenate(times)[rows], dims, dx, u))

    @staticmethod
    def _smoothing_strengths(data: Trajectories, train_rows: list[int]) -> np.ndarray:
        """One spline smoothing strength per state (GCV on a few windows), reused for every trajectory."""
        return smoothing_strengths(
            [tr.t[:n] for tr, n in zip(data, train_rows)], [tr.y[:n] for tr, n in zip(data, train_rows)]
        )

    def _smoothed_states(self, t: np.ndarray, y: np.ndarray, lam: np.ndarray | None = None) -> Smoothed:
        """Smoothing-spline states (strength ``lam`` per state, GCV if None), with the derivative embedding."""
        smoothed = smooth_trajectory(t, y, lam)
        if not self.n_augment:
            return smoothed
        return embed_derivatives(smoothed, self.n_augment, self.scaling_.spread, self.scaling_.time_unit)

    def _scaled_initial(self, n_times: int, smoothed: Smoothed) -> np.ndarray:
        """Scaled (n_times, n_dims) start values from smoothed states; NaN where there are none."""
        values = np.full((n_times, smoothed.values.shape[1]), np.nan)
        n_states = self.n_dims_ - self.n_augment
        values[: smoothed.values.shape[0], :n_states] = self.scaling_.scale(smoothed.values[:, :n_states])
        values[: smoothed.values.shape[0], n_states:] = smoothed.values[:, n_states:]
        return values
