"""Bad input: a clear DataError (a ValueError) naming what is wrong, never a deep traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sysid.adapters import (
    as_trajectories,
    from_arrays,
    from_pandas,
    from_xarray,
    to_caller_format,
    to_pandas,
    to_xarray,
)
from sysid.errors import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "run": ["a", "a", "a", "b", "b", "b"],
        "t": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
        "prey": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "predator": [1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
        "temp": [20.0, 20.0, 21.0, 21.0, 22.0, 22.0],
    })


@pytest.fixture
def dataset() -> xr.Dataset:
    return xr.Dataset(
        {"prey": (("run", "time"), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])},
        coords={"run": ["a", "b"], "time": [0.0, 1.0, 2.0]},
    )


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ------------------------------------------------------------------ columns
@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"states": ["prye"]}, r"no column 'prye'; did you mean 'prey'\?"),
        ({"inputs": ["tmep"]}, r"no column 'tmep'; did you mean 'temp'\?"),
        ({"time": "tt"}, r"no column 'tt'; did you mean 't'\?"),
        ({"trajectory": "rnu"}, r"no column 'rnu'; did you mean 'run'\?"),
    ],
)
def test_misspelt_column_suggests_the_closest_name(frame, keywords, message):
    arguments = {"time": "t", "trajectory": "run", **keywords}
    with pytest.raises(DataError, match=message):
        from_pandas(frame, **arguments)


def test_missing_column_without_close_match_lists_the_columns(frame):
    with pytest.raises(DataError, match=r"no column 'zzz'\. The columns are \['run', 't'"):
        from_pandas(frame, states=["zzz"], trajectory="run")


def test_non_numeric_state_column_is_named(frame):
    with pytest.raises(DataError, match=r"state column 'prey' has dtype .*not numbers.*to_numeric"):
        from_pandas(frame.assign(prey=["1", "2", "x", "4", "5", "6"]), states=["prey"], trajectory="run")


def test_non_numeric_time_column_is_named(frame):
    with pytest.raises(DataError, match=r"time column 't' holds values of dtype .*to_datetime"):
        from_pandas(frame.assign(t=[f"0{i}:00" for i in range(6)]), trajectory="run")


def test_column_named_as_state_and_input(frame):
    with pytest.raises(DataError, match=r"'temp' is named both as a state and as an input"):
        from_pandas(frame, states=["prey", "temp"], inputs=["temp"], trajectory="run")


def test_time_column_cannot_be_a_state(frame):
    with pytest.raises(DataError, match=r"'t' is the time or trajectory column"):
        from_pandas(frame, states=["t", "prey"], trajectory="run")


def test_empty_frame(frame):
    with pytest.raises(DataError, match=r"the DataFrame is empty \(0 rows"):
        from_pandas(frame.iloc[:0], trajectory="run")


def test_no_time_column_and_a_plain_index_asks_for_time(frame):
    with pytest.raises(DataError, match=r"cannot tell which column holds the times.*Pass time="):
        from_pandas(frame.rename(columns={"t": "clock"}), trajectory="run")


def test_duplicated_state_name(frame):
    with pytest.raises(DataError, match=r"'prey' is listed twice"):
        from_pandas(frame, states=["prey", "prey"], trajectory="run")


# ------------------------------------------------------------------ times
def test_inf_time_names_trajectory_and_row(frame):
    frame.loc[4, "t"] = np.inf
    with pytest.raises(DataError, match=r"trajectory 'b': time column 't' is inf at row 4"):
        from_pandas(frame, trajectory="run")


def test_nan_time_names_trajectory_and_row(frame):
    frame.loc[1, "t"] = np.nan
    with pytest.raises(DataError, match=r"trajectory 'a': time column 't' is NaN/NaT at row 1"):
        from_pandas(frame, trajectory="run")


def test_nat_time_names_trajectory_and_row():
    frame = pd.DataFrame({"t": pd.to_datetime(["2020-01-01", None, "2020-01-03"]), "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"trajectory 0: time column 't' is NaN/NaT at row 1"):
        from_pandas(frame)


def test_duplicate_times_within_a_trajectory_name_both_rows(frame):
    frame.loc[4, "t"] = 0.0
    with pytest.raises(DataError, match=r"trajectory 'b': duplicate time 0\.0 at rows 3 and 4"):
        from_pandas(frame, trajectory="run")
    frame.loc[[4, 5], "t"] = [2.0, 0.0]  # sorted on request, the repeat shows up among non-adjacent rows
    with pytest.raises(DataError, match=r"trajectory 'b': duplicate time 0\.0 at rows 3 and 5"):
        from_pandas(frame, trajectory="run", sort=True)


def test_duplicate_times_suggest_a_trajectory_column(frame):
    interleaved = frame.drop(columns="run").sort_values("t", kind="stable")  # two runs, merged in time order
    with pytest.raises(DataError, match=r"duplicate time 0\.0 at rows 0 and 1; .*pass trajectory="):
        from_pandas(interleaved)


def test_a_clock_reset_names_the_rows_and_both_fixes(frame):
    stacked = frame.drop(columns="run")  # two runs one after the other: time goes back to 0 at row 3
    with pytest.raises(DataError, match=r"trajectory 0: times go backwards at rows 2 and 3 \(2\.0 then 0\.0\); .* "
                                        r"give each run its own label with trajectory=; .* pass sort=True"):
        from_pandas(stacked)


def test_a_text_column_left_out_of_states_is_named_with_the_fix(frame):
    with pytest.raises(DataError, match=r"column 'run' holds text \(e\.g\. 'a' at row 0\)\. With states= not "
                                        r"given, every column .* is a state; pass states=\[\.\.\.\] "
                                        r"\(or trajectory=, inputs=\)"):
        from_pandas(frame)


def test_missing_trajectory_label(frame):
    frame.loc[2, "run"] = None
    with pytest.raises(DataError, match=r"trajectory column 'run' is missing at row 2"):
        from_pandas(frame, trajectory="run")


# ------------------------------------------------------------------ observations
def test_trajectory_with_fewer_than_two_observed_times(frame):
    frame.loc[[4, 5], ["prey", "predator"]] = np.nan
    with pytest.raises(DataError, match=r"trajectory 'b': needs at least two times with an observed state, got 1"):
        from_pandas(frame, states=["prey", "predator"], trajectory="run")


def test_state_never_observed(frame):
    frame["predator"] = np.nan
    with pytest.raises(DataError, match=r"state 'predator' is never observed"):
        from_pandas(frame, states=["prey", "predator"], trajectory="run")


def test_infinite_state_names_trajectory_row_and_time(frame):
    frame.loc[4, "prey"] = -np.inf
    with pytest.raises(DataError, match=r"trajectory 'b': state 'prey' is -inf at row 4 \(time 1\.0\)"):
        from_pandas(frame, trajectory="run")


def test_nan_input_without_interpolation_names_trajectory_column_row_and_time(frame):
    frame.loc[4, "temp"] = np.nan
    with pytest.raises(DataError,
                       match=r"trajectory 'b': input 'temp' is NaN at row 4 \(time 1\.0\).*interpolate_inputs=True"):
        from_pandas(frame, inputs=["temp"], trajectory="run")


def test_input_never_known_cannot_be_interpolated(frame):
    frame.loc[[3, 4, 5], "temp"] = np.nan
    with pytest.raises(DataError, match=r"trajectory 'b': input 'temp' is never known"):
        from_pandas(frame, inputs=["temp"], trajectory="run", interpolate_inputs=True)


# ------------------------------------------------------------------ xarray
def test_xarray_time_dim_missing(dataset):
    with pytest.raises(DataError, match=r"no dimension 'tmie'; did you mean 'time'\?"):
        from_xarray(dataset, time="tmie")


def test_xarray_time_dim_not_guessable(dataset):
    with pytest.raises(DataError, match=r"cannot tell which dimension is time.*pass time="):
        from_xarray(dataset.rename({"time": "clock"}))


def test_xarray_time_dim_without_coordinate(dataset):
    with pytest.raises(DataError, match=r"time dimension 'time' has no coordinate.*assign_coords"):
        from_xarray(dataset.drop_vars("time"))


def test_xarray_misspelt_variable(dataset):
    with pytest.raises(DataError, match=r"no variable 'pray'; did you mean 'prey'\?"):
        from_xarray(dataset, states=["pray"])


def test_xarray_misspelt_trajectory_dim(dataset):
    with pytest.raises(DataError, match=r"no dimension 'runs'; did you mean 'run'\?"):
        from_xarray(dataset, trajectory="runs")


def test_xarray_variable_with_an_extra_dimension(dataset):
    deep = dataset.assign(temp=(("run", "time", "depth"), np.zeros((2, 3, 2))))
    with pytest.raises(DataError, match=r"'temp' has dimensions .*depth.*ds\.isel\(depth=0\)"):
        from_xarray(deep, trajectory="run")


def test_xarray_nan_times(dataset):
    dataset = dataset.assign_coords(time=[0.0, np.nan, 2.0])
    with pytest.raises(DataError, match=r"trajectory 'a': time coordinate 'time' is NaN/NaT at 'time' position 1"):
        from_xarray(dataset)


def test_xarray_nan_input(dataset):
    dataset = dataset.assign(u=(("run", "time"), [[0.0, 1.0, 2.0], [0.0, np.nan, 2.0]]))
    with pytest.raises(DataError, match=r"trajectory 'b': input 'u' is NaN at 'time' position 1 \(time 1\.0\)"):
        from_xarray(dataset, inputs="u")


def test_dataarray_without_the_named_state_dimension():
    array = xr.DataArray(np.ones((3, 2)), dims=("time", "species"), coords={"time": [0.0, 1.0, 2.0]})
    with pytest.raises(DataError, match=r"no dimension 'specie'; did you mean 'species'\?"):
        from_xarray(array, state_dim="specie")


def test_dataarray_with_two_candidate_state_dimensions():
    array = xr.DataArray(np.ones((2, 3, 2)), dims=("run", "time", "species"), coords={"time": [0.0, 1.0, 2.0]})
    with pytest.raises(DataError, match=r"pass state_dim="):
        from_xarray(array)


def test_from_xarray_of_something_else():
    with pytest.raises(DataError, match=r"expects an xarray Dataset or DataArray, got DataFrame"):
        from_xarray(pd.DataFrame({"t": [0.0]}))


# ------------------------------------------------------------------ arrays and dispatch
def test_arrays_without_t_ask_for_t():
    with pytest.raises(DataError, match=r"pass t="):
        as_trajectories(np.zeros((4, 2)))


def test_arrays_with_t_of_the_wrong_length():
    with pytest.raises(DataError, match=r"t has shape \(3,\) but X has 4 rows"):
        as_trajectories(np.zeros((4, 2)), t=np.arange(3.0))


def test_ragged_nested_list_is_not_a_deep_numpy_error():
    with pytest.raises(DataError, match=r"X\[0\] could not be read as an array of numbers"):
        as_trajectories([[[1.0, 2.0], [3.0]]], t=[np.arange(2.0)])


def test_arrays_with_text():
    with pytest.raises(DataError, match=r"X could not be read as an array of numbers"):
        from_arrays(np.array([["a", "b"], ["c", "d"]]), t=np.arange(2.0))


def test_unsorted_array_times_are_reported():
    with pytest.raises(DataError, match=r"trajectory 0: times go backwards at rows 1 and 2 \(2\.0 then 1\.0\).* "
                                        r"pass sort=True"):
        as_trajectories(np.zeros((3, 1)), t=np.array([0.0, 2.0, 1.0]))


def test_unsupported_type_names_it_and_the_accepted_ones():
    with pytest.raises(DataError,
                       match=r"cannot use data of type str; expected a sysid\.Trajectories, a pandas DataFrame"):
        as_trajectories("data.csv")


def test_arguments_that_do_not_apply_to_a_dataframe(frame):
    with pytest.raises(DataError, match=r"t= do\(es\) not apply to a DataFrame"):
        as_trajectories(frame, t=np.arange(6.0), trajectory="run")


def test_arguments_that_do_not_apply_to_arrays():
    with pytest.raises(DataError, match=r"time= do\(es\) not apply to a ndarray.*pass t="):
        as_trajectories(np.zeros((3, 1)), time="t")


def test_to_caller_format_of_an_unknown_type(frame):
    data = from_pandas(frame, trajectory="run")
    with pytest.raises(DataError, match=r"cannot return predictions as dict"):
        to_caller_format(data, {"a": 1})


def test_writing_a_state_named_like_the_time_dim():
    data = as_trajectories(np.ones((2, 1)), t=np.arange(2.0), state_names=["time"])
    with pytest.raises(DataError, match=r"'time' would be both a dimension and a variable"):
        to_xarray(data)
    with pytest.raises(DataError, match=r"cannot write 't' as a column"):
        to_pandas(as_trajectories(np.ones((2, 1)), t=np.arange(2.0), state_names=["t"]))
