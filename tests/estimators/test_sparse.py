"""SparseODE: readable equations recovered through the solver, where SINDy on the same data fails."""

import numpy as np
import pandas as pd
import pysindy as ps
import pytest
import torch

import sysid
import sysid.io
from sysid.datasets import simulate, truth
from sysid.errors import ConfigError, ModelFileError, NotFittedError
from sysid.estimators._sparse import SparseODE
from sysid.fields import PolynomialField, polynomial_terms

# backprop and a looser tolerance: the same method as the defaults, fast enough for CI
FAST = dict(gradient="backprop", rtol=1e-4, atol=1e-6, verbose=False)


def true_table(columns=("prey", "predator"), terms=None):
    coefficients = truth("lotka_volterra").coefficients
    terms = terms or polynomial_terms(list(columns), 2)[0]
    table = pd.DataFrame(0.0, index=terms, columns=list(columns))
    for state, row in coefficients.items():
        for term, value in row.items():
            table.loc[term, state] = value
    return table


def coefficient_error(estimate: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Frobenius norm of the coefficient error relative to the truth's, over the same library."""
    est = estimate.reindex(index=reference.index, columns=reference.columns).fillna(0.0).to_numpy()
    ref = reference.to_numpy()
    return float(np.linalg.norm(est - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def lv_data():
    return simulate("lotka_volterra", n_trajectories=3, n_samples=60, noise=0.05, irregular=True, random_state=0)


@pytest.fixture(scope="module")
def fitted(lv_data):
    return SparseODE(degree=2, max_epochs=40, **FAST).fit(lv_data)  # the library these tests write out


# -- recovery ---------------------------------------------------------------------------
def test_recovers_lotka_volterra_where_sindy_fails(fitted, lv_data):
    reference = true_table()
    table = fitted.coefficients_
    assert list(table.columns) == ["prey", "predator"]
    assert list(table.index) == ["1", "prey", "predator", "prey^2", "prey predator", "predator^2"]
    true_terms = reference != 0
    # the four true coefficients within 10%
    rel = (table[true_terms] - reference[true_terms]).abs() / reference[true_terms].abs()
    assert np.nanmax(rel.to_numpy()) < 0.10, table
    # no spurious term above the threshold
    assert np.all(np.abs(table.to_numpy()[~true_terms.to_numpy()]) <= 0.05), table
    ours = coefficient_error(table, reference)

    sindy = ps.SINDy(feature_library=ps.PolynomialLibrary(degree=2), optimizer=ps.STLSQ(threshold=0.05))
    sindy.fit([tr.y for tr in lv_data], t=[tr.t for tr in lv_data], feature_names=["prey", "predator"])
    sindy_table = pd.DataFrame(sindy.coefficients().T, index=sindy.get_feature_names(), columns=["prey", "predator"])
    theirs = coefficient_error(sindy_table, reference)
    assert ours < 0.05
    assert theirs > 5 * ours, (ours, theirs)


def test_equations_read_like_the_truth(fitted):
    prey, predator = fitted.equations()  # each coefficient with its standard error
    assert prey.startswith("d prey/dt = (1.4") or prey.startswith("d prey/dt = (1.5")
    assert "prey predator" in prey and "predator^2" not in prey and "prey^2" not in prey
    assert predator.startswith("d predator/dt = -(3.0") or predator.startswith("d predator/dt = -(2.9")
    assert " ± " in prey and " ± " in predator
    rounded = fitted.equations(precision=1)[0]
    assert rounded.endswith(" prey predator") and "(1.0 ± 0.0)" in rounded


def test_vector_field_matches_the_coefficient_table(fitted):
    x = np.array([[1.0, 2.0], [3.0, 0.5]])
    theta = np.array([[1, a, b, a * a, a * b, b * b] for a, b in x])
    np.testing.assert_allclose(fitted.vector_field(x), theta @ fitted.coefficients_.to_numpy(), rtol=1e-12, atol=1e-12)


def test_history_records_every_training(fitted):
    trained = fitted.selection_[fitted.selection_["origin"] == "path"]  # offset variants are polished, not trained
    assert fitted.n_rounds_ == fitted.history_["round"].nunique() == len(trained) >= 2
    assert fitted.n_function_evals_ > 0


def test_a_numeric_threshold_prunes_in_rounds(lv_data):
    model = SparseODE(max_epochs=10, threshold=0.05, n_threshold_rounds=1, **FAST).fit(lv_data)
    assert model.n_rounds_ == model.history_["round"].nunique() == 2
    assert not hasattr(model, "selection_")


@pytest.mark.slow
def test_default_settings_recover_lotka_volterra(lv_data):
    model = SparseODE(verbose=False).fit(lv_data)
    assert "prey^3" in model.coefficients_.index  # degree "auto": cubic for two states
    reference = true_table(terms=list(model.coefficients_.index))
    assert coefficient_error(model.coefficients_, reference) < 0.03
    assert np.all(np.abs(model.coefficients_.to_numpy()[(reference == 0).to_numpy()]) <= 0.05)


@pytest.mark.slow  # about 29 s (a degree-3 selection): run by .ci/run's slow step, outside the default run
def test_the_default_library_holds_a_cubic_term():
    """SparseODE() (degree 3) recovers Van der Pol's x^2 v, which a degree-2 library cannot hold."""
    data = simulate("van_der_pol", n_trajectories=3, n_samples=60, noise=0.02, irregular=True, random_state=0)
    model = SparseODE(max_epochs=40, **FAST).fit(data)
    table = model.coefficients_
    assert "x^2 v" in table.index and "x^3" in table.index
    truth = {("v", "x"): 1.0, ("x", "v"): -1.0, ("v", "v"): 1.0, ("x^2 v", "v"): -1.0}
    for (term, state), value in truth.items():
        assert table.loc[term, state] == pytest.approx(value, rel=0.1), (term, state)
    others = table.to_numpy().copy()
    for term, state in truth:
        others[table.index.get_loc(term), table.columns.get_loc(state)] = 0.0
    assert np.abs(others).max() < 0.1


def test_the_screening_caps_each_candidate_s_solver_steps_unless_the_user_set_a_budget(monkeypatch):
    """A candidate that blows up is rejected after 1,000 steps in one sample interval, not the solver's 10,000."""
    budgets = []
    real_budget, real_select = sysid.integration.SolverConfig.with_step_budget, sysid.selection.select_equations

    class Screened(Exception):
        """Ends the fit after the screening (the training after it is not under test)."""

    def budget(self, max_num_steps):
        config = real_budget(self, max_num_steps)
        budgets.append(config.options["max_num_steps"])
        return config

    def select(*args, **kwargs):
        raise Screened(real_select(*args, **kwargs).search.scores)

    monkeypatch.setattr(sysid.integration.SolverConfig, "with_step_budget", budget)
    monkeypatch.setattr(sysid.selection, "select_equations", select)
    data = simulate("lotka_volterra", n_trajectories=2, n_samples=30, noise=0.01, random_state=0)
    settings = dict(degree=1, max_epochs=1, lbfgs_steps=0, **FAST)
    with pytest.raises(Screened) as screened:
        SparseODE(**settings).fit(data)
    assert len(screened.value.args[0]) > 5 and budgets == [1_000] * len(screened.value.args[0])
    budgets.clear()
    with pytest.raises(Screened) as screened:
        SparseODE(solver_options={"max_num_steps": 20_000}, **settings).fit(data)
    assert len(screened.value.args[0]) > 5 and budgets == []  # the user's own budget stands


# -- the library field ------------------------------------------------------------------
def test_term_names_follow_pysindy():
    lib = ps.PolynomialLibrary(degree=3).fit(np.zeros((2, 2)))
    names, _ = polynomial_terms(["prey", "predator"], 3)
    assert names == lib.get_feature_names(["prey", "predator"])
    field = PolynomialField(
        ["x", "y"], ["u"], degree=2, include_trig=True, functions={"exp(-x)": lambda x: torch.exp(-x[:, 0])}
    )
    assert field.term_names == [
        "1",
        "x",
        "y",
        "u",
        "x^2",
        "x y",
        "x u",
        "y^2",
        "y u",
        "u^2",
        "sin(x)",
        "sin(y)",
        "cos(x)",
        "cos(y)",
        "exp(-x)",
    ]
    x = torch.tensor([[0.5, -2.0]], dtype=torch.float64)
    u = torch.tensor([[3.0]], dtype=torch.float64)
    theta = field.library(torch.zeros(1), x, u)[0].numpy()
    a, b, c = 0.5, -2.0, 3.0
    expected = [
        1,
        a,
        b,
        c,
        a * a,
        a * b,
        a * c,
        b * b,
        b * c,
        c * c,
        np.sin(a),
        np.sin(b),
        np.cos(a),
        np.cos(b),
        np.exp(-a),
    ]
    np.testing.assert_allclose(theta, expected, rtol=1e-14)


def test_preconditioning_and_pruning_keep_the_field():
    field = PolynomialField(
        ["x", "y"],
        degree=2,
        center=torch.tensor([3.0, 1.0], dtype=torch.float64),
        spread=torch.tensor([2.0, 0.5], dtype=torch.float64),
        time_unit=0.7,
    )
    xi = torch.as_tensor(np.random.default_rng(0).normal(size=(6, 2)))
    field.set_coefficients(xi)
    torch.testing.assert_close(field.coefficients(), xi)
    x = 3.0 + torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    theta = field.library(torch.zeros(50), x, None) / field.feature_scale
    before = field(torch.zeros(50), x, None)
    field.set_gram(theta.T @ theta / 50)  # reparameterise: same coefficients, same field
    torch.testing.assert_close(field.coefficients(), xi)
    torch.testing.assert_close(field(torch.zeros(50), x, None), before)
    # pruning a tiny term moves the rest so the field barely changes on the data
    xi2 = xi.clone()
    xi2[3, 0] = 1e-3
    field.set_coefficients(xi2)
    reference = field(torch.zeros(50), x, None)
    assert field.prune(0.01) == 1 + int((xi.abs() < 0.01).sum())
    assert float(field.coefficients().detach()[3, 0]) == 0.0 and float(field.mask[3, 0]) == 0.0
    change = (field(torch.zeros(50), x, None) - reference).abs().max()
    assert change < 0.05


# -- scikit-learn conventions, files, errors -------------------------------------------


def test_not_fitted_errors():
    model = SparseODE()
    with pytest.raises(NotFittedError):
        model.predict(t=[0, 1], x0=[1.0, 1.0])
    with pytest.raises(NotFittedError):
        model.equations()


def short_data():
    return simulate("lotka_volterra", n_trajectories=2, n_samples=20, t_span=(0, 3), noise=0.02, random_state=1)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"library": "fourier"}, "library must be one of"),
        ({"degree": -1}, "degree must be a non-negative integer or 'auto', got -1"),
        ({"threshold": -0.1}, "threshold must be a non-negative number"),
        ({"n_threshold_rounds": 1.5}, "n_threshold_rounds must be a non-negative integer"),
        ({"functions": {"g": 3.0}}, "functions must map term names"),
        ({"functions": {"prey": torch.sin}}, "clash with state names"),
        ({"functions": {"bad": lambda x: x}}, "every function in functions must return a tensor"),
    ],
)
def test_bad_settings_are_reported_in_fit(params, match):
    with pytest.raises(ConfigError, match=match):
        SparseODE(max_epochs=1, **{**FAST, **params}).fit(short_data())


