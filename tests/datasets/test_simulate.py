"""Tests of sysid.datasets.simulate and the SystemTruth of every benchmark system."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from sysid.datasets import SYSTEMS, SystemTruth, simulate, truth
from sysid.errors import DataError

FORCED = [s for s in SYSTEMS if truth(s).input_names]


# ------------------------------------------------------------- term evaluator
def _factor(token: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """One factor of a pysindy-style term: ``name``, ``name^k``, ``sin(name)``, ``cos(name)``."""
    trig = re.fullmatch(r"(sin|cos)\((\w+)\)", token)
    if trig:
        return getattr(np, trig.group(1))(values[trig.group(2)])
    name, _, power = token.partition("^")
    return values[name] ** (int(power) if power else 1)


def _term(term: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a library term such as ``"1"``, ``"prey predator"`` or ``"x^2 v"``."""
    batch = next(iter(values.values())).shape
    if term == "1":
        return np.ones(batch)
    out = np.ones(batch)
    for token in term.split(" "):
        out = out * _factor(token, values)
    return out


def test_term_evaluator_itself():
    vals = {"x": np.array([2.0]), "v": np.array([3.0]), "theta": np.array([0.5])}
    assert _term("1", vals)[0] == 1.0
    assert _term("x^2 v", vals)[0] == 12.0
    assert _term("sin(theta)", vals)[0] == pytest.approx(np.sin(0.5))


# ------------------------------------------------------------------- shapes
@pytest.mark.parametrize("system", SYSTEMS)
def test_shapes_names_and_attrs(system):
    tr = truth(system)
    data = simulate(system, n_trajectories=2, n_samples=25, random_state=3)
    assert data.names == ["run0", "run1"]
    assert data.state_names == tr.state_names
    assert data.input_names == tr.input_names
    for traj in data:
        assert traj.t.shape == (25,)
        assert traj.y.shape == (25, tr.n_states)
        if tr.input_names:
            assert traj.u.shape == (25, tr.n_inputs)
            assert np.all(np.isfinite(traj.u))
        else:
            assert traj.u is None
    attrs = data.attrs
    assert attrs["system"] == system
    assert attrs["params"] == tr.params
    assert attrs["noise"] == 0.05
    assert attrs["seed"] == 3
    assert np.shape(attrs["x0"]) == (2, tr.n_states)


