"""A model file keeps the default parts it was fitted with when a later sysid changes an estimator's defaults."""

from __future__ import annotations

import json
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

import sysid
from sysid.errors import ModelFileError

T = np.linspace(0.0, 2.0, 12)
Y = np.exp(-T)[:, None]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    # field left at its default (None); training and solver given
    model = sysid.NeuralODE(max_epochs=2, lbfgs_steps=0, horizons=None, verbose=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 12 values for a (64, 64) network: the warning is right, and beside the point
        model.fit(Y, t=T)
    path = model.save(tmp_path_factory.mktemp("defaults") / "m.sysid")
    return path, np.asarray(model.predict(t=T, x0=[1.0]))


def _header(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["sysid"])


def test_the_file_names_the_default_part_it_was_fitted_with(saved: tuple[Path, np.ndarray]) -> None:
    stored = _header(saved[0])["default_parts"]
    assert sorted(stored) == ["field", "solver"]  # training was given, not a default
    assert stored["field"]["__object__"] == "LinearMLP" and stored["solver"]["__object__"] == "Solver"


def test_a_changed_default_does_not_change_a_saved_model(
    saved: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, expected = saved
    new_defaults = {**sysid.NeuralODE.default_parts, "field": partial(sysid.fields.MLP, hidden=(8,))}
    monkeypatch.setattr(sysid.NeuralODE, "default_parts", new_defaults)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = sysid.load(path)
    assert isinstance(loaded.field, sysid.fields.LinearMLP) and loaded.field.hidden == (64, 64)
    np.testing.assert_array_equal(np.asarray(loaded.predict(t=T, x0=[1.0])), expected)


def test_unchanged_defaults_stay_defaults(saved: tuple[Path, np.ndarray]) -> None:
    loaded = sysid.load(saved[0])
    assert loaded.get_params(deep=False)["field"] is None
    np.testing.assert_array_equal(np.asarray(loaded.predict(t=T, x0=[1.0])), saved[1])


def test_a_default_part_for_a_role_the_estimator_does_not_have_is_refused(
    saved: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    stored = sysid.io.format.read_file(saved[0])
    header = dict(stored.header)
    header["default_parts"] = {"optimizer": header["default_parts"]["field"]}
    header.pop("format", None), header.pop("format_version", None), header.pop("sysid_version", None)
    path = sysid.io.format.write_file(tmp_path / "bad.sysid", sysid.io.MODEL_FORMAT, header, stored.tensors)
    with pytest.raises(ModelFileError, match="no default 'optimizer' part"):
        sysid.load(path)


def _forced_data() -> sysid.Trajectories:
    t = np.linspace(0.0, 4.0, 30)
    u = np.sin(t)[:, None]
    y = np.stack([np.cos(t), 0.5 * np.sin(2 * t)], axis=1)
    return sysid.Trajectories.from_arrays([t], [y], [u], state_names=["x", "v"], input_names=["u"])


def _rewrite(path: Path, out: Path, edit) -> Path:
    """The model file at ``path`` with its header edited as an older sysid would have written it."""
    stored = sysid.io.format.read_file(path)
    header = {k: v for k, v in stored.raw_header.items() if k not in ("format", "format_version", "sysid_version")}
    edit(header)
    return sysid.io.format.write_file(out, sysid.io.MODEL_FORMAT, sysid.io.format.decode(header), stored.tensors)


def test_a_session_2_file_of_the_default_field_loads_with_its_free_linear_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, t = _forced_data(), np.linspace(0.0, 4.0, 30)
    session_2 = {**sysid.NeuralODE.default_parts, "field": sysid.NeuralODE.defaults_before_recorded["field"]}
    with monkeypatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(sysid.NeuralODE, "default_parts", session_2)
        model = sysid.NeuralODE(max_epochs=2, lbfgs_steps=0, horizons=None, verbose=False, random_state=0).fit(data)
        assert not model.field_.stable
        expected = model.predict(data)[0].y
        path = model.save(tmp_path / "session2.sysid")
    old = _rewrite(path, tmp_path / "old.sysid", lambda h: h.pop("default_parts"))  # as session 2 wrote it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = sysid.load(old)
        assert not loaded.field_.stable  # today's default would make it stable: the data have an input
        np.testing.assert_array_equal(loaded.predict(data)[0].y, expected)
    assert t.size == expected.shape[0]


def test_a_stored_part_without_a_later_parameter_keeps_its_behaviour_of_then(tmp_path: Path) -> None:
    data = _forced_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.NeuralODE(
            field=sysid.fields.LinearMLP(hidden=(4,), stable=False), max_epochs=2, lbfgs_steps=0, verbose=False
        ).fit(data)
        path = model.save(tmp_path / "m.sysid")
        old = _rewrite(path, tmp_path / "old.sysid", lambda h: h["params"]["field"]["params"].pop("stable"))
        loaded = sysid.load(old)
        assert loaded.field.stable is False  # not LinearMLP's default (None: stable with inputs)
        np.testing.assert_array_equal(loaded.predict(data)[0].y, model.predict(data)[0].y)
