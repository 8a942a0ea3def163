"""neural-refit-alongside (docs/reliability.md): the refit of a fit that misses its data runs alongside
the first fit, in a second process (``n_jobs=2``, the default).

The refit (from the start the first fit did not take) starts with the first fit and is used only
if the first misses its data; the result is the same bits as the refit run afterwards in this
process (``n_jobs=1``). A worker that dies leaves the refit to this process; a fit that needs no
refit stops its worker.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
import warnings

import joblib
import numpy as np
import pandas as pd
import psutil
import pytest

import sysid
from sysid.errors import ConfigError, FitWarning
from tests.reliability.test_silent_failures import five_hertz_swing, second_start_looks_poor, starved_neural_ode

#: The tests of the worker itself: a refit runs alongside only with a second usable core.
two_cores = pytest.mark.skipif(joblib.cpu_count() < 2, reason="a refit alongside needs a second usable core")


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


def no_workers_left() -> bool:
    """Whether every worker is gone within a few seconds (a stopped worker is reaped after its kill)."""
    deadline = time.monotonic() + 5.0
    while workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not workers()


@pytest.fixture(autouse=True)
def cold_workers() -> None:
    """No worker left warm by an earlier test: each refit alongside starts a fresh worker, which imports
    torch and sysid (seconds) before it refits, so a starved first fit (under a second) always ends first."""
    for worker in workers():
        worker.kill()
    assert no_workers_left()


@pytest.fixture
def zero_start_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The least-squares start scored poor (in this process): the zero start trains first, and misses the swing."""
    second_start_looks_poor(monkeypatch)


