"""from_xarray / to_xarray / to_dataarray: every layout feature, one test each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sysid import Trajectories
from sysid.adapters import from_pandas, from_xarray, to_dataarray, to_xarray
from sysid.errors import DataError


@pytest.fixture
def ragged() -> xr.Dataset:
    """Two experiments on a shared, NaN-padded time axis, with units and dataset attrs."""
    return xr.Dataset(
        {
            "prey": (("run", "time"), [[10.0, 11.0, np.nan, 13.0], [np.nan, 5.0, 6.0, np.nan]], {"units": "1/km2"}),
            "predator": (
                ("run", "time"),
                [[1.0, np.nan, np.nan, 2.0], [np.nan, 3.0, 3.5, np.nan]],
                {"units": "1/km2", "long_name": "lynx"},
            ),
        },
        coords={"run": ["r1", "r2"], "time": ("time", [0.0, 0.5, 1.25, 2.0], {"units": "s"})},
        attrs={"title": "Hudson Bay", "year": 1900},
    )


def test_each_trajectory_keeps_the_times_where_something_is_known(ragged):
    data = from_xarray(ragged, time="time", trajectory="run")
    assert data.names == ["r1", "r2"]
    assert data["r1"].t.tolist() == [0.0, 0.5, 2.0]
    assert data["r2"].t.tolist() == [0.5, 1.25]
    np.testing.assert_array_equal(data["r1"].y, [[10.0, 1.0], [11.0, np.nan], [13.0, 2.0]])


def test_round_trip_is_identical_with_units_and_attrs(ragged):
    data = from_xarray(ragged, trajectory="run")
    assert data.variable_attrs["predator"] == {"units": "1/km2", "long_name": "lynx"}
    assert data.attrs == {"title": "Hudson Bay", "year": 1900}
    xr.testing.assert_identical(to_xarray(data), ragged)
    xr.testing.assert_identical(data.to_xarray(), ragged)


def test_the_trajectory_dimension_is_found_when_not_named(ragged):
    data = from_xarray(ragged)
    assert data.source["trajectory"] == "run" and len(data) == 2


def test_a_single_time_dimension_is_one_experiment():
    dataset = xr.Dataset({"x": ("t", [1.0, 2.0, 3.0])}, coords={"t": [0.0, 1.0, 3.0]})
    data = from_xarray(dataset)
    assert data.names == [0] and data[0].t.tolist() == [0.0, 1.0, 3.0]
    back = to_xarray(data)
    assert back["x"].dims == ("t",)
    xr.testing.assert_identical(back, dataset)


def test_dims_order_time_first_is_kept(ragged):
    transposed = ragged.transpose("time", "run")
    back = to_xarray(from_xarray(transposed, trajectory="run"))
    assert back["prey"].dims == ("time", "run")
    xr.testing.assert_identical(back, transposed)


def test_datetime_coordinates_give_seconds_from_each_trajectorys_first_time():
    times = np.array(["2022-03-01T00:00", "2022-03-01T00:01", "2022-03-01T00:03"], dtype="datetime64[s]")
    dataset = xr.Dataset(
        {"x": (("run", "time"), [[1.0, 2.0, np.nan], [np.nan, 3.0, 4.0]])}, coords={"run": [0, 1], "time": times}
    )
    data = from_xarray(dataset)
    assert data.time_kind == "datetime"
    assert data[0].t.tolist() == [0.0, 60.0]
    assert data[1].t.tolist() == [0.0, 120.0]
    assert data[1].origin == np.datetime64("2022-03-01T00:01", "ns")
    back = to_xarray(data)
    assert back["time"].dtype == np.dtype("datetime64[s]")
    xr.testing.assert_identical(back, dataset)


def test_datetimes_from_pandas_with_different_origins_share_a_union_axis():
    frame = pd.DataFrame(
        {
            "run": ["a", "a", "b", "b"],
            "t": pd.to_datetime(["2020-01-01 00:00", "2020-01-01 00:10", "2020-01-01 00:05", "2020-01-01 00:10"]),
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    dataset = to_xarray(from_pandas(frame, trajectory="run"))
    assert dict(dataset.sizes) == {"run": 2, "t": 3}
    assert (
        dataset["t"].values.tolist()
        == pd.to_datetime(["2020-01-01 00:00", "2020-01-01 00:05", "2020-01-01 00:10"])
        .as_unit("us")
        .to_numpy()
        .tolist()
    )
    np.testing.assert_array_equal(dataset["x"].values, [[1.0, np.nan, 2.0], [np.nan, 3.0, 4.0]])


def test_timedelta_coordinates_round_trip():
    dataset = xr.Dataset({"x": ("time", [1.0, 2.0])}, coords={"time": np.array([0, 1500], dtype="timedelta64[ms]")})
    data = from_xarray(dataset)
    assert data.time_kind == "timedelta" and data[0].t.tolist() == [0.0, 1.5]
    xr.testing.assert_identical(to_xarray(data), dataset)


def test_inputs_over_time_only_are_shared_by_every_trajectory(ragged):
    dataset = ragged.assign(light=("time", [0.0, 1.0, 2.0, 3.0]))
    data = from_xarray(dataset, trajectory="run", inputs="light")
    assert data.input_names == ("light",)
    # With a known input every time is kept, even where no state was measured.
    assert data["r2"].t.tolist() == [0.0, 0.5, 1.25, 2.0]
    assert data["r2"].u[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_nan_inputs_are_interpolated_on_request(ragged):
    dataset = ragged.assign(light=(("run", "time"), [[0.0, np.nan, np.nan, 3.0], [np.nan, 1.0, 2.0, np.nan]]))
    data = from_xarray(dataset, trajectory="run", inputs="light", interpolate_inputs=True)
    assert data["r1"].t.tolist() == [0.0, 0.5, 2.0]
    assert data["r1"].u[:, 0].tolist() == [0.0, 0.75, 3.0]


def test_dataarray_with_a_state_dimension():
    array = xr.DataArray(
        np.arange(12.0).reshape(2, 3, 2),
        dims=("run", "time", "species"),
        coords={"run": ["a", "b"], "time": [0.0, 1.0, 2.0], "species": ["prey", "predator"]},
        name="counts",
    )
    data = from_xarray(array, trajectory="run")
    assert data.state_names == ("prey", "predator")
    assert data["b"].y.tolist() == [[6.0, 7.0], [8.0, 9.0], [10.0, 11.0]]
    dataset = to_xarray(data)
    assert isinstance(dataset, xr.Dataset) and list(dataset.data_vars) == ["prey", "predator"]
    xr.testing.assert_identical(to_dataarray(data), array)


def test_dataarray_state_dim_can_be_named_and_inputs_taken_from_it():
    array = xr.DataArray(
        np.arange(9.0).reshape(3, 3),
        dims=("time", "var"),
        coords={"time": [0.0, 1.0, 2.0], "var": ["x", "y", "heater"]},
    )
    data = from_xarray(array, state_dim="var", inputs=["heater"])
    assert data.state_names == ("x", "y") and data.input_names == ("heater",)
    back = to_dataarray(data)
    assert back.dims == ("time", "var") and back["var"].values.tolist() == ["x", "y"]


def test_dataarray_without_state_coordinate_gets_default_names():
    array = xr.DataArray(np.ones((3, 2)), dims=("time", "state"), coords={"time": [0.0, 1.0, 2.0]})
    data = from_xarray(array)
    assert data.state_names == ("x0", "x1")
    xr.testing.assert_identical(to_dataarray(data), array)


def test_one_dimensional_dataarray_is_one_state_named_after_it():
    array = xr.DataArray([1.0, 2.0, 4.0], dims="time", coords={"time": [0.0, 1.0, 2.0]}, name="level")
    data = from_xarray(array)
    assert data.state_names == ("level",)
    xr.testing.assert_identical(to_dataarray(data), array)


def test_to_dataarray_of_dataset_data_stacks_states_on_a_state_dim(ragged):
    array = to_dataarray(from_xarray(ragged, trajectory="run"))
    assert array.dims == ("state", "run", "time")
    assert array["state"].values.tolist() == ["prey", "predator"]


def test_to_xarray_of_array_data_uses_default_dims():
    data = Trajectories.from_arrays([np.array([0.0, 1.0]), np.array([0.5, 1.0])], [np.ones((2, 1)), np.ones((2, 1))])
    dataset = to_xarray(data)
    assert dataset["x0"].dims == ("trajectory", "time")
    assert dataset["time"].values.tolist() == [0.0, 0.5, 1.0]
    assert dataset["trajectory"].values.tolist() == [0, 1]


def test_dask_backed_dataset_reads_like_the_in_memory_one(ragged):
    pytest.importorskip("dask")
    chunked = ragged.chunk({"time": 2})
    assert chunked["prey"].chunks is not None
    lazy, eager = from_xarray(chunked, trajectory="run"), from_xarray(ragged, trajectory="run")
    for a, b in zip(lazy, eager):
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.t, b.t)


def test_a_text_value_is_located_even_on_a_coordinate_of_tuples():
    """A trajectory coordinate built from a pandas MultiIndex holds tuples: the error still names the place."""
    runs = np.empty(2, dtype=object)
    runs[0], runs[1] = (False, 0.0), (True, 1.0)
    dataset = xr.Dataset(
        {"x": (("run", "time"), [["1.0", "2.0", "3.0"], ["4.0", "oops", "6.0"]])},
        coords={"run": runs, "time": [0.0, 1.0, 2.0]},
    )
    with pytest.raises(DataError, match=r"'oops'.* at \{'run': \(True, 1\.0\), 'time': 1\.0\} is not a number"):
        from_xarray(dataset, time="time", trajectory="run")
