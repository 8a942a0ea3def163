"""Fuzzing (hypothesis): random valid and invalid input through the adapters and a fitted model's
``predict``. Only success or one of our documented errors may come out: a
:class:`~sysid.SysidError` subclass or :class:`~sysid.NotFittedError`, never an exception
from inside numpy, pandas, torch, scipy or pysindy.

Kept small (a few dozen examples each) so the file runs in well under 20 seconds.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sysid
from sysid.adapters import as_trajectories, from_arrays
from sysid.errors import NotFittedError, SolverWarning

OURS = (sysid.SysidError, NotFittedError)
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# -- strategies --------------------------------------------------------------------------------------------
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-10.0, 10.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, -1.0, 1e12, -1e300, np.nan, np.inf]),
)
NAMES = st.sampled_from(["t", "time", "x", "v", "run", "u", "Temp (C)", 0, 7, 2.5])


@st.composite
def columns(draw, n: int) -> list:
    """One column of ``n`` values of a random kind, valid or not."""
    kind = draw(st.sampled_from(["float", "sorted", "int", "bool", "text", "mixed", "datetime", "timedelta",
                                 "labels", "none", "complex"]))
    if kind == "float":
        return draw(st.lists(FLOATS, min_size=n, max_size=n))
    if kind == "sorted":
        return sorted(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)))
    if kind == "int":
        return draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    if kind == "bool":
        return draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind == "text":
        return draw(st.lists(st.text(max_size=3), min_size=n, max_size=n))
    if kind == "mixed":
        return draw(st.lists(st.one_of(FLOATS, st.text(max_size=2), st.none(), st.integers(-3, 3)),
                             min_size=n, max_size=n))
    if kind == "datetime":
        days = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n))
        return list(np.datetime64("1990-01-01") + np.array(days, dtype="timedelta64[D]"))
    if kind == "timedelta":
        return list(np.array(draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n)),
                             dtype="timedelta64[s]"))
    if kind == "labels":
        return draw(st.lists(st.sampled_from(["a", "b", 1, None]), min_size=n, max_size=n))
    if kind == "none":
        return [None] * n
    return [complex(v, 1.0) for v in draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))]


@st.composite
def lab_frames(draw) -> tuple[pd.DataFrame, dict]:
    """A plausible long frame (runs, irregular times, NaN holes, an input), often with one fault."""
    n_runs, n = draw(st.integers(1, 3)), draw(st.integers(2, 8))
    rows = []
    for run in range(n_runs):
        t = np.sort(draw(hnp.arrays(np.float64, n, unique=True, elements=st.floats(0, 100))))
        for i, ti in enumerate(t):
            rows.append({"run": f"r{run}", "t": ti, "x": np.nan if i % 3 == 2 else float(np.exp(-ti / 50)),
                         "v": float(np.cos(ti / 10)), "u": float(np.sin(ti))})
    frame = pd.DataFrame(rows)
    fault = draw(st.sampled_from(["none", "none", "none", "nan-time", "dup-time", "inf-state", "text-state",
                                  "nan-input", "drop-v", "all-nan-x", "huge"]))
    row = draw(st.integers(0, len(frame) - 1))
    if fault == "nan-time":
        frame.loc[row, "t"] = np.nan
    elif fault == "dup-time":
        frame.loc[row, "t"] = frame.loc[0, "t"]
    elif fault == "inf-state":
        frame.loc[row, "v"] = np.inf
    elif fault == "text-state":
        frame["x"] = frame["x"].astype(str)
    elif fault == "nan-input":
        frame.loc[row, "u"] = np.nan
    elif fault == "drop-v":
        frame = frame.drop(columns="v")
    elif fault == "all-nan-x":
        frame["x"] = np.nan
    elif fault == "huge":
        frame.loc[row, "x"] = 1e300
    if draw(st.booleans()):
        frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 10)))  # shuffled rows
    options = {"time": "t", "trajectory": draw(st.sampled_from(["run", None])),
               "inputs": draw(st.sampled_from([["u"], None])), "interpolate_inputs": draw(st.booleans())}
    if options["inputs"] is None:
        frame = frame.drop(columns="u")
    return frame, {k: v for k, v in options.items() if v is not None}


@st.composite
def random_frames(draw) -> tuple[pd.DataFrame, dict]:
    """A DataFrame with random columns (names may repeat) and random adapter options."""
    n = draw(st.integers(0, 7))
    names = draw(st.lists(NAMES, min_size=1, max_size=4))
    frame = pd.concat([pd.Series(draw(columns(n)), name=name, dtype=object if n == 0 else None)
                       for name in names], axis=1)
    if draw(st.booleans()) and n:
        frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 10)))  # shuffled rows
    choice = st.one_of(st.none(), NAMES, st.just("missing"))
    options = {
        "time": draw(choice),
        "trajectory": draw(choice),
        "states": draw(st.one_of(st.none(), st.lists(NAMES, max_size=3))),
        "inputs": draw(st.one_of(st.none(), st.lists(NAMES, max_size=2))),
        "interpolate_inputs": draw(st.booleans()),
    }
    return frame, {k: v for k, v in options.items() if v is not None}


def frames():
    return st.one_of(lab_frames(), random_frames())


def float_arrays(max_dims: int = 3):
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6),
                      elements=FLOATS)


def assert_valid(data: sysid.Trajectories) -> None:
    """What every successful conversion promises (docs/concepts.md): the container's invariants."""
    assert isinstance(data, sysid.Trajectories) and len(data) >= 1
    for tr in data:
        assert np.all(np.isfinite(tr.t)) and np.all(np.diff(tr.t) > 0)
        assert tr.y.shape == (tr.n_times, data.n_states) and not np.isinf(tr.y).any()
        assert (~np.isnan(tr.y).all(axis=1)).sum() >= 2
        assert tr.u is None or np.isfinite(tr.u).all()


