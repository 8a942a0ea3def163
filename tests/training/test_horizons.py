"""Horizon schedules (Training(horizons=...)): growing shooting windows, carried-over start states,
restore-best across stages, checkpoints, validation of the setting."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sysid
from sysid.errors import ConfigError, FitWarning
from sysid.training import MultipleShooting, _shooting, make_segments

# the network alone and one stage unless a test gives a schedule
# (NeuralODE's defaults: tests/estimators/test_neural_ode.py)
TINY = {
    "field": sysid.fields.MLP(hidden=(8,)),
    "horizons": None,
    "collocation_steps": 20,
    "gradient": "backprop",
    "verbose": False,
    "random_state": 0,
}


@pytest.fixture(scope="module")
def data() -> sysid.Trajectories:
    return sysid.datasets.simulate("lotka_volterra", n_trajectories=2, n_samples=30, noise=0.02, random_state=0)


def _fit(data: sysid.Trajectories, **options) -> sysid.NeuralODE:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return sysid.NeuralODE(**{**TINY, **options}).fit(data)


def _free_run(model: sysid.NeuralODE, data: sysid.Trajectories) -> float:
    """RMSE (scaled units) of the training trajectories simulated from the fitted x0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sysid.ExtrapolationWarning)
        errors = [
            (model.scaling_.scale(model.predict(t=tr.t, x0=x0)) - model.scaling_.scale(tr.y)) ** 2
            for tr, x0 in zip(data, model.x0_)
        ]
    return float(np.sqrt(np.mean(np.concatenate(errors))))


@pytest.mark.parametrize(
    ("horizons", "why"),
    [
        ("auto", "got 'auto'"),
        (20, "got 20"),
        ([], "got []"),
        ([3], "is not longer than the stage before it (5 intervals)"),
        ([20, 10], "is not longer than the stage before it (20 intervals)"),
        ([None, 40], "follows the whole-trajectory stage"),
        ([20.5], "neither a positive integer nor None"),
        ([(20, 0, 0.01, 0)], "trains nothing"),
        ([(20, 5, -1.0, 0)], "lr that is not a positive number"),
        ([(20, 5)], "not (length, adam_epochs, lr, lbfgs_steps)"),
    ],
)
def test_bad_schedules_are_refused_at_fit_naming_what_was_received(data, horizons, why) -> None:
    model = sysid.NeuralODE(**{**TINY, "horizons": horizons})  # stored unchanged, checked by fit
    assert model.get_params()["training__horizons"] == horizons
    with pytest.raises(ConfigError, match="horizons") as caught:
        model.fit(data)
    assert why in str(caught.value)


def test_least_squares_refuses_a_schedule() -> None:
    with pytest.raises(ConfigError, match="needs optimizer='adam'"):
        sysid.Training(optimizer="least_squares", horizons=[None]).check()


@pytest.mark.slow  # about 13 s: run by .ci/run's slow step, outside the default run
def test_a_schedule_ending_on_whole_trajectories_beats_the_short_windows_alone(data) -> None:
    short = _fit(data, max_epochs=15, lbfgs_steps=20)
    scheduled = _fit(data, max_epochs=15, lbfgs_steps=20, horizons=[None])
    # the first stage is the same fit: the whole-trajectory stage is what improves the simulation
    first = scheduled.history_[scheduled.history_["horizon"] == 5]
    assert first["val_loss"].min() == pytest.approx(short.history_["val_loss"].min())
    assert set(scheduled.history_["horizon"].dropna()) == {5, 29}
    assert _free_run(scheduled, data) < 0.85 * _free_run(short, data)  # measured 0.26 against 0.34


def test_a_schedule_trains_stage_after_stage_on_growing_windows_and_keeps_the_best(data) -> None:
    model = _fit(data, max_epochs=4, lbfgs_steps=0, horizons=[(10, 3, 0.003, 0), (None, 2, 0.001, 10)])
    history = model.history_
    adam = history[history["stage"] == "adam"]
    assert adam["horizon"].tolist() == [5] * 4 + [10] * 3 + [29] * 2  # 30 samples: 29 intervals
    assert adam["epoch"].tolist() == list(range(9))  # one epoch count across stages, and one clock
    assert history["seconds"].is_monotonic_increasing
    assert (history["stage"] == "start").sum() == 1
    assert set(history.loc[history["stage"] == "lbfgs", "horizon"]) == {29}
    assert model.best_epoch_ == int(history.loc[history["val_loss"].idxmin(), "epoch"])
    # the model holds the best validated parameters: its free-run error is the best one recorded
    assert _free_run(model, data) == pytest.approx(history["val_loss"].min(), rel=1e-4)


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_plain_stages_are_polishes_and_lbfgs_steps_zero_switches_them_off(data) -> None:
    model = _fit(data, max_epochs=3, lbfgs_steps=10, horizons=[10, None])
    history = model.history_
    assert set(history.loc[history["stage"] == "adam", "horizon"]) == {5}
    assert set(history.loc[history["stage"] == "lbfgs", "horizon"]) <= {5, 10, 29}
    assert (history.loc[history["stage"] == "lbfgs", "horizon"] == 29).any()
    off = _fit(data, max_epochs=3, lbfgs_steps=0, horizons=[10, None])
    assert "horizon" not in off.history_ or off.history_["horizon"].isna().all()


