"""Validation spacing, shared smoothing strength and chunked collocation (issue #8 overheads)."""

import numpy as np
import pytest
import torch
from scipy.interpolate import make_smoothing_spline

import sysid
from sysid.datasets import truth
from sysid.fields import MLPField
from sysid.training._collocation import collocation_fit, gcv_strength, smooth_trajectory, smoothing_strengths
from sysid.training._loop import TrainSettings, validation_due


def _history(val_nfe: int, epochs: list[tuple[int, int]]) -> list[dict]:
    rows = [{"epoch": -1, "stage": "start", "nfe_validation": val_nfe}]
    rows += [{"epoch": e, "stage": "adam", "nfe_forward": f, "nfe_backward": b} for e, (f, b) in enumerate(epochs)]
    return rows


def test_validation_is_due_by_evaluation_counts_within_bounds() -> None:
    s = TrainSettings(max_epochs=100, eval_every=5, eval_cost_ratio=5.0, max_eval_every=20)
    cheap = _history(100, [(50, 50)] * 5)  # 5 epochs, 500 evaluations = 5 x the check
    assert validation_due(cheap, 4, s)
    assert not validation_due(cheap[:-1], 3, s)  # never more often than eval_every
    dear = _history(10_000, [(50, 50)] * 20)  # the check costs far more: the gap cap decides
    assert not validation_due(dear[:-1], 18, s) and validation_due(dear, 19, s)
    assert validation_due(_history(10_000, [(1, 1)]), 99, TrainSettings(max_epochs=100, eval_cost_ratio=5.0))
    fixed = TrainSettings(max_epochs=100, eval_every=5)  # eval_cost_ratio=None: every eval_every epochs
    assert [e for e in range(12) if validation_due(_history(1, [(1, 1)] * (e + 1)), e, fixed)] == [0, 5, 10]


@pytest.mark.slow  # about 25 s: run by .ci/run's slow step, outside the default run
def test_validation_epochs_are_reproducible_and_sparser_than_every_five() -> None:
    data = sysid.datasets.simulate("lotka_volterra", n_trajectories=2, n_samples=30, random_state=0)
    fits = [
        sysid.NeuralODE(
            hidden=(16,), max_epochs=30, lbfgs_steps=0, collocation_steps=20, verbose=False, random_state=0
        ).fit(data)
        for _ in range(2)
    ]
    # These starved fits do not reproduce their data and are refitted once (history_ column "attempt"):
    # each attempt numbers its own epochs; the first is checked here.
    first = [f.history_[f.history_["attempt"] == 0] if "attempt" in f.history_ else f.history_ for f in fits]
    checked = [h.loc[h["val_loss"].notna(), "epoch"].tolist() for h in first]
    assert checked[0] == checked[1]
    assert checked[0][0] == -1 and checked[0][-1] == 29
    gaps = np.diff(checked[0][:-1])  # the last epoch is always checked, however close
    assert (gaps >= 5).all() and (gaps <= 20).all()
    assert len(checked[0]) < len([-1, *range(0, 30, 5), 29])
    assert first[0]["nfe_validation"].notna().sum() == len(checked[0])
    for a, b in zip(fits[0].rhs_.state_dict().values(), fits[1].rhs_.state_dict().values()):
        assert torch.equal(a, b)


def test_gcv_strength_matches_scipys_gcv_fit() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 12, 80))
    y = np.sin(t) + 0.1 * rng.standard_normal(80)
    ours = make_smoothing_spline(t, y, lam=gcv_strength(t, y))(t)
    scipys = make_smoothing_spline(t, y)(t)  # scipy's own GCV
    assert np.sqrt(np.mean((ours - scipys) ** 2)) < 0.01
    # the choice does not depend on the time unit
    assert gcv_strength(1000 * t, y) == pytest.approx(gcv_strength(t, y) * 1e9, rel=1e-6)


