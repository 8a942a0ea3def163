"""train_test_split, TrajectoryKFold, and scikit-learn's search tools on Trajectories."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils import _safe_indexing

from sysid import SINDy, Trajectories
from sysid.datasets import simulate
from sysid.errors import ConfigError, DataError
from sysid.model_selection import TrajectoryKFold, train_test_split


@pytest.fixture(scope="module")
def five():
    return simulate("lotka_volterra", n_trajectories=5, n_samples=20, noise=0.0, random_state=0)


# ------------------------------------------------------------------ train_test_split
def test_split_by_names_and_in_time(five):
    train, test = train_test_split(five, test_trajectories=["run1", "run4"])
    assert train.names == ["run0", "run2", "run3"] and test.names == ["run1", "run4"]
    past, future = train_test_split(five, time_fraction=0.6)
    for p, f, tr in zip(past, future, five):
        assert p.n_times + f.n_times == tr.n_times and p.t.max() < f.t.min()


def test_random_split_is_seeded_and_sized(five):
    a_train, a_test = train_test_split(five, test_size=0.4, random_state=1)
    _, b_test = train_test_split(five, test_size=0.4, random_state=1)
    assert a_test.names == b_test.names and len(a_test) == 2 and len(a_train) == 3
    assert sorted(a_train.names + a_test.names) == five.names
    assert len(train_test_split(five, test_size=1, random_state=0)[1]) == 1
    assert len(train_test_split(five, test_size=0.01)[1]) == 1  # at least one
    seeds = {tuple(train_test_split(five, test_size=0.4, random_state=s)[1].names) for s in range(10)}
    assert len(seeds) > 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ConfigError, "exactly one of"),
        ({"test_size": 0.5, "time_fraction": 0.5}, ConfigError, r"got \['time_fraction', 'test_size'\]"),
        ({"test_size": 1.5}, ConfigError, r"test_size as a fraction must be in \(0, 1\), got 1.5"),
        ({"test_size": 5}, ConfigError, r"test_size=5 trajectories must be between 1 and 4"),
        ({"test_trajectories": ["nope"]}, DataError, "no trajectory named 'nope'"),
        ({"time_fraction": 1.0}, DataError, r"time_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_split_requests(five, kwargs, error, message):
    with pytest.raises(error, match=message):
        train_test_split(five, **kwargs)


# ------------------------------------------------------------------- the splitter
def test_kfold_partitions_trajectories(five):
    folds = list(TrajectoryKFold(3).split(five))
    assert len(folds) == 3 == TrajectoryKFold(3).get_n_splits()
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(5))
    for train, test in folds:
        assert set(train).isdisjoint(test) and len(train) + len(test) == 5
    shuffled = [t.tolist() for _, t in TrajectoryKFold(3, shuffle=True, random_state=0).split(five)]
    assert shuffled == [t.tolist() for _, t in TrajectoryKFold(3, shuffle=True, random_state=0).split(five)]


def test_kfold_refuses_more_folds_than_trajectories(five):
    with pytest.raises(DataError, match=r"TrajectoryKFold\(n_splits=6\) needs at least 6 trajectories, got 5"):
        list(TrajectoryKFold(6).split(five))
    with pytest.raises(ConfigError, match="n_splits must be an integer >= 2"):
        list(TrajectoryKFold(1).split(five))


def test_trajectories_index_like_array_rows_for_sklearn(five):
    """The container change this relies on: data[int array] and sklearn's _safe_indexing."""
    picked = five[np.array([3, 0])]
    assert isinstance(picked, Trajectories) and picked.names == ["run3", "run0"]
    assert five[np.array([True, False, True, False, False])].names == ["run0", "run2"]
    assert _safe_indexing(five, np.array([1, 2])).names == ["run1", "run2"]
    assert five.shape == (5,)
    with pytest.raises(IndexError, match="trajectory index 7 out of range for 5"):
        five[np.array([7])]


# ------------------------------------------------------------------ sklearn search
def test_grid_search_over_trajectory_folds_picks_a_sensible_threshold():
    data = simulate("lotka_volterra", n_trajectories=3, noise=0.0, irregular=False, n_samples=200)
    search = GridSearchCV(SINDy(), {"threshold": [0.05, 0.2]}, cv=TrajectoryKFold(3)).fit(data)
    assert search.best_params_["threshold"] in (0.05, 0.2)
    assert search.best_score_ > 0.99  # both recover LV: simulated held-out trajectories match
    assert search.best_estimator_.equations(precision=2)[0] == "d prey/dt = 1.50 prey - 1.00 prey predator"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysindy: a threshold of 5 eliminates every term
        bad = GridSearchCV(SINDy(), {"threshold": [5.0, 0.1]}, cv=TrajectoryKFold(3)).fit(data)
    assert bad.best_params_ == {"threshold": 0.1}


def test_cross_val_score_works_on_trajectories():
    data = simulate("lotka_volterra", n_trajectories=4, noise=0.0, irregular=False, n_samples=100)
    scores = cross_val_score(SINDy(), data, cv=TrajectoryKFold(2))
    assert scores.shape == (2,) and (scores > 0.9).all()
