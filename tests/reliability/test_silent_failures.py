"""Silent wrong answers and false alarms (issue #15): each case is a row of docs/reliability.md.

The raising cases live in test_bad_inputs.py's catalogue; these are the behaviours that
are not a single raised error: a warning that must (not) fire, a score that must stay
usable, training that must be kept. ``BEHAVIOURS`` lists their catalogue IDs.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sysid
from sysid.errors import DataError, FitWarning

from .conftest import decay_data, make_estimator

BEHAVIOURS = [
    "new-experiment-in-range-is-silent",
    "new-experiment-out-of-range-warns",
    "demo-prints-no-extrapolation-warning",
    "datetime-model-given-float-times",
    "loaded-model-time-kind",
    "sindy-underdetermined-warns",
    "classical-underdetermined-warns",
    "ctrl-c-before-the-first-validation",
    "grid-search-with-failing-folds",
    "print-shows-missing-entries",
    "to-xarray-gives-the-same-dataset",
    "no-citation-of-missing-files",
    "neural-underdetermined-warns",
    "data-of-scale-1e-300-is-learned",
    "neural-poor-free-run-warns",
    "greybox-poor-free-run-warns",
    "hybrid-poor-free-run-warns",
    "sparse-poor-free-run-warns",
    "log-errors-poor-free-run-warns",
]

FLAGGING = ("NeuralODE", "SparseODE", "SINDy")  # the estimators that warn about extrapolation


def test_every_behaviour_is_in_the_catalogue() -> None:
    documented = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    missing = [i for i in BEHAVIOURS if f"`{i}`" not in documented]
    assert not missing, f"missing from docs/reliability.md: {missing}"


# -- 1. predict(t=..., x0=...) checked placeholder zeros as observations --------------------------------------
@pytest.mark.parametrize("name", FLAGGING)
def test_new_experiment_in_range_is_silent(name: str, fitted) -> None:
    """new-experiment-in-range-is-silent: the training states exclude 0 (x in 0.25..2, v in 0.55..2);
    a short prediction from the middle of them stays inside and must not warn."""
    model = fitted[name]
    assert np.all(model.observed_range_[0] > 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sysid.ExtrapolationWarning)
        y = model.predict(t=np.linspace(0.0, 0.05, 5), x0=[1.0, 1.0])
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", FLAGGING)
def test_new_experiment_out_of_range_warns(name: str, fitted) -> None:
    """new-experiment-out-of-range-warns: starting far beyond the training states still warns."""
    with pytest.warns(sysid.ExtrapolationWarning, match=rf"{name}\.predict: trajectory 0 leaves .*x by .* v by"):
        fitted[name].predict(t=np.linspace(0.0, 0.05, 5), x0=[10.0, 10.0])


@pytest.mark.slow  # about 4 s: run by .ci/run's slow step, outside the default run
def test_demo_prints_no_extrapolation_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """demo-prints-no-extrapolation-warning: `sysid demo` (quick settings) warned three times for nothing."""
    from sysid.cli import main

    code = main(["demo", "--quick", "--out", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "leaves the states the model was fitted on" not in err
    assert "ExtrapolationWarning" not in err


# -- 4. silent wrong answers ------------------------------------------------------------------------------------
def test_datetime_model_given_float_times(frame) -> None:
    """datetime-model-given-float-times: float times were read as seconds after a datetime fit (and the reverse,
    time-kind-differs-from-the-fit in the catalogue)."""
    stamped = frame.assign(t=pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["t"], unit="s"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_estimator("SINDy").fit(stamped, trajectory="trajectory")
    assert model.time_kind_ == "datetime"
    with pytest.raises(
        DataError,
        match=r"the model was fitted on datetime times, but the data has float times; "
        r".* Give datetime64 times, e\.g\. pandas\.to_datetime",
    ):
        model.predict(frame, trajectory="trajectory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model.predict(stamped, trajectory="trajectory")["t"].dtype == stamped["t"].dtype  # same kind: fine


def test_loaded_model_refuses_another_time_kind(frame, tmp_path: Path) -> None:
    """loaded-model-time-kind: the time kind of the fit travels in the model file, so the loaded model refuses too."""
    stamped = frame.assign(t=pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["t"], unit="s"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_estimator("SINDy").fit(stamped, trajectory="trajectory")
    loaded = sysid.load(sysid.save(model, tmp_path / "m.sysid"))
    assert loaded.time_kind_ == "datetime"
    with pytest.raises(DataError, match=r"the model was fitted on datetime times, but the data has float times"):
        loaded.predict(frame, trajectory="trajectory")


def test_sindy_underdetermined_warns() -> None:
    """sindy-underdetermined-warns: 6 library terms per state (degree 2) fitted to 3 samples, silently."""
    t = np.array([0.0, 0.5, 1.0])
    with pytest.warns(
        FitWarning,
        match=r"SINDy: 3 samples cannot determine 6 library terms per state: a fit needs "
        r"at least 12 \(2 per unknown\)",
    ):
        sysid.SINDy(degree=2).fit(np.c_[np.exp(-t), np.cos(t)], t=t)
    with warnings.catch_warnings():  # enough data: no such warning
        warnings.simplefilter("error", FitWarning)
        sysid.SINDy(degree=2).fit(decay_data(n_times=12))


def test_classical_underdetermined_warns() -> None:
    """classical-underdetermined-warns: 2 parameters + 2 initial states from 6 observed values."""
    data = decay_data(n_times=3)[["a"]]
    with pytest.warns(
        FitWarning,
        match=r"ClassicalODE: 6 observed values cannot determine 4 free parameters "
        r"\(initial states included\): a fit needs at least 8",
    ):
        make_estimator("ClassicalODE").fit(data)


def test_ctrl_c_before_the_first_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """ctrl-c-before-the-first-validation: Ctrl-C in epoch 3, before any validation, kept the untrained start
    (best_epoch_ = -1); the trained parameters are now validated once and kept when better."""
    from sysid.training import _shooting

    calls = {"n": 0}
    original = _shooting.MultipleShooting.forward

    def forward(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:  # the first batch of epoch 3 (one batch per epoch)
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(_shooting.MultipleShooting, "forward", forward)
    with pytest.warns(FitWarning, match=r"fit interrupted at epoch 3; keeping the best parameters \(epoch 2\)"):
        model = make_estimator("NeuralODE", max_epochs=20, collocation_steps=0).fit(decay_data())
    history = model.history_.set_index("epoch")
    assert model.stop_reason_ == "interrupted" and model.best_epoch_ == 2
    assert history.loc[2, "val_loss"] < history.loc[-1, "val_loss"]  # validated on interrupt, better than start
    assert history.loc[[0, 1], "val_loss"].isna().all()  # the epochs before were never validated


# -- 6. promises the docs make -------------------------------------------------------------------------------------
def test_grid_search_with_failing_folds() -> None:
    """grid-search-with-failing-folds: the docs' GridSearchCV over SINDy thresholds gave best_score_ = nan,
    because a fold whose simulation failed scored NaN; now it scores very bad but finite and a winner is picked."""
    from sklearn.model_selection import GridSearchCV

    data = sysid.datasets.simulate("lotka_volterra", n_trajectories=4, n_samples=80, noise=0.01, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SolverWarning and ExtrapolationWarning for the failing folds
        search = GridSearchCV(sysid.SINDy(), {"threshold": [0.05, 0.2]}, cv=sysid.TrajectoryKFold(3)).fit(data)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.isfinite(search.best_score_)
    assert search.best_score_ == scores.max()
    folds = np.array([search.cv_results_[f"split{k}_test_score"] for k in range(3)])  # (fold, candidate)
    assert (folds[:, search.best_index_] > -10).any()  # the winner simulated at least one fold


def test_print_shows_missing_entries() -> None:
    """print-shows-missing-entries: getting_started.md says print(data) shows missing entries."""
    frame = pd.DataFrame(
        {
            "trajectory": ["a"] * 4 + ["b"] * 3,
            "t": [0.0, 1, 2, 3, 0, 1, 2],
            "x": [1.0, np.nan, 3, 4, 5, 6, 7],
            "v": [1.0, 2, np.nan, np.nan, 5, 6, 7],
        }
    )
    text = str(sysid.from_pandas(frame, time="t", states=["x", "v"], trajectory="trajectory"))
    assert "missing: x 1 of 7, v 2 of 7 (NaN: not observed)" in text
    assert "2 experiments ['a', 'b']" in text and "states:  x, v" in text


def test_to_xarray_gives_the_same_dataset() -> None:
    """to-xarray-gives-the-same-dataset: data.md's example, an input shared by every run over ("time",),
    came back as (run, time)."""
    ds = xr.Dataset(
        {
            "prey": (("run", "time"), [[10.0, 12.0, np.nan], [5.0, 6.0, 7.0]], {"units": "1/km2"}),
            "light": ("time", [0.0, 1.0, 0.0]),
        },
        coords={"run": ["a", "b"], "time": [0.0, 1.0, 2.0]},
        attrs={"title": "lake survey"},
    )
    data = sysid.from_xarray(ds, time="time", states=["prey"], inputs=["light"], trajectory="run")
    xr.testing.assert_identical(data.to_xarray(), ds)
    differ = data.with_states([tr.y * (i + 1) for i, tr in enumerate(data)])  # a state that differs stays 2-D
    assert differ.to_xarray()["prey"].dims == ("run", "time")


def test_no_citation_of_missing_files() -> None:
    """no-citation-of-missing-files: baselines.md and _classical.py cited PERFORMANCE-NOTES, not in the repository."""
    root = Path(__file__).parents[2]
    citing = [
        str(p.relative_to(root))
        for folder in ("sysid", "docs", "benchmarks")
        for p in (root / folder).rglob("*")
        if p.suffix in (".py", ".md") and "PERFORMANCE-NOTES" in p.read_text(encoding="utf-8")
    ]
    assert not citing, f"cite files that are in the repository: {citing}"


def test_neural_underdetermined_warns() -> None:
    """neural-underdetermined-warns: the default 64x64 network fitted to one experiment of 3 rows."""
    t = np.array([0.0, 0.5, 1.0])
    with pytest.warns(
        FitWarning,
        match=r"NeuralODE: 6 observed values cannot determine 4490 trained parameters "
        r"\(the field's and the initial states\): a fit needs at least 45",
    ):
        sysid.NeuralODE(max_epochs=1, lbfgs_steps=0, collocation_steps=0, verbose=False).fit(
            np.c_[np.exp(-t), np.cos(t)], t=t
        )
    with warnings.catch_warnings():  # three runs of 60 samples: enough for the default network
        warnings.filterwarnings("error", message=".*cannot determine", category=FitWarning)
        data = sysid.datasets.simulate("lotka_volterra", n_trajectories=3, n_samples=60, random_state=0)
        sysid.NeuralODE(max_epochs=1, lbfgs_steps=0, collocation_steps=0, verbose=False).fit(data)


@pytest.mark.slow  # about 7 s: run by .ci/run's slow step, outside the default run
def test_data_of_scale_1e_300_is_learned() -> None:
    """data-of-scale-1e-300-is-learned: states of magnitude 1e-300 are scaled by their own spread, and the
    smoothing spline and the library's column scales do not square them into underflow."""
    data = decay_data(n_times=20)
    tiny = sysid.Trajectories.from_arrays(
        [tr.t for tr in data], [tr.y * 1e-300 for tr in data], state_names=list(data.state_names)
    )
    model = sysid.SparseODE(degree=1, max_epochs=40, n_threshold_rounds=1, gradient="backprop", verbose=False).fit(tiny)
    assert model.scaling_.spread[0] < 1e-299  # not floored to 1
    assert model.score(tiny) > 0.99  # was 0.0: nothing learned
    rates = model.coefficients_
    assert rates.loc["x", "x"] == pytest.approx(-0.7, rel=0.02) and rates.loc["v", "v"] == pytest.approx(-0.3, rel=0.02)


