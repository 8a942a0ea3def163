"""Choosing sparse equations: collinear terms, candidate paths, criteria, bootstrap; SparseODE/SINDy threshold='auto'.

Run the slow judgements of issue #18 with ``-m slow``.
"""

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sysid
from sysid import SparseODE, selection
from sysid.datasets import simulate
from sysid.errors import ConfigError, FitError, FitWarning
from sysid.fields import PolynomialField

FAST = {"gradient": "backprop", "rtol": 1e-4, "atol": 1e-6, "verbose": False}


def pendulum_library(amplitude: float, n: int = 200) -> tuple[np.ndarray, list[str]]:
    t = np.linspace(0, 10, n)
    theta, omega = amplitude * np.cos(2 * t), -2 * amplitude * np.sin(2 * t)
    field = PolynomialField(["theta", "omega"], degree=1, include_trig=True)
    x = torch.as_tensor(np.column_stack([theta, omega]))
    return field.library(None, x, None).numpy(), field.term_names


# -- collinear terms --------------------------------------------------------------------
def test_collinear_pairs_at_small_amplitude_only():
    small, names = pendulum_library(0.5)
    pairs = {(names[i], names[j]) for i, j, _ in selection.collinear_pairs(small)}
    assert ("theta", "sin(theta)") in pairs and ("1", "cos(theta)") in pairs
    large, _ = pendulum_library(2.5)
    pairs = {(names[i], names[j]) for i, j, _ in selection.collinear_pairs(large)}
    assert ("theta", "sin(theta)") not in pairs and ("1", "cos(theta)") not in pairs


def test_warning_names_the_pairs_and_the_rule():
    small, names = pendulum_library(0.5)
    with pytest.warns(FitWarning, match=r"theta ~ sin\(theta\) \(cosine 0\.99.*No candidate equation holds both"):
        selection.warn_collinear(selection.collinear_pairs(small), names, "SparseODE")


def test_dependent_terms_are_split_into_variants():
    theta = np.linspace(-0.6, 0.6, 80)
    library = np.column_stack([np.ones(80), theta, theta**2, np.sin(theta), np.cos(theta), theta**3])
    unit = library / np.linalg.norm(library, axis=0)
    variants = selection.split_dependent((0, 2, 4), unit)  # cos(theta) ~ 1 - theta^2 / 2
    assert variants and all(len(v) == 2 for v in variants)
    assert all(not {0, 2, 4} <= set(v) for v in variants)
    assert selection.split_dependent((1, 5), unit) == [(1, 5)]  # theta and theta^3 stay together


@pytest.mark.parametrize("n_terms", [10, 20, 35])
def test_a_large_support_of_near_collinear_terms_splits_into_independent_ones(n_terms: int) -> None:
    """Powers of a state that stays near 1 (a degree-3 library's terms on a small orbit): every one is
    nearly every other. Each variant returned holds no dependent term; the search queues each
    sub-support once (queueing every order of dropping grew factorially: 10 terms ran for minutes)."""
    x = 1.0 + 0.05 * np.linspace(-1.0, 1.0, 60)
    rng = np.random.default_rng(0)
    library = np.column_stack([x ** (k % 7) * (1 + 1e-3 * rng.standard_normal(60)) for k in range(n_terms)])
    unit = library / np.linalg.norm(library, axis=0)
    variants = selection.split_dependent(range(n_terms), unit)
    assert variants and all(len(v) < n_terms for v in variants)
    for v in variants:
        assert selection.split_dependent(v, unit) == [v]  # nothing left to split


def test_support_paths_hold_the_truth_and_never_a_collinear_pair():
    rng = np.random.default_rng(0)
    library, names = pendulum_library(0.6)
    target = -19.6 * library[:, names.index("sin(theta)")] - 0.35 * library[:, names.index("omega")]
    target = target + 0.01 * rng.standard_normal(target.size)
    paths = selection.support_paths(library, target)
    truth = tuple(sorted((names.index("omega"), names.index("sin(theta)"))))
    assert truth in paths and paths[0] == ()
    pairs = selection.collinear_pairs(library)
    assert pairs
    assert all(not (i in s and j in s) for s in paths for i, j, _ in pairs)