@pytest.mark.parametrize("system", ["lotka_volterra", "van_der_pol"])
def test_shared_strength_is_as_accurate_as_gcv_per_trajectory(system: str) -> None:
    noisy = sysid.datasets.simulate(system, n_trajectories=5, n_samples=60, noise=0.05, random_state=1)
    clean = sysid.datasets.simulate(system, n_trajectories=5, n_samples=60, noise=0.0, random_state=1)
    lam = smoothing_strengths([tr.t for tr in noisy], [tr.y for tr in noisy])
    assert lam.shape == (2,) and np.isfinite(lam).all()
    f = truth(system).rhs
    errors = {}
    for key, strength in (("gcv", None), ("shared", lam)):
        value_err, deriv_err = [], []
        for tr, cl in zip(noisy, clean):
            s = smooth_trajectory(tr.t, tr.y, strength)
            dx = f(0.0, cl.y)
            value_err.append(np.sqrt(np.mean((s.values - cl.y) ** 2, axis=0)) / cl.y.std(0))
            deriv_err.append(np.sqrt(np.mean((s.derivatives - dx) ** 2, axis=0)) / dx.std(0))
        errors[key] = (np.mean(value_err), np.mean(deriv_err))
    assert errors["shared"][0] <= 1.1 * errors["gcv"][0]
    assert errors["shared"][1] <= 1.1 * errors["gcv"][1]


