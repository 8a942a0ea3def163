"""Ensembles in model files: sysid.save / sysid.load round trips, members included, no pickle."""

from __future__ import annotations

import numpy as np
import pytest

import sysid
from sysid import SINDy
from sysid.datasets import simulate

TINY = {"hidden": (4,), "max_epochs": 2, "lbfgs_steps": 0, "collocation_steps": 20, "gradient": "backprop",
        "verbose": False}


@pytest.fixture(scope="module")
def lv():
    return simulate("lotka_volterra", n_trajectories=4, n_samples=40, noise=0.02, irregular=False, random_state=0)


@pytest.fixture(scope="module")
def neural_ensemble(lv):
    return sysid.Ensemble(sysid.NeuralODE(**TINY), n_members=3, bootstrap="segments", n_segments=2).fit(lv)


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.y, y.y)


def test_a_sindy_ensemble_round_trips_with_identical_means_and_bands(lv, tmp_path):
    ensemble = sysid.Ensemble(SINDy(), n_members=4).fit(lv)
    loaded = sysid.load(sysid.save(ensemble, tmp_path / "sindy.sysid"))
    assert isinstance(loaded, sysid.Ensemble) and len(loaded.estimators_) == 4
    assert loaded.get_params()["estimator__threshold"] == ensemble.get_params()["estimator__threshold"]
    assert loaded.samples_ == ensemble.samples_ and loaded.member_seeds_ == ensemble.member_seeds_
    assert_same(loaded.predict(lv), ensemble.predict(lv))
    for a, b in zip(loaded.predict_quantiles(lv, quantiles=(0.1, 0.5, 0.9)),
                    ensemble.predict_quantiles(lv, quantiles=(0.1, 0.5, 0.9))):
        assert_same(a, b)
    frame = lv.to_pandas()
    assert loaded.predict(frame, trajectory="trajectory").equals(ensemble.predict(frame, trajectory="trajectory"))


def test_a_neural_ensemble_round_trips_bit_for_bit(neural_ensemble, lv, tmp_path):
    loaded = sysid.load(neural_ensemble.save(tmp_path / "neural.sysid"))
    assert loaded.samples_ == neural_ensemble.samples_  # ("run0", 0, 20) pieces come back as tuples
    assert isinstance(loaded.samples_[0][0], tuple)
    assert loaded.n_function_evals_ == neural_ensemble.n_function_evals_
    t, x0 = np.linspace(0, 5, 11), [[1.0, 1.0], [2.0, 0.5]]
    np.testing.assert_array_equal(loaded.predict(t=t, x0=x0), neural_ensemble.predict(t=t, x0=x0))
    for a, b in zip(loaded.predict_quantiles(t=t, x0=x0), neural_ensemble.predict_quantiles(t=t, x0=x0)):
        np.testing.assert_array_equal(a, b)


def test_a_tampered_ensemble_file_is_refused(neural_ensemble, tmp_path):
    path = neural_ensemble.save(tmp_path / "ensemble.sysid")
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # one bit pattern of the last member's tensors
    (tmp_path / "tampered.sysid").write_bytes(bytes(raw))
    with pytest.raises(sysid.ModelFileError, match="corrupted: its tensors do not match the checksum"):
        sysid.load(tmp_path / "tampered.sysid")
    (tmp_path / "truncated.sysid").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(sysid.ModelFileError, match="truncated or corrupted"):
        sysid.load(tmp_path / "truncated.sysid")


class HomeMadeSINDy(SINDy):
    """A model type sysid.io does not know."""


def test_an_ensemble_of_a_model_type_io_cannot_save_is_refused_clearly(lv, tmp_path):
    ensemble = sysid.Ensemble(HomeMadeSINDy(), n_members=2).fit(lv)
    with pytest.raises(sysid.ModelFileError, match="cannot save this Ensemble: its estimator= is a HomeMadeSINDy"):
        sysid.save(ensemble, tmp_path / "no.sysid")
    assert not (tmp_path / "no.sysid").exists()
