"""Dask-backed Datasets are read one chunk of trajectories at a time, each chunk once."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sysid.adapters import from_xarray

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


class CountingArray:
    """A read-only array that records every slice dask reads from it."""

    def __init__(self, values: np.ndarray, log: list) -> None:
        self.values, self.log = values, log
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        self.log[-1].append(key)  # grouped by compute call (see the dask_computes fixture)
        return self.values[key]


def lazy_dataset(n_runs=12, n_times=9, chunk=4):
    rng = np.random.default_rng(0)
    log: list[list] = [[]]
    data = {}
    for name in ("prey", "predator", "heat"):
        values = rng.uniform(1.0, 2.0, (n_runs, n_times))
        values[0, -1] = np.nan  # ragged: run 0 one sample shorter
        data[name] = (("run", "time"), da.from_array(CountingArray(values, log), chunks=(chunk, n_times)), {})
    ds = xr.Dataset(data, coords={"run": [f"r{i}" for i in range(n_runs)], "time": np.arange(n_times) * 0.5})
    return ds, log


def test_dask_dataset_is_read_chunk_by_chunk_and_each_chunk_once(dask_computes):
    ds, log = lazy_dataset()
    log.clear()
    with dask_computes(log):
        data = from_xarray(ds, trajectory="run", states=["prey", "predator"], inputs=["heat"])
    computes = [list(reads) for reads in log]
    assert data.names == [f"r{i}" for i in range(12)]
    assert data[0].n_times == 8 and data[5].n_times == 9
    np.testing.assert_array_equal(data["r7"].y[:, 0], ds["prey"].sel(run="r7").values)
    # three chunks of four runs: three computes, each reading one chunk of every variable
    assert len(computes) == 3
    for k, reads in enumerate(computes):
        rows = {(key[0].start, key[0].stop) for key in reads}
        assert rows == {(4 * k, 4 * k + 4)}, reads
        assert len(reads) == 3  # prey, predator, heat: once each


def test_an_unchunked_trajectory_dimension_is_read_in_one_compute(dask_computes):
    ds, log = lazy_dataset(chunk=12)
    log.clear()
    with dask_computes(log):
        data = from_xarray(ds, trajectory="run", states=["prey", "predator"], inputs=["heat"])
    assert len(data) == 12 and len(log) == 1 and len(log[0]) == 3


def test_chunked_streamed_and_in_memory_reads_agree():
    ds, _ = lazy_dataset(chunk=5)
    options = {"trajectory": "run", "states": ["prey", "predator"], "inputs": ["heat"]}
    chunked = from_xarray(ds, **options)
    streamed = from_xarray(ds, lazy=True, **options)
    eager = from_xarray(ds.compute(), **options)
    positions = np.arange(len(eager))[::-1]  # load returns them in the order asked for
    loaded = streamed.load(positions)
    assert chunked.names == eager.names and streamed.names == eager.names
    assert loaded.names == [eager.names[i] for i in positions]
    for a, b, c in zip(chunked, eager, [loaded[len(eager) - 1 - i] for i in range(len(eager))]):
        for x, y in ((a, b), (c, b)):
            np.testing.assert_array_equal(x.t, y.t)
            np.testing.assert_array_equal(x.y, y.y)
            np.testing.assert_array_equal(x.u, y.u)