def refits_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every refit run in this process (a worker runs the unpatched code and records nothing)."""
    calls: list[str] = []
    refit = sysid.NeuralODE._refit_from

    def recorded(self: sysid.NeuralODE, data: sysid.Trajectories, other: object) -> float:
        calls.append(str(getattr(other, "linear_start", other)))
        return refit(self, data, other)

    monkeypatch.setattr(sysid.NeuralODE, "_refit_from", recorded)
    return calls


class RefitFails:
    """Stands for an estimator's ``_fit_resolved`` (an instance attribute, so it travels to a worker with
    the estimator): the refit, from the least-squares start, raises FitError wherever it runs."""

    def __init__(self, model: sysid.NeuralODE) -> None:
        self.model = model

    def __call__(self, data: sysid.Trajectories, start: object = None) -> None:
        if self.model.field_part_.linear_start == "least_squares":
            raise sysid.FitError("the refit diverged")
        type(self.model)._fit_resolved(self.model, data, start)  # type: ignore[arg-type]


def assert_same_fit(a: sysid.NeuralODE, b: sysid.NeuralODE, data: sysid.Trajectories) -> None:
    pd.testing.assert_frame_equal(a.history_.drop(columns="seconds"), b.history_.drop(columns="seconds"))
    np.testing.assert_array_equal(a.x0_, b.x0_)
    np.testing.assert_array_equal(a.predict(t=data[0].t, x0=[1.0, 0.0]), b.predict(t=data[0].t, x0=[1.0, 0.0]))
    assert a.n_function_evals_ == b.n_function_evals_


@two_cores
@pytest.mark.usefixtures("zero_start_first")
def test_a_refit_alongside_gives_the_same_bits_as_a_refit_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    swing = five_hertz_swing()
    here = refits_here(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        afterwards = starved_neural_ode(n_jobs=1).fit(swing)
        assert here == ["least_squares"]  # n_jobs=1: the refit ran here, afterwards
        alongside = starved_neural_ode().fit(swing)  # n_jobs=2, the default
    assert here == ["least_squares"]  # n_jobs=2: not here, the worker's refit was used
    best = alongside.history_.groupby("attempt")["val_loss"].min()
    assert best[0] > sysid.training.POOR_FREE_RUN > 0.1 > best[1]  # the refit was needed, and kept
    assert alongside.field_part_.linear_start == "least_squares" and alongside.field.linear_start == "zero"
    assert alongside.n_jobs == 2  # the parameters stay this process's own
    assert_same_fit(alongside, afterwards, swing)


@two_cores
def test_a_fit_that_reproduces_its_data_stops_its_refit() -> None:
    t = np.linspace(0.0, 3.0, 40)
    decay = sysid.Trajectories.from_arrays([t], [np.exp(-t)[:, None]], state_names=["x"])
    one = sysid.NeuralODE(hidden=(8,), max_epochs=5, lbfgs_steps=10, verbose=False, n_jobs=1).fit(decay)
    two = sysid.NeuralODE(hidden=(8,), max_epochs=5, lbfgs_steps=10, verbose=False).fit(decay)
    assert "attempt" not in two.history_
    assert no_workers_left()  # the refit it did not need was stopped, not left running
    pd.testing.assert_frame_equal(one.history_.drop(columns="seconds"), two.history_.drop(columns="seconds"))
    np.testing.assert_array_equal(one.predict(t=t, x0=[1.0]), two.predict(t=t, x0=[1.0]))


@two_cores
@pytest.mark.usefixtures("zero_start_first")
def test_a_worker_that_dies_leaves_the_refit_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    swing = five_hertz_swing()
    afterwards = starved_neural_ode(n_jobs=1).fit(swing)
    killed: list[int] = []
    fitted = sysid.NeuralODE._fit_resolved

    def kill_then_fit(self: sysid.NeuralODE, data: sysid.Trajectories, start: object = None) -> None:
        deadline = time.monotonic() + 10.0
        while not killed and time.monotonic() < deadline:  # as the first fit starts: the refit's worker dies
            for worker in workers():
                worker.kill()
                killed.append(worker.pid)
            time.sleep(0.01)
        fitted(self, data, start)  # type: ignore[arg-type]

    here = refits_here(monkeypatch)
    monkeypatch.setattr(sysid.NeuralODE, "_fit_resolved", kill_then_fit)
    recovered = starved_neural_ode().fit(swing)
    assert killed and here == ["least_squares"]  # the refit's worker died; the refit ran here instead
    assert recovered.field_part_.linear_start == "least_squares"
    assert_same_fit(recovered, afterwards, swing)


def interrupt_when_waiting(done: threading.Event) -> None:
    """Send this process a SIGINT once its main thread waits for a refit running alongside (never otherwise)."""
    main = threading.main_thread().ident
    assert main is not None
    while not done.wait(0.005):
        frame = sys._current_frames().get(main)
        while frame is not None:
            if frame.f_code.co_name == "result" and frame.f_code.co_filename.endswith("_refit_alongside.py"):
                signal.pthread_kill(main, signal.SIGINT)  # to the main thread itself: its wait is interrupted
                return
            frame = frame.f_back


@two_cores
@pytest.mark.usefixtures("zero_start_first")
def test_ctrl_c_while_waiting_for_the_refit_keeps_the_first_fit() -> None:
    done = threading.Event()
    watcher = threading.Thread(target=interrupt_when_waiting, args=(done,), daemon=True)
    model = starved_neural_ode()
    # Python's own Ctrl-C handler, which raises KeyboardInterrupt: a process started in the background by a
    # non-interactive shell (as CI may be) begins with SIGINT ignored.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher.start()
    try:
        with pytest.warns(FitWarning, match="fit interrupted during its refit; keeping the first fit"):
            model.fit(five_hertz_swing())
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGINT, before)
    assert "attempt" not in model.history_ and model.field_part_.linear_start == "zero"
    assert float(model.history_["val_loss"].min()) > sysid.training.POOR_FREE_RUN  # the first fit, as it ended
    assert no_workers_left()


@two_cores
@pytest.mark.usefixtures("zero_start_first")
def test_a_refit_that_fails_in_its_worker_keeps_the_first_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    here = refits_here(monkeypatch)
    model = starved_neural_ode()
    model._fit_resolved = RefitFails(model)  # type: ignore[method-assign]
    with pytest.warns(FitWarning, match="standard deviations of the data"):  # the first fit, poor, kept
        model.fit(five_hertz_swing())
    assert here == []  # the refit failed in the worker, and was not run again here
    assert model.field_part_.linear_start == "zero" and "attempt" not in model.history_
    assert float(model.history_["val_loss"].min()) > sysid.training.POOR_FREE_RUN


@two_cores
@pytest.mark.usefixtures("zero_start_first")
def test_a_fit_stopped_by_ctrl_c_is_not_refitted(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted = sysid.NeuralODE._fit_resolved

    def interrupted(self: sysid.NeuralODE, data: sysid.Trajectories, start: object = None) -> None:
        fitted(self, data, start)  # type: ignore[arg-type]
        self.stop_reason_ = "interrupted"  # as a Ctrl-C in the training leaves it

    monkeypatch.setattr(sysid.NeuralODE, "_fit_resolved", interrupted)
    here = refits_here(monkeypatch)
    for n_jobs in (1, 2):
        model = starved_neural_ode(n_jobs=n_jobs)
        with pytest.warns(FitWarning, match="standard deviations of the data"):  # poor, and kept as it is
            model.fit(five_hertz_swing())
        assert "attempt" not in model.history_ and model.field_part_.linear_start == "zero"
    assert no_workers_left()  # the worker of the second fit was stopped (and with it any left idle before)
    assert here == []  # neither refitted here


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2", None, np.int64(0)])
def test_n_jobs_is_checked_before_the_data_are_read(n_jobs: object) -> None:
    expected = r"n_jobs must be a positive integer or -1 .* got " + re.escape(f"{n_jobs!r}.")
    with pytest.raises(ConfigError, match=expected):
        sysid.NeuralODE(n_jobs=n_jobs).fit("not data")  # type: ignore[arg-type]


def test_n_jobs_above_two_or_every_core_fits_as_two() -> None:
    decay = sysid.Trajectories.from_arrays([np.linspace(0, 2, 15)], [np.exp(-np.linspace(0, 2, 15))[:, None]])
    settings = {"hidden": (4,), "max_epochs": 1, "lbfgs_steps": 0, "verbose": False}
    a = sysid.NeuralODE(n_jobs=8, **settings).fit(decay)
    b = sysid.NeuralODE(n_jobs=np.int64(-1), **settings).fit(decay)
    assert a.get_params()["n_jobs"] == 8 and b.get_params()["n_jobs"] == -1
    np.testing.assert_array_equal(a.x0_, b.x0_)