# -- offsets ---------------------------------------------------------------------------------
def test_offset_terms_are_the_nearly_constant_columns():
    small, names = pendulum_library(0.5)
    constant, terms = selection.offset_terms(small)
    assert names[constant] == "1" and [names[i] for i, _ in terms] == ["cos(theta)", "cos(omega)"]
    large, _ = pendulum_library(2.5)  # cos(theta) swings through -1..1: no offset
    assert "cos(theta)" not in [names[i] for i, _ in selection.offset_terms(large)[1]]
    assert selection.offset_terms(small[:, 1:]) == (None, [])  # no constant column: nothing to swap for
    allowed = np.array([name != "cos(omega)" for name in names])
    assert [names[i] for i, _ in selection.offset_terms(small, allowed=allowed)[1]] == ["cos(theta)"]


def test_ties_go_to_the_simpler_terms_and_only_ties():
    # same size, 1.5 apart: a tie, the simpler (the constant, complexity 0) wins
    assert selection.simplest_within([-50.0, -48.5], [3, 3], [3.0, 2.0]) == 1
    # 2.5 apart: the criterion decides
    assert selection.simplest_within([-50.0, -47.5], [3, 3], [3.0, 2.0]) == 0
    # a sparser candidate within the tie margin is not preferred here: the criterion already penalises terms
    assert selection.simplest_within([-50.0, -49.9], [3, 2], [3.0, 1.0]) == 0
    assert selection.simplest_within([np.inf, -1.0, np.inf], [1, 1, 1], [0.0, 5.0, 0.0]) == 1


# -- criteria and bootstrap ----------------------------------------------------------------
def test_information_criterion_trades_fit_for_terms():
    n = np.array([100, 100])
    same = selection.information_criterion(np.array([[1.0, 1.0], [1.0, 1.0]]), n, np.array([2, 5]))
    assert same[0] < same[1]
    better = selection.information_criterion(np.array([[1.0, 1.0], [0.5, 1.0]]), n, np.array([2, 3]))
    assert better[1] < better[0]
    # smooth (correlated) errors count less: the same improvement no longer pays for the term
    damped = selection.information_criterion(
        np.array([[1.0, 1.0], [0.9, 1.0]]), n, np.array([2, 3]), efficiency=[0.02, 0.02]
    )
    assert damped[0] < damped[1]
    # below the floor every model is as good as the floor: fewer terms win
    tiny = selection.information_criterion(np.array([[1e-6, 1e-6], [1e-8, 1e-8]]), n, np.array([2, 4]), floor=0.01)
    assert tiny[0] < tiny[1]
    assert selection.error_efficiency(np.array([1.0]), np.array([0.0]))[0] == 1.0
    with pytest.raises(ConfigError, match="criterion must be one of"):
        selection.information_criterion(np.ones(2), n, 2, "cv")


def test_bootstrap_inclusion_is_a_distribution_over_candidates():
    rng = np.random.default_rng(1)
    block_n = np.full((30, 1), 10.0)
    clear = np.stack([np.full((30, 1), 10.0), np.full((30, 1), 2.0)])  # candidate 1 much better everywhere
    p = selection.bootstrap_inclusion(clear, block_n, np.array([1, 2]), rng=rng)
    assert p.sum() == pytest.approx(1.0) and p[1] == 1.0
    mixed = np.stack([np.full((30, 1), 10.0), np.where(np.arange(30)[:, None] < 15, 5.0, 15.0)])
    p = selection.bootstrap_inclusion(mixed, block_n, np.array([1, 1]), rng=rng)
    assert 0.05 < p[1] < 0.95


def test_search_finds_the_true_supports_and_rejects_failures():
    truth = ((1,), (0, 2))

    def simulate_(joint):
        if joint == ((0, 1, 2), (0, 2)):
            return None  # this candidate diverges: rejected, not fatal
        sse = np.array([[1.0 if set(t) <= set(s) else 5.0 for s, t in zip(joint, truth)]] * 20)
        return sse, np.full((20, 2), 10.0), np.zeros((20, 2))

    paths = [[(), (1,), (0, 1), (0, 1, 2)], [(), (0,), (0, 2), (0, 1, 2)]]
    search = selection.search_supports(paths, ((0, 1, 2), (0, 1, 2)), simulate_)
    assert search.ranked()[0] == truth
    assert search.scores[((0, 1, 2), (0, 2))] == np.inf
    front = search.front(3)
    assert front[0] == truth and all(sum(map(len, j)) < 3 for j in front[1:])
    inclusion = search.inclusion(3)
    assert inclusion[1, 0] == pytest.approx(1.0) and inclusion[2, 1] == pytest.approx(1.0)


