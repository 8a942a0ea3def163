"""Round trips through the adapters: property tests (hypothesis) and one example per type.

A random valid long frame (1-4 trajectories of 2-15 irregular times, NaN holes in the
states, optional inputs, float / datetime64 / timedelta64 times, str or int labels, rows
interleaved in time order, or shuffled and read with ``sort=True``) must come back exactly, dtypes included, through
``from_pandas -> to_pandas``; a Dataset built from it through ``from_xarray -> to_xarray``
(attrs included); and the frame through ``Trajectories -> Dataset -> Trajectories ->
DataFrame``. Datetimes sit on a whole-millisecond grid with spans of a few days, where
float seconds are exact to well under a microsecond.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sysid import Trajectories
from sysid.adapters import (
    as_trajectories,
    from_pandas,
    from_xarray,
    to_caller_format,
    to_pandas,
    to_xarray,
)

SETTINGS = settings(max_examples=30, deadline=None)
MS_PER_DAY = 86_400_000
RUN, TIME = "run", "t"


# ------------------------------------------------------------------ strategies
def _unique_sorted(draw, n: int, low: int, high: int) -> np.ndarray:
    ticks = draw(hnp.arrays(np.int64, n, elements=st.integers(low, high), unique=True))
    return np.sort(ticks)


def _times(draw, kind: str, n: int, unit: str) -> np.ndarray:
    """n irregular increasing times of the given kind (ms grid for datetimes/timedeltas)."""
    if kind == "float":
        values = draw(hnp.arrays(np.float64, n, unique=True, elements=st.floats(-1e3, 1e3, allow_nan=False, width=64)))
        return np.sort(values)
    if kind == "timedelta":
        ms = _unique_sorted(draw, n, -2 * MS_PER_DAY, 5 * MS_PER_DAY)
        return ms.astype("timedelta64[ms]").astype(f"timedelta64[{unit}]")
    start = draw(st.integers(0, 20_000)) * MS_PER_DAY  # days after 1990-01-01
    ms = start + _unique_sorted(draw, n, 0, 5 * MS_PER_DAY)
    return (np.datetime64("1990-01-01", "ms") + ms.astype("timedelta64[ms]")).astype(f"datetime64[{unit}]")


def _observed_mask(draw, n: int, n_states: int, every_row: bool) -> np.ndarray:
    """Which states are observed; at least two observed rows, every row if ``every_row``."""
    observed = draw(hnp.arrays(np.bool_, (n, n_states)))
    observed[:2, 0] = True
    if every_row:
        observed[~observed.any(axis=1), 0] = True
    return observed


@st.composite
def long_frames(draw, kinds=("float", "datetime", "timedelta"), allow_tz=True, allow_index=True):
    """(frame, keywords for from_pandas) for a random valid long-format frame."""
    n_traj = draw(st.integers(1, 4))
    n_states = draw(st.integers(1, 3))
    n_inputs = draw(st.integers(0, 2))
    kind = draw(st.sampled_from(kinds))
    unit = draw(st.sampled_from(["ms", "us", "ns"]))
    label = st.integers(-50, 50) if draw(st.booleans()) else st.text("abcxyz", min_size=1, max_size=3)
    labels = draw(st.lists(label, min_size=n_traj, max_size=n_traj, unique=True))
    states = [f"x{j}" for j in range(n_states)]
    inputs = [f"u{j}" for j in range(n_inputs)]
    columns: dict[str, list] = {RUN: [], TIME: [], **{c: [] for c in states + inputs}}
    for name in labels:
        n = draw(st.integers(2, 15))
        values = draw(hnp.arrays(np.float64, (n, n_states), elements=st.floats(-1e6, 1e6, width=64)))
        observed = _observed_mask(draw, n, n_states, every_row=not inputs)
        values[~observed] = np.nan
        columns[RUN] += [name] * n
        columns[TIME].append(_times(draw, kind, n, unit))
        for j, col in enumerate(states):
            columns[col] += values[:, j].tolist()
        for col in inputs:
            columns[col] += draw(hnp.arrays(np.float64, n, elements=st.floats(-10, 10, width=64))).tolist()
    columns[TIME] = pd.Series(np.concatenate(columns[TIME]))
    frame = pd.DataFrame(columns)
    for j, col in enumerate(states):  # every state observed somewhere
        if frame[col].isna().all():
            frame.loc[0, col] = float(j)
    tz = draw(st.sampled_from([None, "UTC", "Europe/Paris", "America/New_York"])) if allow_tz else None
    if kind == "datetime" and tz is not None:
        frame[TIME] = frame[TIME].dt.tz_localize("UTC").dt.tz_convert(tz)
    keep_run = n_traj > 1 or draw(st.booleans())
    if not keep_run:
        frame = frame.drop(columns=RUN)
    order = draw(st.permutations(list(frame.columns)))
    shuffled = draw(st.booleans())  # rows in any order need sort=True; else interleaved, each run in time order
    if shuffled:
        rows = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(len(frame))
    else:
        rows = np.argsort(frame[TIME].to_numpy(), kind="stable")
    frame = frame[order].iloc[rows].reset_index(drop=True)
    time_in_index = allow_index and draw(st.booleans())
    if time_in_index:
        frame = frame.set_index(TIME)
    keywords = {
        "time": TIME,
        "states": states,
        "inputs": inputs,
        "trajectory": RUN if keep_run else None,
        "sort": shuffled,
    }
    return frame, keywords


def _sorted(frame: pd.DataFrame, trajectory: str | None) -> pd.DataFrame:
    keys = [k for k in (trajectory, TIME) if k is not None]
    ordered = frame.sort_values(keys, kind="stable")
    return ordered if TIME in ordered.index.names else ordered.reset_index(drop=True)


def _dataset_of(frame: pd.DataFrame, keywords: dict) -> xr.Dataset:
    keys = [k for k in (keywords["trajectory"], TIME) if k is not None]
    dataset = (
        frame.reset_index().set_index(keys).to_xarray()
        if TIME in frame.index.names
        else frame.set_index(keys).to_xarray()
    )
    dataset = dataset.sortby(TIME)
    dataset.attrs = {"title": "random experiments", "version": 3}
    for name in dataset.data_vars:
        dataset[name].attrs = {"units": f"unit of {name}"}
    dataset[TIME].attrs = {"long_name": "time of measurement"}
    if RUN in dataset.coords:
        dataset[RUN].attrs = {"long_name": "experiment"}
    return dataset


# ------------------------------------------------------------------ properties
@SETTINGS
@given(long_frames())
def test_pandas_round_trip_is_exact(case):
    frame, keywords = case
    back = to_pandas(from_pandas(frame, **keywords))
    pd.testing.assert_frame_equal(back, _sorted(frame, keywords["trajectory"]), check_dtype=True)


@SETTINGS
@given(long_frames(allow_tz=False))
def test_xarray_round_trip_is_identical(case):
    frame, keywords = case
    dataset = _dataset_of(frame, keywords)
    data = from_xarray(dataset, time=TIME, inputs=keywords["inputs"], trajectory=keywords["trajectory"])
    xr.testing.assert_identical(to_xarray(data), dataset)


@SETTINGS
@given(long_frames(allow_tz=False, allow_index=False))
def test_frame_through_dataset_and_back_is_exact(case):
    frame, keywords = case
    dataset = to_xarray(from_pandas(frame, **keywords))
    data = from_xarray(dataset, time=TIME, inputs=keywords["inputs"], trajectory=keywords["trajectory"])
    expected = _sorted(frame, keywords["trajectory"])
    pd.testing.assert_frame_equal(to_pandas(data), expected, check_dtype=True, check_like=True)


@st.composite
def array_lists(draw):
    """(X, t, u): lists of state arrays with NaN holes, times, optional inputs."""
    n_traj = draw(st.integers(1, 4))
    n_states = draw(st.integers(1, 3))
    with_inputs = draw(st.booleans())
    xs, ts, us = [], [], []
    for _ in range(n_traj):
        n = draw(st.integers(2, 15))
        x = draw(hnp.arrays(np.float64, (n, n_states), elements=st.floats(-1e6, 1e6, width=64)))
        x[~_observed_mask(draw, n, n_states, every_row=False)] = np.nan
        x[0, :] = 1.0  # every state observed somewhere
        xs.append(x)
        ts.append(_times(draw, "float", n, "ns"))
        us.append(draw(hnp.arrays(np.float64, (n, 1), elements=st.floats(-10, 10, width=64))))
    return xs, ts, us if with_inputs else None


@SETTINGS
@given(array_lists())
def test_array_lists_round_trip_row_for_row(case):
    xs, ts, us = case
    data = as_trajectories(xs, t=ts, u=us)
    back = to_caller_format(data, xs)
    assert isinstance(back, list) and len(back) == len(xs)
    for got, expected, t, traj in zip(back, xs, ts, data):
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(traj.t, t)


# ------------------------------------------------------------------ one example per type
@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": [3, 3, 3, 9, 9],
            "t": [0.0, 0.5, 2.0, 0.0, 1.0],
            "prey": [1.0, np.nan, 3.0, 4.0, 5.0],
            "temp": [20.0, 21.0, 22.0, 23.0, 24.0],
        }
    )


def _prediction(data: Trajectories) -> Trajectories:
    return data.with_states([np.nan_to_num(tr.y, nan=-1.0) * 2 for tr in data])


def test_to_caller_format_returns_trajectories_for_trajectories(frame):
    data = from_pandas(frame, states="prey", inputs="temp", trajectory="run")
    pred = _prediction(data)
    assert to_caller_format(pred, data) is pred


def test_to_caller_format_returns_a_frame_like_the_input(frame):
    data = as_trajectories(frame, time="t", states="prey", inputs="temp", trajectory="run")
    back = to_caller_format(_prediction(data), frame)
    expected = frame.assign(prey=[2.0, -2.0, 6.0, 8.0, 10.0])
    pd.testing.assert_frame_equal(back, expected)


def test_to_caller_format_drops_inputs_the_frame_did_not_have(frame):
    data = as_trajectories(frame, time="t", states="prey", inputs="temp", trajectory="run")
    back = to_caller_format(_prediction(data), frame.drop(columns="temp"))
    assert list(back.columns) == ["run", "t", "prey"]


def test_to_caller_format_returns_a_dataset_like_the_input(frame):
    dataset = to_xarray(from_pandas(frame, inputs="temp", trajectory="run"))
    data = as_trajectories(dataset, time="t", states="prey", trajectory="run")
    back = to_caller_format(_prediction(data), dataset[["prey"]])
    assert isinstance(back, xr.Dataset)
    assert list(back.data_vars) == ["prey"]
    assert back["run"].values.tolist() == [3, 9]
    np.testing.assert_array_equal(back["prey"].sel(run=9).dropna("t").values, [8.0, 10.0])


def test_to_caller_format_returns_a_dataarray_with_the_same_dims_and_coords():
    array = xr.DataArray(
        np.arange(12.0).reshape(3, 2, 2),
        dims=("time", "species", "run"),
        coords={"time": [0.0, 1.0, 2.0], "species": ["prey", "predator"], "run": ["a", "b"]},
        name="counts",
        attrs={"source": "lab"},
    )
    data = as_trajectories(array, trajectory="run", state_dim="species")
    back = to_caller_format(data.with_states([tr.y for tr in data]), array)
    xr.testing.assert_identical(back, array)


def test_to_caller_format_returns_an_array_for_an_array():
    x = np.arange(8.0).reshape(4, 2)
    data = as_trajectories(x, t=np.arange(4.0))
    back = to_caller_format(_prediction(data), x)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, 2 * x)


def test_to_caller_format_returns_a_1d_array_for_a_1d_array():
    x = np.array([1.0, 2.0, 3.0])
    data = as_trajectories(x, t=np.array([0.0, 1.0, 3.0]))
    np.testing.assert_array_equal(to_caller_format(data, x), x)


def test_to_caller_format_stacks_for_a_3d_array():
    x = np.arange(12.0).reshape(2, 3, 2)
    data = as_trajectories(x, t=np.arange(3.0))
    assert len(data) == 2
    np.testing.assert_array_equal(to_caller_format(data, x), x)


def test_to_caller_format_returns_a_list_for_a_list_of_ragged_arrays():
    xs = [np.ones((2, 1)), np.zeros((4, 1))]
    data = as_trajectories(xs, t=[np.arange(2.0), np.arange(4.0)])
    back = to_caller_format(_prediction(data), xs)
    assert [b.shape for b in back] == [(2, 1), (4, 1)]
    np.testing.assert_array_equal(back[0], 2 * xs[0])


def test_as_trajectories_returns_trajectories_unchanged(frame):
    data = from_pandas(frame, inputs="temp", trajectory="run")
    assert as_trajectories(data) is data


def test_as_trajectories_reads_a_dataarray_and_a_dataset(frame):
    dataset = to_xarray(from_pandas(frame, inputs="temp", trajectory="run"))
    from_dataset = as_trajectories(dataset, time="t", inputs="temp")
    from_array = as_trajectories(dataset[["prey"]].to_dataarray(dim="species"), time="t", trajectory="run")
    assert from_dataset.input_names == ("temp",) and from_dataset.names == [3, 9]
    assert from_array.state_names == ("prey",)
    np.testing.assert_array_equal(from_array[9].y[:, 0], [4.0, 5.0])
