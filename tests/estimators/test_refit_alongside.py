"""n_jobs: the refit of a fit that misses its data runs alongside the first fit, in a second process.

The refit (from the start the first fit did not take) starts with the first fit and is used only
if the first misses its data; the result is the same bits as the refit run afterwards in this
process (``n_jobs=1``). A worker that dies leaves the refit to this process; a fit that needs no
refit stops its worker.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable

import joblib
import numpy as np
import pandas as pd
import pytest

import sysid
from sysid.errors import ConfigError, FitWarning

psutil = pytest.importorskip("psutil")  # installed with the test extra (through distributed)

pytestmark = pytest.mark.skipif(joblib.cpu_count() < 2, reason="a refit alongside needs a second usable core")


def five_hertz_swing() -> sysid.Trajectories:
    """12 periods of an undamped 5 Hz swing: a starved fit from the zero linear part cannot follow it."""
    t = np.arange(120) / 50.0
    return sysid.Trajectories.from_arrays(
        [t], [np.c_[np.cos(2 * np.pi * 5.0 * t), -np.sin(2 * np.pi * 5.0 * t)]], state_names=["x", "v"]
    )


def starved(**options: object) -> sysid.NeuralODE:
    """One Adam epoch after a five-step collocation: the zero start's fit misses the swing (free run ~1.4)."""
    settings: dict[str, object] = {"hidden": (8,), "max_epochs": 1, "lbfgs_steps": 0, "collocation_steps": 5}
    return sysid.NeuralODE(horizons=None, random_state=0, verbose=False, **{**settings, **options})


def workers() -> list[psutil.Process]:
    """This process's joblib (loky) worker processes that are alive (idle ones from earlier fits too)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "LokyProcess" in " ".join(child.cmdline()):
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


def busy_workers() -> int:
    """How many of :func:`workers` use CPU over a fifth of a second (an idle worker uses none)."""
    before = {w.pid: sum(w.cpu_times()[:2]) for w in workers()}
    time.sleep(0.2)
    return sum(1 for w in workers() if w.pid in before and sum(w.cpu_times()[:2]) - before[w.pid] > 0.05)


def no_workers_left() -> bool:
    """Whether every worker is gone within a few seconds (a stopped worker is reaped after its kill)."""
    deadline = time.monotonic() + 5.0
    while workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not workers()


@pytest.fixture
def zero_start_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Score the least-squares start as poor (in this process), so that the zero start trains first."""
    scored = sysid.NeuralODE._start_error

    def scored_unless_second(self: sysid.NeuralODE, data: sysid.Trajectories, start: object) -> float:
        error = scored(self, data, start)  # type: ignore[arg-type]
        return error if self.field_part_.linear_start == "zero" else math.inf

    monkeypatch.setattr(sysid.NeuralODE, "_start_error", scored_unless_second)