def five_hertz_swing() -> sysid.Trajectories:
    """12 periods of an undamped 5 Hz swing (x, v), 120 samples at 50 Hz: a starved fit cannot follow it."""
    t = np.arange(120) / 50.0
    return sysid.Trajectories.from_arrays(
        [t], [np.c_[np.cos(2 * np.pi * 5.0 * t), -np.sin(2 * np.pi * 5.0 * t)]], state_names=["x", "v"]
    )


@pytest.mark.slow  # about 10 s: run by .ci/run's slow step, outside the default run
def test_neural_poor_free_run_warns() -> None:
    """neural-poor-free-run-warns: a fit whose best free run over its own data is no better than
    the mean says so; a fit that follows its data does not."""
    swing = five_hertz_swing()
    starved = sysid.NeuralODE(hidden=(8,), max_epochs=1, lbfgs_steps=0, collocation_steps=0, horizons=None)
    with pytest.warns(FitWarning, match=r"RMSE over its training trajectories is \S+ standard deviations"):
        starved.fit(swing)
    assert float(np.nanmin(starved.history_["val_loss"])) > sysid.training.POOR_FREE_RUN
    assert "attempt" not in starved.history_  # no collocation warm start: no second start to refit from
    t = np.linspace(0.0, 3.0, 40)
    decay = sysid.Trajectories.from_arrays([t], [np.exp(-t)[:, None]], state_names=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        model = sysid.NeuralODE(hidden=(8,), max_epochs=30, random_state=0).fit(decay)
    assert float(np.nanmin(model.history_["val_loss"])) < sysid.training.REFIT_FREE_RUN
    assert "attempt" not in model.history_  # a fit that reproduces its data is never refitted


def starved_neural_ode(**options: object) -> sysid.NeuralODE:
    """A NeuralODE of one Adam epoch after a five-step collocation: what it keeps is mostly its start."""
    settings: dict[str, object] = {"hidden": (8,), "max_epochs": 1, "lbfgs_steps": 0, "collocation_steps": 5}
    return sysid.NeuralODE(horizons=None, random_state=0, verbose=False, **{**settings, **options})


def test_a_start_that_cannot_follow_its_data_gives_way_to_the_least_squares_linear_part(tmp_path: Path) -> None:
    """neural-better-start: NeuralODE's zero linear part cannot follow a 5 Hz swing (its start's free run
    is worse than the data's mean); the least-squares linear part can, and the one training starts there."""
    swing = five_hertz_swing()
    # With a checkpoint a fit neither chooses its start nor refits: the zero start alone, as it was.
    zero = starved_neural_ode(checkpoint_path=tmp_path / "fit.ckpt")
    with pytest.warns(FitWarning, match=POOR_FREE_RUN_MESSAGE):
        zero.fit(swing)
    assert zero.history_["val_loss"].iloc[0] > sysid.training.POOR_FREE_RUN  # the zero start's free run
    chosen = starved_neural_ode()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        chosen.fit(swing)
    assert "attempt" not in chosen.history_  # one training, not a failed one and a refit
    assert chosen.field_part_.linear_start == "least_squares" and chosen.field.linear_start == "zero"
    assert chosen.history_["stage"].iloc[0] == "start"
    assert chosen.history_["val_loss"].iloc[0] < 0.1  # the least-squares start's free run
    predicted = chosen.predict(t=swing[0].t, x0=[1.0, 0.0])
    assert np.sqrt(np.mean((predicted - swing[0].y) ** 2)) < 0.1  # 12 periods of the swing, free run


def test_a_start_that_follows_its_data_is_trained_as_it_was(tmp_path: Path) -> None:
    """neural-better-start: where the first start reproduces its data, the choice changes nothing, to the
    last bit (the same fit as with a checkpoint, which never chooses)."""
    data = decay_data()
    chosen = starved_neural_ode(max_epochs=3).fit(data)
    assert chosen.history_["val_loss"].iloc[0] <= sysid.training.POOR_FREE_RUN
    assert "attempt" not in chosen.history_  # nor refitted: the fit alone, as with a checkpoint
    assert chosen.field_part_.linear_start == "zero"
    alone = starved_neural_ode(max_epochs=3, checkpoint_path=tmp_path / "fit.ckpt").fit(data)
    pd.testing.assert_frame_equal(chosen.history_.drop(columns="seconds"), alone.history_.drop(columns="seconds"))
    np.testing.assert_array_equal(chosen.x0_, alone.x0_)


def second_start_looks_poor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Score the least-squares start as not reproducing its data, so that the zero start is trained first."""
    scored = sysid.NeuralODE._start_error

    def scored_unless_second(self: sysid.NeuralODE, data: sysid.Trajectories, start: object) -> float:
        error = scored(self, data, start)  # type: ignore[arg-type]
        return error if self.field_part_.linear_start == "zero" else math.inf

    monkeypatch.setattr(sysid.NeuralODE, "_start_error", scored_unless_second)


def test_a_poor_fit_is_refitted_from_the_start_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """neural-poor-fit-refits: when both starts look poor, the first is trained; a fit that then does not
    reproduce its data is fitted once more from the least-squares linear part, and the better fit is kept."""
    second_start_looks_poor(monkeypatch)
    swing = five_hertz_swing()
    starved = starved_neural_ode()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        starved.fit(swing)
    best = starved.history_.groupby("attempt")["val_loss"].min()
    assert best[0] > sysid.training.POOR_FREE_RUN > 0.1 > best[1]  # the first fit failed, the refit did not
    assert starved.field_part_.linear_start == "least_squares" and starved.field.linear_start == "zero"
    predicted = starved.predict(t=swing[0].t, x0=[1.0, 0.0])
    assert np.sqrt(np.mean((predicted - swing[0].y) ** 2)) < 0.1  # 12 periods of the swing, free run


@pytest.mark.parametrize("divisor", [4, 10])
def test_a_fit_that_misses_its_data_without_being_poor_is_refitted_too(
    divisor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """neural-poor-fit-refits: the refit starts at REFIT_FREE_RUN, below the warning's POOR_FREE_RUN. The
    free-run check is made to report a fraction of each fit's error: a quarter puts the starved fit of the
    5 Hz swing (1.45) between the two thresholds, and it is refitted, the better fit kept, nothing warns; a
    tenth puts it below REFIT_FREE_RUN, and it is kept as it is."""
    second_start_looks_poor(monkeypatch)
    checked = sysid.NeuralODE._kept_free_run_error
    monkeypatch.setattr(sysid.NeuralODE, "_kept_free_run_error", lambda self, data: checked(self, data) / divisor)
    starved = starved_neural_ode()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        starved.fit(five_hertz_swing())
    refit, poor = sysid.training.REFIT_FREE_RUN, sysid.training.POOR_FREE_RUN
    history = starved.history_
    if divisor == 4:
        best = history.groupby("attempt")["val_loss"].min() / divisor
        assert refit < best[0] <= poor and best[1] < refit  # the first fit between the thresholds, the refit below
        assert starved.field_part_.linear_start == "least_squares"
    else:
        assert float(history["val_loss"].min()) / divisor <= refit < float(history["val_loss"].min()) / 4
        assert "attempt" not in history and starved.field_part_.linear_start == "zero"


def test_a_refit_that_fails_keeps_the_first_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """neural-poor-fit-refits: a refit that raises FitError leaves the first fit as it was, with its warning."""
    second_start_looks_poor(monkeypatch)
    swing = five_hertz_swing()
    fitted = sysid.NeuralODE._fit_resolved
    calls: list[str] = []

    def second_fails(self: sysid.NeuralODE, data: sysid.Trajectories, start: object = None) -> None:
        calls.append(self.field_part_.linear_start)
        if len(calls) == 2:
            raise sysid.FitError("the refit diverged")
        fitted(self, data, start)  # type: ignore[arg-type]

    monkeypatch.setattr(sysid.NeuralODE, "_fit_resolved", second_fails)
    starved = starved_neural_ode(n_jobs=1)  # the patch holds in this process only: the refit runs here
    with pytest.warns(FitWarning, match=POOR_FREE_RUN_MESSAGE):
        starved.fit(swing)
    assert calls == ["zero", "least_squares"]
    assert starved.field_part_.linear_start == "zero" and "attempt" not in starved.history_
    assert float(starved.history_["val_loss"].min()) > sysid.training.POOR_FREE_RUN


# -- the same check for every solver-trained estimator, on the parameters each keeps -----------------------
POOR_FREE_RUN_MESSAGE = r"RMSE over its training trajectories is \S+ standard deviations of the data"


def _swing(n_times: int = 40, duration: float = 6.0) -> sysid.Trajectories:
    """A lightly damped oscillator, x and v: no first-order decay can follow it."""
    t = np.linspace(0.0, duration, n_times)
    x, v = np.exp(-0.1 * t) * np.cos(2 * t), -2 * np.exp(-0.1 * t) * np.sin(2 * t)
    return sysid.Trajectories.from_arrays([t], [np.c_[x, v]], state_names=["x", "v"])


def _decay(n_times: int = 20) -> sysid.Trajectories:
    t = np.linspace(0.0, 2.0, n_times)
    return sysid.Trajectories.from_arrays([t], [(3.0 * np.exp(-0.8 * t))[:, None]], state_names=["x"])


def _decay_law(t, x, p, u):
    return -p["k"] * x


@contextlib.contextmanager
def _silent_free_run() -> Iterator[None]:
    """A context in which the poor-free-run warning is an error (other FitWarnings may fire)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=f".*{POOR_FREE_RUN_MESSAGE}", category=FitWarning)
        yield


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_greybox_poor_free_run_warns() -> None:
    """greybox-poor-free-run-warns: wrong equations (a decay for an oscillator) warn, with advice on the
    equations; the right ones do not. The least-squares fit has no free-run history: the kept
    parameters are simulated once after it."""
    wrong = sysid.GreyBoxODE(_decay_law, {"k": 0.5}, bounds={"k": (0, None)}, verbose=False)
    with pytest.warns(FitWarning, match=rf"GreyBoxODE: .*{POOR_FREE_RUN_MESSAGE}.*Check the equations"):
        wrong.fit(_swing())
    right = sysid.GreyBoxODE(_decay_law, {"k": 0.3}, bounds={"k": (0, None)}, verbose=False)
    with _silent_free_run():
        right.fit(_decay())
    assert right.params_["k"] == pytest.approx(0.8, rel=1e-3)


