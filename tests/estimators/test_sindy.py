"""SINDy baseline: recovery on clean data, irregular times, missing values, inputs, divergence."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pysindy as ps
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

import sysid.io
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError, DataError, FitWarning, ModelFileError, SolverWarning
from sysid.estimators._sindy import SINDy
from sysid.metrics import coefficient_error, r2

LV = truth("lotka_volterra")


@pytest.fixture(scope="module")
def clean_lv():
    return simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=400)


@pytest.fixture(scope="module")
def lv_model(clean_lv):
    return SINDy().fit(clean_lv)


def assert_recovers(coefficients: pd.DataFrame, true: dict, rel: float = 0.05, spurious: float = 0.05) -> None:
    for state, terms in true.items():
        for term, value in terms.items():
            assert coefficients.loc[term, state] == pytest.approx(value, rel=rel), (state, term)
    for state in coefficients.columns:
        for term, value in coefficients[state].items():
            if term not in true[state]:
                assert abs(value) <= spurious, f"spurious term {term!r} = {value} in d{state}/dt"


# ------------------------------------------------------------------ recovery
def test_recovers_lotka_volterra_from_clean_dense_data(lv_model):
    assert_recovers(lv_model.coefficients_, LV.coefficients)
    assert list(lv_model.coefficients_.columns) == ["prey", "predator"]
    assert lv_model.coefficients_.index[0] == "1" and "prey predator" in lv_model.coefficients_.index
    error = coefficient_error(lv_model.coefficients_, LV.coefficients)
    assert error.relative_error < 0.01 and error.n_spurious == 0 and error.n_missed == 0


def test_equations_use_the_state_names(lv_model):
    assert lv_model.equations(precision=2) == [
        "d prey/dt = 1.50 prey - 1.00 prey predator",
        "d predator/dt = -3.00 predator + 1.00 prey predator",
    ]


def test_predict_simulates_trajectories_not_derivatives(lv_model, clean_lv):
    predicted = lv_model.predict(clean_lv)
    for tr, pred in zip(clean_lv, predicted):
        assert np.allclose(pred.y, tr.y, rtol=0.02, atol=0.02)
    assert lv_model.score(clean_lv) > 0.999
    new = lv_model.predict(t=np.linspace(0, 1, 5), x0=[1.5, 1.0])
    assert new.shape == (5, 2) and np.allclose(new[0], [1.5, 1.0])


def test_vector_field_matches_the_truth(lv_model):
    points = np.array([[1.0, 1.0], [3.0, 0.5], [2.0, 2.5]])
    assert np.allclose(lv_model.vector_field(points), LV.rhs(0.0, points), rtol=0.01, atol=0.01)
    assert lv_model.vector_field(points[0]).shape == (2,)


def test_irregular_times_are_used_as_given():
    data = simulate("lotka_volterra", noise=0.0, irregular=True, n_samples=400)
    assert not np.allclose(np.diff(data[0].t), np.diff(data[0].t)[0])
    assert_recovers(SINDy().fit(data).coefficients_, LV.coefficients)


def test_spline_differentiation_handles_noisy_irregular_samples():
    data = simulate("lotka_volterra", noise=0.01, irregular=True, n_samples=200)
    spline = coefficient_error(SINDy(differentiation="spline").fit(data).coefficients_, LV.coefficients)
    plain = coefficient_error(SINDy().fit(data).coefficients_, LV.coefficients)
    assert spline.relative_error < 0.02 and spline.n_spurious == 0
    assert plain.relative_error > 10 * spline.relative_error


def test_smoothed_differentiation_warns_on_irregular_times():
    data = simulate("lotka_volterra", noise=0.0, irregular=True, n_samples=100)
    with pytest.warns(FitWarning, match="assumes uniformly spaced samples"):
        SINDy(differentiation="smoothed").fit(data)


def test_pysindy_differentiation_object_is_cloned_not_fitted_in_place(clean_lv):
    method = ps.FiniteDifference(order=2, axis=-2)
    model = SINDy(differentiation=method).fit(clean_lv)
    assert not hasattr(method, "smoothed_x_")
    assert_recovers(model.coefficients_, LV.coefficients)


# --------------------------------------------------------------- missing values
@pytest.fixture(scope="module")
def gappy_lv():
    return simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=400, missing=0.05, random_state=3)


def test_missing_values_interpolated_with_a_warning(gappy_lv):
    n_missing = sum(int(np.isnan(tr.y).sum()) for tr in gappy_lv)
    with pytest.warns(FitWarning, match=r"trajectories \['run0', 'run1', 'run2'\] have missing values; filled"):
        model = SINDy(missing="interpolate").fit(gappy_lv)
    assert_recovers(model.coefficients_, LV.coefficients)
    assert model.n_pieces_ == 3 and n_missing > 0


def test_missing_values_split_into_pieces_with_a_warning(gappy_lv):
    with pytest.warns(FitWarning, match=r"cut them at rows with missing entries \(\d+ missing entries\) into \d+"), \
            pytest.warns(FitWarning, match=r"dropped \d+ rows of trajectories .* pieces shorter than 3 rows"):
        model = SINDy(missing="split").fit(gappy_lv)
    assert model.n_pieces_ > 3
    assert_recovers(model.coefficients_, LV.coefficients)


def test_pieces_too_short_are_dropped_or_refused():
    t = np.linspace(0, 1, 6)
    y = np.column_stack([np.exp(-t), np.exp(-2 * t)])
    y[[2, 4], 0] = np.nan  # pieces of 2, 1 and 1 fully observed rows
    with pytest.warns(FitWarning, match="pieces shorter than 3 rows"), \
            pytest.raises(DataError, match="no trajectory piece"), \
            pytest.warns(FitWarning, match=r"into 3 fully observed pieces"):
        SINDy(missing="split").fit(y, t=t)
    with pytest.warns(FitWarning, match="filled 2 missing entries"):
        model = SINDy(missing="interpolate", threshold=0.01, degree=1).fit(y, t=t)
    assert model.n_pieces_ == 1


# ---------------------------------------------------------------------- inputs
def test_inputs_enter_as_controls_mass_spring_damper():
    data = simulate("mass_spring_damper", noise=0.0, irregular=False, n_samples=400)
    model = SINDy().fit(data)
    m, c, k = (truth("mass_spring_damper").params[p] for p in ("m", "c", "k"))
    coef = model.coefficients_
    assert coef.loc["position", "velocity"] == pytest.approx(-k / m, rel=0.05)
    assert coef.loc["velocity", "velocity"] == pytest.approx(-c / m, rel=0.05)
    assert coef.loc["force", "velocity"] == pytest.approx(1 / m, rel=0.05)
    assert_recovers(coef, truth("mass_spring_damper").coefficients)
    assert model.score(data) > 0.99
    with pytest.raises(DataError, match="pass u="):
        model.vector_field([0.0, 0.0])
    # The fast polynomial evaluation agrees with pysindy's own library transform.
    z = np.random.default_rng(0).normal(size=(7, 3))
    assert np.allclose(model._features(z), np.asarray(model.model_.feature_library.transform(z)))


# ---------------------------------------------------------------- divergence
def test_blow_up_gives_nan_tail_and_a_solver_warning_quickly(lv_model, clean_lv):
    model = clone(lv_model).set_params(max_simulation_steps=200).fit(clean_lv)
    model.coefficients_.loc["prey^2", "prey"] = 2.0  # dx/dt ~ 2 x^2: finite-time blow-up
    start = time.perf_counter()
    with pytest.warns(SolverWarning, match=r"'run0' at t=.*'run1' at t=.*'run2' at t="):
        predicted = model.predict(clean_lv)
    assert time.perf_counter() - start < 5.0
    assert model.simulation_failed_ == ["run0", "run1", "run2"]
    for pred in predicted:
        assert np.all(np.isfinite(pred.y[0])) and np.all(np.isnan(pred.y[-1]))
    with pytest.warns(SolverWarning):  # score ranks a failure last but finite (GridSearchCV); reports say NaN
        score = model.score(clean_lv)
    assert np.isfinite(score) and score < -1e6
    assert np.isnan(r2(clean_lv, predicted))


def test_step_budget_stops_a_long_simulation(lv_model):
    model = clone(lv_model).set_params(max_simulation_steps=5).fit(simulate("lotka_volterra", noise=0.0))
    with pytest.warns(SolverWarning, match="step budget of 5 steps"):
        out = model.predict(t=np.linspace(0, 10, 50), x0=[1.5, 1.0])
    assert np.isnan(out[-1]).all() and not np.isnan(out[0]).any()


def test_a_model_fitted_on_five_noisy_samples_is_reported_not_hung():
    data = simulate("lotka_volterra", n_trajectories=1, noise=0.3, n_samples=5, random_state=1)
    long = simulate("lotka_volterra", n_trajectories=1, noise=0.0, n_samples=100, t_span=(0, 50))
    model = SINDy(threshold=0.0).fit(data)
    start = time.perf_counter()
    with pytest.warns(SolverWarning, match=r"'run0' at t=.*left the bounded region"):
        out = model.predict(long)[0].y
    assert time.perf_counter() - start < 5.0
    assert model.simulation_failed_ == ["run0"]
    assert np.isfinite(out[:5]).all() and np.isnan(out[-5:]).all()


# ------------------------------------------------------------ validation, sklearn
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"differentiation": "splines"},
         r"differentiation must be one of \['finite_difference', 'smoothed', 'spline'\]"),
        ({"missing": "drop"}, r"missing must be 'interpolate' or 'split', got 'drop'"),
        ({"threshold": -1.0}, r"threshold must be a finite number >= 0, got -1.0"),
        ({"degree": 0}, r"degree must be an integer >= 1, got 0"),
        ({"library": "poly"}, r"library must be None or a pysindy feature library"),
        ({"optimizer": object()}, r"optimizer must be None or a pysindy optimizer"),
        ({"simulate_method": "euler"}, r"simulate_method must be one of"),
        ({"max_simulation_steps": 0}, r"max_simulation_steps must be an integer >= 1"),
    ],
)
def test_bad_settings_raise_config_errors_in_fit(params, message, clean_lv):
    model = SINDy(**params)  # constructing never raises
    with pytest.raises(ConfigError, match=message):
        model.fit(clean_lv)


def test_not_fitted_and_wrong_states(clean_lv, lv_model):
    with pytest.raises(NotFittedError):
        SINDy().predict(clean_lv)
    with pytest.raises(DataError, match="fitted on states"):
        lv_model.predict(clean_lv.with_states([tr.y for tr in clean_lv], ["a", "b"]))


@pytest.mark.parametrize(
    "check",
    [check_no_attributes_set_in_init, check_get_params_invariance, check_set_params,
     check_do_not_raise_errors_in_init_or_set_params, check_parameters_default_constructible],
)
def test_sklearn_checks_that_need_no_data(check):
    check("SINDy", SINDy())


def test_fit_is_repeatable_and_clone_is_unfitted(clean_lv, lv_model):
    again = clone(lv_model).fit(clean_lv)
    pd.testing.assert_frame_equal(again.coefficients_, lv_model.coefficients_)
    assert not hasattr(clone(lv_model), "coefficients_")


# --------------------------------------------------------------- model files
def test_save_load_round_trip_is_bit_identical(tmp_path, monkeypatch, clean_lv):
    data = simulate("mass_spring_damper", noise=0.0, irregular=False, n_samples=200)
    model = SINDy(threshold=0.05).fit(data)
    path = sysid.io.save(model, tmp_path / "sindy.sysid")
    loaded = sysid.io.load(path)
    pd.testing.assert_frame_equal(loaded.coefficients_, model.coefficients_)
    for a, b in zip(loaded.predict(data), model.predict(data)):
        assert np.array_equal(a.y, b.y)
    assert loaded.equations() == model.equations() and loaded.model_ is None


def test_custom_pysindy_objects_cannot_be_saved(tmp_path, monkeypatch, clean_lv):
    model = SINDy(optimizer=ps.STLSQ(threshold=0.1)).fit(clean_lv)
    with pytest.raises(ModelFileError, match=r"pysindy object\(s\) for \['optimizer'\]"):
        sysid.io.save(model, tmp_path / "custom.sysid")