# -- the field ----------------------------------------------------------------------------
def test_field_supports_and_coefficient_groups():
    field = PolynomialField(["x", "y"], degree=2)
    mask = torch.zeros(6, 2, dtype=torch.float64)
    mask[1, 0] = mask[4, 1] = 1.0
    values = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    field.set_support(mask, values)
    assert torch.equal(field.mask, mask)
    assert torch.equal(field.scaled_coefficients(), values * mask)
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    other = values * 2
    field.groups = torch.stack([values, other])
    grouped = field(torch.zeros(4), x, None)
    field.groups = None
    plain = field(torch.zeros(2), x[:2], None)
    field.set_support(mask, other)
    torch.testing.assert_close(grouped, torch.cat([plain, field(torch.zeros(2), x[2:], None)]))


# -- SparseODE(threshold="auto") -------------------------------------------------------------
@pytest.fixture(scope="module")
def decay():
    t = np.linspace(0, 2, 30)
    rng = np.random.default_rng(0)
    y = np.column_stack([2.0 * np.exp(-1.5 * t), 1.0 + 0.5 * np.sin(2 * t)])
    return sysid.Trajectories.from_arrays([t], [y + 0.002 * rng.standard_normal(y.shape)], state_names=["a", "b"])


@pytest.fixture(scope="module")
def auto_fit(decay):
    return SparseODE(degree=1, threshold="auto", max_epochs=30, **FAST).fit(decay)


def test_auto_selects_a_support_and_reports_its_uncertainty(auto_fit):
    table = auto_fit.coefficient_table()
    assert list(table.columns) == ["estimate", "stderr", "lower", "upper", "inclusion_probability"]
    assert ("a", "a") in table.index
    assert table.loc[("a", "a"), "estimate"] == pytest.approx(-1.5, rel=0.02)
    assert 0 < table.loc[("a", "a"), "stderr"] < 0.05
    assert table.loc[("a", "a"), "lower"] < -1.5 < table.loc[("a", "a"), "upper"]
    assert (auto_fit.coefficients_["a"] != 0).sum() == 1  # d a/dt = -1.5 a, nothing else
    assert table["inclusion_probability"].min() >= 0 and table["inclusion_probability"].max() <= 1
    assert auto_fit.coefficients_stderr_.shape == auto_fit.coefficients_.shape
    chosen = auto_fit.selection_[auto_fit.selection_["chosen"]]
    trained = auto_fit.selection_[auto_fit.selection_["origin"] == "path"]  # offset variants: polished only
    assert len(chosen) == 1 and auto_fit.n_rounds_ == len(trained) >= 1
    assert auto_fit.n_candidates_screened_ >= len(trained)
    assert set(auto_fit.history_["round"]) == set(trained.index[trained["failure"].isna()])


def test_auto_fit_saves_and_loads_its_selection(auto_fit, tmp_path):
    loaded = sysid.load(sysid.save(auto_fit, tmp_path / "auto.sysid"))
    pd.testing.assert_frame_equal(loaded.coefficient_table(), auto_fit.coefficient_table())
    assert loaded.selection_["n_terms"].tolist() == auto_fit.selection_["n_terms"].tolist()


def test_a_failing_candidate_is_rejected_not_fatal(decay, monkeypatch):
    import sysid.estimators._ode_base as base

    original, calls = base.train_horizons, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second candidate diverges
            raise FitError("training failed 5 times in a row (last: underflow in dt 3.6e-16)")
        return original(*args, **kwargs)

    monkeypatch.setattr(base, "train_horizons", flaky)
    model = SparseODE(degree=1, threshold="auto", max_epochs=5, **FAST).fit(decay)
    assert len(calls) == len(model.selection_) >= 2
    assert model.selection_["failure"].iloc[1].startswith("FitError: training failed 5 times")
    assert not model.selection_["chosen"].iloc[1]


