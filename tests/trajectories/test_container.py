"""The canonical container: indexing, union grid, split, with_states, from_arrays, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sysid import Trajectories, Trajectory
from sysid.errors import DataError


@pytest.fixture
def three() -> Trajectories:
    """Three experiments named r1..r3 with different grids and one input."""
    ts = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.5, 3.0]), np.array([1.0, 2.0, 4.0, 5.0, 6.0])]
    ys = [np.column_stack([t, 2 * t]) for t in ts]
    us = [np.ones((t.size, 1)) * i for i, t in enumerate(ts)]
    data = Trajectories.from_arrays(ts, ys, us, state_names=["a", "b"], input_names=["heat"],
                                    names=["r1", "r2", "r3"])
    data.attrs["title"] = "three runs"
    data.source["format"] = "pandas"
    return data


# ------------------------------------------------------------------ indexing
def test_index_by_position_and_negative_position(three):
    assert three[0].name == "r1"
    assert three[-1].name == "r3"


def test_index_by_name(three):
    assert three["r2"].t.tolist() == [0.0, 0.5, 3.0]


def test_index_by_list_keeps_the_given_order_and_metadata(three):
    picked = three[["r3", "r1"]]
    assert isinstance(picked, Trajectories)
    assert picked.names == ["r3", "r1"]
    assert picked.attrs == {"title": "three runs"} and picked.source["format"] == "pandas"


def test_index_by_slice(three):
    assert three[1:].names == ["r2", "r3"]
    assert three[::2].names == ["r1", "r3"]


def test_integer_names_take_precedence_over_positions():
    data = Trajectories.from_arrays([np.arange(2.0)] * 2, [np.ones((2, 1)), np.zeros((2, 1))], names=[1, 0])
    assert data[0].y[0, 0] == 0.0  # the trajectory *named* 0, which sits at position 1


def test_bad_keys(three):
    with pytest.raises(IndexError, match="trajectory index 5 out of range for 3"):
        three[5]
    with pytest.raises(KeyError, match="no trajectory named 'r9'"):
        three["r9"]


def test_sequence_protocol_and_counts(three):
    assert len(three) == 3
    assert [tr.n_times for tr in three] == [4, 3, 5]
    assert three.n_states == 2 and three.n_inputs == 1
    assert three.n_observations == 2 * (4 + 3 + 5)
    assert "n_trajectories=3" in repr(three)


# ------------------------------------------------------------------ union grid
def test_union_grid_merges_all_times_and_locates_each_trajectory(three):
    grid = three.union_grid()
    assert grid.times.tolist() == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for traj, positions, row in zip(three, grid.positions, grid.mask):
        np.testing.assert_array_equal(grid.times[positions], traj.t)
        assert row.sum() == traj.n_times
    assert grid.mask[1].tolist() == [True, True, False, False, True, False, False, False]


# ------------------------------------------------------------------ split
def test_split_by_names(three):
    train, test = three.split(test_trajectories=["r2"])
    assert train.names == ["r1", "r3"] and test.names == ["r2"]
    assert test.attrs == three.attrs and test.source == three.source


def test_split_by_one_name_or_position(three):
    assert three.split(test_trajectories="r3")[1].names == ["r3"]
    assert three.split(test_trajectories=0)[1].names == ["r1"]


def test_split_by_time_fraction_cuts_each_trajectory_at_its_own_span(three):
    past, future = three[["r1", "r3"]].split(time_fraction=0.5)
    assert past["r1"].t.tolist() == [0.0, 1.0]
    assert future["r1"].t.tolist() == [2.0, 3.0]
    assert past["r3"].t.tolist() == [1.0, 2.0] and future["r3"].t.tolist() == [4.0, 5.0, 6.0]
    np.testing.assert_array_equal(future["r3"].u, np.full((3, 1), 2.0))


def test_split_with_empty_hold_out(three):
    with pytest.raises(DataError, match="test_trajectories is empty"):
        three.split(test_trajectories=[])


def test_split_holding_out_everything(three):
    with pytest.raises(DataError, match="leaves no trajectory to train on"):
        three.split(test_trajectories=["r1", "r2", "r3"])


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_split_with_a_bad_fraction(three, fraction):
    with pytest.raises(DataError, match=r"time_fraction must be in \(0, 1\)"):
        three.split(time_fraction=fraction)


def test_split_fraction_leaving_too_few_times(three):
    with pytest.raises(DataError, match=r"time_fraction=0\.1 leaves a part with fewer than two observed times"):
        three.split(time_fraction=0.1)


def test_split_needs_exactly_one_way(three):
    with pytest.raises(DataError, match="exactly one of"):
        three.split()
    with pytest.raises(DataError, match="exactly one of"):
        three.split(test_trajectories=["r1"], time_fraction=0.5)


# ------------------------------------------------------------------ with_states
def test_with_states_replaces_values_and_keeps_the_rest(three):
    new = three.with_states([np.zeros((tr.n_times, 2)) for tr in three])
    assert new.names == three.names and new.source == three.source
    assert np.all(new["r2"].y == 0.0)
    np.testing.assert_array_equal(new["r2"].t, three["r2"].t)
    np.testing.assert_array_equal(new["r3"].u, three["r3"].u)


def test_with_states_can_change_the_number_of_states(three):
    new = three.with_states([np.ones((tr.n_times, 1)) for tr in three], state_names=["total"])
    assert new.state_names == ("total",)
    assert new["r1"].y.shape == (4, 1)


def test_with_states_needs_one_array_per_trajectory(three):
    with pytest.raises(DataError, match="got 2 state arrays for 3 trajectories"):
        three.with_states([np.ones((4, 2)), np.ones((3, 2))])


# ------------------------------------------------------------------ from_arrays
def test_from_arrays_defaults():
    data = Trajectories.from_arrays(np.arange(3.0), np.zeros(3), np.ones((3, 2)))
    assert data.names == [0]
    assert data.state_names == ("x0",) and data.input_names == ("u0", "u1")
    assert data[0].y.shape == (3, 1)
    assert data.time_kind == "float" and data[0].origin == 0.0


def test_from_arrays_count_mismatches():
    with pytest.raises(DataError, match="got 2 time arrays but 1 state arrays"):
        Trajectories.from_arrays([np.arange(2.0), np.arange(2.0)], [np.ones((2, 1))])
    with pytest.raises(DataError, match="got 1 names for 2 trajectories"):
        Trajectories.from_arrays([np.arange(2.0)] * 2, [np.ones((2, 1))] * 2, names=["only"])


def test_arrays_are_read_only_copies():
    y = np.ones((3, 1))
    data = Trajectories.from_arrays(np.arange(3.0), y)
    y[0, 0] = 5.0
    assert data[0].y[0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        data[0].y[0, 0] = 2.0


def test_absolute_times_for_each_kind():
    offsets = np.array([0.0, 1.5])
    stamp = np.datetime64("2020-01-01T00:00:00", "ns")
    datetime_traj = Trajectory(offsets, np.ones((2, 1)), None, 0, stamp)
    np.testing.assert_array_equal(datetime_traj.absolute_times("datetime"),
                                  [stamp, stamp + np.timedelta64(1_500_000_000, "ns")])
    delta_traj = Trajectory(offsets, np.ones((2, 1)), None, 0, np.timedelta64(0, "ns"))
    assert delta_traj.absolute_times("timedelta")[1] == np.timedelta64(1500, "ms")
    float_traj = Trajectory(offsets, np.ones((2, 1)), None, 0, 10.0)
    assert float_traj.absolute_times("float").tolist() == [10.0, 11.5]


def test_observed_range_ignores_missing_values():
    data = Trajectories.from_arrays(np.arange(3.0), np.array([[1.0, np.nan], [np.nan, 5.0], [-2.0, 4.0]]))
    low, high = data.observed_range()
    assert low.tolist() == [-2.0, 4.0] and high.tolist() == [1.0, 5.0]


# ------------------------------------------------------------------ validation
def _one(t, y, u=None, **keywords) -> Trajectories:
    return Trajectories([Trajectory(np.asarray(t, float), np.asarray(y, float), u, "run1")],
                        **{"state_names": ["x"], **keywords})


@pytest.mark.parametrize(
    ("t", "y", "message"),
    [
        ([0.0, 1.0, 1.0], [[1.0], [2.0], [3.0]], r"trajectory 'run1': duplicate time 1\.0 at rows 1 and 2"),
        ([0.0, 2.0, 1.0], [[1.0], [2.0], [3.0]], r"times are not increasing at row 2"),
        ([0.0, np.nan, 2.0], [[1.0], [2.0], [3.0]], r"time has 1 NaN/inf/NaT value\(s\), first at row 1"),
        ([0.0, 1.0, 2.0], [[1.0], [np.inf], [3.0]], r"state 'x' is infinite at row 1"),
        ([0.0, 1.0, 2.0], [[1.0], [np.nan], [np.nan]], r"needs at least two times with an observed state, got 1"),
        ([0.0, 1.0], [[1.0, 2.0], [3.0, 4.0]], r"states must have shape .* = \(2, 1\)"),
        ([[0.0, 1.0]], [[1.0], [2.0]], r"time must be 1-D"),
    ],
)
def test_the_container_rejects_bad_arrays(t, y, message):
    with pytest.raises(DataError, match=message):
        _one(t, y)


def test_the_container_rejects_unknown_inputs():
    with pytest.raises(DataError, match=r"input 'u' is nan at row 1.*interpolate_inputs=True"):
        _one([0.0, 1.0], [[1.0], [2.0]], np.array([[0.0], [np.nan]]), input_names=["u"])


def test_declared_inputs_must_be_given():
    with pytest.raises(DataError, match=r"inputs \['u'\] were declared but this trajectory has none"):
        _one([0.0, 1.0], [[1.0], [2.0]], input_names=["u"])


def test_inputs_need_names():
    with pytest.raises(DataError, match="carries inputs but no input_names were given"):
        _one([0.0, 1.0], [[1.0], [2.0]], np.ones((2, 1)))


def test_never_observed_state():
    trajs = [Trajectory(np.arange(2.0), np.array([[1.0, np.nan], [2.0, np.nan]]), None, 0)]
    with pytest.raises(DataError, match="state 'b' is never observed in any trajectory"):
        Trajectories(trajs, state_names=["a", "b"])


def test_names_must_be_unique_and_disjoint():
    with pytest.raises(DataError, match="'x' is named both as a state and as an input"):
        _one([0.0, 1.0], [[1.0], [2.0]], np.ones((2, 1)), input_names=["x"])
    with pytest.raises(DataError, match="state name 'x' is given twice"):
        Trajectories.from_arrays(np.arange(2.0), np.ones((2, 2)), state_names=["x", "x"])
    with pytest.raises(DataError, match="trajectory name 'a' appears twice"):
        Trajectories.from_arrays([np.arange(2.0)] * 2, [np.ones((2, 1))] * 2, names=["a", "a"])


def test_empty_collection_and_bad_time_kind():
    with pytest.raises(DataError, match="no trajectories: the data is empty"):
        Trajectories([], state_names=["x"])
    with pytest.raises(DataError, match="time_kind must be 'float', 'datetime' or 'timedelta'"):
        Trajectories([Trajectory(np.arange(2.0), np.ones((2, 1)), None, 0)], ["x"], time_kind="hours")


def test_non_numeric_states_are_named():
    with pytest.raises(DataError, match="states must be numeric"):
        Trajectories([Trajectory(np.arange(2.0), np.array([["a"], ["b"]]), None, 0)], ["x"])


# -- #16: the dependency runs one way, adapters -> trajectories ----------------------------------------------
def test_the_container_never_imports_the_adapters():
    """No import of sysid.adapters anywhere in sysid/trajectories, not even inside a function."""
    import ast

    folder = Path(__file__).resolve().parents[2] / "sysid" / "trajectories"
    found = []
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.startswith("sysid.adapters")]
    assert not found, found


def test_to_pandas_and_to_xarray_use_the_writers_the_adapters_registered(monkeypatch):
    from sysid.trajectories import _container

    data = Trajectories.from_arrays(np.arange(3.0), np.ones((3, 1)))
    assert list(data.to_pandas().columns) == ["t", "x0"]
    monkeypatch.setattr(_container, "_WRITERS", {})
    with pytest.raises(DataError, match=r"no pandas writer is registered: import sysid\.adapters"):
        data.to_pandas()


# -- #15: what print(data) shows, and labels that cannot be told apart --------------------------------------------
def test_print_shows_experiments_rows_states_and_missing_entries():
    data = Trajectories.from_arrays([np.arange(4.0), np.arange(3.0), np.arange(5.0)],
                                    [np.array([[np.nan], [1.0], [2.0], [np.nan]]), np.ones((3, 1)), np.ones((5, 1))],
                                    state_names=["x"], names=["a", "b", "c"])
    text = str(data)
    assert text.splitlines()[0] == "Trajectories: 3 experiments ['a', 'b', 'c'], float times"
    assert "rows:    3 to 5 per experiment (12 in all), time spans 2 to 4" in text
    assert "missing: x 2 of 12 (NaN: not observed)" in text
    assert repr(data).startswith("Trajectories(n_trajectories=3")  # repr unchanged


@pytest.mark.parametrize("label", [float("nan"), np.float64("nan"), np.datetime64("NaT")])
def test_a_missing_label_is_refused(label):
    with pytest.raises(DataError, match=r"is a missing value \(NaN/NaT\); give every trajectory its own label"):
        Trajectories.from_arrays([np.arange(3.0)] * 2, [np.ones((3, 1))] * 2, names=["a", label])
