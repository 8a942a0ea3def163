"""sysid.parameters: one spec check, one uncertainty computation, one interval table, profiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sysid.errors import ConfigError
from sysid.parameters import (
    STATUSES,
    TABLE_COLUMNS,
    check_parameters,
    interval_table,
    linearised_uncertainty,
    noise_levels,
    profile_interval,
    t_quantile,
)
from sysid.parameters._uncertainty import relative_change


# -- the spec and its bound rule ----------------------------------------------------------
def test_bounds_are_closed_a_start_on_a_bound_is_accepted():
    spec = check_parameters({"k": 0.0, "c": 1.0, "d": 2.0}, {"k": (0, None), "c": (0.5, 1.0)}, ["d"])
    assert spec.names == ("k", "c", "d") and spec.free.tolist() == [True, True, False]
    assert spec.lower.tolist() == [0.0, 0.5, -math.inf] and spec.upper.tolist() == [math.inf, 1.0, math.inf]
    assert spec.bounds == {"k": (0.0, None), "c": (0.5, 1.0)}
    assert spec.on_bound([0.0, 0.7]).tolist() == [True, False]
    assert spec.with_free([3.0, 0.6]) == {"k": 3.0, "c": 0.6, "d": 2.0}


@pytest.mark.parametrize(
    ("params", "bounds", "fixed", "match"),
    [
        ({"k": 2.0}, {"k": (0, 1)}, None, r"start value params\['k'\] = 2.0 is outside its bounds \(0, 1\)"),
        ({"k": -1e-9}, {"k": (0, None)}, None, r"start value params\['k'\] = -1e-09 is outside its bounds"),
        (
            {"k": 1.0},
            {"k": (1, 1)},
            None,
            (
                r"bounds\['k'\] = \(1, 1\): low must be below high \(to hold 'k' at one "
                r"value, list it in fixed=\)"
            ),
        ),
        ({"k": 1.0}, {"q": (0, 1)}, None, r"bounds names 'q', which is not a parameter; the parameters are \['k'\]"),
        ({"k": 1.0}, {"k": 5}, None, r"bounds\['k'\] must be a pair \(low, high\)"),
        ({"k": 1.0}, {"k": (0, "x")}, None, r"bounds\['k'\] high must be a finite number or None, got 'x'"),
        ({"k": 1.0}, {"k": (math.nan, 1)}, None, r"bounds\['k'\] low must be a finite number or None"),
        ({"k": 1.0}, None, ["q"], r"fixed names 'q', which is not a parameter"),
        ({"k": "one"}, None, None, r"params\['k'\] must be a finite number, got 'one'"),
        ({"k": math.inf}, None, None, r"params\['k'\] must be a finite number"),
        ({"k": True}, None, None, r"params\['k'\] must be a finite number"),
        ([1.0], None, None, r"params must be a dict \{name: start value\}, got list"),
        ({"k": 1.0}, [(0, 1)], None, r"bounds must be a dict"),
        ({"k": 1.0}, None, 3, r"fixed must be a list of parameter names"),
    ],
)
def test_spec_errors_name_the_parameter(params, bounds, fixed, match):
    with pytest.raises(ConfigError, match=r"^Model: (the )?" + match):
        check_parameters(params, bounds, fixed, owner="Model")


def test_empty_params_are_refused_only_when_asked():
    assert check_parameters({}).names == ()
    with pytest.raises(ConfigError, match="params must be a non-empty dict"):
        check_parameters({}, allow_empty=False)


# -- linearised uncertainty -------------------------------------------------------------------
def test_linear_model_gives_the_ordinary_least_squares_covariance():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 40)
    design = np.column_stack([np.ones_like(x), x, x**2])
    y = design @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(40)
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    r = design @ beta - y
    unc = linearised_uncertainty(design, r, ["a", "b", "c"])
    s2 = r @ r / (40 - 3)
    expected = s2 * np.linalg.inv(design.T @ design)
    np.testing.assert_allclose(unc.covariance, expected, rtol=1e-10)
    np.testing.assert_allclose(unc.stderr, np.sqrt(np.diag(expected)), rtol=1e-10)
    assert unc.dof == 37 and unc.n_residuals == 40 and unc.unidentifiable == () and unc.condition < 100
    assert unc.covariance_frame(["c", "a"]).loc["c", "a"] == pytest.approx(expected[2, 0])


def test_a_product_of_two_parameters_is_flagged_and_the_rest_keeps_finite_errors():
    # residuals of y = a * b * x + c: the columns of a and b are proportional
    x = np.linspace(0, 1, 30)
    a, b = 2.0, 0.5
    jac = np.column_stack([b * x, a * x, np.ones_like(x)])
    unc = linearised_uncertainty(jac, 0.01 * np.cos(9 * x), ["a", "b", "c"])
    assert unc.unidentifiable == ("a", "b") and unc.condition > 1e12
    assert np.isinf(unc.stderr[:2]).all() and np.isfinite(unc.stderr[2])
    assert np.isnan(unc.covariance[0, 2]) and np.isinf(unc.covariance[0, 0])


def test_a_parameter_without_effect_is_flagged():
    x = np.linspace(0, 1, 10)
    unc = linearised_uncertainty(np.column_stack([x, np.zeros_like(x)]), 0.1 * x, ["k", "unused"])
    assert unc.unidentifiable == ("unused",)


def test_fewer_residuals_than_quantities_flags_the_unresolved_ones():
    unc = linearised_uncertainty(np.array([[1.0, 0.0, 1.0]]), np.array([0.1]), ["a", "b", "c"])
    assert set(unc.unidentifiable) >= {"b"} and math.isinf(unc.condition)


def test_jacobian_noise_raises_the_null_tolerance():
    x = np.linspace(0, 1, 30)
    nearly = np.column_stack([x, x * (1 + 1e-5 * np.sin(40 * x)), np.ones_like(x)])
    assert linearised_uncertainty(nearly, 0.01 * np.cos(9 * x), ["a", "b", "c"]).unidentifiable == ()
    noisy = linearised_uncertainty(nearly, 0.01 * np.cos(9 * x), ["a", "b", "c"], jacobian_noise=1e-4)
    assert noisy.unidentifiable == ("a", "b")


def test_noise_levels_per_state_with_a_fallback_for_sparse_states():
    rng = np.random.default_rng(1)
    r = np.concatenate([0.5 * rng.standard_normal(2000), 0.05 * rng.standard_normal(2000), [0.3, -0.3]])
    state = np.repeat([0, 1, 2], [2000, 2000, 2])
    sigma = noise_levels(r, state, np.array([10.0, 1.0, 4.0]))
    assert sigma[0] == pytest.approx(0.5, rel=0.05) and sigma[1] == pytest.approx(0.05, rel=0.05)
    assert sigma[2] == pytest.approx(np.median([sigma[0] / 10, sigma[1] / 1]) * 4.0)  # too few entries: by analogy
    # the degrees of freedom are shared out: 20 residuals, 10 fitted quantities -> sqrt(2) larger
    flat = np.ones(20)
    assert noise_levels(flat, np.zeros(20, dtype=int), np.ones(1), n_fitted=10)[0] == pytest.approx(math.sqrt(2))


def test_relative_change_ignores_a_common_factor():
    assert relative_change([3.0, 6.0, 9.0], [1.0, 2.0, 3.0]) == pytest.approx(0.0)
    assert relative_change([1.0, 2.0], [1.0, 1.0]) == pytest.approx(math.sqrt(2) - 1)
    assert relative_change([5.0], [1.0]) == 0.0


# -- the table -----------------------------------------------------------------------------
def test_interval_table_has_one_shape_for_every_status():
    spec = check_parameters(
        {"k": 1.0, "a": 1.0, "b": 1.0, "c": 0.0, "fixed": 3.0}, {"c": (0.0, None), "k": (0.5, None)}, ["fixed"]
    )
    estimates = {"k": 0.6, "a": 2.0, "b": 0.5, "c": 0.0, "fixed": 3.0}
    stderr = {"k": 0.1, "a": math.inf, "b": math.inf, "c": 0.2, "fixed": 0.0}
    table = interval_table(spec, estimates, stderr, dof=10, level=0.9, unidentifiable=["a", "b"])
    assert list(table.columns) == list(TABLE_COLUMNS) and table.index.name == "parameter"
    assert list(table.index) == ["k", "a", "b", "c", "fixed"]
    assert set(table["status"]) <= set(STATUSES)
    q = t_quantile(0.9, 10)
    k = table.loc["k"]
    assert k["status"] == "estimated" and k["upper"] == pytest.approx(0.6 + q * 0.1)
    assert k["lower"] == 0.5  # clipped to the bound (0.6 - q 0.1 = 0.42)
    assert table.loc["a", "status"] == "not identifiable" and math.isinf(table.loc["a", "stderr"])
    assert table.loc["c", "status"] == "on bound" and table.loc["c", "lower"] == 0.0
    assert tuple(table.loc["fixed", ["stderr", "lower", "upper", "status"]]) == (0.0, 3.0, 3.0, "fixed")
    given = interval_table(spec, estimates, stderr, 10, 0.9, ["a", "b"], intervals={"k": (0.55, 0.9)})
    assert tuple(given.loc["k", ["lower", "upper"]]) == (0.55, 0.9)
    pd.testing.assert_frame_equal(given.drop(index="k"), table.drop(index="k"))


# -- profile likelihood ----------------------------------------------------------------------
def test_profile_interval_of_a_linear_model_is_the_wald_interval():
    rng = np.random.default_rng(2)
    t = np.linspace(0, 1, 25)
    y = 1.5 * t + 0.3 + 0.05 * rng.standard_normal(25)
    design = np.column_stack([t, np.ones_like(t)])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    r = design @ beta - y
    unc = linearised_uncertainty(design, r, ["slope", "offset"])
    q = t_quantile(0.95, unc.dof)
    lo, hi, n = profile_interval(
        lambda x: design @ x - y,
        beta,
        0,
        [-np.inf] * 2,
        [np.inf] * 2,
        unc.s2 * q**2,
        0.3 * q * unc.stderr[0],
        jacobian=lambda x: design,
    )
    assert lo == pytest.approx(beta[0] - q * unc.stderr[0], rel=1e-4)
    assert hi == pytest.approx(beta[0] + q * unc.stderr[0], rel=1e-4)
    assert n > 4


def test_profile_interval_follows_the_curvature_and_stops_at_bounds():
    rng = np.random.default_rng(3)
    t = np.linspace(0, 4, 12)
    y = 2.0 * np.exp(-0.4 * t) + 0.15 * rng.standard_normal(12)
    fun = lambda x: x[0] * np.exp(-x[1] * t) - y  # noqa: E731
    from scipy.optimize import least_squares

    fit = least_squares(fun, [1.0, 1.0])
    unc = linearised_uncertainty(fit.jac, fit.fun, ["a", "k"])
    q = t_quantile(0.95, unc.dof)
    threshold = unc.s2 * q**2
    lo, hi, _ = profile_interval(fun, fit.x, 1, [-np.inf, 0.0], [np.inf, np.inf], threshold, q * unc.stderr[1])
    wald = (fit.x[1] - q * unc.stderr[1], fit.x[1] + q * unc.stderr[1])
    assert lo < fit.x[1] < hi and (hi - fit.x[1]) != pytest.approx(fit.x[1] - lo, rel=0.02)  # asymmetric
    assert abs(lo - wald[0]) < 0.5 * (wald[1] - wald[0]) and abs(hi - wald[1]) < 0.5 * (wald[1] - wald[0])
    for end in (lo, hi):  # each end sits on the threshold
        inner = least_squares(lambda a, k=end: fun(np.array([a[0], k])), [fit.x[0]])
        assert 2 * inner.cost - 2 * fit.cost == pytest.approx(threshold, rel=0.02)
    # a bound inside the interval is its end
    tight, _, _ = profile_interval(
        fun, fit.x, 1, [-np.inf, fit.x[1] - 1e-3], [np.inf, np.inf], threshold, q * unc.stderr[1]
    )
    assert tight == pytest.approx(fit.x[1] - 1e-3)