def test_every_candidate_failing_is_a_fit_error(decay, monkeypatch):
    import sysid.estimators._ode_base as base

    def broken(*args, **kwargs):
        raise FitError("training failed 5 times in a row")

    monkeypatch.setattr(base, "train_horizons", broken)
    with pytest.raises(FitError, match="every candidate equation failed"):
        SparseODE(degree=1, threshold="auto", max_epochs=5, **FAST).fit(decay)


def test_numeric_threshold_keeps_the_pruning_rounds(decay):
    model = SparseODE(degree=1, threshold=0.05, n_threshold_rounds=1, max_epochs=3, **FAST).fit(decay)
    assert not hasattr(model, "selection_") and not hasattr(model, "coefficients_stderr_")
    assert model.coefficient_table()["stderr"].isna().all()
    with pytest.raises(ConfigError, match="threshold must be 'auto' or a non-negative number"):
        SparseODE(threshold="best", max_epochs=1, **FAST).fit(decay)


# -- SINDy(threshold="auto") -----------------------------------------------------------------
def test_sindy_auto_chooses_by_simulation_and_reports_inclusion():
    data = simulate("lotka_volterra", n_trajectories=3, n_samples=200, noise=0.01, irregular=False, random_state=0)
    model = sysid.SINDy(threshold="auto", differentiation="spline", random_state=0).fit(data)
    prey = model.coefficients_["prey"]
    assert prey["prey"] == pytest.approx(1.5, rel=0.05) and prey["prey predator"] == pytest.approx(-1.0, rel=0.05)
    assert model.inclusion_probabilities_.loc["prey predator", "prey"] > 0.9
    assert model.inclusion_probabilities_.loc["predator", "predator"] > 0.9
    active = model.coefficients_.to_numpy() != 0
    stderr = model.coefficients_stderr_.to_numpy()
    assert np.isfinite(stderr[active]).all() and np.isnan(stderr[~active]).all()
    with pytest.raises(ConfigError, match="threshold='auto' applies to the default optimizer"):
        sysid.SINDy(threshold="auto", optimizer=sysid.estimators._sindy.ps.STLSQ()).fit(data)
    plain = sysid.SINDy(threshold=0.1).fit(data)
    assert not hasattr(plain, "inclusion_probabilities_")


