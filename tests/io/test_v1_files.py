"""Model files of format version 1, written by sysid 0.1.0 before version 2, still load and predict the same.

The files in ``v1_files/`` were written by ``v1_files/make_v1_files.py`` at commit 8892584
(the last sysid writing version 1), one per kind of estimator, with the predictions they
made then (``expected.json``).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save as save_tensors

import sysid

HERE = Path(__file__).parent / "v1_files"
EXPECTED = json.loads((HERE / "expected.json").read_text())


def _writer_module():
    spec = importlib.util.spec_from_file_location("make_v1_files", HERE / "make_v1_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WRITER = _writer_module()
FUNCTIONS = {"greybox": {"f": WRITER.decay_torch}, "hybrid": {"known": WRITER.decay_torch},
             "classical": {"f": WRITER.decay_numpy}}


@pytest.mark.parametrize("name", sorted(EXPECTED["predictions"]))
def test_a_version_1_file_loads_and_predicts_what_it_predicted_when_saved(name: str, tmp_path: Path) -> None:
    path = HERE / f"{name}.sysid"
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["sysid"])["format_version"] == 1
    t, x0 = np.array(EXPECTED["t"]), EXPECTED["x0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.load(path, **FUNCTIONS.get(name, {}))
        predicted = np.asarray(model.predict(t=t, x0=x0))
        np.testing.assert_allclose(predicted, EXPECTED["predictions"][name], rtol=1e-9, atol=1e-12)
        again = sysid.load(model.save(tmp_path / f"{name}.sysid"), **FUNCTIONS.get(name, {}))  # now version 2
        np.testing.assert_array_equal(np.asarray(again.predict(t=t, x0=x0)), predicted)
    with safe_open(str(tmp_path / f"{name}.sysid"), framework="pt") as handle:
        assert json.loads(handle.metadata()["sysid"])["format_version"] == sysid.io.FORMAT_VERSION == 2


def test_a_version_1_file_without_its_checksum_is_refused(tmp_path: Path) -> None:
    with safe_open(str(HERE / "neural.sysid"), framework="pt") as handle:
        header = json.loads(handle.metadata()["sysid"])
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - a safetensors handle: keys() is all it has
    del header["tensors_sha256"]
    path = tmp_path / "unchecked.sysid"
    path.write_bytes(save_tensors(tensors, metadata={"sysid": json.dumps(header)}))
    with pytest.raises(sysid.ModelFileError, match=r"has no checksum of its tensors \('tensors_sha256' is missing\)"):
        sysid.load(path)


def test_a_version_1_file_with_a_flipped_weight_bit_is_refused(tmp_path: Path) -> None:
    raw = bytearray((HERE / "neural.sysid").read_bytes())
    raw[-3] ^= 0x01
    (tmp_path / "flipped.sysid").write_bytes(bytes(raw))
    with pytest.raises(sysid.ModelFileError, match="is corrupted: its tensors do not match the checksum"):
        sysid.load(tmp_path / "flipped.sysid")
