"""Streamed fits: Dask-backed xarray read lazily, minibatch by minibatch, never all at once."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import sysid
from sysid.datasets import simulate
from sysid.metrics import r2

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

N_RUNS, CHUNK, N_SAMPLES, T_SPAN = 40, 10, 16, (0.0, 5.0)
FAST = {
    "hidden": (32,),
    "max_epochs": 20,
    "lbfgs_steps": 0,
    "collocation_steps": 300,
    "validation_fraction": 0.2,
    "gradient": "backprop",
    "patience": None,
    "verbose": False,
}


def counted(dataset: xr.Dataset, chunk: int, log: list) -> xr.Dataset:
    """``dataset`` with every variable a Dask array whose blocks record how many runs they materialise."""

    def variable(name: str, values: np.ndarray) -> da.Array:
        def block(block_info=None):
            (first, last), _ = block_info[None]["array-location"]
            log[-1].append((name, last - first))
            return values[first:last]

        sizes = [chunk] * (values.shape[0] // chunk) + ([values.shape[0] % chunk] if values.shape[0] % chunk else [])
        return da.map_blocks(block, chunks=(tuple(sizes), (values.shape[1],)), dtype=float)

    return xr.Dataset(
        {name: (v.dims, variable(name, v.values), v.attrs) for name, v in dataset.data_vars.items()},
        coords=dataset.coords,
        attrs=dataset.attrs,
    )


def runs_per_compute(log: list) -> list[int]:
    """Runs materialised by each compute (the most over its variables)."""
    out = []
    for reads in log:
        per_variable: dict[str, int] = {}
        for name, rows in reads:
            per_variable[name] = per_variable.get(name, 0) + rows
        out.append(max(per_variable.values(), default=0))
    return out


def lotka_volterra(n_runs: int = N_RUNS, seed: int = 0, noise: float = 0.02) -> sysid.Trajectories:
    return simulate(
        "lotka_volterra",
        n_trajectories=n_runs,
        n_samples=N_SAMPLES,
        t_span=T_SPAN,
        noise=noise,
        irregular=False,
        random_state=seed,
    )


@pytest.fixture(scope="module")
def streamed(dask_computes):
    """One streamed fit of 40 Lotka-Volterra runs in chunks of 10, with its compute log."""
    log: list[list] = [[]]
    ds = counted(lotka_volterra().to_xarray(), CHUNK, log)
    log.clear()
    with dask_computes(log):
        model = sysid.NeuralODE(**FAST).fit(ds, trajectory="trajectory", lazy=True)
    return model, log, ds


def test_a_streamed_fit_never_materialises_more_than_one_chunk_per_read(streamed):
    model, log, _ = streamed
    sizes = runs_per_compute(log)
    assert sizes and max(sizes) <= CHUNK  # every compute: at most one minibatch (one chunk)
    n_chunks = N_RUNS // CHUNK
    assert sizes[:n_chunks] == [CHUNK] * n_chunks  # the validating scan: each chunk once
    # then per epoch one read per minibatch, plus the first minibatch for the warm start and the
    # validation subset (all 40 runs here, fewer than 32 per chunk), read once, chunk by chunk
    assert len(sizes) == n_chunks + 1 + n_chunks + FAST["max_epochs"] * n_chunks
    assert model.history_["stage"].iloc[-1] == "adam" and len(model.history_) == FAST["max_epochs"] + 1


def test_a_streamed_fit_recovers_the_dynamics_and_is_an_ordinary_model(streamed, tmp_path):
    model, _, _ = streamed
    test = lotka_volterra(n_runs=5, seed=1, noise=0.0)
    x0 = np.array([tr.y[0] for tr in test])  # noise-free: the true initial states of new experiments
    predicted = model.predict(test, x0=x0)
    assert r2(test, [tr.y for tr in predicted]) > 0.95
    first = lotka_volterra()  # x0_: the smoothed first observation of every training run
    assert model.x0_.shape == (N_RUNS, 2)
    np.testing.assert_allclose(model.x0_, [tr.y[0] for tr in first], atol=0.15)
    assert model.trajectory_names_ == first.names
    loaded = sysid.load(sysid.save(model, tmp_path / "streamed.sysid"))
    np.testing.assert_array_equal(loaded.predict(test, x0=x0)[1].y, predicted[1].y)


def test_the_lbfgs_polish_reads_one_minibatch_at_a_time(dask_computes):
    log: list[list] = [[]]
    ds = counted(lotka_volterra(n_runs=20).to_xarray(), CHUNK, log)
    log.clear()
    with dask_computes(log):
        model = sysid.NeuralODE(**{**FAST, "max_epochs": 2, "lbfgs_steps": 10, "collocation_steps": 50}).fit(
            ds, trajectory="trajectory", lazy=True
        )
    assert "lbfgs" in set(model.history_["stage"])
    assert max(runs_per_compute(log)) <= CHUNK


def test_bad_data_in_a_late_chunk_is_named_before_training():
    data = lotka_volterra().to_xarray()
    data["prey"][37, 4] = np.inf
    log: list[list] = [[]]
    ds = counted(data, CHUNK, log)
    with dask.config.set(scheduler="synchronous"), pytest.raises(sysid.DataError, match=r"'run37'.*'prey'.*position 4"):
        sysid.NeuralODE(**FAST).fit(ds, trajectory="trajectory", lazy=True)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (sysid.NeuralODE(learn_time="scale"), "learn_time='scale'"),
        (sysid.NeuralODE(warm_start=True), "warm_start=True"),
        (sysid.NeuralODE(n_augment=1), "n_augment=1"),
        (sysid.NeuralODE(network_penalty=1e-2), r"network_penalty=0\.01\): its penalty reads every training state"),
        (sysid.NeuralODE(batch_size=0), "batch_size must be a positive integer"),
        (sysid.SINDy(), "SINDy cannot fit streamed data"),
        (sysid.SparseODE(), "SparseODE cannot fit streamed data"),
    ],
)
def test_settings_a_streamed_fit_cannot_honour_are_refused_before_any_read(model, match, dask_computes):
    log: list[list] = [[]]
    ds = counted(lotka_volterra(n_runs=10).to_xarray(), 5, log)
    log.clear()
    with dask_computes(log), pytest.raises(sysid.ConfigError, match=match):
        model.fit(ds, trajectory="trajectory", lazy=True)
    assert log == []


def test_lazy_applies_to_xarray_only_and_prediction_reads_in_memory(streamed):
    model, _, ds = streamed
    with pytest.raises(sysid.DataError, match="lazy=True reads an xarray"):
        sysid.NeuralODE().fit(lotka_volterra(n_runs=2).to_pandas(), trajectory="trajectory", lazy=True)
    with pytest.raises(sysid.DataError, match="predict, score and the like read their data in memory"):
        model.predict(ds, lazy=True)
    first = ds.isel(trajectory=slice(0, 3))
    x0 = np.stack([first["prey"].values[:, 0], first["predator"].values[:, 0]], axis=1)
    prediction = model.predict(first, x0=x0)  # with the fit's options (trajectory=...), read in memory
    assert isinstance(prediction, xr.Dataset) and prediction.sizes["trajectory"] == 3
