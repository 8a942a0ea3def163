"""checkpoint_path=: a killed fit resumes from its last epoch, in the safe model-file format."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

import sysid
from sysid.errors import ConfigError, FitWarning
from sysid.io import CHECKPOINT_FORMAT, read_header
from sysid.training import _shooting

from .conftest import decay_data, make_estimator

SOLVER_TRAINED = ("NeuralODE", "SparseODE", "GreyBoxODE", "HybridODE")
LONGER = {"max_epochs": 6, "batch_size": 2}  # minibatches: the batch order must resume too


def trained(name: str, **overrides):
    """``make_estimator`` with the gradient training loop (GreyBoxODE fits by least squares by default)."""
    extra = {"optimizer": "adam"} if name == "GreyBoxODE" else {}
    return make_estimator(name, **extra, **overrides)


class Killed(Exception):
    """Stands for the process being killed (not KeyboardInterrupt, which fit handles itself)."""


def kill_at_epoch(
    monkeypatch: pytest.MonkeyPatch, epoch: int, batches_per_epoch: int, exception: type[BaseException] = Killed
) -> dict:
    """Raise ``exception`` at the first training batch of ``epoch`` (0-based)."""
    calls = {"n": 0}
    original = _shooting.MultipleShooting.forward

    def forward(self, batch):
        calls["n"] += 1
        if calls["n"] == epoch * batches_per_epoch + 1:
            raise exception
        return original(self, batch)

    monkeypatch.setattr(_shooting.MultipleShooting, "forward", forward)
    return calls


def count_batches(monkeypatch: pytest.MonkeyPatch) -> dict:
    calls = {"n": 0}
    original = _shooting.MultipleShooting.forward

    def forward(self, batch):
        calls["n"] += 1
        return original(self, batch)

    monkeypatch.setattr(_shooting.MultipleShooting, "forward", forward)
    return calls


def leave_killed_checkpoint(monkeypatch: pytest.MonkeyPatch, path: Path, data) -> None:
    """A NeuralODE fit killed in epoch 1, leaving its checkpoint at ``path``."""
    kill_at_epoch(monkeypatch, 1, 1)
    with pytest.raises(Killed):
        make_estimator("NeuralODE", checkpoint_path=path).fit(data)
    monkeypatch.undo()


def quiet_fit(model, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return model.fit(data)


def test_checkpoint_path_is_a_constructor_parameter_stored_unchanged(tmp_path: Path) -> None:
    for name in SOLVER_TRAINED:
        model = make_estimator(name, checkpoint_path=tmp_path / "fit.ckpt")
        assert model.get_params()["checkpoint_path"] == tmp_path / "fit.ckpt"
        assert clone(model).checkpoint_path == tmp_path / "fit.ckpt"
        assert make_estimator(name).get_params()["checkpoint_path"] is None


@pytest.mark.parametrize("name", SOLVER_TRAINED)
def test_a_killed_fit_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = decay_data()
    path = tmp_path / "fit.ckpt"
    batches = count_batches(monkeypatch)
    reference = quiet_fit(trained(name, **LONGER), data)
    assert "attempt" not in reference.history_  # not refitted: a checkpointed fit never is
    per_epoch = batches["n"] // LONGER["max_epochs"]
    monkeypatch.undo()

    k = 3
    kill_at_epoch(monkeypatch, k, per_epoch)
    with pytest.raises(Killed):
        quiet_fit(trained(name, checkpoint_path=path, **LONGER), data)
    monkeypatch.undo()
    header, _ = read_header(path, expected=CHECKPOINT_FORMAT)  # safetensors + JSON: no pickle
    assert header["state"]["next_epoch"] == k
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically

    batches = count_batches(monkeypatch)
    resumed = quiet_fit(trained(name, checkpoint_path=path, **LONGER), data)
    assert batches["n"] == (LONGER["max_epochs"] - k) * per_epoch  # resumed at epoch k, not from scratch
    history = resumed.history_
    assert (history["stage"] == "start").sum() == 1 and history["epoch"].max() == LONGER["max_epochs"] - 1
    assert resumed.history_["val_loss"].min() <= reference.history_["val_loss"].min()
    for a, b in zip(reference.rhs_.state_dict().values(), resumed.rhs_.state_dict().values()):
        assert torch.equal(a, b)  # bit-identical to the fit that was never killed
    assert not path.exists()  # completed: the checkpoint is gone


def test_ctrl_c_keeps_the_checkpoint_and_a_longer_fit_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = decay_data()
    path = tmp_path / "fit.ckpt"
    kill_at_epoch(monkeypatch, 3, 1, KeyboardInterrupt)
    with pytest.warns(FitWarning, match="interrupted"):
        stopped = make_estimator("NeuralODE", checkpoint_path=path).set_params(max_epochs=5).fit(data)
    monkeypatch.undo()
    assert stopped.stop_reason_ == "interrupted" and path.exists()
    # more epochs, another patience, quieter: allowed; the fit picks up at epoch 3
    model = quiet_fit(make_estimator("NeuralODE", checkpoint_path=str(path), max_epochs=8, patience=100), data)
    assert model.history_["epoch"].tolist() == [-1, *range(8)]
    assert not path.exists()


def test_a_checkpoint_of_other_data_or_settings_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = decay_data()
    path = tmp_path / "fit.ckpt"
    leave_killed_checkpoint(monkeypatch, path, data)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"holds a checkpoint of another fit \(different data"):
        make_estimator("NeuralODE", checkpoint_path=path).fit(decay_data(seed=1))
    with pytest.raises(
        ConfigError, match=r"was written with other settings \(\['training__lr'\] differ.*choose another"
    ):
        make_estimator("NeuralODE", checkpoint_path=path, lr=0.5).fit(data)
    with pytest.raises(ConfigError, match=r"another fit \(different estimator: 'NeuralODE'\)"):
        make_estimator("SparseODE", checkpoint_path=path).fit(data)
    assert path.read_bytes() == before  # refused, and left untouched


def test_a_corrupted_checkpoint_is_refused_not_half_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = decay_data()
    path = tmp_path / "fit.ckpt"
    leave_killed_checkpoint(monkeypatch, path, data)
    raw = bytearray(path.read_bytes())
    raw[-2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=r"holds no usable sysid checkpoint .*corrupted"):
        make_estimator("NeuralODE", checkpoint_path=path).fit(data)


def test_a_fitted_model_with_a_checkpoint_path_saves_and_loads(tmp_path: Path) -> None:
    model = quiet_fit(make_estimator("NeuralODE", checkpoint_path=tmp_path / "fit.ckpt"), decay_data())
    loaded = sysid.load(model.save(tmp_path / "model.sysid"))
    assert loaded.checkpoint_path == str(tmp_path / "fit.ckpt")
    t = np.linspace(0, 2, 5)
    np.testing.assert_array_equal(loaded.predict(t=t, x0=[1.0, 1.0]), model.predict(t=t, x0=[1.0, 1.0]))