def test_new_segments_start_from_the_current_solution_and_keep_the_learned_starts(data) -> None:
    model = _fit(data, max_epochs=3, lbfgs_steps=0)
    times = [tr.t for tr in data]
    scaled = [model.scaling_.scale(tr.y) for tr in data]
    short = MultipleShooting(
        model.rhs_, make_segments(times, scaled, 5), times, scaled, 2, None, model.solver_, "backprop", 1.0
    )
    with torch.no_grad():
        short.starts.add_(0.01 * torch.randn(short.starts.shape, generator=torch.Generator().manual_seed(0)))
    longer = make_segments(times, scaled, 10)
    carried = short.carried_starts(longer)
    for i, rows in enumerate(carried):
        filled = np.flatnonzero(~np.isnan(rows[:, 0]))
        assert filled.tolist() == longer.start_row[longer.traj == i].tolist()
        # rows 0, 10, 20 are starts of the short segments too: their learned states carry over exactly
        old = short.start_states().detach().numpy()[short.segments.traj == i]
        np.testing.assert_array_equal(rows[filled], old[::2][: len(filled)])
    odd = short.carried_starts(make_segments(times, scaled, 7))[0]  # row 7: inside a short segment
    assert not np.allclose(odd[7], short.start_states().detach().numpy()[1])
    rebuilt = MultipleShooting(
        model.rhs_, longer, times, scaled, 2, None, model.solver_, "backprop", 1.0, initial=carried, realtime=True
    )
    np.testing.assert_allclose(rebuilt.x0.detach().numpy(), short.x0.detach().numpy())


def test_real_time_segments_match_the_warped_solve(data) -> None:
    model = _fit(data, max_epochs=3, lbfgs_steps=0)
    times = [tr.t for tr in data]
    scaled = [model.scaling_.scale(tr.y) for tr in data]
    segments = make_segments(times, scaled, 10)
    losses = []
    for realtime in (False, True):
        objective = MultipleShooting(
            model.rhs_, segments, times, scaled, 2, None, model.solver_, "backprop", 1.0, realtime=realtime
        )
        losses.append(float(objective(torch.arange(len(segments)))[0].detach()))
    assert losses[1] == pytest.approx(losses[0], rel=0.02)


