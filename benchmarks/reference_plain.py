"""The plain Neural ODE training loop a user would write from the paper's examples.

MLP 2x64 tanh, odeint_adjoint with dopri5 (rtol 1e-6, atol 1e-8), Adam 1e-2 with a
decaying rate, float64, one trajectory per step integrated over its whole record from
its first (noisy) sample. Deliberately nothing more: it is the reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torchdiffeq import odeint, odeint_adjoint


class _MLP(torch.nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, n)
        ).double()
        self.nfe = 0

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.net(x)


@dataclass
class PlainResult:
    seconds: float
    iterations: int
    nfe: int
    model: _MLP
    nfe_forward: int = 0
    nfe_backward: int = 0


def fit_plain(
    times: list[np.ndarray],
    ys: list[np.ndarray],
    max_iterations: int = 300,
    max_seconds: float = 120.0,
    seed: int = 0,
    callback=None,
    clock=time.perf_counter,
) -> PlainResult:
    """Train until ``max_iterations`` or ``max_seconds``; ``callback(model, it, seconds)`` may stop it (True).

    Time spent inside ``callback`` (e.g. evaluating a held-out error) is excluded from
    ``seconds`` and from the budget, and its function evaluations from the counts.
    ``clock`` measures the time (``time.process_time`` for CPU seconds on a shared machine).
    """
    time_now = clock
    torch.manual_seed(seed)
    model = _MLP(ys[0].shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.995)
    data = [(torch.as_tensor(t), torch.as_tensor(y)) for t, y in zip(times, ys)]
    start = time_now()
    paused = 0.0
    nfe_fwd = nfe_bwd = 0
    it = 0
    while it < max_iterations and time_now() - start - paused < max_seconds:
        t, y = data[it % len(data)]
        opt.zero_grad()
        n0 = model.nfe
        try:
            pred = odeint_adjoint(model, y[0], t, rtol=1e-6, atol=1e-8, method="dopri5")
            n1 = model.nfe
            loss = torch.nanmean((pred - y) ** 2)
            loss.backward()
            nfe_fwd += n1 - n0
            nfe_bwd += model.nfe - n1
            opt.step()
            sched.step()
        except AssertionError:  # underflow: the plain loop has no recovery; skip the step
            nfe_fwd += model.nfe - n0
        it += 1
        if callback is not None:
            mark, counted = time_now(), model.nfe
            stop = callback(model, it, mark - start - paused)
            model.nfe = counted
            paused += time_now() - mark
            if stop:
                break
    return PlainResult(time_now() - start - paused, it, nfe_fwd + nfe_bwd, model, nfe_fwd, nfe_bwd)


@torch.no_grad()
def predict_plain(model: _MLP, t: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """Free-run prediction from x0 at times t."""
    try:
        # A step budget, so that a diverging model returns NaN instead of stepping forever.
        return odeint(
            model, torch.as_tensor(x0), torch.as_tensor(t), rtol=1e-6, atol=1e-8, options={"max_num_steps": 20_000}
        ).numpy()
    except AssertionError:
        return np.full((len(t), len(x0)), np.nan)
