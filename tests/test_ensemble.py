"""Ensemble: bootstrap members fitted in parallel, a mean prediction and quantile bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_set_params,
)

import sysid
from sysid import ClassicalODE, SINDy, plot
from sysid.datasets import simulate
from sysid.ensemble import Ensemble
from sysid.errors import ConfigError, DataError, NotFittedError
from sysid.model_selection import TrajectoryKFold


def relax(t, x, p, u):
    return p["a"] - p["k"] * x


def relaxation(noise, seed=0, n_traj=6, n_times=12):
    """x' = 1.2 - 0.8 x from six starts on irregular clocks: (noisy, clean) Trajectories."""
    rng = np.random.default_rng(seed)
    ts, clean, noisy = [], [], []
    for i in range(n_traj):
        t = np.sort(np.concatenate([[0.0], rng.uniform(0, 4, n_times - 1)]))
        x = 1.5 + (0.3 + 0.5 * i - 1.5) * np.exp(-0.8 * t)
        ts.append(t)
        clean.append(x[:, None])
        noisy.append((x + noise * rng.standard_normal(n_times))[:, None])
    return (
        sysid.Trajectories.from_arrays(ts, noisy, state_names=["x"]),
        sysid.Trajectories.from_arrays(ts, clean, state_names=["x"]),
    )


