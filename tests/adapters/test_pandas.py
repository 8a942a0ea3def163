"""from_pandas / to_pandas: every layout feature, one test each."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysid import Trajectories
from sysid.adapters import from_pandas, from_xarray, to_pandas, to_xarray
from sysid.errors import DataError


@pytest.fixture
def predator_prey() -> pd.DataFrame:
    """Two experiments of different lengths, interleaved (each in time order), a NaN hole, an input."""
    return pd.DataFrame(
        {
            "run": ["a", "b", "b", "a", "b", "a", "b"],
            "t": [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
            "prey": [10.0, 9.0, 11.0, 12.0, np.nan, 14.0, 15.0],
            "predator": [1.0, 1.5, 2.0, 2.0, 3.0, 3.0, 4.0],
            "temp": [19.0, 18.0, 20.0, 20.0, 21.0, 21.0, 22.0],
        }
    )


def test_adapters_import_no_torch():
    # The top-level sysid package may import estimators (torch); load the adapters
    # subpackage on its own in a fresh interpreter and check nothing pulled torch in.
    package_dir = Path(__file__).resolve().parents[2] / "sysid"
    code = textwrap.dedent(f"""
        import sys, types
        stub = types.ModuleType("sysid")
        stub.__path__ = [{str(package_dir)!r}]
        sys.modules["sysid"] = stub
        import sysid.adapters
        sysid.adapters.from_pandas, sysid.adapters.from_xarray
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_reads_each_experiment_sorted_by_time(predator_prey):
    data = from_pandas(predator_prey, time="t", states=["prey", "predator"], inputs=["temp"], trajectory="run")
    assert isinstance(data, Trajectories)
    assert data.names == ["a", "b"]
    assert data["a"].t.tolist() == [0.0, 1.0, 2.0]
    assert data["b"].t.tolist() == [0.0, 0.5, 1.5, 3.0]
    np.testing.assert_array_equal(data["b"].y[:, 0], [9.0, 11.0, np.nan, 15.0])
    assert data.time_kind == "float"


def test_inputs_are_kept_apart_from_states(predator_prey):
    data = from_pandas(predator_prey, time="t", inputs="temp", trajectory="run")
    assert data.state_names == ("prey", "predator")
    assert data.input_names == ("temp",)
    assert data["a"].u[:, 0].tolist() == [19.0, 20.0, 21.0]
    assert data["a"].y.shape == (3, 2)


def test_default_states_are_every_column_left(predator_prey):
    data = from_pandas(predator_prey, time="t", inputs=["temp"], trajectory="run")
    assert data.state_names == ("prey", "predator")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"note": "free text"}, r"column 'note' holds text \(e\.g\. 'free text' at row 0\)\. With states= not given"),
        ({"flag": True}, r"column 'flag' holds booleans \(True/False\), not measurements\. With states= not given"),
        ({"when": pd.Timestamp("2024-01-01")}, r"column 'when' holds datetime64\[\w+\] values, .* pass time='when'"),
    ],
)
def test_inferred_states_are_decided_by_name_not_by_dtype(predator_prey, extra, match):
    """states=None makes every column left a state: one that is not numbers is an error, never dropped."""
    with pytest.raises(DataError, match=match):
        from_pandas(predator_prey.assign(**extra), time="t", inputs=["temp"], trajectory="run")
    data = from_pandas(predator_prey.assign(**extra), time="t", states=["prey", "predator"], trajectory="run")
    assert data.state_names == ("prey", "predator")


@pytest.mark.parametrize("typo", ["n/a", "0,31", "1.2.3", "?"])
def test_a_typo_in_an_inferred_state_column_names_column_row_and_value(predator_prey, typo):
    frame = predator_prey.astype({"predator": object})
    frame.loc[4, "predator"] = typo
    with pytest.raises(
        DataError,
        match=rf"column 'predator' holds {re.escape(repr(typo))} at row 4, which is not a "
        r"number "
        r"\(1 such cell\(s\) among 7 values\); fix the cell\(s\), or leave them empty",
    ):
        from_pandas(frame, time="t", inputs=["temp"], trajectory="run")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 6), st.sampled_from(["n/a", "0,31", "-", "x1", "1e"]), st.booleans())