def when_the_first_fit_is_scored(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` in this process when a model's first fit is scored (its refit decision), once per model."""
    checked = sysid.NeuralODE._kept_free_run_error
    scored_models: set[int] = set()

    def scored(self: sysid.NeuralODE, data: sysid.Trajectories) -> float:
        if id(self) not in scored_models:
            scored_models.add(id(self))
            action()
        return checked(self, data)

    monkeypatch.setattr(sysid.NeuralODE, "_kept_free_run_error", scored)


def assert_same_fit(a: sysid.NeuralODE, b: sysid.NeuralODE, data: sysid.Trajectories) -> None:
    pd.testing.assert_frame_equal(a.history_.drop(columns="seconds"), b.history_.drop(columns="seconds"))
    np.testing.assert_array_equal(a.x0_, b.x0_)
    np.testing.assert_array_equal(a.predict(t=data[0].t, x0=[1.0, 0.0]), b.predict(t=data[0].t, x0=[1.0, 0.0]))
    assert a.n_function_evals_ == b.n_function_evals_


@pytest.mark.usefixtures("zero_start_first")
def test_a_refit_alongside_gives_the_same_bits_as_a_refit_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    swing = five_hertz_swing()
    seen: list[int] = []
    when_the_first_fit_is_scored(monkeypatch, lambda: seen.append(busy_workers()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        afterwards = starved(n_jobs=1).fit(swing)
        alongside = starved().fit(swing)  # n_jobs=2, the default
    assert seen == [0, 1]  # no worker busy with n_jobs=1; one running the refit when the first fit ended
    best = alongside.history_.groupby("attempt")["val_loss"].min()
    assert best[0] > sysid.training.POOR_FREE_RUN > 0.1 > best[1]  # the refit was needed, and kept
    assert alongside.field_part_.linear_start == "least_squares" and alongside.field.linear_start == "zero"
    assert alongside.n_jobs == 2  # the parameters stay this process's own
    assert_same_fit(alongside, afterwards, swing)


def test_a_fit_that_reproduces_its_data_stops_its_refit() -> None:
    t = np.linspace(0.0, 3.0, 40)
    decay = sysid.Trajectories.from_arrays([t], [np.exp(-t)[:, None]], state_names=["x"])
    one = sysid.NeuralODE(hidden=(8,), max_epochs=5, lbfgs_steps=10, verbose=False, n_jobs=1).fit(decay)
    two = sysid.NeuralODE(hidden=(8,), max_epochs=5, lbfgs_steps=10, verbose=False).fit(decay)
    assert "attempt" not in two.history_
    assert no_workers_left()  # the refit it did not need was stopped, not left running
    pd.testing.assert_frame_equal(one.history_.drop(columns="seconds"), two.history_.drop(columns="seconds"))
    np.testing.assert_array_equal(one.predict(t=t, x0=[1.0]), two.predict(t=t, x0=[1.0]))


@pytest.mark.usefixtures("zero_start_first")
def test_a_worker_that_dies_leaves_the_refit_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    swing = five_hertz_swing()
    afterwards = starved(n_jobs=1).fit(swing)
    killed: list[int] = []

    def kill() -> None:
        for worker in workers():
            worker.kill()
            killed.append(worker.pid)

    when_the_first_fit_is_scored(monkeypatch, kill)
    recovered = starved().fit(swing)
    assert killed  # the refit's worker was running, and died
    assert recovered.field_part_.linear_start == "least_squares"
    assert_same_fit(recovered, afterwards, swing)


@pytest.mark.usefixtures("zero_start_first")
def test_ctrl_c_while_waiting_for_the_refit_keeps_the_first_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    swing = five_hertz_swing()
    # The refit's worker imports torch and sysid (seconds): a Ctrl-C 0.3 s after the decision finds this
    # process waiting for it.
    when_the_first_fit_is_scored(
        monkeypatch, lambda: threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    )
    model = starved()
    with pytest.warns(FitWarning, match="fit interrupted during its refit; keeping the first fit"):
        model.fit(swing)
    assert "attempt" not in model.history_ and model.field_part_.linear_start == "zero"
    assert float(model.history_["val_loss"].min()) > sysid.training.POOR_FREE_RUN  # the first fit, as it ended
    assert no_workers_left()


@pytest.mark.usefixtures("zero_start_first")
def test_a_fit_stopped_by_ctrl_c_is_not_refitted(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted = sysid.NeuralODE._fit_resolved

    def interrupted(self: sysid.NeuralODE, data: sysid.Trajectories, start: object = None) -> None:
        fitted(self, data, start)  # type: ignore[arg-type]
        self.stop_reason_ = "interrupted"  # as a Ctrl-C in the training leaves it

    monkeypatch.setattr(sysid.NeuralODE, "_fit_resolved", interrupted)
    for n_jobs in (1, 2):
        model = starved(n_jobs=n_jobs)
        with pytest.warns(FitWarning, match="standard deviations of the data"):  # poor, and kept as it is
            model.fit(five_hertz_swing())
        assert "attempt" not in model.history_ and model.field_part_.linear_start == "zero"
        assert no_workers_left()


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2", None])
def test_n_jobs_is_checked_before_the_data_are_read(n_jobs: object) -> None:
    with pytest.raises(ConfigError, match=rf"n_jobs must be a positive integer or -1 .* got {n_jobs!r}\."):
        sysid.NeuralODE(n_jobs=n_jobs).fit("not data")  # type: ignore[arg-type]


def test_n_jobs_above_two_or_every_core_fits_as_two() -> None:
    decay = sysid.Trajectories.from_arrays([np.linspace(0, 2, 15)], [np.exp(-np.linspace(0, 2, 15))[:, None]])
    settings = {"hidden": (4,), "max_epochs": 1, "lbfgs_steps": 0, "verbose": False}
    a = sysid.NeuralODE(n_jobs=8, **settings).fit(decay)
    b = sysid.NeuralODE(n_jobs=-1, **settings).fit(decay)
    assert a.get_params()["n_jobs"] == 8 and b.get_params()["n_jobs"] == -1
    np.testing.assert_array_equal(a.x0_, b.x0_)
