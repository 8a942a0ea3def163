"""predict and score say when data or predictions leave the states (or inputs) the model was fitted on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sysid
from sysid.estimators._observed_range import TOLERANCE, excursion, flag_extrapolation


def _oscillator(amplitudes: list[float]) -> sysid.Trajectories:
    """Harmonic oscillator x'' = -x: circles of the given radii, 40 samples over one period."""
    t = np.linspace(0.0, 2 * np.pi, 40)
    ys = [np.column_stack([a * np.cos(t), -a * np.sin(t)]) for a in amplitudes]
    return sysid.Trajectories.from_arrays(
        [t] * len(ys), ys, state_names=["x", "v"], names=[f"r{a:g}" for a in amplitudes]
    )


@pytest.fixture(scope="module")
def fitted() -> sysid.SINDy:
    return sysid.SINDy(degree=1).fit(_oscillator([1.0, 1.5]))


def test_range_is_the_observed_minimum_and_maximum(fitted: sysid.SINDy) -> None:
    np.testing.assert_allclose(fitted.observed_range_, [[-1.5, -1.5], [1.5, 1.5]], atol=0.02)


def test_no_warning_inside_the_training_states(fitted: sysid.SINDy) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", sysid.ExtrapolationWarning)
        pred = fitted.predict(_oscillator([1.2]))
    assert "extrapolated" not in pred.attrs


def test_warning_names_trajectory_state_and_distance(fitted: sysid.SINDy) -> None:
    data = _oscillator([1.2, 3.0])
    expected = r"trajectory 'r3' leaves .*x by 50% of its range -1\.\d+\.\.1\.5"
    with pytest.warns(sysid.ExtrapolationWarning, match=expected) as record:
        pred = fitted.predict(data)
    assert "r1.2" not in str(record[0].message)
    assert pred.attrs["extrapolated"] == ["r3"]
    # the warning is about reliability only: the prediction itself is still made (and right, for a linear field)
    np.testing.assert_allclose(pred["r3"].y, data["r3"].y, atol=0.2)  # amplitude 3


def test_dataframe_result_carries_the_flag(fitted: sysid.SINDy) -> None:
    frame = _oscillator([1.2, 3.0]).to_pandas()
    with pytest.warns(sysid.ExtrapolationWarning):
        pred = fitted.predict(frame, time="t", trajectory="trajectory")
    assert pred.attrs["extrapolated"] == ["r3"]


def test_new_experiment_and_score_warn(fitted: sysid.SINDy) -> None:
    with pytest.warns(sysid.ExtrapolationWarning, match="SINDy.predict"):
        fitted.predict(t=np.linspace(0, 1, 10), x0=[4.0, 0.0])
    with pytest.warns(sysid.ExtrapolationWarning, match="SINDy.score"):
        fitted.score(_oscillator([2.5]))


def test_saved_model_keeps_its_range(fitted: sysid.SINDy, tmp_path) -> None:
    loaded = sysid.load(sysid.save(fitted, tmp_path / "m.sysid"))
    np.testing.assert_array_equal(loaded.observed_range_, fitted.observed_range_)
    with pytest.warns(sysid.ExtrapolationWarning):
        loaded.predict(_oscillator([3.0]))


def test_small_overshoot_is_tolerated() -> None:
    bounds = np.array([[0.0], [10.0]])
    assert excursion(bounds, np.array([[10.0 + 10 * TOLERANCE * 0.9]]))[0] < TOLERANCE
    with warnings.catch_warnings():
        warnings.simplefilter("error", sysid.ExtrapolationWarning)
        assert flag_extrapolation(bounds, ["a"], ["x"], [[np.array([[10.0 + 10 * TOLERANCE * 0.9]])]], "t") == []
    with pytest.warns(sysid.ExtrapolationWarning):
        assert flag_extrapolation(bounds, ["a"], ["x"], [[np.array([[10.0 + 10 * TOLERANCE * 1.1]])]], "t") == ["a"]
    assert excursion(bounds, np.array([[-2.0]]))[0] == pytest.approx(0.2)
    assert excursion(bounds, np.array([[np.nan]]))[0] == 0.0


def test_unobserved_state_is_never_flagged() -> None:
    bounds = np.array([[0.0, np.nan], [1.0, np.nan]])
    assert excursion(bounds, np.array([[0.5, 1e6]])).tolist() == [0.0, 0.0]


def test_inputs_beyond_their_training_range_are_flagged(tmp_path) -> None:
    t = np.linspace(0.0, 10.0, 200)

    def forced(amplitude: float) -> sysid.Trajectories:  # x' = -x + u, u = amplitude sin(t); x starts on its orbit
        u = amplitude * np.sin(t)[:, None]
        x = amplitude * (np.sin(t) - np.cos(t))[:, None] / 2
        return sysid.Trajectories.from_arrays([t], [x], [u], state_names=["x"], input_names=["pump"], names=["run"])

    model = sysid.SINDy(degree=1).fit(forced(1.0))
    np.testing.assert_allclose(model.input_range_, [[-1.0], [1.0]], atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sysid.ExtrapolationWarning)
        model.predict(forced(0.9))
    with pytest.warns(
        sysid.ExtrapolationWarning, match=r"'run' leaves the inputs .*pump by 50% of its range -0\.9999\.\.0\.9999"
    ):
        pred = model.predict(forced(2.0), x0=[[-1.0]])
    assert pred.attrs["extrapolated"] == ["run"]
    loaded = sysid.load(sysid.save(model, tmp_path / "forced.sysid"))
    np.testing.assert_array_equal(loaded.input_range_, model.input_range_)
    with pytest.warns(sysid.ExtrapolationWarning, match="leaves the inputs"):
        loaded.predict(t=t, x0=[0.0], u=3.0 * np.sin(t)[:, None])