def test_any_typo_cell_stops_the_inference_whatever_the_row(row, typo, in_prey):
    frame = pd.DataFrame(
        {
            "run": ["a", "b", "b", "a", "b", "a", "b"],
            "t": [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
            "prey": np.arange(7.0),
            "predator": np.arange(7.0) + 10,
        }
    )
    column = "prey" if in_prey else "predator"
    frame = frame.astype({column: object})
    frame.loc[row, column] = typo
    with pytest.raises(
        DataError, match=rf"column '{column}' holds {re.escape(repr(typo))} at row {row}, which is not a number"
    ):
        from_pandas(frame, time="t", trajectory="run")


def test_rows_out_of_time_order_need_sort_true_then_give_the_same_data(predator_prey):
    shuffled = predator_prey.sample(frac=1.0, random_state=3)
    with pytest.raises(DataError, match=r"trajectory '\w': times go backwards at rows \d and \d .* pass sort=True"):
        from_pandas(shuffled, time="t", trajectory="run")
    one = from_pandas(predator_prey, time="t", trajectory="run")
    two = from_pandas(shuffled, time="t", trajectory="run", sort=True)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.t, b.t)
        np.testing.assert_array_equal(a.y, b.y)


def test_round_trip_restores_columns_labels_and_order(predator_prey):
    data = from_pandas(predator_prey, time="t", inputs=["temp"], trajectory="run")
    back = to_pandas(data)
    expected = predator_prey.sort_values(["run", "t"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected)


def test_without_trajectory_column_the_frame_is_one_experiment_named_0():
    frame = pd.DataFrame({"t": [0.0, 1.0, 2.0], "x": [1.0, 2.0, 3.0]})
    data = from_pandas(frame)
    assert data.names == [0]
    assert list(to_pandas(data).columns) == ["t", "x"]


def test_time_from_a_datetime_index_when_time_is_none():
    index = pd.DatetimeIndex(["2024-05-01 10:00", "2024-05-01 10:00:30", "2024-05-01 10:02"], name="when")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=index)
    data = from_pandas(frame)
    assert data.time_kind == "datetime"
    assert data[0].t.tolist() == [0.0, 30.0, 120.0]
    assert data[0].origin == np.datetime64("2024-05-01T10:00", "ns")
    back = to_pandas(data)
    pd.testing.assert_frame_equal(back, frame)


def test_unnamed_float_index_is_used_as_time_and_restored():
    frame = pd.DataFrame({"x": [1.0, 2.0, 4.0]}, index=pd.Index([0.0, 0.1, 0.4]))
    back = to_pandas(from_pandas(frame))
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize("column", ["t", "time"])
def test_range_index_falls_back_to_a_t_or_time_column(column):
    frame = pd.DataFrame({column: [0.0, 2.0, 5.0], "x": [1.0, 2.0, 3.0]})
    data = from_pandas(frame)
    assert data[0].t.tolist() == [0.0, 2.0, 5.0]
    assert data.source["time"] == column


def test_time_and_trajectory_in_a_multiindex_round_trip():
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0]},
        index=pd.MultiIndex.from_tuples([(1, 0.0), (1, 1.0), (2, 0.0), (2, 3.0)], names=["run", "t"]),
    )
    data = from_pandas(frame, time="t", trajectory="run")
    assert data.names == [1, 2]
    pd.testing.assert_frame_equal(to_pandas(data), frame)


def test_timedelta_times_are_seconds_from_zero():
    frame = pd.DataFrame({"t": pd.to_timedelta([5, 7, 12], unit="s"), "x": [1.0, 2.0, 3.0]})
    data = from_pandas(frame)
    assert data.time_kind == "timedelta"
    assert data[0].t.tolist() == [5.0, 7.0, 12.0]
    assert data[0].origin == np.timedelta64(0, "ns")
    back = to_pandas(data)
    assert back["t"].dtype == frame["t"].dtype
    pd.testing.assert_frame_equal(back, frame)


