"""A linear-plus-network field: dx/dt = A x + B u + c + MLP(x, u)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
import torch
from sklearn.base import clone

from sysid.fields._mlp import MLP, MLPField
from sysid.fields._scaling import Scaling
from sysid.fields._spec import FieldContext, Points

_RIDGE = 1e-8  # relative ridge of the linear least squares (conditioning only)


@functools.lru_cache(maxsize=32)
def _identity(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The identity matrix, made once: the stable linear part reads it at every evaluation of the field.

    Made outside inference mode, so that gradients can go through it wherever it was first made.
    """
    with torch.inference_mode(False):
        return torch.eye(n, dtype=dtype, device=device)


class LinearMLPField(MLPField):
    """dz/dt = (A z + B v + c + net(z, v)) / time_unit on scaled states z and inputs v.

    In physical units this is dx/dt = A' x + B' u + c' + MLP(x, u): a linear system plus
    a network for what the linear part leaves unexplained. :meth:`fit_linear` sets the
    linear part from smoothed derivatives by least squares, so the field starts as the
    data's best linearisation and extrapolates like it where the network has no data.

    Parameters
    ----------
    n_dims, n_inputs, hidden, activation, time_dependent, scaling, generator, dtype
        As for :class:`MLPField`.
    stable : bool, default False
        Use a dissipative linear part (:meth:`linear_matrix`).

    Examples
    --------
    >>> import torch
    >>> f = LinearMLPField(2, hidden=(8,), generator=torch.Generator().manual_seed(0))
    >>> with torch.no_grad():
    ...     _ = f.linear_state.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.0]]))
    >>> f.linear_part(torch.zeros(1), torch.tensor([[1.0, 0.0]], dtype=torch.float64), None).tolist()
    [[0.0, -1.0]]
    >>> g = LinearMLPField(2, hidden=(8,), stable=True)
    >>> with torch.no_grad():
    ...     _ = g.linear_state.copy_(torch.tensor([[0.5, 1.0], [-1.0, 0.2]]))
    >>> g.linear_matrix().round(decimals=6).tolist()  # shifted by the symmetric part's top eigenvalue, 0.5
    [[0.0, 1.0], [-1.0, -0.3]]
    """

    linear_input: torch.Tensor  # a Parameter, or an empty buffer without inputs

    #: The network reads inputs clipped to their training range; beyond it the linear part alone follows
    #: them (measured on issue #17's records driven beyond their training inputs: docs/neural_ode.md).
    holds_inputs: ClassVar[bool] = True

    def __init__(
        self,
        n_dims: int,
        n_inputs: int = 0,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        time_dependent: bool = False,
        scaling: Scaling | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        stable: bool = False,
    ) -> None:
        super().__init__(n_dims, n_inputs, hidden, activation, time_dependent, scaling, generator, dtype)
        self.stable = stable
        self.linear_state = torch.nn.Parameter(torch.zeros(n_dims, n_dims, dtype=dtype))
        if n_inputs:
            self.linear_input = torch.nn.Parameter(torch.zeros(n_dims, n_inputs, dtype=dtype))
        else:  # an empty Parameter breaks torchdiffeq's adjoint
            self.register_buffer("linear_input", torch.zeros(n_dims, 0, dtype=dtype))
        self.offset = torch.nn.Parameter(torch.zeros(n_dims, dtype=dtype))

    def linear_matrix(self) -> torch.Tensor:
        """A of the scaled linear part: ``linear_state``, shifted to be dissipative when ``stable``.

        With ``stable`` the matrix used is ``linear_state - max(0, l) I``, l the largest
        eigenvalue of its symmetric part: the symmetric part is then negative semidefinite,
        so the linear part alone never grows the scaled state's norm (every eigenvalue has
        a non-positive real part). Far from the data, where the tanh network's output is
        bounded, the field is this linear part: a simulation driven outside the training
        range stays bounded instead of escaping exponentially.
        """
        a = self.linear_state
        if not self.stable:
            return a
        top = torch.linalg.eigvalsh((a + a.T) / 2)[-1]
        return a - torch.relu(top) * _identity(a.shape[0], a.dtype, a.device)

    def _linear_scaled(self, z: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        return self._linear(z, self.scaled_inputs(u) if self.n_inputs else None)

    def _linear(self, z: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor:
        """(A z + B v + c) / time_unit for scaled inputs v: fused products (one operation instead of two or three)."""
        out = torch.nn.functional.linear(z, self.linear_matrix(), self.offset)
        if v is not None:
            out = torch.addmm(out, v, self.linear_input.T) if out.dim() == 2 else out + v @ self.linear_input.T
        return out / self.time_unit

    def scaled_forward(self, t: torch.Tensor, z: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        if self.n_inputs and u is not None and not u.requires_grad:  # one scaling of the inputs serves both parts
            v = self.scaled_inputs(u)
            return self.network(t, z, v) + self._linear(z, v)
        # Inputs that carry a gradient (read at a time that does) are scaled for each part, so that their
        # gradient adds up in the same order as always (one scaling would change its last bits).
        return super().scaled_forward(t, z, u) + self._linear_scaled(z, u)

    def linear_part(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """The linear part alone, dx/dt (batch, n_dims), physical units."""
        return self._linear_scaled((x - self.center) / self.spread, u) * self.spread

    def fit_linear(self, x: np.ndarray, dx: np.ndarray, u: np.ndarray | None) -> None:
        """Set A, B, c by least squares of scaled derivatives on scaled states and inputs.

        ``x`` (n, n_dims), ``dx`` (n, n_states) with NaN where unknown, ``u`` (n, n_inputs)
        or None; physical units. Dimensions without derivatives keep a zero row.
        """
        center, spread = self.center.numpy(), self.spread.numpy()
        columns = [(x - center) / spread]
        if self.n_inputs:
            columns.append((u - self.input_center.numpy()) / self.input_spread.numpy())
        design = np.hstack([*columns, np.ones((x.shape[0], 1))])
        unit = float(self.time_unit)
        a = np.zeros((self.n_dims, design.shape[1]))
        for j in range(dx.shape[1]):
            seen = np.isfinite(dx[:, j]) & np.isfinite(design).all(axis=1)
            if seen.sum() <= design.shape[1]:
                continue
            d = design[seen]
            gram = d.T @ d
            ridge = _RIDGE * np.trace(gram) / gram.shape[0]
            a[j] = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), d.T @ (dx[seen, j] * unit / spread[j]))
        dtype = self.offset.dtype
        with torch.no_grad():
            self.linear_state.copy_(torch.as_tensor(a[:, : self.n_dims], dtype=dtype))
            self.linear_input.copy_(torch.as_tensor(a[:, self.n_dims : self.n_dims + self.n_inputs], dtype=dtype))
            self.offset.copy_(torch.as_tensor(a[:, -1], dtype=dtype))


class LinearMLP(MLP):
    """A linear system plus a network: dx/dt = A x + B u + c + MLP(x, u).

    The linear part starts from a least-squares fit to smoothing-spline derivatives of the
    data (the best linearisation), the network from small weights; both are then trained
    together. A near-linear system is thus modelled by its linear part and extrapolates
    like its linearisation, the network taking only what the linear part leaves.

    Parameters
    ----------
    hidden : tuple of int, default (32, 32)
        Hidden widths of the network.
    activation : str, default "tanh"
    time_dependent : bool, default False
        Feed time to the network.
    weight_decay : float, default 0.0
        L2 penalty on the network's weight matrices (not on the linear part), added to the
        training loss: it pulls the field towards its linear part where the data say little.
    network_penalty : float, default 0.0
        Weight of the network's mean squared output over the training states (scaled units:
        state spreads per time unit), added to the loss of the collocation and of every
        shooting stage: the linear part then carries what it can and the network only what
        it cannot, so the field extrapolates like its linearisation where the network has
        no data (:class:`~sysid.fields.Hybrid`'s ``correction_penalty`` with a linear known part, which
        Hybrid keeps out of the collocation). Fits of streamed data (``lazy=True``) refuse it. Measured
        on issue #17's panel and not a default (docs/neural_ode.md, session 16).
    linear_start : {"least_squares", "zero"}, default "least_squares"
        How the linear part starts: the least-squares fit to the smoothed derivatives
        (the network's collocation then fits what it leaves), or zero (the collocation
        fits the linear part and the network together).
    stable : bool or None, default None
        Keep the linear part dissipative (:meth:`LinearMLPField.linear_matrix`: the
        symmetric part of the scaled A negative semidefinite, so every eigenvalue of A has
        a non-positive real part). Far from the data the bounded network no longer counts
        and the field is its linear part: stable, a simulation driven outside the training
        range stays bounded instead of escaping exponentially. None: stable when the field
        reads inputs (a plant simulated from its input), free otherwise (autonomous
        systems such as Van der Pol's have unstable linearisations). Chosen on issue #17's
        panel (docs/neural_ode.md#defaults-chosen-on-held-out-data): on the cascaded tanks
        the free linear part came out unstable (eigenvalues +0.64 and +2.4) and the
        held-out simulation escaped (3.6 V RMSE; 2.0 V stable).

    Notes
    -----
    The network reads each input clipped to the range it had in the training data
    (:attr:`LinearMLPField.holds_inputs`): driven beyond it, the network's share of the
    field is held at its value at the edge and only the linear part follows the input.
    Training is unchanged (its inputs are inside the range). Measured on the real records
    whose held-out inputs leave the training range (docs/neural_ode.md, session 9): 5 of 6
    fits better (cascaded tanks, EMPS validation, Silverbox arrow), the network's own slope
    continued beyond the range worse on 4 of 5.

    Examples
    --------
    >>> import sysid
    >>> sysid.NeuralODE(field=LinearMLP(hidden=(16,))).field
    LinearMLP(hidden=(16,))
    """

    module_class = LinearMLPField  # so the modules this spec gets back are LinearMLPFields (the casts below)

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        time_dependent: bool = False,
        weight_decay: float = 0.0,
        network_penalty: float = 0.0,
        linear_start: str = "least_squares",
        stable: bool | None = None,
    ) -> None:
        super().__init__(hidden=hidden, activation=activation, time_dependent=time_dependent, weight_decay=weight_decay)
        self.network_penalty = network_penalty
        self.linear_start = linear_start
        self.stable = stable

    #: Files written before ``stable`` existed were fitted with a free linear part.
    recorded_before: ClassVar[dict[str, Any]] = {"stable": False}

    def check(self) -> None:
        super().check()
        self._choice("linear_start", ("least_squares", "zero"))
        if not math.isfinite(self._number("network_penalty", low=0.0) or 0.0):
            raise self._fail("network_penalty", "a finite non-negative number")
        if self.stable is not None:
            self._flag("stable")

    def is_stable(self, n_inputs: int) -> bool:
        """Whether a field reading ``n_inputs`` inputs gets a dissipative linear part (``stable``; None: with inputs).

        Examples
        --------
        >>> LinearMLP().is_stable(0), LinearMLP().is_stable(1), LinearMLP(stable=False).is_stable(1)
        (False, True, False)
        """
        return bool(n_inputs) if self.stable is None else bool(self.stable)

    def needs_points(self) -> bool:
        """Whether the training states are needed: for ``network_penalty``."""
        return bool(self.network_penalty)

    def penalty(self, module: MLPField, points: Points | None) -> torch.Tensor | None:
        """The shooting's penalty: ``weight_decay``'s and ``network_penalty``'s terms, summed (None if neither)."""
        decay, share = super().penalty(module, points), self.collocation_penalty(module, points)
        if decay is None or share is None:
            return share if decay is None else decay
        return decay + share

    def collocation_penalty(self, module: MLPField, points: Points | None) -> torch.Tensor | None:
        """``network_penalty`` times the network's mean squared output at ``points`` (scaled units), or None.

        Also the collocation's (unlike Hybrid's ``correction_penalty``): a zero linear part is
        fitted there with the network, and the penalty decides from the start which of the
        two carries the data. Hidden dimensions (``n_augment``) are read at zero and their
        outputs count in the mean, as in Hybrid's.
        """
        if not self.network_penalty or points is None:
            return None
        return float(self.network_penalty) * module.network_output(*points).pow(2).mean()

    def build(self, context: FieldContext) -> MLPField:
        module = cast(LinearMLPField, super().build(context))
        module.stable = self.is_stable(context.n_inputs)
        return module

    def warm_start(self, module: MLPField, t: np.ndarray, x: np.ndarray, dx: np.ndarray, u: np.ndarray | None) -> bool:
        if self.linear_start == "least_squares":
            cast(LinearMLPField, module).fit_linear(x, dx, u)
        return False  # the collocation fit then trains the network on what the linear part leaves

    def second_start(self) -> LinearMLP | None:
        """The same field from the least-squares linear part, when it starts from zero (else None).

        Fitted together from zero, the linear part can stay far from a fast rotation that the
        least-squares fit finds at once (docs/neural_ode.md, "A second start for a fit that
        does not reproduce its data" and "The second start first, when the first cannot
        follow its data").

        Examples
        --------
        >>> LinearMLP(hidden=(8,), linear_start="zero").second_start()
        LinearMLP(hidden=(8,))
        >>> LinearMLP().second_start() is None
        True
        """
        return clone(self).set_params(linear_start="least_squares") if self.linear_start == "zero" else None

    def collocation_parameters(self, module: MLPField) -> list[torch.nn.Parameter] | None:
        if self.linear_start == "zero":
            return None  # the linear part and the network fitted together
        # The network only: the linear part stays the least-squares one until shooting.
        return list(module.net.parameters())