@pytest.mark.slow  # about 10 s: run by .ci/run's slow step, outside the default run
def test_sindy_auto_warns_about_collinear_terms():
    import pysindy as ps

    t = np.linspace(0, 6, 150)
    theta = 0.4 * np.cos(3 * t)
    data = sysid.Trajectories.from_arrays(
        [t], [np.column_stack([theta, -1.2 * np.sin(3 * t)])], state_names=["theta", "omega"]
    )
    library = ps.GeneralizedLibrary([ps.PolynomialLibrary(degree=1), ps.FourierLibrary(n_frequencies=1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = sysid.SINDy(library=library, threshold="auto").fit(data)
    assert any("nearly collinear" in str(w.message) and "theta" in str(w.message) for w in caught)
    assert model.collinear_terms_


@pytest.mark.slow  # about 6 s: run by .ci/run's slow step, outside the default run
def test_sparse_ode_warns_about_collinear_terms_at_the_callers_line():
    t = np.linspace(0, 6, 80)
    data = sysid.Trajectories.from_arrays(
        [t], [np.column_stack([0.4 * np.cos(3 * t), -1.2 * np.sin(3 * t)])], state_names=["theta", "omega"]
    )
    with pytest.warns(FitWarning, match=r"theta ~ sin\(theta\)") as caught:
        model = SparseODE(degree=1, include_trig=True, max_epochs=2, **FAST).fit(data)
    assert any(w.filename == __file__ for w in caught if "collinear" in str(w.message))
    assert ("theta", "sin(theta)") in [(a, b) for a, b, _ in model.collinear_terms_]
    for state in ("theta", "omega"):  # never both terms of a pair in one equation
        kept = set(model.coefficients_.index[model.coefficients_[state] != 0])
        assert not {"theta", "sin(theta)"} <= kept and not {"1", "cos(theta)"} <= kept


# -- issue #18's judgements (slow) ------------------------------------------------------------
# The shared real-data folder beside the repository (or $SYSID_SHARED_DATA).
SHARED = Path(os.environ.get("SYSID_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.slow
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_damped_pendulum_sin_theta_and_omega_alone(degree, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks.sparse_recovery import damped_pendulum

    data = damped_pendulum(noise=0.01, seed=0)
    model = SparseODE(degree=degree, include_trig=True, verbose=False).fit(data)  # no FitError at any degree
    table = model.coefficients_
    assert set(table.index[table["omega"] != 0]) == {"omega", "sin(theta)"}
    assert set(table.index[table["theta"] != 0]) == {"omega"}
    assert table.loc["sin(theta)", "omega"] == pytest.approx(-19.62, rel=0.03)
    assert table.loc["omega", "omega"] == pytest.approx(-0.35, rel=0.03)


@pytest.mark.slow
def test_lynx_hare_gives_the_four_lotka_volterra_terms():
    model = SparseODE(degree=2, verbose=False).fit(sysid.datasets.load_lynx_hare())
    table = model.coefficients_
    assert set(table.index[table["hare"] != 0]) == {"hare", "hare lynx"}
    assert set(table.index[table["lynx"] != 0]) == {"lynx", "hare lynx"}
    assert 0.47 <= table.loc["hare", "hare"] <= 0.63 and 0.020 <= table.loc["hare lynx", "lynx"] <= 0.029


@pytest.mark.slow
def test_lynx_hare_with_log_errors_lands_inside_the_stan_intervals():
    # Stan's model has lognormal errors; errors="log" fits the same error model
    model = SparseODE(degree=2, errors="log", verbose=False).fit(sysid.datasets.load_lynx_hare())
    table = model.coefficients_
    assert set(table.index[table["hare"] != 0]) == {"hare", "hare lynx"}
    assert set(table.index[table["lynx"] != 0]) == {"lynx", "hare lynx"}
    assert 0.47 <= table.loc["hare", "hare"] <= 0.63  # alpha, Stan 80% intervals
    assert 0.023 <= -table.loc["hare lynx", "hare"] <= 0.033  # beta
    assert 0.69 <= -table.loc["lynx", "lynx"] <= 0.91  # gamma
    assert 0.020 <= table.loc["hare lynx", "lynx"] <= 0.029  # delta


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_log_errors_recover_lotka_volterra_under_multiplicative_noise(seed):
    clean = simulate("lotka_volterra", n_trajectories=3, n_samples=60, noise=0.0, irregular=True, random_state=seed)
    rng = np.random.default_rng(seed)
    noisy = sysid.Trajectories.from_arrays(
        [tr.t for tr in clean],
        [tr.y * np.exp(0.1 * rng.standard_normal(tr.y.shape)) for tr in clean],
        state_names=clean.state_names,
    )
    model = SparseODE(degree=2, errors="log", verbose=False, random_state=0).fit(noisy)
    truth = sysid.datasets.truth("lotka_volterra").coefficients
    found = sysid.metrics.coefficient_error(model.coefficients_, truth, threshold=0.0)  # every kept term counts
    assert found.n_missed == 0 and found.n_spurious == 0
    assert found.relative_error < 0.05


@pytest.mark.slow
def test_lipson_pendulum_forecast():
    path = SHARED / "lipson_real_pendulums" / "real_pendulum.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    df = pd.read_csv(path)
    t, y = df["t_s"].to_numpy(), df[["theta_rad", "omega_rad_s"]].to_numpy()
    n = int(np.searchsorted(t, t[0] + 0.7 * (t[-1] - t[0]), side="right"))
    train = sysid.Trajectories.from_arrays([t[:n]], [y[:n]], state_names=["theta", "omega"])
    model = SparseODE(degree=1, include_trig=True, verbose=False).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecast = np.asarray(model.predict(t=t[n - 1 :], x0=y[n - 1]))[1:, 0]
    assert np.sqrt(np.mean((forecast - y[n:, 0]) ** 2)) / np.std(y[n:, 0]) <= 0.05
    kept = set(model.coefficients_.index[model.coefficients_["omega"] != 0])
    assert {k for k in kept if "theta" in k} == {"sin(theta)"}  # one angle term: the offset is the constant
    assert model.coefficients_.loc["sin(theta)", "omega"] == pytest.approx(-1.297, rel=0.01)
    offsets = model.selection_[model.selection_["origin"].str.startswith("offset")]
    assert "offset: 1 for cos(theta) in d omega/dt" in offsets["origin"].tolist()