def test_datetimes_get_one_origin_per_trajectory_and_keep_their_unit():
    frame = pd.DataFrame(
        {
            "run": ["a", "a", "b", "b"],
            "t": np.array(
                ["2020-01-01T00:00:00", "2020-01-01T00:00:02.5", "2021-06-01T12:00:00", "2021-06-01T12:01:00"],
                dtype="datetime64[ms]",
            ),
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    data = from_pandas(frame, trajectory="run")
    assert data["a"].t.tolist() == [0.0, 2.5]
    assert data["b"].t.tolist() == [0.0, 60.0]
    assert data["b"].origin == np.datetime64("2021-06-01T12:00:00", "ns")
    back = to_pandas(data)
    assert back["t"].dtype == np.dtype("datetime64[ms]")
    pd.testing.assert_frame_equal(back, frame)


def test_time_zone_aware_times_are_measured_in_utc_and_given_back_in_their_zone():
    # Clocks in Paris jump from 02:00 to 03:00 on 2021-03-28: 01:30 -> 03:30 is one hour.
    stamps = pd.DatetimeIndex(["2021-03-28 01:30", "2021-03-28 03:30"]).tz_localize("Europe/Paris")
    frame = pd.DataFrame({"t": stamps, "x": [1.0, 2.0]})
    data = from_pandas(frame)
    assert data[0].t.tolist() == [0.0, 3600.0]
    assert data.source["tz"] is not None
    back = to_pandas(data)
    assert str(back["t"].dt.tz) == "Europe/Paris"
    pd.testing.assert_frame_equal(back, frame)


def test_integer_times_and_labels_keep_their_dtype():
    frame = pd.DataFrame({"run": [4, 4, 2, 2], "t": [0, 3, 0, 5], "x": [1.0, 2.0, 3.0, 4.0]})
    back = to_pandas(from_pandas(frame, trajectory="run"))
    assert back["run"].dtype == np.int64 and back["t"].dtype == np.int64
    assert back["run"].tolist() == [2, 2, 4, 4]


def test_categorical_labels_keep_their_categories():
    frame = pd.DataFrame(
        {
            "run": pd.Categorical(["low", "low", "high", "high"], categories=["low", "high"]),
            "t": [0.0, 1.0, 0.0, 1.0],
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    data = from_pandas(frame, trajectory="run")
    assert data.names == ["low", "high"]
    pd.testing.assert_frame_equal(to_pandas(data), frame)


def test_ragged_experiments_keep_their_own_irregular_times():
    frame = pd.DataFrame(
        {
            "run": [1] * 5 + [2] * 2,
            "t": [0.0, 0.1, 0.15, 0.9, 2.0, 0.3, 7.0],
            "x": np.arange(7.0),
        }
    )
    data = from_pandas(frame, trajectory="run")
    assert [tr.n_times for tr in data] == [5, 2]
    assert data[2].t.tolist() == [0.3, 7.0]


def test_rows_with_no_state_are_kept_only_where_an_input_is_known():
    frame = pd.DataFrame(
        {
            "t": [0.0, 1.0, 2.0, 3.0],
            "x": [1.0, np.nan, np.nan, 4.0],
            "u": [0.0, 5.0, np.nan, 1.0],
        }
    )
    data = from_pandas(frame, inputs="u", interpolate_inputs=True)
    assert data[0].t.tolist() == [0.0, 1.0, 3.0]
    no_inputs = from_pandas(frame[["t", "x"]])
    assert no_inputs[0].t.tolist() == [0.0, 3.0]


def test_interpolate_inputs_is_linear_in_time_and_nearest_at_the_ends():
    frame = pd.DataFrame(
        {
            "run": ["a"] * 5 + ["b"] * 3,
            "t": [0.0, 1.0, 4.0, 5.0, 6.0, 0.0, 1.0, 2.0],
            "x": np.arange(8.0),
            "u": [np.nan, 10.0, np.nan, 20.0, np.nan, 100.0, np.nan, 100.0],
        }
    )
    data = from_pandas(frame, inputs="u", trajectory="run", interpolate_inputs=True)
    # a: nearest (10) before the first value, linear in *time* between t=1 and t=5, nearest after.
    assert data["a"].u[:, 0].tolist() == [10.0, 10.0, 17.5, 20.0, 20.0]
    # b is filled from its own values only.
    assert data["b"].u[:, 0].tolist() == [100.0, 100.0, 100.0]


def test_frame_attrs_become_dataset_attrs_and_come_back():
    frame = pd.DataFrame({"t": [0.0, 1.0], "x": [1.0, 2.0]})
    frame.attrs = {"title": "tank", "variable_attrs": {"x": {"units": "m"}}}
    data = from_pandas(frame)
    assert data.attrs == {"title": "tank"}
    assert data.variable_attrs == {"x": {"units": "m"}}
    assert to_pandas(data).attrs == frame.attrs


def test_frame_attrs_do_not_leak_into_variable_attrs():
    frame = pd.DataFrame({"t": [0.0, 1.0], "level": [1.0, 2.0]})
    frame.attrs = {"title": "tank"}
    assert frame["level"].attrs == {"title": "tank"}  # pandas hands frame attrs to columns
    data = from_pandas(frame)
    assert data.variable_attrs == {}
    assert data.attrs == {"title": "tank"}


def test_split_on_pandas_data_keeps_labels_and_layout(predator_prey):
    frame = predator_prey.assign(run=predator_prey["run"].map({"a": 10, "b": 20}))
    data = from_pandas(frame, time="t", inputs="temp", trajectory="run")
    train, test = data.split(test_trajectories=[20])
    back = to_pandas(test)
    assert back["run"].dtype == np.int64
    assert back["run"].unique().tolist() == [20]
    assert list(back.columns) == list(frame.columns)
    assert to_pandas(train)["run"].unique().tolist() == [10]


def test_to_pandas_of_array_data_uses_default_names():
    data = Trajectories.from_arrays([np.arange(2.0), np.arange(3.0)], [np.ones((2, 1)), np.ones((3, 1))])
    back = to_pandas(data)
    assert list(back.columns) == ["trajectory", "t", "x0"]
    assert back["trajectory"].tolist() == [0, 0, 1, 1, 1]
    single = to_pandas(data[[1]])
    assert list(single.columns) == ["t", "x0"]


def test_to_pandas_of_a_single_array_trajectory_has_no_trajectory_column():
    data = Trajectories.from_arrays(np.arange(3.0), np.ones((3, 2)), state_names=["a", "b"])
    assert list(to_pandas(data).columns) == ["t", "a", "b"]


def test_to_pandas_of_xarray_data_uses_the_dimension_names(predator_prey):
    dataset = to_xarray(from_pandas(predator_prey, time="t", trajectory="run"))
    dataset = dataset.rename({"run": "experiment", "t": "seconds"})
    back = to_pandas(from_xarray(dataset, time="seconds"))
    assert list(back.columns) == ["experiment", "seconds", "prey", "predator", "temp"]
    assert back["experiment"].tolist() == ["a"] * 3 + ["b"] * 4


def test_method_on_the_container_calls_the_adapter(predator_prey):
    data = from_pandas(predator_prey, time="t", trajectory="run")
    pd.testing.assert_frame_equal(data.to_pandas(), to_pandas(data))


def test_frame_attrs_holding_numpy_arrays_round_trip():
    # netCDF list attributes arrive as numpy arrays in attrs; comparing them must not be ambiguous
    frame = pd.DataFrame({"t": [0.0, 1.0, 2.0], "x": [1.0, 2.0, 3.0]})
    frame.attrs["levels"] = np.array([1, 2, 3])
    data = from_pandas(frame, time="t", states=["x"])
    np.testing.assert_array_equal(data.attrs["levels"], [1, 2, 3])
    again = from_pandas(to_pandas(data), time="t", states=["x"])
    np.testing.assert_array_equal(again.attrs["levels"], [1, 2, 3])
