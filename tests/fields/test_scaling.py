"""The data's time unit: a tenth of the record, but no more than ten swing times of its dynamics."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sysid
from sysid.fields import SWING_TIMES_PER_UNIT, Scaling
from sysid.trajectories import DataSummary, swing_time


def oscillation(w: float, duration: float, n: int, noise: float = 0.0, seed: int = 0) -> sysid.Trajectories:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, duration, n))
    y = np.column_stack([np.sin(w * t), w * np.cos(w * t) * 0.1]) + noise * rng.standard_normal((n, 2))
    return sysid.Trajectories.from_arrays([t], [y], state_names=["x", "v"])


def test_swing_time_is_one_over_the_angular_frequency_despite_noise_gaps_and_irregular_samples():
    data = oscillation(w=40.0, duration=30.0, n=6000, noise=0.1)
    y = data[0].y.copy()
    y[100:400, 0] = np.nan  # a gap in one state
    assert abs(swing_time(data[0].t, y) - 1 / 40.0) < 0.02 / 40.0


def test_a_decay_or_a_single_swing_has_no_swing_time():
    t = np.linspace(0.0, 5.0, 200)
    assert swing_time(t, np.exp(-t)[:, None]) == np.inf
    assert swing_time(t, np.sin(0.5 * t)[:, None]) == np.inf  # a quarter period in view: one swing at most
    assert swing_time(t, np.full((200, 1), 3.0)) == np.inf  # constant


@settings(max_examples=30, deadline=None)
@given(
    w=st.floats(0.5, 50.0),
    stretch=st.floats(1e-3, 1e3),
    shift=st.floats(-1e3, 1e3),
)
def test_swing_time_follows_the_time_axis(w, stretch, shift):
    """Measured in other units (seconds vs hours, another origin), the swing time is converted, not changed."""
    t = np.linspace(0.0, 40.0 * np.pi / w, 800)  # twenty periods at 40 samples each
    y = np.sin(w * t)[:, None]
    assert np.isclose(swing_time(stretch * t + shift, y), stretch * swing_time(t, y), rtol=1e-9)


def test_a_short_record_keeps_a_tenth_of_its_duration_as_time_unit():
    data = oscillation(w=1.0, duration=12.0, n=200)  # two periods
    assert Scaling.of(data, 0).time_unit == data[0].duration / 10


def test_a_record_of_many_oscillations_is_scaled_by_its_dynamics_not_its_length():
    data = oscillation(w=40.0, duration=30.0, n=6000)  # 190 periods: a tenth of the record is 3 s
    unit = Scaling.of(data, 1).time_unit
    assert abs(unit - SWING_TIMES_PER_UNIT / 40.0) < 0.01 * SWING_TIMES_PER_UNIT / 40.0
    summary = DataSummary.empty(2, 0)
    summary.add(list(data))
    assert Scaling.of_summary(summary, 1).time_unit == unit  # streamed data are scaled alike
