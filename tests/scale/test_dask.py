"""Sweeps on a Dask cluster (two local worker processes) give exactly the serial results.

compare, GridSearchCV and Ensemble all go through joblib, so ``joblib.parallel_config(backend="dask")``
sends their fits to the cluster unchanged; ``compare(..., client=)`` does the same explicitly.
"""

from __future__ import annotations

import logging
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

import sysid
from sysid import SINDy
from sysid.datasets import simulate, truth
from sysid.model_selection import TrajectoryKFold

distributed = pytest.importorskip("distributed")
pytest.importorskip("dask")

NUMBERS = ["n_function_evals", "rmse", "nrmse", "r2", "coefficient_error"]


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def lv():
    return simulate("lotka_volterra", n_trajectories=4, n_samples=60, noise=0.01, irregular=False, random_state=0)


def estimators():
    return {"sindy": SINDy(), "sindy 0.3": SINDy(threshold=0.3), "sindy 5": SINDy(threshold=5.0)}


def assert_same_table(parallel: pd.DataFrame, serial: pd.DataFrame) -> None:
    assert parallel[["estimator", "split", "error"]].equals(serial[["estimator", "split", "error"]])
    np.testing.assert_allclose(
        parallel[NUMBERS].to_numpy(float), serial[NUMBERS].to_numpy(float), rtol=0, atol=1e-12, equal_nan=True
    )


@pytest.mark.slow  # about 6 s: run by .ci/run's slow step, outside the default run
def test_compare_on_the_cluster_equals_the_serial_run(client, lv):
    train, test = lv.split(test_trajectories=["run3"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysindy: a threshold of 5 removes every term
        serial = sysid.compare(estimators(), train, test, truth=truth("lotka_volterra"), time_fraction=0.7)
        with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
            on_cluster = sysid.compare(estimators(), train, test, truth=truth("lotka_volterra"), time_fraction=0.7)
        explicit = sysid.compare(
            estimators(), train, test, truth=truth("lotka_volterra"), time_fraction=0.7, client=client
        )
    assert len(stream.data) >= 6  # three full fits and three extrapolation fits ran on the workers
    assert_same_table(on_cluster, serial)
    assert_same_table(explicit, serial)


@pytest.mark.slow
def test_neural_odes_fit_on_the_cluster_as_in_series(client, lv):
    """Torch models travel to the workers and back (slow: the workers import torch)."""
    train, test = lv.split(test_trajectories=["run3"])
    tiny = {
        f"neural {seed}": sysid.NeuralODE(
            hidden=(8,),
            max_epochs=3,
            lbfgs_steps=0,
            collocation_steps=10,
            gradient="backprop",
            verbose=False,
            random_state=seed,
        )
        for seed in (0, 1)
    }
    serial = sysid.compare(tiny, train, test)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        on_cluster = sysid.compare(tiny, train, test)
    assert len(stream.data) >= 2  # both fits ran on the workers
    assert_same_table(on_cluster, serial)
    for name in tiny:
        for a, b in zip(on_cluster.attrs["models"][name].predict(test), serial.attrs["models"][name].predict(test)):
            np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-12)


def test_grid_search_on_the_cluster_equals_the_serial_run(client, lv):
    grid = {"threshold": [0.05, 0.2, 5.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysindy: a threshold of 5 removes every term
        serial = GridSearchCV(SINDy(), grid, cv=TrajectoryKFold(2)).fit(lv)
        with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
            on_cluster = GridSearchCV(SINDy(), grid, cv=TrajectoryKFold(2)).fit(lv)
    assert len(stream.data) >= 6  # 3 settings x 2 folds
    assert on_cluster.best_params_ == serial.best_params_ == {"threshold": 0.05}
    np.testing.assert_allclose(
        on_cluster.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        on_cluster.cv_results_["split1_test_score"], serial.cv_results_["split1_test_score"], rtol=0, atol=1e-12
    )


def test_ensemble_members_fit_on_the_cluster_as_in_series(client, lv):
    serial = sysid.Ensemble(SINDy(), n_members=4, random_state=2).fit(lv)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        on_cluster = sysid.Ensemble(SINDy(), n_members=4, random_state=2).fit(lv)
    assert len(stream.data) >= 4  # every member was fitted on the workers
    with joblib.parallel_config(backend="dask"):
        low, _ = on_cluster.predict_quantiles(lv)
    assert on_cluster.samples_ == serial.samples_
    for a, b in zip(on_cluster.estimators_, serial.estimators_):
        pd.testing.assert_frame_equal(a.coefficients_, b.coefficients_)
    for a, b in zip(low, serial.predict_quantiles(lv)[0]):
        np.testing.assert_array_equal(a.y, b.y)