def test_restore_best_keeps_an_earlier_stage_when_later_ones_never_validate_better(data, monkeypatch) -> None:
    alone = _fit(data, max_epochs=4, lbfgs_steps=0)
    original = _shooting.MultipleShooting.free_run_error

    def worse_when_long(self, tail_from=None):  # every later stage looks worse on the free-run check
        return original(self, tail_from) + (1.0 if self.segments.length > 5 else 0.0)

    monkeypatch.setattr(_shooting.MultipleShooting, "free_run_error", worse_when_long)
    scheduled = _fit(data, max_epochs=4, lbfgs_steps=0, horizons=[(10, 3, 0.01, 0), (None, 2, 0.01, 0)])
    assert (scheduled.history_["horizon"] > 5).sum() == 5  # the later stages did train
    assert scheduled.best_epoch_ == alone.best_epoch_
    for a, b in zip(alone.rhs_.state_dict().values(), scheduled.rhs_.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(alone.x0_, scheduled.x0_)


def test_a_fit_killed_in_a_later_stage_resumes_there_and_ends_as_an_uninterrupted_one(
    data, tmp_path, monkeypatch
) -> None:
    options = {"max_epochs": 3, "lbfgs_steps": 0, "horizons": [(10, 3, 0.003, 0), (None, 2, 0.001, 10)]}
    calls = {"n": 0}
    original = _shooting.MultipleShooting.forward

    def counting(self, batch):
        calls["n"] += 1
        if calls.get("kill") == calls["n"]:
            raise KeyError("killed")  # stands for the process being killed
        return original(self, batch)

    monkeypatch.setattr(_shooting.MultipleShooting, "forward", counting)
    reference = _fit(data, **options)
    assert "attempt" not in reference.history_  # not refitted: a checkpointed fit never is
    n_reference = calls["n"]
    path = tmp_path / "fit.ckpt"
    calls.update(n=0, kill=5)  # the second epoch of the second stage
    with pytest.raises(KeyError, match="killed"):
        _fit(data, checkpoint_path=path, **options)
    assert path.exists()
    calls.update(n=0, kill=None)
    resumed = _fit(data, checkpoint_path=path, **options)
    assert calls["n"] == n_reference - 4  # nothing trained twice: the 4 completed steps are not redone
    assert resumed.history_["epoch"].tolist() == reference.history_["epoch"].tolist()
    for a, b in zip(reference.rhs_.state_dict().values(), resumed.rhs_.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(reference.x0_, resumed.x0_)
    assert not path.exists()


@pytest.mark.slow  # about 7 s: run by .ci/run's slow step, outside the default run
def test_every_solver_trained_estimator_takes_a_schedule(data) -> None:
    def growth(t, x, p, u):
        prey, predator = x[:, 0], x[:, 1]
        return torch.stack([p["a"] * prey - prey * predator, prey * predator - p["b"] * predator], dim=-1)

    quick = {
        "max_epochs": 2,
        "lbfgs_steps": 0,
        "collocation_steps": 10,
        "horizons": [(None, 2, 1e-3, 0)],
        "gradient": "backprop",
        "verbose": False,
    }
    models = [
        sysid.HybridODE(growth, {"a": 1.0, "b": 1.0}, hidden=(4,), **quick),
        sysid.GreyBoxODE(growth, {"a": 1.0, "b": 1.0}, optimizer="adam", refine_steps=0, **quick),
    ]
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            model.fit(data)
        assert set(model.history_["horizon"].dropna()) == {5, 29}, type(model).__name__


@pytest.mark.slow  # about 9 s: run by .ci/run's slow step, outside the default run
def test_a_streamed_fit_refuses_a_schedule_it_was_given_and_trains_the_default_one_s_first_stage() -> None:
    pytest.importorskip("dask")
    data = sysid.datasets.simulate("lotka_volterra", n_trajectories=2, n_samples=20, noise=0.02, random_state=0)
    ds = data.to_xarray().chunk({"trajectory": 1})
    with pytest.raises(ConfigError, match=r"horizons=\[None\].*use horizons=None"):
        sysid.NeuralODE(horizons=[None], max_epochs=2, verbose=False).fit(ds, trajectory="trajectory", lazy=True)
    model = sysid.NeuralODE(hidden=(8,), max_epochs=2, lbfgs_steps=10, verbose=False)  # the default schedule
    model.fit(ds, trajectory="trajectory", lazy=True)
    assert "horizon" not in model.history_ or model.history_["horizon"].isna().all()


def test_a_first_stage_whose_free_run_misses_the_data_is_judged_by_its_own_loss(data, monkeypatch) -> None:
    """first-stage-judged-by-its-loss: the free run of the first stage made to miss the data (+1 standard
    deviation at every check of the 5-interval stage) no longer picks that stage's parameters; its loss does."""
    original = _shooting.MultipleShooting.free_run_error

    def missing_when_short(self, tail_from=None):
        return original(self, tail_from) + (1.0 if self.segments.length <= 5 else 0.0)

    monkeypatch.setattr(_shooting.MultipleShooting, "free_run_error", missing_when_short)
    model = _fit(data, max_epochs=6, lbfgs_steps=20, horizons=[(None, 0, 0.01, 10)])
    history = model.history_
    first = history[history["horizon"] == 5]
    polish = first[first["stage"] == "lbfgs"]
    assert len(polish) and polish["stage_loss"].notna().all()
    # the polish judged by its loss goes below where the Adam epochs ended
    assert polish["stage_loss"].min() < first.loc[first["stage"] == "adam", "loss"].iloc[-1]
    # the parameters it kept are scored by the free run once (their row), which the whole-trajectory stage must beat
    scored = polish[polish["val_loss"].notna()]
    assert len(scored) == 1 and scored["val_loss"].iloc[0] > 1.0
    assert scored["stage_loss"].iloc[0] == polish["stage_loss"].min()
    later = history[history["horizon"] > 5]
    assert later["stage_loss"].isna().all() and later["val_loss"].notna().all()
    assert (later["val_loss"] < 1.0).any()  # the honest free run of the later stage beats the kept first stage's
