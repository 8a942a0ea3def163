"""sysid.equations: coefficients to the precision their errors support; LaTeX; sympy equal to the vector field."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import sympy

from sysid import SINDy, SparseODE, distill
from sysid.datasets import simulate
from sysid.equations import (
    format_coefficient,
    format_equations,
    sympy_equations,
    term_expression,
)
from sysid.errors import ConfigError, NotFittedError

PENDULUM = pd.DataFrame(
    {"theta": [0.0, 1.0, 0.0], "omega": [-19.6234, 0.0, -0.3512]},
    index=pd.Index(["sin(theta)", "omega", "theta"], name="term"),
)


@pytest.fixture(scope="module")
def lv_sindy():
    return SINDy(threshold=0.1).fit(simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=400))


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (0.3, "-(19.6 ± 0.3) sin(theta)"),  # one significant digit of the error, the value to the same place
        (0.013, "-(19.623 ± 0.013) sin(theta)"),  # an error starting with 1 keeps two digits
        (2.0, "-(20 ± 2) sin(theta)"),
        (40.0, "-(20 ± 40) sin(theta)"),  # not distinguishable from zero, and it shows
        (np.nan, "-19.6 sin(theta)"),  # no error known: three significant figures
    ],
)
def test_precision_follows_the_standard_error(stderr, expected):
    table = pd.DataFrame({"omega": [-19.6234]}, index=["sin(theta)"])
    errors = pd.DataFrame({"omega": [stderr]}, index=["sin(theta)"])
    assert format_equations(table, errors) == [f"d omega/dt = {expected}"]


def test_significant_figures_without_errors_never_flatten_small_coefficients():
    table = pd.DataFrame({"lynx": [-0.7987, 0.024814, 3.1e-5, 123456.0]}, index=["lynx", "hare lynx", "hare^2", "1"])
    assert format_equations(table) == ["d lynx/dt = -0.799 lynx + 0.0248 hare lynx + 3.10e-05 hare^2 + 1.23e+05"]
    assert format_equations(table, precision=2) == [  # pysindy's fixed decimals on request, no term hidden
        "d lynx/dt = -0.80 lynx + 0.02 hare lynx + 3.1e-05 hare^2 + 123456.00"
    ]
    assert format_coefficient(0.024814) == "0.0248" and format_coefficient(-2.0) == "-2.00"


def test_latex_string():
    errors = pd.DataFrame({"theta": [np.nan, 0.0, np.nan], "omega": [0.3, np.nan, 0.02]}, index=PENDULUM.index)
    theta, omega = format_equations(PENDULUM, errors, kind="latex")
    assert theta == r"\frac{d\,\theta}{dt} = 1.00 \omega"
    assert omega == (
        r"\frac{d\,\omega}{dt} = -\left(19.6 \pm 0.3\right) \sin{\left(\theta \right)} "
        r"- \left(0.35 \pm 0.02\right) \theta"
    )


def test_sympy_expressions_of_the_terms_are_exact_and_never_evaluated():
    x0, x1, prey = sympy.symbols("x0 x1 prey")
    assert term_expression("x0^2 x1") == x0**2 * x1
    assert term_expression("sin(1 x0)") == sympy.sin(x0)
    assert term_expression("cos(prey)^2") == sympy.cos(prey) ** 2
    hostile = "__import__('os').system('false')"
    assert term_expression(hostile) == sympy.Symbol(hostile)  # an opaque name, no eval
    rhs = sympy_equations(PENDULUM)
    assert rhs[1] == sympy.Float(-19.6234) * sympy.sin(sympy.Symbol("theta")) - sympy.Float(0.3512) * sympy.Symbol(
        "theta"
    )


def _agrees(model, expressions, names, points, u=None):
    symbols = [sympy.Symbol(n) for n in names]
    f = sympy.lambdify(symbols, expressions, "numpy")
    args = [points[:, j] for j in range(points.shape[1])] + ([] if u is None else [u[:, k] for k in range(u.shape[1])])
    from_sympy = np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), (points.shape[0],)) for v in f(*args)])
    field = model.vector_field(points, 0.0, u) if u is not None else model.vector_field(points)
    np.testing.assert_allclose(from_sympy, field, rtol=1e-10, atol=1e-10)


def test_sympy_equations_evaluate_to_the_vector_field_sindy(lv_sindy):
    rng = np.random.default_rng(0)
    points = rng.uniform(0.5, 4.0, (5, 2))
    exprs = lv_sindy.equations(kind="sympy")
    assert len(exprs) == 2 and all(isinstance(e, sympy.Expr) for e in exprs)
    _agrees(lv_sindy, exprs, ["prey", "predator"], points)


def test_sympy_equations_with_inputs_evaluate_to_the_vector_field():
    data = simulate("mass_spring_damper", n_trajectories=2, n_samples=200, noise=0.0, irregular=False)
    model = SINDy(threshold=0.05).fit(data)
    rng = np.random.default_rng(1)
    points, u = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    assert "force" in {str(s) for e in model.equations(kind="sympy") for s in e.free_symbols}
    _agrees(model, model.equations(kind="sympy"), ["position", "velocity", "force"], points, u)


@pytest.mark.slow  # over 10 s: run by .ci/run's slow step, outside the default run
def test_sympy_equations_evaluate_to_the_vector_field_sparse_trig_and_distill():
    data = simulate("pendulum", n_trajectories=2, n_samples=40, noise=0.01, random_state=0)
    model = SparseODE(
        degree=1, include_trig=True, max_epochs=3, n_threshold_rounds=0, gradient="backprop", verbose=False
    ).fit(data)
    assert any("sin(theta)" in str(t) for t in model.coefficients_.index)
    rng = np.random.default_rng(2)
    points = rng.uniform(-1.0, 1.0, (5, 2))
    _agrees(model, model.equations(kind="sympy"), ["theta", "omega"], points)
    distilled = distill(model, degree=2, data=data)
    expressions = distilled.equations(kind="sympy")
    symbols = sympy.symbols("theta omega")
    values = np.array([[float(e.subs(dict(zip(symbols, p)))) for e in expressions] for p in points])
    np.testing.assert_allclose(values, distilled.vector_field(points), rtol=1e-10, atol=1e-10)


def test_equations_show_standard_errors_when_the_model_has_them(lv_sindy):
    assert lv_sindy.equations() == [  # three significant figures: -0.9994 is not rounded to -1.00
        "d prey/dt = 1.50 prey - 0.999 prey predator",
        "d predator/dt = -3.00 predator + 0.999 prey predator",
    ]
    model = SINDy(threshold=0.1).fit(simulate("lotka_volterra", noise=0.0, irregular=False, n_samples=400))
    errors = pd.DataFrame(0.0, index=model.coefficients_.index, columns=model.coefficients_.columns)
    errors.loc["prey", "prey"], errors.loc["prey predator", "prey"] = 0.03, 0.012
    model.coefficients_stderr_ = errors  # what a bootstrap adds (zero: not estimated, shown without ±)
    assert model.equations()[0] == "d prey/dt = (1.50 ± 0.03) prey - (0.999 ± 0.012) prey predator"
    assert model.equations(precision=1)[0] == "d prey/dt = (1.5 ± 0.0) prey - (1.0 ± 0.0) prey predator"
    assert model.equations(kind="latex")[0].endswith(r"\left(0.999 \pm 0.012\right) predator prey")


def test_print_as_pysindy_users_type_it(lv_sindy):
    out = io.StringIO()
    lv_sindy.print(file=out)
    assert out.getvalue().splitlines() == lv_sindy.equations()
    out = io.StringIO()
    lv_sindy.print(lhs=["x'", "y'"], precision=3, file=out)
    expected = [line.replace("d prey/dt", "x'").replace("d predator/dt", "y'") for line in lv_sindy.equations(3)]
    assert out.getvalue().splitlines() == expected and expected[0].startswith("x' = 1.499 prey - 0.999")


def test_errors_say_what_was_expected(lv_sindy):
    with pytest.raises(NotFittedError, match="not fitted"):
        SINDy().equations()
    with pytest.raises(ConfigError, match=r"kind must be one of \['text', 'latex', 'sympy'\], got 'html'"):
        lv_sindy.equations(kind="html")
    with pytest.raises(ConfigError, match="precision must be None"):
        lv_sindy.equations(precision=-1)
    with pytest.raises(ConfigError, match="lhs must be a list of 2"):
        lv_sindy.print(lhs=["x'"])
    with pytest.raises(ConfigError, match="stderr must be None or a DataFrame"):
        format_equations(PENDULUM, stderr=[0.1])
    with pytest.raises(ConfigError, match="coefficients must be a pandas DataFrame"):
        format_equations(np.zeros((2, 2)))