def test_hybrid_poor_free_run_warns() -> None:
    """hybrid-poor-free-run-warns: a starved correction on top of the wrong physics warns after the
    least-squares refinement of k (which moves the parameters after the training's check); a
    correction that learns what the known part misses does not."""
    starved = sysid.HybridODE(
        _decay_law,
        {"k": 0.5},
        bounds={"k": (0, None)},
        hidden=(4,),
        max_epochs=2,
        lbfgs_steps=0,
        collocation_steps=0,
        gradient="backprop",
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not identifiable", category=FitWarning)  # k: the network's too
        with pytest.warns(FitWarning, match=rf"HybridODE: .*{POOR_FREE_RUN_MESSAGE}.*known equations"):
            starved.fit(_swing())
    assert starved.refined_
    t = np.linspace(0.0, 1.0, 12)
    logistic = sysid.Trajectories.from_arrays([t], [(1.0 / (1.0 + np.exp(-2.0 * t)))[:, None]], state_names=["x"])
    growth = sysid.HybridODE(
        lambda t, x, p, u: p["r"] * x,
        {"r": 2.0},
        fixed=["r"],
        hidden=(8,),
        max_epochs=5,
        lbfgs_steps=10,
        gradient="backprop",
        verbose=False,
    )
    with _silent_free_run():
        growth.fit(logistic)


@pytest.mark.slow  # about 10 s: run by .ci/run's slow step, outside the default run
def test_sparse_poor_free_run_warns() -> None:
    """sparse-poor-free-run-warns: linear equations (degree=1) cannot make a relaxation oscillation
    (Van der Pol, mu = 5; the selection keeps no term at all): the chosen candidate warns, with advice
    on the library, and so do the pruned coefficients of a numeric threshold; the same library on a
    decay does not."""
    from scipy.integrate import solve_ivp

    t = np.linspace(0.0, 12.0, 25)
    mu = 5.0
    path = solve_ivp(
        lambda _, z: [z[1], mu * (1 - z[0] ** 2) * z[1] - z[0]], (0.0, 12.0), [2.0, 0.0], t_eval=t, rtol=1e-9
    ).y.T
    cycle = sysid.Trajectories.from_arrays([t], [path], state_names=["x", "v"])
    linear = dict(degree=1, max_epochs=10, gradient="backprop", verbose=False)
    for threshold in ("auto", 0.05):
        with pytest.warns(FitWarning, match=rf"SparseODE: .*{POOR_FREE_RUN_MESSAGE}.*higher degree"):
            sysid.SparseODE(threshold=threshold, n_threshold_rounds=1, **linear).fit(cycle)
    with _silent_free_run():
        sysid.SparseODE(**linear).fit(_decay())


@pytest.mark.slow  # about 10 s: run by .ci/run's slow step, outside the default run
def test_log_errors_poor_free_run_warns() -> None:
    """log-errors-poor-free-run-warns: with errors="log" the kept parameters are scored in standard
    deviations of the data too (the training's val_loss is an RMSE of log ratios)."""
    t = np.arange(120) / 50.0
    swing = sysid.Trajectories.from_arrays(
        [t], [np.c_[2 + np.cos(2 * np.pi * 5.0 * t), 2 - np.sin(2 * np.pi * 5.0 * t)]], state_names=["x", "v"]
    )
    starved = sysid.NeuralODE(
        hidden=(8,), max_epochs=1, lbfgs_steps=0, collocation_steps=0, horizons=None, errors="log", verbose=False
    )
    with pytest.warns(FitWarning, match=rf"NeuralODE: .*{POOR_FREE_RUN_MESSAGE}.*SparseODE\(degree=1\)"):
        starved.fit(swing)
    t = np.linspace(0.0, 3.0, 40)
    decay = sysid.Trajectories.from_arrays([t], [np.exp(-t)[:, None]], state_names=["x"])
    with _silent_free_run():
        sysid.NeuralODE(hidden=(8,), max_epochs=10, errors="log", random_state=0, verbose=False).fit(decay)