def only_ours(call) -> object | None:
    """Run ``call``; return its result, or None if it raised one of our documented errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverWarning)
        warnings.simplefilter("error", np.exceptions.ComplexWarning)  # a silent cast would be a wrong answer
        try:
            return call()
        except OURS as exc:
            assert str(exc), "our errors always say what is wrong"  # noqa: PT017 - a helper, not a raises-test
            return None


# -- the adapters -------------------------------------------------------------------------------------------
@FUZZ
@given(frames())
def test_random_dataframes_convert_or_raise_our_error(case) -> None:
    frame, options = case
    data = only_ours(lambda: as_trajectories(frame, **options))
    if data is not None:
        assert_valid(data)


@st.composite
def lab_arrays(draw) -> tuple:
    """(X, t, u): one experiment that is valid but for an occasional NaN, inf or repeated time."""
    n, k = draw(st.integers(2, 8)), draw(st.integers(1, 3))
    X = draw(hnp.arrays(np.float64, (n, k), elements=st.one_of(st.floats(-1e3, 1e3), st.just(np.nan))))
    X[:2] = 1.0
    t = np.sort(draw(hnp.arrays(np.float64, n, unique=True, elements=st.floats(-1e6, 1e6))))
    u = draw(st.one_of(st.none(), hnp.arrays(np.float64, (n, 1), elements=st.floats(-1, 1))))
    return X, t, u


@FUZZ
@given(case=st.one_of(lab_arrays(), st.tuples(
    float_arrays(), st.one_of(st.none(), float_arrays(max_dims=2), st.lists(FLOATS, max_size=7)),
    st.one_of(st.none(), float_arrays(max_dims=2)))))
def test_random_arrays_convert_or_raise_our_error(case) -> None:
    X, t, u = case
    data = only_ours(lambda: from_arrays(X, t, u))
    if data is not None:
        assert_valid(data)


@FUZZ
@given(case=frames())
def test_random_dataframes_through_xarray_convert_or_raise_our_error(case) -> None:
    frame, options = case
    keys = [options.get(k) for k in ("trajectory", "time") if options.get(k) in set(frame.columns)]
    try:
        dataset = (frame.set_index(keys) if keys else frame).to_xarray()
    except Exception:  # noqa: BLE001 - pandas cannot express it as a Dataset (e.g. a repeated index)
        return
    data = only_ours(lambda: as_trajectories(dataset, **options))
    if data is not None:
        assert_valid(data)


# -- a fitted model's predict -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_budget() -> Iterator[None]:
    """A 100-step budget per output interval (the default is 10 000): huge horizons fail fast."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sysid.integration._solve.DEFAULT_MAX_NUM_STEPS", 100)
        yield


VALID_TIMES = st.lists(st.floats(0, 10), min_size=2, max_size=6, unique=True).map(sorted)
TIMES = st.one_of(
    VALID_TIMES, VALID_TIMES,
    st.lists(st.floats(0, 1e12), min_size=2, max_size=6, unique=True).map(sorted),  # valid, possibly huge
    st.lists(FLOATS, min_size=0, max_size=6),                                 # anything, NaN and inf included
    st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=2, max_size=5),       # duplicates, unsorted
    st.just(np.zeros((2, 2))), st.just("0,1,2"), st.just(3.0),
)
VALID_STARTS = st.lists(st.floats(-3, 3), min_size=2, max_size=2)
STARTS = st.one_of(VALID_STARTS, VALID_STARTS, VALID_STARTS,
                   st.lists(FLOATS, min_size=2, max_size=2),  # NaN, inf, 1e300...
                   st.lists(FLOATS, min_size=0, max_size=3), st.just(["1", "x"]), st.just([[1.0, 1.0], [2.0]]),
                   hnp.arrays(np.float64, st.sampled_from([(2,), (1, 2), (3, 2), (2, 1)]), elements=FLOATS))


@pytest.mark.usefixtures("small_budget")
@pytest.mark.parametrize("name", ["NeuralODE", "SINDy"])
@FUZZ
@given(t=TIMES, x0=STARTS, with_u=st.booleans())
def test_predict_on_random_times_and_initial_states_succeeds_or_raises_our_error(name, fitted, t, x0, with_u) -> None:
    model = fitted[name]
    u = np.ones((len(t), 1)) if with_u and isinstance(t, list) and len(t) else None
    out = only_ours(lambda: model.predict(t=t, x0=x0, u=u))
    if out is not None:
        assert out.shape[-2:] == (len(t), 2)  # NaN (with a SolverWarning) where the solver gave up


@pytest.mark.usefixtures("small_budget")
@FUZZ
@given(case=frames())
def test_predict_on_random_dataframes_succeeds_or_raises_our_error(fitted, case) -> None:
    frame, options = case
    options.pop("interpolate_inputs", None)
    out = only_ours(lambda: fitted["SINDy"].predict(frame, **options))
    if out is not None:
        assert isinstance(out, pd.DataFrame) and len(out) <= len(frame)
