"""The Jacobian of the least-squares residuals from one batched solve, by central differences.

The model is integrated for the current parameters and, in the
same batch, for central-difference perturbations of every free parameter and of every
state component (a state component is perturbed in all trajectories or segments at
once, since each one's residuals depend on its own start only). The copies share the
solver's steps, so the differences are those of one smooth map (truncation error
~1e-10, no solver noise), and torch's per-operation cost is paid once for all copies:
on the lynx-hare record a solve with 13 copies costs about 1.3 solves. Parameters are
evaluated once per row when the user's function allows it
(:meth:`~sysid.parameters._transform.ParameterTransform.evaluate_grouped`).

Measured alternatives (lynx-hare, dopri5, one thread): forward-mode
AD through torchdiffeq fails (its ``_UncheckedAssign`` has no ``jvp``); ``torch.func.vmap``
over parameter groups costs as much as the loop it replaces (200 us for 7 groups);
vectorised reverse mode through the solver took 8.6 s for 360 residuals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

FD_STEP = 1e-5
"""Relative step of the central differences (error ~ step^2, rounding ~ eps / step)."""
_DENSE_LIMIT = 2_000_000  # Jacobian entries up to which it is kept dense (exact trust-region solves)


class Differences:
    """Central differences (one-sided next to a bound) of free parameters and state components.

    Column ``c`` (the ``n_params`` parameters, then the ``n_states`` state components)
    is perturbed in two copies; copy 0 is the unperturbed point. :meth:`combine` turns
    the copies' outputs into derivatives.

    Examples
    --------
    >>> import numpy as np
    >>> d = Differences(np.array([2.0]), np.array([2.0]), np.array([np.inf]), np.array([1.0]))
    >>> d.n_copies, d.parameter_sets()[:, 0].round(6).tolist()  # one-sided at the lower bound
    (5, [2.0, 2.00002, 2.00004, 2.0, 2.0])
    >>> out = np.array([[p**2 + 3 * s] for p, s in zip(d.parameter_sets()[:, 0], d.state_offsets()[:, 0])])
    >>> np.round(d.combine(out)[:, 0], 6).tolist()
    [4.0, 3.0]
    """

    def __init__(self, params: np.ndarray, lower: np.ndarray, upper: np.ndarray, state_steps: np.ndarray) -> None:
        self.params = np.asarray(params, dtype=float)
        n_p = self.params.size
        steps = FD_STEP * np.maximum(np.abs(self.params), 1e-3)
        offsets = np.tile([1.0, -1.0], (n_p, 1))
        coeff = np.tile([0.0, 0.5, -0.5], (n_p, 1))  # (r0, r1, r2) weights, over the step
        for k in range(n_p):
            if self.params[k] - steps[k] < lower[k]:
                offsets[k], coeff[k] = [1.0, 2.0], [-1.5, 2.0, -0.5]
            elif self.params[k] + steps[k] > upper[k]:
                offsets[k], coeff[k] = [-1.0, -2.0], [1.5, -2.0, 0.5]
        self.steps = np.concatenate([steps, np.asarray(state_steps, dtype=float)])
        self.offsets = np.concatenate([offsets, np.tile([1.0, -1.0], (len(state_steps), 1))])
        self.coeff = np.concatenate([coeff, np.tile([0.0, 0.5, -0.5], (len(state_steps), 1))])
        self.n_params, self.n_states = n_p, len(state_steps)
        self.n_copies = 1 + 2 * (n_p + self.n_states)

    def parameter_sets(self) -> np.ndarray:
        """(n_copies, n_params) parameter values of every copy."""
        sets = np.repeat(self.params[None], self.n_copies, axis=0)
        for k in range(self.n_params):
            sets[1 + 2 * k : 3 + 2 * k, k] += self.offsets[k] * self.steps[k]
        return sets

    def state_offsets(self) -> np.ndarray:
        """(n_copies, n_states) offsets added to the state components of every copy."""
        out = np.zeros((self.n_copies, self.n_states))
        for d in range(self.n_states):
            c = self.n_params + d
            out[1 + 2 * c : 3 + 2 * c, d] = self.offsets[c] * self.steps[c]
        return out

    def combine(self, outputs: np.ndarray) -> np.ndarray:
        """Derivatives (n_params + n_states, ...) from the copies' outputs (n_copies, ...)."""
        base = outputs[0]
        first, second = outputs[1::2], outputs[2::2]
        shape = (-1,) + (1,) * (outputs.ndim - 1)
        return (
            self.coeff[:, 0].reshape(shape) * base
            + self.coeff[:, 1].reshape(shape) * first
            + self.coeff[:, 2].reshape(shape) * second
        ) / self.steps.reshape(shape)


def assemble_jacobian(
    n_rows: int, n_cols: int, dense_part: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray
) -> Any:
    """A Jacobian: ``dense_part`` (n_rows, k) in the first k columns, then the sparse entries."""
    k = dense_part.shape[1]
    if n_rows * n_cols <= _DENSE_LIMIT:
        out = np.zeros((n_rows, n_cols))
        out[:, :k] = dense_part
        np.add.at(out, (rows, cols), values)
        return out
    r_dense, c_dense = np.nonzero(np.ones_like(dense_part, dtype=bool))
    all_rows = np.concatenate([r_dense, rows])
    all_cols = np.concatenate([c_dense, cols])
    all_vals = np.concatenate([dense_part[r_dense, c_dense], values])
    return scipy.sparse.csr_matrix((all_vals, (all_rows, all_cols)), shape=(n_rows, n_cols))