def classical():
    return ClassicalODE(relax, {"a": 1.0, "k": 1.0}, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def lv():
    return simulate("lotka_volterra", n_trajectories=4, n_samples=100, noise=0.02, irregular=False, random_state=0)


@pytest.fixture(scope="module")
def bands():
    """Per noise level: the clean data, and the 5% / 50% / 95% predictions from the true starts."""
    out = {}
    for noise, n_members in ((0.0, 3), (0.02, 6), (0.1, 6)):
        noisy, clean = relaxation(noise)
        model = Ensemble(classical(), n_members=n_members).fit(noisy)
        x0 = np.array([tr.y[0] for tr in clean])
        out[noise] = (clean, model.predict_quantiles(clean, x0=x0, quantiles=(0.05, 0.5, 0.95)), model)
    return out


def test_sklearn_conventions():
    model = Ensemble(SINDy(threshold=0.2), n_members=3, bootstrap="segments")
    check_no_attributes_set_in_init("Ensemble", model)
    check_get_params_invariance("Ensemble", model)
    check_set_params("Ensemble", model)
    twin = clone(model)
    assert twin.get_params(deep=False)["n_members"] == 3 and twin.estimator is not model.estimator
    assert twin.get_params()["estimator__threshold"] == 0.2
    assert repr(model) == "Ensemble(bootstrap='segments', estimator=SINDy(threshold=0.2), n_members=3)"
    assert sysid.Ensemble is Ensemble and "Ensemble" in sysid.__all__


def test_band_collapses_without_noise_grows_with_it_and_stays_near_the_truth(bands):
    widths = {}
    for noise, (clean, (low, mid, high), _) in bands.items():
        low_y, mid_y, high_y, truth = (np.concatenate([tr.y for tr in d]) for d in (low, mid, high, clean))
        assert np.all(low_y <= mid_y) and np.all(mid_y <= high_y)
        widths[noise] = float(np.mean(high_y - low_y))
        if noise:  # the truth lies within a few band widths of the median, at every point
            assert np.all(np.abs(mid_y - truth) <= 3 * (high_y - low_y) + 1e-9)
    assert widths[0.0] < 1e-4  # noise-free data: every member finds the same model
    assert 2.5 < widths[0.1] / widths[0.02] < 10  # five times the noise, about five times the band


def test_members_differ_and_the_same_random_state_repeats_the_ensemble(bands, lv):
    _, _, model = bands[0.1]
    ks = [member.params_["k"] for member in model.estimators_]
    assert len(set(ks)) == len(ks) and abs(np.median(ks) - 0.8) < 0.1
    assert len(model.samples_) == 6 and all(len(s) == 6 for s in model.samples_)
    assert len({tuple(s) for s in model.samples_}) > 1
    first = Ensemble(SINDy(), n_members=4, random_state=3).fit(lv)
    again = Ensemble(SINDy(), n_members=4, random_state=3).fit(lv)
    other = Ensemble(SINDy(), n_members=4, random_state=4).fit(lv)
    assert first.samples_ == again.samples_ and first.samples_ != other.samples_
    for a, b in zip(first.predict_quantiles(lv), again.predict_quantiles(lv)):
        for ta, tb in zip(a, b):
            np.testing.assert_array_equal(ta.y, tb.y)
    tables = [m.coefficients_.to_numpy() for m in first.estimators_]
    assert any(not np.array_equal(tables[0], t) for t in tables[1:])


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_parallel_members_equal_serial_ones(lv):
    serial = Ensemble(SINDy(), n_members=4, random_state=1).fit(lv)
    parallel = Ensemble(SINDy(), n_members=4, random_state=1, n_jobs=2).fit(lv)
    assert serial.samples_ == parallel.samples_ and serial.member_seeds_ == parallel.member_seeds_
    for a, b in zip(serial.estimators_, parallel.estimators_):
        pd.testing.assert_frame_equal(a.coefficients_, b.coefficients_)
    for a, b in zip(serial.predict(lv), parallel.predict(lv)):
        np.testing.assert_array_equal(a.y, b.y)


def test_segments_bootstrap_resamples_pieces_of_one_trajectory():
    one = simulate("lotka_volterra", n_trajectories=1, n_samples=200, noise=0.01, irregular=False, random_state=2)
    model = Ensemble(SINDy(), n_members=3, bootstrap="segments", n_segments=4).fit(one)
    pieces = {piece for sample in model.samples_ for piece in sample}
    assert pieces <= {("run0", 0, 50), ("run0", 50, 100), ("run0", 100, 149), ("run0", 149, 199)}
    assert all(len(sample) == 4 for sample in model.samples_)
    assert model.score(one) > 0.95
    with pytest.raises(DataError, match=r"at least two trajectories.*bootstrap='segments'"):
        Ensemble(SINDy(), n_members=2).fit(one)
    with pytest.raises(DataError, match="lower n_segments"):
        Ensemble(SINDy(), n_members=2, bootstrap="segments", n_segments=150).fit(one)


def test_neural_members_get_their_own_seeds():
    data, _ = relaxation(0.02, n_traj=1, n_times=20)
    tiny = sysid.NeuralODE(
        hidden=(8,),
        max_epochs=3,
        lbfgs_steps=0,
        collocation_steps=10,
        gradient="backprop",
        verbose=False,
        random_state=0,
    )
    model = Ensemble(tiny, n_members=2, bootstrap="segments", n_segments=2, random_state=5).fit(data)
    seeds = [member.random_state for member in model.estimators_]
    assert seeds == model.member_seeds_ and len(set(seeds)) == 2 and tiny.random_state == 0
    assert not hasattr(tiny, "rhs_")  # the template is never fitted
    assert model.n_function_evals_ == sum(m.n_function_evals_ for m in model.estimators_)
    assert np.isfinite(model.vector_field([[1.0]])).all()


def test_seed_ensemble_fits_every_member_on_all_the_data():
    one = simulate("lotka_volterra", n_trajectories=1, n_samples=200, noise=0.01, irregular=False, random_state=2)
    model = Ensemble(SINDy(), n_members=3, bootstrap=None).fit(one)  # one trajectory: no resampling needed
    assert model.samples_ == [["run0"]] * 3
    # a deterministic estimator on the same data: identical members, the band collapses onto the single fit
    single = SINDy().fit(one).predict(one)[0].y
    lower, upper = model.predict_quantiles(one)
    np.testing.assert_allclose(model.predict(one)[0].y, single, rtol=1e-10)
    np.testing.assert_allclose(lower[0].y, upper[0].y, rtol=1e-10)
    with pytest.raises(ConfigError, match="bootstrap must be"):
        Ensemble(SINDy(), bootstrap=["trajectories"]).fit(one)


def test_seed_ensemble_members_differ_only_by_seed():
    data, _ = relaxation(0.02, n_traj=2, n_times=20)
    tiny = sysid.NeuralODE(
        hidden=(8,), max_epochs=3, lbfgs_steps=0, collocation_steps=10, verbose=False, random_state=0
    )
    model = Ensemble(tiny, n_members=2, bootstrap=None, random_state=5).fit(data)
    resampled = Ensemble(tiny, n_members=2, random_state=5)
    assert model.member_seeds_ == resampled._resamples(data)[2]  # same seeds as a bootstrap ensemble
    assert [m.random_state for m in model.estimators_] == model.member_seeds_
    assert all(m.trajectory_names_ == list(data.names) for m in model.estimators_)
    again = clone(tiny).set_params(random_state=model.member_seeds_[1]).fit(data)
    np.testing.assert_allclose(again.predict(data)[0].y, model.estimators_[1].predict(data)[0].y, rtol=1e-6)
    first, second = (m.predict(data)[0].y for m in model.estimators_)
    assert not np.allclose(first, second)  # different seeds, different fits


def test_predictions_come_back_in_the_callers_format(lv):
    frame = lv.to_pandas()
    model = Ensemble(SINDy(), n_members=3).fit(frame, trajectory="trajectory")
    mean = model.predict(frame)
    low, high = model.predict_quantiles(frame)
    single = model.estimators_[0].predict(frame, trajectory="trajectory")
    for result in (mean, low, high):
        assert isinstance(result, pd.DataFrame)
        assert list(result.columns) == list(single.columns)
        pd.testing.assert_index_equal(result.index, single.index)
    assert (low["prey"] <= high["prey"]).all()
    t = np.linspace(0, 5, 11)
    assert model.predict(t=t, x0=[[10.0, 5.0], [8.0, 4.0]]).shape == (2, 11, 2)
    lower, upper = model.predict_quantiles(t=t, x0=[10.0, 5.0])
    assert lower.shape == upper.shape == (11, 2) and np.all(lower <= upper)


def test_plot_draws_the_band(lv):
    model = Ensemble(SINDy(), n_members=3).fit(lv)
    fig = plot.trajectories(lv, model.predict(lv), bands=[model.predict_quantiles(lv)])
    shaded = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(shaded) == lv.n_states * len(lv)


def test_grid_search_tunes_the_members(lv):
    search = GridSearchCV(Ensemble(SINDy(), n_members=2), {"estimator__threshold": [0.05, 5.0]}, cv=TrajectoryKFold(2))
    with pytest.warns(UserWarning, match="eliminated all coefficients"):  # pysindy: threshold 5 removes every term
        search.fit(lv)
    assert search.best_params_ == {"estimator__threshold": 0.05}


def test_bad_settings_fail_before_any_fit(lv):
    with pytest.raises(NotFittedError):
        Ensemble(SINDy()).predict(lv)
    for params, message in [
        ({"n_members": 1}, "n_members"),
        ({"bootstrap": "rows"}, "bootstrap must be"),
        ({"n_segments": 0}, "n_segments"),
        ({"random_state": "x"}, "random_state"),
        ({"n_jobs": 0}, "n_jobs must be"),
        ({"n_jobs": 2_000_000}, r"from -1024 to 1024 .* got 2000000"),  # found by the model-file fuzzer
    ]:
        with pytest.raises(ConfigError, match=message):
            Ensemble(SINDy(), **params).fit(lv)
    with pytest.raises(ConfigError, match="sysid estimator"):
        Ensemble("SINDy").fit(lv)
    model = Ensemble(SINDy(), n_members=2).fit(lv)
    with pytest.raises(ConfigError, match="quantiles"):
        model.predict_quantiles(lv, quantiles=(0.5, 1.5))
