"""One rule for times that go backwards, whatever the adapter: an error naming the trajectory and the
rows, or ``sort=True`` to sort (property tests: pandas, xarray and numpy must agree)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sysid.adapters import as_trajectories, from_arrays, from_pandas, from_xarray
from sysid.errors import DataError

SETTINGS = settings(max_examples=40, deadline=None)
BACKWARDS = (
    r"trajectory {name}: times go backwards at {where}s? (\d+) and (\d+) "
    r"\(([-\d.e+]+) then ([-\d.e+]+)\).*sort=True"
)


@st.composite
def unordered_times(draw) -> tuple[np.ndarray, np.ndarray]:
    """(times in the order given, states): 3-12 distinct times, not increasing somewhere."""
    n = draw(st.integers(3, 12))
    times = draw(hnp.arrays(np.float64, n, unique=True, elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)))
    assume(np.any(np.diff(times) < 0))
    states = draw(hnp.arrays(np.float64, (n, 2), elements=st.floats(-1e3, 1e3, width=64)))
    return times, states


def _check_message(error: DataError, name: str, where: str, times: np.ndarray) -> None:
    match = re.search(BACKWARDS.format(name=re.escape(name), where=re.escape(where)), str(error))
    assert match, str(error)
    first, second = int(match.group(1)), int(match.group(2))
    assert second == first + 1 and times[second] < times[first]  # the rows named really go backwards
    assert first == int(np.flatnonzero(np.diff(times) < 0)[0])  # and they are the first such place


@SETTINGS
@given(unordered_times())
def test_pandas_xarray_and_arrays_refuse_the_same_times_and_sort_them_alike(case) -> None:
    times, states = case
    frame = pd.DataFrame({"run": "r", "t": times, "x": states[:, 0], "v": states[:, 1]})
    dataset = xr.Dataset({"x": ("time", states[:, 0]), "v": ("time", states[:, 1])}, coords={"time": times})
    readers = {
        "pandas": (lambda **kw: from_pandas(frame, time="t", trajectory="run", **kw), "'r'", "row"),
        "xarray": (lambda **kw: from_xarray(dataset, **kw), "0", "'time' position"),
        "arrays": (lambda **kw: from_arrays(states, t=times, state_names=["x", "v"], **kw), "0", "row"),
    }
    order = np.argsort(times, kind="stable")
    for read, name, where in readers.values():
        with pytest.raises(DataError) as caught:
            read()
        _check_message(caught.value, name, where, times)
        data = read(sort=True)
        np.testing.assert_array_equal(data[0].t, times[order])
        np.testing.assert_array_equal(data[0].y, states[order])


@SETTINGS
@given(st.lists(st.integers(2, 6), min_size=2, max_size=4), st.integers(0, 2**32 - 1))
def test_interleaved_experiments_in_time_order_need_no_sort(lengths, seed) -> None:
    """Rows of several runs merged by time (each run increasing) are read as they are."""
    rng = np.random.default_rng(seed)
    pieces = [
        pd.DataFrame({"run": k, "t": np.sort(rng.choice(100, n, replace=False)) * 0.1, "x": rng.normal(size=n)})
        for k, n in enumerate(lengths)
    ]
    frame = pd.concat(pieces).sort_values("t", kind="stable").reset_index(drop=True)
    data = from_pandas(frame, time="t", trajectory="run")
    for k, piece in enumerate(pieces):
        np.testing.assert_array_equal(data[k].t, piece["t"].to_numpy())
        np.testing.assert_array_equal(data[k].y[:, 0], piece["x"].to_numpy())


def test_sort_is_a_data_option_of_fit_and_predict_reuses_it() -> None:
    import warnings

    import sysid

    t = np.linspace(0.0, 2.0, 12)
    frame = pd.DataFrame({"t": t, "x": np.exp(-t), "v": np.exp(-0.5 * t)}).iloc[::-1]  # newest first
    with pytest.raises(DataError, match=r"times go backwards .* pass sort=True"):
        sysid.SINDy(degree=1).fit(frame, time="t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.SINDy(degree=1).fit(frame, time="t", sort=True)
        predicted = model.predict(frame)  # the fit's sort=True applies: no error
    assert predicted["t"].tolist() == sorted(t.tolist())
    assert as_trajectories(frame, time="t", sort=True)[0].t.tolist() == t.tolist()