@pytest.mark.parametrize("system", [s for s in SYSTEMS if s not in FORCED])
def test_noise_free_data_is_the_truth_simulation(system):
    """simulate(noise=0) returns exactly truth.simulate from the recorded x0."""
    tr = truth(system)
    data = simulate(system, n_trajectories=2, n_samples=20, noise=0.0, random_state=4)
    for traj, x0 in zip(data, data.attrs["x0"]):
        np.testing.assert_allclose(traj.y, tr.simulate(traj.t, x0), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("system", SYSTEMS)
def test_irregular_times_strictly_increasing_within_span(system):
    tr = truth(system)
    data = simulate(system, n_trajectories=3, n_samples=40, random_state=0)
    t0, t1 = tr.t_span
    for traj in data:
        assert traj.t[0] == t0
        assert np.all(np.diff(traj.t) > 0)
        assert traj.t[-1] <= t1
    assert not np.array_equal(data[0].t, data[1].t)


def test_regular_grid_and_log_grid():
    data = simulate("duffing", n_samples=11, irregular=False, t_span=(1.0, 6.0))
    np.testing.assert_allclose(data[0].t, np.linspace(1.0, 6.0, 11))
    assert np.array_equal(data[0].t, data[2].t)
    rob = simulate("robertson", n_trajectories=1, n_samples=12, irregular=False)
    expected = np.concatenate([[0.0], np.geomspace(1e-5, 1e5, 11)])
    np.testing.assert_allclose(rob[0].t, expected)
    assert rob.attrs["sampling"] == "log"


def test_irregular_log_sampling_spans_the_decades():
    t = simulate("robertson", n_trajectories=1, n_samples=200, random_state=2)[0].t
    decades = np.floor(np.log10(t[1:]))
    assert decades.min() <= -4 and decades.max() >= 4
    # roughly uniform in log time: every decade from 1e-5 to 1e5 gets samples
    assert set(range(-5, 5)) <= set(decades.astype(int).tolist())


# ----------------------------------------------------- independent oracles
def test_mass_spring_damper_zero_input_matches_analytic_solution():
    tr = truth("mass_spring_damper")
    m, c, k = tr.params["m"], tr.params["c"], tr.params["k"]
    x0 = np.array([[0.8, -0.3], [-0.5, 1.0]])
    data = simulate("mass_spring_damper", n_trajectories=2, noise=0.0, x0=x0,
                    inputs=lambda t: np.array([0.0]), n_samples=80, random_state=0)
    w0 = np.sqrt(k / m)
    zeta = c / (2.0 * np.sqrt(k * m))
    wd = w0 * np.sqrt(1.0 - zeta**2)
    for traj, (p0, v0) in zip(data, x0):
        t = traj.t
        a, b = p0, (v0 + zeta * w0 * p0) / wd
        decay = np.exp(-zeta * w0 * t)
        pos = decay * (a * np.cos(wd * t) + b * np.sin(wd * t))
        vel = decay * ((b * wd - zeta * w0 * a) * np.cos(wd * t)
                       - (a * wd + zeta * w0 * b) * np.sin(wd * t))
        np.testing.assert_allclose(traj.y[:, 0], pos, atol=1e-8)
        np.testing.assert_allclose(traj.y[:, 1], vel, atol=1e-8)
        np.testing.assert_array_equal(traj.u, 0.0)


def test_lotka_volterra_conserves_its_first_integral():
    tr = truth("lotka_volterra")
    a, b, g, d = (tr.params[k] for k in ("alpha", "beta", "gamma", "delta"))
    data = simulate("lotka_volterra", n_trajectories=4, noise=0.0, n_samples=200, random_state=7)
    for traj in data:
        x, y = traj.y.T
        h = d * x - g * np.log(x) + b * y - a * np.log(y)
        assert np.ptp(h) < 1e-6
        assert x.min() > 0.5 and y.min() > 0.1  # clear, positive oscillations
        assert np.ptp(x) > 1.0


def test_pendulum_energy_decays_monotonically():
    tr = truth("pendulum")
    w2 = tr.params["g_over_L"]
    t = np.linspace(0.0, 10.0, 400)
    theta, omega = tr.simulate(t, [1.5, 0.5]).T
    energy = 0.5 * omega**2 + w2 * (1.0 - np.cos(theta))
    assert np.all(np.diff(energy) <= 1e-10)
    assert energy[-1] < 0.5 * energy[0]
    assert np.abs(theta).max() < np.pi  # swings, never over the top


@pytest.mark.parametrize("system", ["van_der_pol", "lorenz", "duffing", "pendulum"])
def test_rhs_matches_finite_differences_of_dense_simulation(system):
    tr = truth(system)
    t_end = 0.5 if system == "lorenz" else 5.0
    t = np.linspace(0.0, t_end, 20001)
    x0 = np.array([np.mean(tr.x0_range[s]) + 0.3 * np.ptp(tr.x0_range[s]) for s in tr.state_names])
    x = tr.simulate(t, x0)
    fd = np.gradient(x, t, axis=0, edge_order=2)
    f = tr.rhs(t, x)
    scale = np.abs(f).max(axis=0)
    np.testing.assert_allclose(f[1:-1] / scale, fd[1:-1] / scale, atol=1e-5)


def test_robertson_matches_published_reference_and_conserves_mass():
    # Hairer & Wanner, Solving ODEs II (and the IVP test set): x(40) from (1, 0, 0).
    tr = truth("robertson")
    assert tr.method in ("Radau", "BDF", "LSODA")
    x = tr.simulate(np.array([0.0, 1e-3, 1.0, 40.0]), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(
        x[-1], [0.7158270687, 9.185534764e-6, 0.2841637457], rtol=1e-6
    )
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-9)
    data = simulate("robertson", noise=0.0, random_state=0)
    for traj, x0 in zip(data, data.attrs["x0"]):
        np.testing.assert_allclose(traj.y.sum(axis=1), sum(x0), rtol=1e-9)


# ------------------------------------------------------------ coefficients
@pytest.mark.parametrize("system", SYSTEMS)
def test_coefficients_reproduce_rhs(system):
    tr = truth(system)
    assert tr.coefficients is not None
    assert set(tr.coefficients) == set(tr.state_names)
    rng = np.random.default_rng(0)
    x = rng.uniform(-3.0, 3.0, size=(50, tr.n_states))
    u = rng.uniform(-2.0, 2.0, size=(50, tr.n_inputs)) if tr.n_inputs else None
    values = {name: x[:, i] for i, name in enumerate(tr.state_names)}
    if u is not None:
        values.update({name: u[:, i] for i, name in enumerate(tr.input_names)})
    expected = tr.rhs(0.0, x, u)
    for i, state in enumerate(tr.state_names):
        got = sum(coef * _term(term, values) for term, coef in tr.coefficients[state].items())
        np.testing.assert_allclose(got, expected[:, i], rtol=1e-12, atol=1e-9)


def test_coefficient_terms_use_pysindy_feature_names():
    ps = pytest.importorskip("pysindy")
    for system in SYSTEMS:
        tr = truth(system)
        features = list(tr.state_names) + list(tr.input_names)
        lib = ps.PolynomialLibrary(degree=3).fit(np.ones((3, len(features))))
        names = set(lib.get_feature_names(features))
        names |= {f"sin({f})" for f in features} | {f"cos({f})" for f in features}
        for state, terms in tr.coefficients.items():
            assert set(terms) <= names, (system, state, set(terms) - names)


# ------------------------------------------------------------------- noise
@pytest.mark.parametrize("system", SYSTEMS)
def test_noise_is_relative_to_clean_std(system):
    kwargs = dict(n_trajectories=2, n_samples=300, random_state=11)
    clean = simulate(system, noise=0.0, **kwargs)
    noisy = simulate(system, noise=0.1, **kwargs)
    c = np.concatenate([tr.y for tr in clean])
    n = np.concatenate([tr.y for tr in noisy])
    for a, b in zip(clean, noisy):
        np.testing.assert_array_equal(a.t, b.t)  # noise has its own random stream
    ratio = np.std(n - c, axis=0) / np.std(c, axis=0)
    np.testing.assert_allclose(ratio, 0.1, rtol=0.2)
    np.testing.assert_allclose(
        list(noisy.attrs["noise_std"].values()), 0.1 * np.std(c, axis=0), rtol=1e-12
    )


# ----------------------------------------------------------------- missing
@pytest.mark.parametrize("missing", [0.1, 0.5])
def test_missing_fraction_respected(missing):
    data = simulate("lorenz", n_trajectories=3, n_samples=50, missing=missing, random_state=5)
    full = simulate("lorenz", n_trajectories=3, n_samples=50, missing=0.0, random_state=5)
    nan = np.concatenate([np.isnan(tr.y) for tr in data])
    assert nan.mean() == pytest.approx(missing, abs=1.0 / nan.size)
    assert nan.any(axis=0).all()  # every state loses some entries
    assert (~nan).any(axis=0).all()  # and is observed somewhere
    for traj, ref in zip(data, full):
        assert np.sum(~np.isnan(traj.y).any(axis=1)) >= 2  # two fully observed rows
        seen = ~np.isnan(traj.y)
        np.testing.assert_array_equal(traj.y[seen], ref.y[seen])  # same values otherwise


def test_largest_missing_fraction_leaves_two_full_rows_per_trajectory():
    n = 20
    data = simulate("van_der_pol", n_samples=n, missing=1 - 2 / n, random_state=0)
    for traj in data:
        rows = ~np.isnan(traj.y).any(axis=1)
        assert rows.sum() == 2
        assert np.isnan(traj.y[~rows]).all()


# ------------------------------------------------------------------ inputs
def test_default_inputs_are_multisines_differing_per_trajectory():
    data = simulate("mass_spring_damper", n_trajectories=3, n_samples=200,
                    irregular=False, noise=0.0, random_state=0)
    us = [tr.u[:, 0] for tr in data]
    assert not np.allclose(us[0], us[1])
    for u in us:
        assert np.abs(u).max() <= 3.0 + 1e-12  # three unit sines
        assert np.abs(np.diff(u)).max() < 0.5  # smooth at 0.1 s spacing
    assert data.attrs["inputs"].startswith("default multisine")


def test_inputs_callable_and_list_of_callables():
    step = simulate("mass_spring_damper", n_trajectories=1, noise=0.0, x0=[0.0, 0.0],
                    inputs=lambda t: np.array([2.0]), t_span=(0.0, 60.0), irregular=False)
    k = truth("mass_spring_damper").params["k"]
    assert step[0].y[-1, 0] == pytest.approx(2.0 / k, abs=1e-3)  # static deflection F/k
    np.testing.assert_array_equal(step[0].u, 2.0)
    each = simulate("mass_spring_damper", n_trajectories=2, noise=0.0,
                    inputs=[lambda t: 1.0, lambda t: np.array([np.sin(t)])])
    np.testing.assert_array_equal(each[0].u[:, 0], 1.0)
    np.testing.assert_allclose(each[1].u[:, 0], np.sin(each[1].t))


def test_given_x0_is_used_and_one_row_is_broadcast():
    data = simulate("pendulum", n_trajectories=2, x0=[[0.1, 0.0], [0.2, 0.0]], noise=0.0)
    np.testing.assert_allclose(data[0].y[0], [0.1, 0.0])
    np.testing.assert_allclose(data[1].y[0], [0.2, 0.0])
    same = simulate("pendulum", n_trajectories=2, x0=[0.3, 0.1], noise=0.0)
    np.testing.assert_allclose(same.attrs["x0"], [[0.3, 0.1], [0.3, 0.1]])


# ---------------------------------------------------------- reproducibility
def test_same_seed_identical_different_seed_different():
    kwargs = dict(n_trajectories=2, missing=0.2)
    a = simulate("mass_spring_damper", random_state=9, **kwargs)
    b = simulate("mass_spring_damper", random_state=9, **kwargs)
    c = simulate("mass_spring_damper", random_state=10, **kwargs)
    for ta, tb, tc in zip(a, b, c):
        np.testing.assert_array_equal(ta.t, tb.t)
        np.testing.assert_array_equal(ta.y, tb.y)  # NaNs in the same places
        np.testing.assert_array_equal(ta.u, tb.u)
        assert not np.array_equal(ta.t, tc.t)
        assert not np.allclose(np.nan_to_num(ta.y), np.nan_to_num(tc.y))
    g1 = simulate("lorenz", random_state=np.random.default_rng(3))
    g2 = simulate("lorenz", random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(g1[1].y, g2[1].y)
    assert g1.attrs["seed"] is None


# ------------------------------------------------------------------- truth
def test_truth_is_frozen_and_fresh():
    tr = truth("van_der_pol")
    assert isinstance(tr, SystemTruth)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tr.name = "other"  # type: ignore[misc]
    tr.params["mu"] = 5.0
    assert truth("van_der_pol").params == {"mu": 1.0}


@pytest.mark.parametrize("system", SYSTEMS)
def test_rhs_single_and_batch_shapes(system):
    tr = truth(system)
    x = np.linspace(0.5, 1.5, 4 * tr.n_states).reshape(4, tr.n_states)
    batch = tr.rhs(0.0, x)
    assert batch.shape == x.shape
    np.testing.assert_allclose(tr.rhs(0.0, x[2]), batch[2])
    with pytest.raises(DataError, match="n_states"):
        tr.rhs(0.0, np.ones(tr.n_states + 1))


def test_x0_ranges_and_default_spans():
    assert truth("lotka_volterra").t_span == (0.0, 10.0)
    assert truth("lorenz").t_span[1] <= 5.0
    for system in SYSTEMS:
        tr = truth(system)
        assert list(tr.x0_range) == list(tr.state_names)
        data = simulate(system, n_trajectories=5, n_samples=5, t_span=(0.0, 0.01), random_state=1)
        x0 = np.array(data.attrs["x0"])
        low, high = np.array([tr.x0_range[s] for s in tr.state_names]).T
        assert np.all((x0 >= low) & (x0 <= high))


# ----------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"system": "lotka_voltera"}, ValueError, r"Did you mean 'lotka_volterra'\?.*Accepted"),
        ({"system": "vanderpol"}, ValueError, r"Did you mean 'van_der_pol'"),
        ({"system": "banana"}, ValueError, r"unknown system 'banana'\. Accepted systems: lotka"),
        ({"n_trajectories": 0}, ValueError, r"n_trajectories must be an integer >= 1, got 0"),
        ({"n_trajectories": 2.5}, ValueError, r"n_trajectories must be an integer"),
        ({"n_samples": 1}, ValueError, r"n_samples must be an integer >= 2, got 1"),
        ({"noise": -0.1}, ValueError, r"noise must be a finite number >= 0, got -0.1"),
        ({"noise": float("nan")}, ValueError, r"noise must be a finite number"),
        ({"missing": 1.0}, ValueError, r"missing must be in \[0, 1\), got 1.0"),
        ({"missing": 0.99}, ValueError, r"missing=0.99 is too large for n_samples=60.*0.9667"),
        ({"t_span": (5.0, 1.0)}, ValueError, r"t_end > t_start, got \(5.0, 1.0\).*default"),
        ({"t_span": 3.0}, ValueError, r"t_span must be a pair"),
        ({"irregular": "yes"}, ValueError, r"irregular must be True or False, got 'yes'"),
        ({"random_state": "seed"}, ValueError, r"random_state must be an int.*got 'seed'"),
        ({"random_state": -1}, ValueError, r"non-negative int, got -1"),
        ({"x0": [[1.0, 2.0]]}, DataError,
         r"x0 must be .* shape \(n_trajectories, n_states\) = \(3, 2\).*got shape \(1, 2\)"),
        ({"x0": [1.0, np.nan]}, DataError, r"x0 must be a finite array"),
        ({"inputs": lambda t: 0.0}, DataError, r"'lotka_volterra' has no inputs"),
    ],
)
def test_bad_arguments_raise_with_clear_messages(kwargs, error, message):
    kwargs = {"system": "lotka_volterra", **kwargs}
    with pytest.raises(error, match=message):
        simulate(**kwargs)


def test_bad_inputs_for_forced_system():
    with pytest.raises(DataError, match=r"one callable u\(t\) per trajectory \(3\), got 2"):
        simulate("mass_spring_damper", inputs=[np.sin, np.cos])
    with pytest.raises(DataError, match=r"must return 1 finite value\(s\) \['force'\]"):
        simulate("mass_spring_damper", inputs=lambda t: np.array([t, t]))
    with pytest.raises(DataError, match=r"inputs must be None .* got int"):
        simulate("mass_spring_damper", inputs=3)


def test_truth_unknown_name():
    with pytest.raises(ValueError, match=r"unknown system 'Lorenz'\. Did you mean 'lorenz'\?"):
        truth("Lorenz")


# ----------------------------------------------------------------- as_frame
def test_as_frame_returns_long_dataframe():
    pd = pytest.importorskip("pandas")
    frame = simulate("mass_spring_damper", n_trajectories=2, n_samples=10, as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["trajectory", "t", "position", "velocity", "force"]
    assert len(frame) == 20
    assert sorted(frame["trajectory"].unique()) == ["run0", "run1"]
