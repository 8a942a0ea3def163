"""Transport to workers (pickle, unfitted and fitted) and where the solver runs (``device=``)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import sysid
from sysid.errors import ConfigError
from sysid.integration import resolve_device

# backprop through dopri5 and a small network: well under a second per fit
TINY = dict(max_epochs=5, lbfgs_steps=0, collocation_steps=20, gradient="backprop", verbose=False)


def decay_data(n_traj=3, n=15, rate=0.8, seed=0):
    rng = np.random.default_rng(seed)
    ts, ys = [], []
    for i in range(n_traj):
        t = np.sort(np.concatenate([[0.0], rng.uniform(0, 3, n - 1)]))
        ts.append(t)
        ys.append(((0.5 + i) * np.exp(-rate * t))[:, None])
    return sysid.Trajectories.from_arrays(ts, ys, state_names=["x"])


ESTIMATORS = {
    "NeuralODE": lambda: sysid.NeuralODE(hidden=(8,), **TINY),
    "SparseODE": lambda: sysid.SparseODE(degree=1, n_threshold_rounds=1, **TINY),
}


@pytest.fixture(scope="module")
def data():
    return decay_data()


@pytest.fixture(scope="module")
def fitted(data):
    return {name: make().fit(data) for name, make in ESTIMATORS.items()}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_unfitted_and_fitted_estimators_survive_pickle(name, data, fitted):
    unfitted = ESTIMATORS[name]()
    twin = pickle.loads(pickle.dumps(unfitted))
    assert twin.get_params() == unfitted.get_params() and not hasattr(twin, "rhs_")
    fitted = fitted[name]
    copy = pickle.loads(pickle.dumps(fitted))
    # identical predictions: from the data (initial states re-estimated), from given states, and the field
    for a, b in zip(fitted.predict(data), copy.predict(data)):
        np.testing.assert_array_equal(a.y, b.y)
    t = np.linspace(0, 3, 7)
    np.testing.assert_array_equal(fitted.predict(t=t, x0=[[1.0], [2.0]]), copy.predict(t=t, x0=[[1.0], [2.0]]))
    np.testing.assert_array_equal(fitted.vector_field([[0.5], [1.5]]), copy.vector_field([[0.5], [1.5]]))
    np.testing.assert_array_equal(fitted.x0_, copy.x0_)
    if name == "SparseODE":
        assert copy.equations() == fitted.equations()


def test_a_pickled_model_can_keep_training(data, fitted):
    """warm_start after transport continues from the transported parameters."""
    moved = pickle.loads(pickle.dumps(fitted["NeuralODE"])).set_params(warm_start=True, max_epochs=2)
    before = moved.history_["val_loss"].min()
    moved.fit(data)
    assert moved.history_["val_loss"].iloc[0] == pytest.approx(before)  # starts where the original stopped


def test_device_cpu_is_honoured_and_the_fitted_model_lives_on_the_cpu(fitted):
    model = fitted["NeuralODE"]
    assert model.device == "cpu"
    assert {p.device.type for p in model.rhs_.parameters()} == {"cpu"}
    assert model.shooting_state_.device.type == "cpu"
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(("device", "message"), [
    ("cuda:7" if torch.cuda.is_available() else "cuda", "is not available"),
    ("gpu", "not a torch device name"),
])
def test_an_unusable_device_fails_before_the_data_is_read(device, message, monkeypatch):
    import sysid.estimators._base as base

    def never(*args, **kwargs):
        raise AssertionError("the data was read before the device was checked")

    monkeypatch.setattr(base, "as_trajectories", never)
    with pytest.raises(ConfigError, match=message):
        sysid.NeuralODE(device=device).fit(np.zeros((5, 1)), t=np.arange(5.0))
    with pytest.raises(ConfigError, match=message):  # members of an ensemble too, before any fit
        sysid.Ensemble(sysid.NeuralODE(device=device), n_members=2).fit(np.zeros((5, 1)), t=np.arange(5.0))


def test_predict_checks_the_device_too(data, fitted):
    model = pickle.loads(pickle.dumps(fitted["NeuralODE"])).set_params(device="gpu")
    with pytest.raises(ConfigError, match="not a torch device name"):
        model.predict(data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_cuda_fit_and_predict_agree_with_cpu(name, data, fitted):
    cpu = fitted[name]
    gpu = ESTIMATORS[name]().set_params(device="cuda").fit(data)
    assert {p.device.type for p in gpu.rhs_.parameters()} == {"cpu"}  # brought back after training
    # the same model up to the solver's tolerance (rtol=1e-4: round-off may move an adaptive step)
    for a, b in zip(cpu.predict(data), gpu.predict(data)):
        np.testing.assert_allclose(a.y, b.y, rtol=1e-3, atol=1e-3)
    gpu_predicts = pickle.loads(pickle.dumps(cpu)).set_params(device="cuda")
    for a, b in zip(cpu.predict(data), gpu_predicts.predict(data)):
        np.testing.assert_allclose(a.y, b.y, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_runs_on_the_gpu(data, monkeypatch):
    import sysid.training._shooting as shooting

    seen = set()
    original = shooting.solve

    def spy(rhs, z0, *args, **kwargs):
        seen.add(z0.device.type)
        return original(rhs, z0, *args, **kwargs)

    monkeypatch.setattr(shooting, "solve", spy)
    sysid.NeuralODE(hidden=(8,), device="cuda", **TINY).fit(data)
    assert seen == {"cuda"}
