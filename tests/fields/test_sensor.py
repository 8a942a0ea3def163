"""Measurement models: fitting through a saturating or offset sensor, predicting its readings."""

import warnings

import numpy as np
import pytest

import sysid
from sysid import Sensor

FAST = dict(max_epochs=60, verbose=False, gradient="backprop")


def growth(t, x, p, u):
    return p["k"] * x


def clipped_growth(limit: float = 3.0):
    t = np.linspace(0, 2, 30)
    truth = np.exp(0.8 * t)[:, None]
    return t, truth, np.minimum(truth, limit)


def test_a_saturating_sensor_is_fitted_through_and_its_readings_predicted():
    t, _, reading = clipped_growth()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.GreyBoxODE(growth, {"k": 0.3}, output=Sensor(high=3.0), **FAST).fit(reading, t=t)
        naive = sysid.GreyBoxODE(growth, {"k": 0.3}, **FAST).fit(reading, t=t)
    assert model.params_["k"] == pytest.approx(0.8, rel=0.02)
    assert abs(naive.params_["k"] - 0.8) > 0.05  # without the sensor model the clipped samples bias the rate
    predicted = model.predict(t=t, x0=[1.0])
    np.testing.assert_allclose(predicted, reading, atol=0.02)  # what the sensor reads: clipped at 3
    hidden = model._simulate_scaled(sysid.Trajectories.from_arrays(t, reading), None)[0]
    assert model.scaling_.unscale(hidden[:, :1]).max() > 4.0  # the state itself keeps growing


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_a_learned_offset_is_recovered():
    t = np.linspace(0, 6, 40)
    reading = (2.0 * np.exp(-0.7 * t) + 0.5)[:, None]  # x' = -k x, read with an offset of 0.5

    def decay(t, x, p, u):
        return -p["k"] * x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.GreyBoxODE(
            decay, {"k": 0.3}, output=Sensor(offset=True), lbfgs_steps=100, optimizer="adam", **FAST
        ).fit(reading, t=t)  # k and the offset are correlated: quasi-Newton
    assert model.params_["k"] == pytest.approx(0.7, rel=0.03)
    assert model.sensor_.readout()["offset"][0] == pytest.approx(0.5, abs=0.03)


def test_a_model_with_a_sensor_saves_and_loads_identically(tmp_path):
    t, _, reading = clipped_growth()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.GreyBoxODE(
            growth, {"k": 0.3}, output=Sensor(high=3.0, gain=True), max_epochs=5, optimizer="adam", verbose=False
        ).fit(reading, t=t)
    loaded = sysid.load(model.save(tmp_path / "m.sysid"), f=growth)
    assert loaded.output == model.output
    np.testing.assert_array_equal(loaded.predict(t=t, x0=[1.0]), model.predict(t=t, x0=[1.0]))


@pytest.mark.parametrize(
    ("sensor", "match"),
    [
        (Sensor(high={"zz": 1.0}), r"Sensor: high names \['zz'\], which are not states \['x0'\]"),
        (Sensor(low=2.0, high=1.0), r"Sensor: low must be below high, but not for \['x0'\]"),
        (Sensor(offset="x0"), r"Sensor: offset must be True, False or a list of state names"),
    ],
)
def test_sensor_settings_that_do_not_fit_the_data_are_refused(sensor, match):
    t, _, reading = clipped_growth()
    with pytest.raises(sysid.ConfigError, match=match):
        sysid.GreyBoxODE(growth, {"k": 0.3}, output=sensor, verbose=False).fit(reading, t=t)


def test_a_learned_sensor_parameter_needs_the_gradient_training():
    t, _, reading = clipped_growth()
    with pytest.raises(sysid.ConfigError, match=r"a sensor that learns an offset or a gain needs optimizer='adam'"):
        sysid.GreyBoxODE(growth, {"k": 0.3}, output=Sensor(gain=True), verbose=False).fit(reading, t=t)
