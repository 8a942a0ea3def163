"""A sparse library vector field: dx/dt = Theta(x, u) @ Xi, with pruned terms masked out.

The library holds polynomial terms up to a degree in the states and inputs (names and
powers from :class:`sklearn.preprocessing.PolynomialFeatures`, which writes them in
pysindy's convention: ``"1"``, ``"prey"``, ``"prey^2"``, ``"prey predator"``),
optionally ``sin``/``cos`` of every state, and user-supplied term functions.

Conditioning: every library column is divided by a fixed typical magnitude (its RMS
over probe points spread around the data) and every output by the state's spread per
characteristic time, so the trained weights are of order one whatever units the user
measured in. This is a diagonal change of variables, so the coefficients in physical
units follow exactly (:meth:`PolynomialField.coefficients`) and a term pruned in one
set of units is pruned in the other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from sklearn.preprocessing import PolynomialFeatures

from sysid.errors import DataError

TermFunction = Callable[[torch.Tensor], torch.Tensor]

_RIDGE = 1e-8  # relative ridge of the least-squares fit (conditioning only)
_MAX_GRID_VARIABLES = 6  # full 3**n probe grid up to this many variables, axis points beyond


def polynomial_terms(names: Sequence[str], degree: int, include_bias: bool = True) -> tuple[list[str], np.ndarray]:
    """Monomial names (pysindy's convention) and their powers (n_terms, n_variables).

    Examples
    --------
    >>> names, powers = polynomial_terms(["prey", "predator"], 2)
    >>> names
    ['1', 'prey', 'predator', 'prey^2', 'prey predator', 'predator^2']
    >>> powers[4].tolist()
    [1, 1]
    """
    if degree == 0:
        return (["1"], np.zeros((1, len(names)), dtype=int)) if include_bias else ([], np.zeros((0, len(names)), int))
    poly = PolynomialFeatures(degree=degree, include_bias=include_bias).fit(np.zeros((1, len(names))))
    return [str(n) for n in poly.get_feature_names_out(list(names))], np.asarray(poly.powers_, dtype=int)


class PolynomialField(torch.nn.Module):
    """dx/dt = (Theta(x, u) / feature_scale) @ (mask * weight) * (spread / time_unit).

    Parameters
    ----------
    state_names : sequence of hashable
        Names of the state dimensions (observed states, then augmented ones); each is
        converted with ``str`` for the term names.
    input_names : sequence of hashable, default ()
        Names of the inputs (converted with ``str``); they enter the polynomial terms like states.
    degree : int, default 2
        Highest total degree of the polynomial terms (0 gives the constant only).
    include_trig : bool, default False
        Add ``sin(state)`` and ``cos(state)`` for every state.
    functions : mapping of str to callable, optional
        Extra terms ``{name: g}`` with ``g(x)`` mapping physical states (batch, n_dims)
        to a tensor (batch,) or (batch, 1).
    center, spread : tensor (n_dims,), optional
        State scaling (default 0 and 1); used for the probe points and the output scale.
    input_center, input_spread : tensor (n_inputs,), optional
        Input scaling for the probe points.
    time_unit : float, default 1.0
        Characteristic time of the data.
    dtype : torch dtype, default float64

    Attributes
    ----------
    term_names : list of str
        The library's terms, in the row order of :meth:`coefficients`.
    weight : Parameter (n_terms, n_dims)
        Scaled coefficients (trained).
    mask : buffer (n_terms, n_dims)
        1 for active terms, 0 for pruned ones.

    Examples
    --------
    >>> import torch
    >>> f = PolynomialField(["x", "y"], degree=2)
    >>> f.term_names
    ['1', 'x', 'y', 'x^2', 'x y', 'y^2']
    >>> xi = torch.zeros(6, 2, dtype=torch.float64)
    >>> xi[1, 0], xi[4, 1] = -1.0, 2.0  # dx/dt = -x, dy/dt = 2 x y
    >>> f.set_coefficients(xi)
    >>> f(torch.zeros(1), torch.tensor([[3.0, 0.5]], dtype=torch.float64), None).tolist()
    [[-3.0, 3.0]]
    """

    #: The library has no time column: t is never read (``t=None`` is accepted).
    uses_time = False

    # Buffers (registered in __init__; declared here so they type as tensors, not Tensor | Module).
    factor_index: torch.Tensor
    out_scale: torch.Tensor
    feature_scale: torch.Tensor
    mask: torch.Tensor
    gram: torch.Tensor
    precond: torch.Tensor

    def __init__(
        self,
        state_names: Sequence[Hashable],
        input_names: Sequence[Hashable] = (),
        degree: int = 2,
        include_trig: bool = False,
        functions: Mapping[str, TermFunction] | None = None,
        center: torch.Tensor | None = None,
        spread: torch.Tensor | None = None,
        input_center: torch.Tensor | None = None,
        input_spread: torch.Tensor | None = None,
        time_unit: float = 1.0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.state_names = [str(s) for s in state_names]
        self.input_names = [str(s) for s in input_names]
        self.n_dims, self.n_inputs = len(self.state_names), len(self.input_names)
        self.degree, self.include_trig = int(degree), bool(include_trig)
        self.functions = dict(functions or {})
        poly_names, powers = polynomial_terms(self.state_names + self.input_names, self.degree)
        # Each monomial as a list of variable indices into [1, x..., u...] (0 = the constant 1).
        width = max(self.degree, 1)
        index = np.zeros((len(poly_names), width), dtype=np.int64)
        for k, row in enumerate(powers):
            factors = [j + 1 for j, p in enumerate(row) for _ in range(int(p))]
            index[k, : len(factors)] = factors
        self.register_buffer("factor_index", torch.as_tensor(index))
        trig_names = (
            [f"sin({s})" for s in self.state_names] + [f"cos({s})" for s in self.state_names]
            if self.include_trig
            else []
        )
        self.term_names = poly_names + trig_names + list(self.functions)
        n_terms = len(self.term_names)
        ones = torch.ones(self.n_dims, dtype=dtype)
        center = torch.zeros(self.n_dims, dtype=dtype) if center is None else center.to(dtype)
        spread = ones if spread is None else spread.to(dtype)
        input_center = torch.zeros(self.n_inputs, dtype=dtype) if input_center is None else input_center.to(dtype)
        input_spread = torch.ones(self.n_inputs, dtype=dtype) if input_spread is None else input_spread.to(dtype)
        self.register_buffer("out_scale", spread / float(time_unit))
        self.register_buffer("feature_scale", torch.ones(n_terms, dtype=dtype))
        self.register_buffer("mask", torch.ones(n_terms, self.n_dims, dtype=dtype))
        self.register_buffer("gram", torch.eye(n_terms, dtype=dtype))
        self.register_buffer("precond", torch.eye(n_terms, dtype=dtype).repeat(self.n_dims, 1, 1))
        self.weight = torch.nn.Parameter(torch.zeros(n_terms, self.n_dims, dtype=dtype))
        #: When set, a tensor (n_groups, n_terms, n_dims) of scaled coefficients: the batch is
        #: split into that many equal consecutive groups, each evaluated with its own set
        #: (several coefficient sets in one batched solve, e.g. for finite differences).
        self.groups: torch.Tensor | None = None
        #: The scaled library (n_rows, n_terms) and scaled derivative targets (n_rows, n_dims) of the
        #: last :meth:`fit_least_squares`, for a selection to draw candidate equations from; None before.
        self.regression: tuple[np.ndarray, np.ndarray] | None = None
        with torch.no_grad():
            self.feature_scale.copy_(self._probe_scale(center, spread, input_center, input_spread))

    # -- library ---------------------------------------------------------------------
    def library(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """The library matrix Theta (batch, n_terms) in physical units."""
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        if not self.n_inputs:
            parts = [ones, x]
        elif u is None:
            raise DataError(
                f"this library reads the inputs {self.input_names} but was called with u=None; "
                f"pass the inputs (batch, {self.n_inputs})."
            )
        else:
            parts = [ones, x, u]
        variables = torch.cat(parts, dim=1)
        columns = [variables[:, self.factor_index].prod(dim=-1)]
        if self.include_trig:
            columns += [torch.sin(x), torch.cos(x)]
        for g in self.functions.values():
            columns.append(g(x).reshape(x.shape[0], 1))
        return columns[0] if len(columns) == 1 else torch.cat(columns, dim=1)

    def _probe_scale(
        self, center: torch.Tensor, spread: torch.Tensor, input_center: torch.Tensor, input_spread: torch.Tensor
    ) -> torch.Tensor:
        """RMS of every library column over points center + spread * {-1, 0, 1} per variable."""
        n_vars = self.n_dims + self.n_inputs
        if n_vars <= _MAX_GRID_VARIABLES:
            steps = torch.as_tensor(list(itertools.product((-1.0, 0.0, 1.0), repeat=n_vars)), dtype=center.dtype)
        else:
            eye = torch.eye(n_vars, dtype=center.dtype)
            steps = torch.cat([torch.zeros(1, n_vars, dtype=center.dtype), eye, -eye])
        mid = torch.cat([center, input_center])
        width = torch.cat([spread, input_spread])
        points = mid + width * steps.reshape(-1, n_vars)
        x, u = points[:, : self.n_dims], points[:, self.n_dims :]
        theta = self.library(torch.zeros(points.shape[0], dtype=center.dtype), x, u if self.n_inputs else None)
        # Squared in units of a power of two near each column's peak (exact: the same bits for data of
        # ordinary magnitude), so that columns of magnitude 1e-300 do not underflow to an RMS of 0.
        peak = theta.abs().amax(dim=0)
        unit = torch.ldexp(torch.ones_like(peak), torch.frexp(peak).exponent)
        unit = torch.where(torch.isfinite(unit) & (peak > 0), unit, torch.ones_like(unit))
        rms = (theta / unit).pow(2).mean(dim=0).sqrt() * unit
        return torch.where(torch.isfinite(rms) & (rms > 0), rms, torch.ones_like(rms))

    # -- coefficients ------------------------------------------------------------------
    def scaled_coefficients(self) -> torch.Tensor:
        """Coefficients of the normalised library (n_terms, n_dims), zero where pruned."""
        return torch.einsum("jkl,lj->kj", self.precond, self.weight) * self.mask

    def coefficients(self) -> torch.Tensor:
        """Coefficients Xi (n_terms, n_dims) in physical units (zero where pruned)."""
        return self.scaled_coefficients() * self.out_scale / self.feature_scale[:, None]

    def set_coefficients(self, xi: torch.Tensor) -> None:
        """Set the physical coefficients Xi (n_terms, n_dims); masked entries stay zero."""
        xi = torch.as_tensor(xi, dtype=self.weight.dtype)
        self.set_scaled_coefficients(xi * self.feature_scale[:, None] / self.out_scale)

    def set_scaled_coefficients(self, scaled: torch.Tensor) -> None:
        """Set the coefficients of the normalised library (n_terms, n_dims); pruned stay zero."""
        with torch.no_grad():
            weight = torch.zeros_like(self.weight)
            for j in range(self.n_dims):
                active = self.mask[:, j] > 0
                if active.any():
                    block = self.precond[j][active][:, active]
                    weight[active, j] = torch.linalg.solve_triangular(block, scaled[active, j, None], upper=True)[:, 0]
            self.weight.copy_(weight)

    def set_gram(self, gram: torch.Tensor) -> None:
        """Precondition the trained weights with the normalised library's Gram matrix.

        ``gram`` (n_terms, n_terms) is Theta^T Theta / n of the normalised library on the
        data. The weights become coordinates in which the active terms of every state
        are orthonormal on the data (an inverse Cholesky factor), so that correlated
        terms (1, x, x^2 when x is far from 0) do not slow gradient descent down. The
        represented coefficients are unchanged.
        """
        with torch.no_grad():
            scaled = self.scaled_coefficients()
            self.gram.copy_(torch.as_tensor(gram, dtype=self.gram.dtype))
            self._update_precond()
            self.set_scaled_coefficients(scaled)

    def _update_precond(self) -> None:
        n_terms = self.gram.shape[0]
        ridge = 1e-10 * float(torch.diagonal(self.gram).mean().clamp(min=1e-300))
        precond = torch.zeros(self.n_dims, n_terms, n_terms, dtype=self.gram.dtype)
        for j in range(self.n_dims):
            active = torch.nonzero(self.mask[:, j] > 0)[:, 0]
            if not len(active):
                continue
            block = self.gram[active][:, active] + ridge * torch.eye(len(active), dtype=self.gram.dtype)
            chol = torch.linalg.cholesky(block)  # block = L L^T, R = L^T upper
            inv = torch.linalg.solve_triangular(chol.T, torch.eye(len(active), dtype=block.dtype), upper=True)
            precond[j][active[:, None], active[None, :]] = inv
        self.precond.copy_(precond)

    def fit_least_squares(self, t: np.ndarray, x: np.ndarray, dx: np.ndarray, u: np.ndarray | None) -> bool:
        """Set the active coefficients by ridge least squares of the library onto derivatives ``dx``.

        ``t`` (n,), ``x`` (n, n_dims), ``dx`` (n, n_states) with NaN where unknown, ``u``
        (n, n_inputs) or None; physical units (e.g. smoothing-spline states and their
        derivatives). Each equation is solved on its own rows, in the scaled coordinates,
        with a relative ridge of 1e-8 (conditioning only); the library's Gram matrix on
        these rows becomes the metric of :meth:`prune` and :meth:`project_support`.
        Keeps the scaled library and targets in :attr:`regression`. Returns False (nothing
        changed) when the library or the solution is not finite.

        Examples
        --------
        >>> import numpy as np, torch
        >>> f = PolynomialField(["x"], [], 1, center=torch.zeros(1), spread=torch.ones(1))
        >>> x = np.linspace(-1, 1, 20)[:, None]
        >>> f.fit_least_squares(np.zeros(20), x, 1.0 - 2.0 * x, None)
        True
        >>> f.coefficients().round(decimals=6).tolist()
        [[1.0], [-2.0]]
        """
        dtype = self.weight.dtype
        u_t = None if u is None else torch.as_tensor(u, dtype=dtype)
        with torch.no_grad():
            theta = (
                self.library(torch.as_tensor(t, dtype=dtype), torch.as_tensor(x, dtype=dtype), u_t) / self.feature_scale
            ).numpy()
        n_obs = dx.shape[1]
        targets = dx / self.out_scale.numpy()[:n_obs]
        mask = self.mask.numpy()
        scaled = np.zeros(mask.shape)
        for j in range(n_obs):
            seen = np.isfinite(targets[:, j])
            active = mask[:, j] > 0
            if seen.sum() < 2 or not active.any():
                continue
            a = theta[seen][:, active]
            gram = a.T @ a
            ridge = _RIDGE * np.trace(gram) / max(gram.shape[0], 1)
            scaled[active, j] = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), a.T @ targets[seen, j])
        if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(scaled))):
            return False
        self.set_gram(torch.as_tensor(theta.T @ theta / theta.shape[0], dtype=dtype))
        self.set_scaled_coefficients(torch.as_tensor(scaled * mask, dtype=dtype))
        self.regression = (theta, targets)
        return True

    def set_support(self, mask: torch.Tensor, scaled: torch.Tensor | None = None) -> None:
        """Make ``mask`` (n_terms, n_dims; 1 = active) the active terms, with scaled coefficients ``scaled``.

        The preconditioner follows the new support; entries of ``scaled`` outside it are
        ignored (default: the current coefficients, restricted to the new support).
        """
        with torch.no_grad():
            scaled = self.scaled_coefficients() if scaled is None else torch.as_tensor(scaled, dtype=self.weight.dtype)
            self.mask.copy_(torch.as_tensor(mask, dtype=self.mask.dtype))
            self._update_precond()
            self.set_scaled_coefficients(scaled * self.mask)

    def project_support(self, mask: torch.Tensor) -> None:
        """Make ``mask`` the active terms, moving the coefficients so the field changes least on the data.

        Least squares in the metric of ``gram`` (as :meth:`prune` does): terms leaving
        the support hand their contribution to the correlated terms that stay.
        """
        with torch.no_grad():
            old = self.scaled_coefficients()
            self.mask.copy_(torch.as_tensor(mask, dtype=self.mask.dtype))
            self._update_precond()
            ridge = 1e-10 * float(torch.diagonal(self.gram).mean().clamp(min=1e-300))
            new = torch.zeros_like(old)
            for j in range(self.n_dims):
                active = self.mask[:, j] > 0
                if active.any():
                    block = self.gram[active][:, active] + ridge * torch.eye(int(active.sum()), dtype=old.dtype)
                    new[active, j] = torch.linalg.solve(block, (self.gram @ old[:, j])[active])
            self.set_scaled_coefficients(new)

    def prune(self, threshold: float) -> int:
        """Mask every active coefficient with physical magnitude below ``threshold``.

        The remaining coefficients of each state are re-projected so that the field
        changes as little as possible on the data (least squares in the metric of
        ``gram``): the pruned terms' contribution is taken over by correlated terms
        instead of being dropped outright. Returns the number of terms newly pruned.
        """
        with torch.no_grad():
            small = (self.coefficients().abs() < threshold) & (self.mask > 0)
            if small.any():
                mask = self.mask.clone()
                mask[small] = 0.0
                self.project_support(mask)
        return int(small.sum())

    def forward(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """dx/dt (batch, n_dims) at times t (batch,), states x (batch, n_dims), inputs u."""
        theta = self.library(t, x, u) / self.feature_scale
        if self.groups is None:
            return theta @ self.scaled_coefficients() * self.out_scale
        n_groups = self.groups.shape[0]  # consecutive equal blocks of the batch, one coefficient set each
        theta = theta.reshape(n_groups, x.shape[0] // n_groups, -1)
        return (theta @ (self.groups * self.mask)).reshape(x.shape[0], -1) * self.out_scale
