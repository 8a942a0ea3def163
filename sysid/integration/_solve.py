"""One call into torchdiffeq for a whole batch, with gradients by adjoint or backprop."""

from __future__ import annotations

from typing import Literal

import torch
from torchdiffeq import odeint, odeint_adjoint

from sysid.integration._field import BatchedField
from sysid.integration._solver import SolverConfig

Gradient = Literal["adjoint", "backprop", "none"]

DEFAULT_MAX_NUM_STEPS = 10_000
"""Step budget of adaptive solvers between two consecutive output times, unless
``options["max_num_steps"]`` says otherwise. torchdiffeq's own default (2**31 - 1) lets a
stiff or exploding field run for hours; with a budget the solve fails with
:class:`SolverFailure`, which training survives (roll back, lower the rate) and
prediction reports (NaN, a ``SolverWarning`` and the ``solver_failed`` flag)."""


BACKPROP_EVALS_PER_INTERVAL = 60
"""Evaluation budget of an adaptive solve that backpropagates, per output interval: 10 dopri5
steps per interval on average (the total is at least :data:`BACKPROP_MIN_EVALS`).
Backpropagation keeps every evaluation's graph until the backward pass (about 40 kB at
batch 1, more with the batch), and the per-interval budget above bounds steps per
interval, not per solve: on the Silverbox record (1,400 samples, 70 segments of 20
intervals per batch) one L-BFGS line-search trial took a solve to thousands of steps and
the fit from 0.5 GB to over 10 GB in 40 s (killed at 24 GB). Trained fields take 1-2
steps per interval (0.45 accepted and 0.32 rejected per sample on the cascaded tanks), so
the budget only stops a solve that has gone stiff or unstable, as a step-size underflow
would: with :class:`SolverFailure`, which Adam survives (roll back, lower the rate) and
which ends an L-BFGS polish on its best parameters."""

BACKPROP_MIN_EVALS = 5_000
"""The smallest evaluation budget of a backpropagated adaptive solve, whatever its number
of output intervals (sparse samples may need many steps per interval)."""


class SolverFailure(RuntimeError):
    """The solver gave up (step-size underflow, step budget exhausted, non-finite state)."""


class _Budgeted(torch.nn.Module):
    """``rhs`` that raises :class:`SolverFailure` once a solve has evaluated it ``limit`` times."""

    def __init__(self, rhs: BatchedField, limit: int) -> None:
        super().__init__()
        self.rhs, self.limit, self.start = rhs, limit, rhs.nfe

    def forward(self, sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.rhs.nfe - self.start >= self.limit:
            raise SolverFailure(
                f"the solve took more than {self.limit} evaluations (the budget of a backpropagated solve: "
                f"{BACKPROP_EVALS_PER_INTERVAL} per output interval, at least {BACKPROP_MIN_EVALS}): the field is "
                "stiff or unstable there, and backpropagation would keep every step in memory"
            )
        return self.rhs(sigma, z)


def solve(
    rhs: BatchedField,
    z0: torch.Tensor,
    grid: torch.Tensor,
    config: SolverConfig,
    gradient: Gradient = "adjoint",
    jump_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrate every batch element from ``z0`` and return the states on ``grid``.

    Parameters
    ----------
    rhs : BatchedField
        The bound right-hand side.
    z0 : tensor (batch, n_dims)
        Initial scaled states at ``grid[0]``.
    grid : tensor (n_out,)
        Increasing solver times at which to report the state.
    config : SolverConfig
    gradient : {"adjoint", "backprop", "none"}
        ``"adjoint"`` uses :func:`torchdiffeq.odeint_adjoint` (O(1) memory in the
        number of solver steps), ``"backprop"`` differentiates through the solver's
        operations, ``"none"`` builds no graph.
    jump_t : tensor or None
        Solver times where the right-hand side is discontinuous (clock knots); the
        adaptive solver steps onto them exactly instead of rejecting steps around them.

    Returns
    -------
    tensor (n_out, batch, n_dims)

    Raises
    ------
    SolverFailure
        When torchdiffeq gives up, the solution is not finite, or an adaptive solve that
        backpropagates exceeds its evaluation budget (:data:`BACKPROP_EVALS_PER_INTERVAL`).
    """
    options = dict(config.options)
    if config.adaptive:
        options.setdefault("max_num_steps", DEFAULT_MAX_NUM_STEPS)
    if config.adaptive and jump_t is not None and jump_t.numel():
        inside = jump_t[(jump_t > grid[0]) & (jump_t < grid[-1])]
        if inside.numel():
            options["jump_t"] = inside
    elif not config.adaptive and "step_size" not in options:
        options["step_size"] = float(torch.diff(grid).min()) / 2
    kwargs = dict(rtol=config.rtol, atol=config.atol, method=config.method, options=options)
    try:
        if gradient == "none":
            with torch.no_grad():
                out = odeint(rhs, z0, grid, **kwargs)
        elif gradient == "adjoint":
            adjoint_options = {k: v for k, v in options.items() if k != "norm"}
            if config.adaptive:
                # Error control on the state and its adjoint only, not on the parameter-gradient
                # integrals (Kidger et al. 2021, "Hey, that's not an ODE"): far fewer backward steps.
                adjoint_options["norm"] = "seminorm"
            out = odeint_adjoint(
                rhs,
                z0,
                grid,
                adjoint_params=tuple(p for p in rhs.parameters() if p.requires_grad),
                adjoint_options=adjoint_options,
                **kwargs,
            )
        else:
            func: torch.nn.Module = rhs
            if config.adaptive:
                limit = max(BACKPROP_MIN_EVALS, BACKPROP_EVALS_PER_INTERVAL * (grid.numel() - 1))
                func = _Budgeted(rhs, limit)
            out = odeint(func, z0, grid, **kwargs)
    except AssertionError as exc:  # torchdiffeq signals underflow / step budget with assert
        reason = str(exc)
        if reason.startswith("underflow in dt"):
            reason += " (the step size shrank to nothing: the field is stiff, blows up, or returns NaN/inf there)"
        raise SolverFailure(reason) from None
    if not torch.isfinite(out).all():
        raise SolverFailure("the solution became non-finite (NaN or inf)")
    return out
