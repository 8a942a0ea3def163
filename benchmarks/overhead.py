"""Study 2: where a sysid fit spends its time, and how much of it is the vector field.

Every part of a fit is timed by wrapping it for the duration of one fit (no change to
sysid): the right-hand side torchdiffeq calls (``BatchedField.forward``: clock, input
lookup, scaling, the network), the network alone (``MLPField.scaled_forward``), the
adjoint's vector-Jacobian products (``torch.autograd.grad``, which only the adjoint
calls), ``loss.backward()`` as a whole, the collocation warm start (smoothing splines
and the network's fit to their derivatives) and the free-run validations. "In the
vector field" = right-hand-side evaluations plus their VJPs; everything else is the
solver's bookkeeping, autograd, the optimiser and ours.

Two reference figures on the same batch shape are measured beside the fit: one bare
network call, and one evaluation inside torchdiffeq's dopri5 (``odeint``) of the same
network and of a trivial right-hand side.

Run alone: python -m benchmarks --only overhead
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from benchmarks.common import Study, check_mode, held_out, quiet

SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "systems": ("lotka_volterra", "van_der_pol", "duffing"),
        "gradients": ("adjoint", "backprop"),
        "neural": {},
    },
    "quick": {
        "systems": ("lotka_volterra",),
        "gradients": ("adjoint", "backprop"),
        "neural": {"max_epochs": 10, "lbfgs_steps": 10},
    },
    "tiny": {
        "systems": ("lotka_volterra",),
        "gradients": ("adjoint",),
        "n_samples": 20,
        "neural": {"hidden": (8,), "max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 5},
    },
}
TARGET_SHARE = 0.5


class _Timers:
    """Total seconds, calls and (for the rare, long calls) each call's duration, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.durations: dict[str, list[float]] = {}
        self.cpu: dict[str, float] = {}

    def wrap(self, name: str, function: Any, keep: bool = False) -> Any:
        """``keep``: also record each call's duration and CPU time (for the few long calls)."""
        self.seconds.setdefault(name, 0.0)
        self.calls.setdefault(name, 0)
        self.durations.setdefault(name, [])
        self.cpu.setdefault(name, 0.0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            cpu = time.process_time() if keep else 0.0
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.seconds[name] += spent
                self.calls[name] += 1
                if keep:
                    self.durations[name].append(spent)
                    self.cpu[name] += time.process_time() - cpu

        return timed


@contextmanager
def instrumented() -> Iterator[_Timers]:
    """Time the parts of any sysid fit run inside the block (restores everything after)."""
    import sysid.estimators._ode_warm_start as ode_warm_start
    from sysid.fields import MLPField
    from sysid.integration import BatchedField
    from sysid.training._shooting import MultipleShooting

    timers = _Timers()
    patches = [
        (BatchedField, "forward"),
        (MLPField, "scaled_forward"),
        (MultipleShooting, "free_run_error"),
        (torch.Tensor, "backward"),
        (torch.autograd, "grad"),
        (ode_warm_start.WarmStartMixin, "_collocation_warm_start"),
    ]
    names = {
        "forward": "rhs",
        "scaled_forward": "network",
        "free_run_error": "validation",
        "backward": "backward",
        "grad": "vjp",
        "_collocation_warm_start": "warm_start",
    }
    saved = [(owner, attr, owner.__dict__[attr]) for owner, attr in patches]
    try:
        for owner, attr, original in saved:
            setattr(
                owner,
                attr,
                timers.wrap(names[attr], original, keep=attr in ("free_run_error", "_collocation_warm_start")),
            )
        yield timers
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def _per_call_us(function: Any, repeats: int = 300) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1e6


def reference_costs(model: Any, batch: int) -> dict[str, float]:
    """µs per call of the fitted network bare, and per evaluation inside dopri5, on ``batch`` states."""
    from torchdiffeq import odeint

    net = model.rhs_.field.net
    n = model.n_dims_
    z = torch.randn(batch, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.5
    out: dict[str, float] = {}
    with torch.no_grad():
        out["bare_network_us"] = _per_call_us(lambda: net(z))
    z_grad = z.clone().requires_grad_(True)
    out["network_forward_vjp_us"] = _per_call_us(
        lambda: torch.autograd.grad(net(z_grad), (z_grad, *net.parameters()), torch.ones(batch, n, dtype=z.dtype))
    )

    class Counted(torch.nn.Module):
        def __init__(self, f: Any) -> None:
            super().__init__()
            self.f, self.n = f, 0

        def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            self.n += 1
            return self.f(y)

    grid = torch.linspace(0, 5, 6, dtype=torch.float64)
    for label, f in (("dopri5_network_us", lambda y: net(y) * 0.2), ("dopri5_trivial_us", lambda y: -0.2 * y)):
        rhs = Counted(f)
        with torch.no_grad():
            odeint(rhs, z, grid, rtol=1e-4, atol=1e-6, method="dopri5")
            rhs.n = 0
            start = time.perf_counter()
            for _ in range(5):
                odeint(rhs, z, grid, rtol=1e-4, atol=1e-6, method="dopri5")
        out[label] = (time.perf_counter() - start) / max(rhs.n, 1) * 1e6
    return out


def measure(system: str, gradient: str, mode: str) -> tuple[dict[str, Any], dict[str, float]]:
    import sysid
    from sysid.integration import torch_threads

    cfg = SETTINGS[mode]
    train, *_ = held_out(system, n_samples=cfg.get("n_samples", 60))
    model = sysid.NeuralODE(verbose=False, random_state=0, gradient=gradient, **cfg["neural"])
    with quiet(), instrumented() as timers:
        start = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - start
    s, c = timers.seconds, timers.calls
    in_field = s["rhs"] + s["vjp"]
    history = model.history_
    adam = history[history["stage"] == "adam"]
    evals_per_epoch = float((adam["nfe_forward"] + adam["nfe_backward"]).mean()) if len(adam) else float("nan")
    n_segments = sum(int(np.ceil((tr.n_times - 1) / model.training_.segment_length)) for tr in train)
    with torch_threads(1):  # as the fit ran
        reference = reference_costs(model, n_segments)
    row = {
        "system": system,
        "gradient": gradient,
        "fit_s": fit_seconds,
        "in_field_share": in_field / fit_seconds,
        "network_share": (s["network"] + (s["vjp"] if gradient == "adjoint" else 0.0)) / fit_seconds,
        "rhs_evals": c["rhs"],
        "us_per_rhs_eval": s["rhs"] / max(c["rhs"], 1) * 1e6,
        "us_per_network_call": s["network"] / max(c["network"], 1) * 1e6,
        "us_per_vjp": s["vjp"] / max(c["vjp"], 1) * 1e6,
        "evals_per_epoch": evals_per_epoch,
        "warm_start_s": s["warm_start"],
        "validation_s": s["validation"],
        "backward_s": s["backward"],
        "rhs_s": s["rhs"],
        "vjp_s": s["vjp"],
    }
    return row, reference


def run(mode: str = "full") -> Study:
    check_mode(mode)
    cfg = SETTINGS[mode]
    rows, refs = [], []
    for system in cfg["systems"]:
        for gradient in cfg["gradients"]:
            row, ref = measure(system, gradient, mode)
            rows.append(row)
            refs.append({"system": system, "gradient": gradient, **ref})
    adjoint = [r for r in rows if r["gradient"] == "adjoint"]
    shares = [r["in_field_share"] for r in adjoint]
    met = bool(min(shares) >= TARGET_SHARE) if shares else None
    span = f"{min(shares):.0%}" if len(shares) == 1 else f"{min(shares):.0%}-{max(shares):.0%}"
    verdict = (
        (
            f"adjoint fits spend {span} of their time in vector-field evaluations and their VJPs "
            f"(the network alone: {min(r['network_share'] for r in adjoint):.0%})"
        )
        if shares
        else "no adjoint fit measured"
    )
    notes = _explain(rows, refs)
    setup = (
        "NeuralODE defaults"
        + (f" except {cfg['neural']}" if cfg["neural"] else "")
        + ", 3 trajectories x 60 irregular samples x 5% noise; every phase of one fit timed by wrapping it. "
        "`in_field_share` = (right-hand-side calls + adjoint VJPs) / fit time; `network_share` = the MLP "
        "alone (forward, plus the VJPs for the adjoint); `evals_per_epoch` = forward + backward "
        "evaluations per Adam epoch (all segments in one batch)."
    )
    return Study(
        "overhead",
        "Overhead: share of fit time in the vector field",
        setup,
        rows,
        target=f"at least {TARGET_SHARE:.0%} of fit time spent evaluating the vector field",
        met=met,
        verdict=verdict,
        notes=notes,
        mode=mode,
        tables=[("Reference costs on the same batch shape (µs per call / per evaluation)", refs)],
    )


def _explain(rows: list[dict[str, Any]], refs: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row, ref in zip(rows, refs):
        rest = row["fit_s"] - row["rhs_s"] - row["vjp_s"]
        wrapper = row["us_per_rhs_eval"] - row["us_per_network_call"]
        notes.append(
            f"{row['system']} ({row['gradient']}): {row['fit_s']:.1f} s fit = {row['rhs_s']:.1f} s right-hand side "
            f"({row['rhs_evals']} calls, {row['us_per_rhs_eval']:.0f} µs each, of which the network "
            f"{row['us_per_network_call']:.0f} µs) + {row['vjp_s']:.1f} s adjoint VJPs + {rest:.1f} s elsewhere "
            f"(warm start {row['warm_start_s']:.1f} s, validation {row['validation_s']:.1f} s, "
            f"the rest solver bookkeeping, autograd and the optimiser). Bare network "
            f"{ref['bare_network_us']:.0f} µs, network inside dopri5 {ref['dopri5_network_us']:.0f} µs per "
            f"evaluation, trivial right-hand side inside dopri5 {ref['dopri5_trivial_us']:.0f} µs. sysid's own "
            f"wrapper around the network (clock, rate scaling, module calls) costs {wrapper:.0f} µs per call, "
            f"{wrapper * row['rhs_evals'] / 1e6 / row['fit_s']:.0%} of the fit."
        )
    notes += [
        "Where the rest goes: per solver step torchdiffeq's dopri5 does a dozen small tensor operations on the "
        "state (and, for the adjoint, on the flattened augmented state holding every parameter's gradient "
        "integral), each costing torch's per-operation dispatch; at 3 trajectories the batch is 36 segments x 2 "
        "states, so this bookkeeping costs as much as the 64-wide network it serves. The free-run validations "
        "and the warm start are ours and listed above: a validation (a no-grad solve of the whole trajectories, "
        "about 500 evaluations here) is spaced by evaluation counts, 5 to 10 epochs apart, once the training "
        "evaluations since the last one reach 5x its own (every 5 epochs before issue #8), plus the start, the "
        "last epoch and every L-BFGS chunk; a 10-epoch quick fit still pays the start and last checks.",
        "What would raise the share: more work per evaluation (more trajectories or segments per batch: see the "
        "scaling study's `in_field_share`, which grows with N). The right-hand side is lean for the default "
        "field (autonomous, no inputs): it reads only the clock's rate, not the data time t (the wrapper cost "
        "above is the module call, the rate lookup and the rate scaling).",
    ]
    return notes