def test_chunked_collocation_gives_the_single_batch_warm_start() -> None:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 10, 300))
    y = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * rng.standard_normal((300, 2))
    smoothed = [smooth_trajectory(t, y)]
    fields, losses = [], []
    for chunk in (10_000, 64):
        field = MLPField(2, hidden=(16,), generator=torch.Generator().manual_seed(0))
        losses.append(
            collocation_fit(field, [t], smoothed, [None], 2, np.ones(2), 1.0, 40, 1e-2, torch.float64, chunk_rows=chunk)
        )
        fields.append(field)
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)
    for a, b in zip(fields[0].state_dict().values(), fields[1].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_collocation_of_a_long_record_holds_no_more_rows_at_once_than_a_short_one() -> None:
    """The benchmark's premise (benchmarks/memory.py): the warm start of a 10,000-sample
    record keeps no more rows of activations in flight than that of a 1,000-sample one,
    which is a single pass (2,048-row chunks left ~14 MB resident at 10,000 samples)."""
    largest = {}
    for n in (1_000, 10_000):
        t = np.linspace(0.0, n / 10.0, n)
        y = np.column_stack([np.sin(t), np.cos(t)])
        smoothed = [smooth_trajectory(t, y, np.array([1.0, 1.0]))]
        field = MLPField(2, hidden=(8,), generator=torch.Generator().manual_seed(0))
        rows: list[int] = []
        field.register_forward_pre_hook(lambda _m, args, rows=rows: rows.append(args[1].shape[0]))
        collocation_fit(field, [t], smoothed, [None], 2, np.ones(2), 1.0, 2, 1e-2, torch.float64)
        assert sum(rows) == 2 * n  # every row, every step
        largest[n] = max(rows)
    assert largest[10_000] <= largest[1_000]


class Quadratic(torch.nn.Module):
    """The loss (w - target)^2 of one weight started at 1: a training objective for the loop's tests."""

    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = target
        self.w = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return ((self.w - self.target) ** 2).sum(), {}


@pytest.mark.parametrize("ratio", [None, 5.0])
def test_patience_stops_a_fit_whose_validation_no_longer_improves(ratio: float | None) -> None:
    """Early stopping counts the epochs since the best check, whichever validation spacing."""
    from sysid.training import TrainSettings, train

    settings = TrainSettings(
        max_epochs=200, patience=10, eval_every=5, eval_cost_ratio=ratio, max_eval_every=10, verbose=False
    )
    result = train(Quadratic(0.0), 1, lambda: 1.0, settings, torch.Generator().manual_seed(0), lambda: 0)
    assert result.stop_reason == "early_stopping"
    assert len([r for r in result.history if r.get("stage") == "adam"]) <= 20


class IllConditioned(torch.nn.Module):
    """sum_i c_i (w_i - 3)^2 over 200 weights with curvatures c_i from 1 to 1e6: L-BFGS (memory 20)
    moves the weights on every one of 100 iterations without reaching the minimum."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("c", torch.logspace(0, 6, 200, dtype=torch.float64))
        self.w = torch.nn.Parameter(torch.ones(200, dtype=torch.float64))

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return (self.c * (self.w - 3.0) ** 2).sum(), {}


@pytest.mark.parametrize(("gain", "chunks"), [(0.002, 2), (0.05, 10)])
def test_the_polish_stops_after_two_chunks_of_negligible_gain_and_keeps_the_best(gain: float, chunks: int) -> None:
    """A polish whose free-run error keeps improving by under POLISH_MIN_GAIN stops after two chunks."""
    from sysid.training import POLISH_MIN_GAIN, TrainSettings, train

    assert (gain < POLISH_MIN_GAIN) == (chunks == 2)
    scores = iter(1.0 * (1 - gain) ** k for k in range(100))  # every check a little better than the last
    settings = TrainSettings(max_epochs=1, lbfgs_steps=100, verbose=False)
    result = train(IllConditioned(), 1, lambda: next(scores), settings, torch.Generator().manual_seed(0), lambda: 0)
    polish = [r for r in result.history if r.get("stage") == "lbfgs"]
    assert len(polish) == chunks
    best = min(result.history, key=lambda r: r["val_loss"])  # the last chunk's: every check improved a little
    assert result.best_score == best["val_loss"] and result.best_epoch == best["epoch"] == polish[-1]["epoch"]


def test_the_polish_stops_once_a_chunk_cannot_move_the_parameters() -> None:
    """L-BFGS reaches the minimum of a 1-D quadratic in its first chunk; the second finds nowhere lower
    to go and the polish ends there (a third would repeat it exactly), although every check improves."""
    from sysid.training import TrainSettings, train

    scores = iter(1.0 * 0.95**k for k in range(100))  # worthwhile gains: only the stall can stop it
    settings = TrainSettings(max_epochs=1, lbfgs_steps=100, verbose=False)
    objective = Quadratic(3.0)
    result = train(objective, 1, lambda: next(scores), settings, torch.Generator().manual_seed(0), lambda: 0)
    assert len([r for r in result.history if r.get("stage") == "lbfgs"]) == 2
    assert float(objective.w.detach()) == pytest.approx(3.0, abs=1e-6)


@pytest.mark.slow  # about 6 s: run by .ci/run's slow step, outside the default run
def test_one_record_of_a_fast_oscillation_is_smoothed_to_the_noise_level() -> None:
    """A 5 Hz swing sampled at 50 Hz, 1% noise: scipy's own GCV search stopped on a straight line
    through it (error = the amplitude); the strength chosen on the whole record keeps the swing."""
    rng = np.random.default_rng(0)
    t = np.arange(800) / 50.0
    clean = np.column_stack([np.cos(2 * np.pi * 5.0 * t), -np.sin(2 * np.pi * 5.0 * t)])
    smoothed = sysid.training.smooth_trajectory(t, clean + 0.01 * rng.standard_normal(clean.shape))
    error = np.sqrt(np.mean((smoothed.values - clean) ** 2, axis=0))
    assert (error < 0.015).all(), error
    lam = sysid.training.smoothing_strengths([t], [clean + 0.01 * rng.standard_normal(clean.shape)])
    assert lam.shape == (2,) and np.isfinite(lam).all()  # scipy's own choice replaced
    slow = np.column_stack([np.sin(t / 4.0), np.cos(t / 4.0)]) + 0.01 * rng.standard_normal(clean.shape)
    assert np.isnan(sysid.training.smoothing_strengths([t], [slow])).all()  # scipy's own choice kept


@pytest.mark.parametrize("magnitude", [np.ldexp(1.0, -997), np.ldexp(1.0, 997)])  # 7.5e-301, 1.3e300
@pytest.mark.parametrize("n_records", [1, 3])
def test_smoothing_does_not_depend_on_the_data_s_magnitude(magnitude: float, n_records: int) -> None:
    """The spline and its GCV square the data: at 1e-300 the squares underflowed and the strength changed.
    Scaled by a power of two, the data must give the same strengths bit for bit and the same smoothed
    states (up to the precision that subnormal numbers keep of the near-zero end curvatures)."""
    rng = np.random.default_rng(1)
    times = [np.sort(rng.uniform(0.0, 6.0, 40)) for _ in range(n_records)]
    ys = [np.c_[np.sin(t), np.exp(-t)] + 0.02 * rng.standard_normal((40, 2)) for t in times]
    lam = smoothing_strengths(times, ys)
    scaled_lam = smoothing_strengths(times, [y * magnitude for y in ys])
    np.testing.assert_array_equal(np.isnan(scaled_lam), np.isnan(lam))
    np.testing.assert_array_equal(scaled_lam[np.isfinite(lam)], lam[np.isfinite(lam)])
    for t, y in zip(times, ys):
        plain = smooth_trajectory(t, y, lam)
        scaled = smooth_trajectory(t, y * magnitude, scaled_lam)
        for a, b in zip(
            (plain.values, plain.derivatives, plain.second_derivatives),
            (scaled.values, scaled.derivatives, scaled.second_derivatives),
        ):
            np.testing.assert_allclose(b / magnitude, a, rtol=1e-12, atol=1e-20)