def test_same_seed_same_coefficients_and_save_load_is_exact(tmp_path):
    data = short_data()
    settings = dict(max_epochs=4, n_threshold_rounds=1, threshold=0.2, **FAST)
    first = SparseODE(**settings).fit(data)
    second = SparseODE(**settings).fit(data)
    pd.testing.assert_frame_equal(first.coefficients_, second.coefficients_, check_exact=True)
    path = sysid.save(first, tmp_path / "sparse.sysid")
    loaded = sysid.load(path)
    pd.testing.assert_frame_equal(loaded.coefficients_, first.coefficients_, check_exact=True)
    assert loaded.equations() == first.equations()
    t = np.linspace(0, 3, 9)
    np.testing.assert_array_equal(loaded.predict(t=t, x0=[1.5, 1.0]), first.predict(t=t, x0=[1.5, 1.0]))
    assert loaded.score(data) == first.score(data)


def test_user_functions_are_needed_again_to_load(tmp_path):
    data = short_data()
    model = SparseODE(
        degree=1,
        functions={"exp(-prey)": lambda x: torch.exp(-x[:, 0])},
        max_epochs=2,
        threshold=0.05,
        n_threshold_rounds=0,
        **FAST,
    ).fit(data)
    assert model.coefficients_.index[-1] == "exp(-prey)"
    path = sysid.save(model, tmp_path / "functions.sysid")
    with pytest.raises(ModelFileError, match="user term functions"):
        sysid.load(path)


def test_l1_penalty_is_added_only_when_asked():
    data = short_data()
    model = SparseODE(max_epochs=2, threshold=0.05, n_threshold_rounds=0, l1=0.5, **FAST).fit(data)
    assert bool((model.rhs_.field.mask == 1).all())  # n_threshold_rounds=0: nothing pruned
    penalty = model._field_penalty()
    assert penalty is not None and float(penalty.detach()) > 0
    model.set_params(l1=0.0)
    assert model._field_penalty() is None
