"""Model and checkpoint files an attacker controls, and model files that cannot be written.

Each case of the catalogue (docs/reliability.md, "Hostile model and checkpoint files")
must end in our error naming the fault, within a second, without allocating what the
header claims (the process's peak memory may not grow by more than 300 MB), and with
nothing built or run. Hostile headers are written with valid checksums
(:mod:`.hostile_files`), as a file altered on purpose would be, in format version 1 (the
checksum covers the tensors only) and 2 (it covers the header too).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import sysid
from sysid.errors import ConfigError, ModelFileError

from .conftest import decay_data, make_estimator
from .hostile_files import interrupted_fit_checkpoint, read_raw, write_raw

FAST_SECONDS = 1.0
MAX_GROWTH_MB = 300
VERSIONS = (1, 2)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Case:
    """One catalogue entry: ``call(files, version)`` raises ``error`` matching ``match``."""

    id: str
    call: Callable[[Any, int], Any]
    error: type[BaseException]
    match: str
    versions: tuple[int, ...] = VERSIONS


class Files:
    """Saved models (tiny fits of conftest's estimators) and a folder for hostile copies."""

    def __init__(self, fitted: dict, tmp: Path) -> None:
        self.tmp = tmp
        self.saved = {name: fitted[name].save(tmp / f"{name}.sysid") for name in ("NeuralODE", "SparseODE", "SINDy")}

    def altered(self, name: str, version: int, change: Callable[[dict], Any]) -> Path:
        """A copy of the saved ``name`` whose header ``change`` edited, with valid checksums."""
        header, tensors = read_raw(self.saved[name])
        change(header)
        return write_raw(self.tmp / f"{name}-altered-v{version}.sysid", header, tensors, version)


@pytest.fixture(scope="module")
def files(fitted, tmp_path_factory) -> Files:
    return Files(fitted, tmp_path_factory.mktemp("hostile"))


def run_case(case: Case, files: Files, version: int) -> BaseException:
    before, start = peak_mb(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error, match=case.match) as caught:
            case.call(files, version)
    seconds = time.perf_counter() - start
    assert seconds < FAST_SECONDS, f"{case.id}: {seconds:.1f} s before the error"
    assert peak_mb() - before < MAX_GROWTH_MB, f"{case.id}: memory grew by {peak_mb() - before:.0f} MB"
    return caught.value


# -- model files: parameters that disagree with the tensors ---------------------------------------------
def _set_param(name: str, key: str, value: Any) -> Callable[[Files, int], Any]:
    def call(files: Files, version: int) -> Any:
        return sysid.load(files.altered(name, version, lambda h: h["params"].__setitem__(key, value)))

    return call


def _set_part_param(name: str, part: str, key: str, value: Any) -> Callable[[Files, int], Any]:
    def call(files: Files, version: int) -> Any:
        return sysid.load(files.altered(name, version, lambda h: h["params"][part]["params"].__setitem__(key, value)))

    return call


def _set_fitted(key: str, value: Any, name: str = "NeuralODE") -> Callable[[Files, int], Any]:
    def call(files: Files, version: int) -> Any:
        return sysid.load(files.altered(name, version, lambda h: h["fitted"].__setitem__(key, value)))

    return call


def _six_gigabytes(files: Files, version: int) -> Any:
    path = files.tmp / "six-gigabytes.sysid"
    with open(path, "wb") as handle:
        handle.write(files.saved["NeuralODE"].read_bytes())
        handle.truncate(6 * 2**30)  # sparse: takes no disk space
    try:
        return sysid.load(path)
    finally:
        path.unlink()


def _huge_header_length(files: Files, version: int) -> Any:
    raw = files.saved["NeuralODE"].read_bytes()
    path = files.tmp / "huge-header.sysid"
    path.write_bytes((2**62).to_bytes(8, "little") + raw[8:])
    return sysid.load(path)


def _nested(depth: int) -> str:
    return '{"format": "sysid-model", "format_version": 2, "params": ' + "[" * depth + "]" * depth + "}"


def _deeply_nested(files: Files, version: int) -> Any:
    _, tensors = read_raw(files.saved["NeuralODE"])
    return sysid.load(write_raw(files.tmp / "deep.sysid", {}, tensors, text=_nested(100_000)))


def _header_altered(files: Files, version: int) -> Any:
    """The activation changed from tanh to relu in the header text; every checksum left as saved."""
    from safetensors import safe_open
    from safetensors.torch import save as save_tensors

    with safe_open(str(files.saved["NeuralODE"]), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {name: handle.get_tensor(name).clone() for name in handle.keys()}  # noqa: SIM118 - a safetensors handle: keys() is all it has
    assert '"activation": "tanh"' in metadata["sysid"]
    metadata["sysid"] = metadata["sysid"].replace('"activation": "tanh"', '"activation": "relu"')
    path = files.tmp / "relu.sysid"
    path.write_bytes(save_tensors(tensors, metadata=metadata))
    return sysid.load(path)


def _without_checksum(files: Files, version: int) -> Any:
    header, tensors = read_raw(files.saved["NeuralODE"])
    return sysid.load(write_raw(files.tmp / f"no-checksum-v{version}.sysid", header, tensors, version, checksum=False))


MODEL_CASES = [
    Case(
        "load-parameters-claim-a-huge-network",
        _set_param("NeuralODE", "hidden", [4, 16000, 16000]),
        ModelFileError,
        r"its NeuralODE parameters describe a model larger than the tensors the file holds",
    ),
    Case(
        "load-part-parameters-claim-a-huge-network",
        _set_part_param("NeuralODE", "field", "hidden", {"__tuple__": [4, 16000, 16000]}),
        ModelFileError,
        r"its NeuralODE parameters describe a model larger than the tensors the file holds",
        (2,),
    ),
    Case(
        "load-parameters-claim-320-gb",
        _set_param("NeuralODE", "hidden", [200000, 200000]),
        ModelFileError,
        r"describe a model larger than the tensors the file holds .* Nothing was built",
    ),
    Case(
        "load-parameters-claim-100000-layers",
        _set_param("NeuralODE", "hidden", [4] * 100_000),
        ModelFileError,
        r"describe a model larger than the tensors the file holds",
    ),
    Case(
        "load-parameters-claim-degree-1000000",
        _set_param("SparseODE", "degree", 10**6),
        ModelFileError,
        r"degree=1000000 with 2 state and input variables makes more polynomial terms than the \d+ rows",
    ),
    Case(
        "load-sindy-power-2**40",
        _set_fitted("powers_", [[2**40, 0], [1, 0], [0, 1]], name="SINDy"),
        ModelFileError,
        r"its powers_ must be integer powers >= 0 of total degree at most the number of terms \(3\), "
        r"got '\[\[1099511627776, 0\]",
    ),
    Case(
        "load-input-range-of-a-wrong-shape",
        _set_fitted("input_range_", [[0.0, 1.0], [2.0, 3.0]]),
        ModelFileError,
        r"input_range_ has shape \(2, 2\), expected \(2, 0\)",
    ),
    Case(
        "load-scaling-input-range-of-a-wrong-shape",
        _set_fitted(
            "scaling_",
            {
                "center": [0.0, 0.0],
                "spread": [1.0, 1.0],
                "input_center": [],
                "input_spread": [],
                "time_unit": 1.0,
                "input_range": [[0.0], [1.0]],
            },
        ),
        ModelFileError,
        r"input_range has shape \(2, 1\), expected \(2, 0\)",
    ),
    Case(
        "load-sindy-powers-of-a-wrong-shape",
        _set_fitted("powers_", [[0, 0, 0], [1, 0, 0], [0, 1, 0]], name="SINDy"),
        ModelFileError,
        r"its powers_ must be a table with one row per term \(3\) and one column per state and input \(2\)",
    ),
    Case(
        "load-fitted-state-claims-10**12-trajectories",
        _set_fitted("n_trajectories", 10**12),
        ModelFileError,
        r"describe a model larger than the tensors the file holds",
    ),
    Case(
        "load-six-gigabyte-sparse-file",
        _six_gigabytes,
        ModelFileError,
        r"is not a readable sysid model file \(truncated or corrupted\?\)",
        (2,),
    ),
    Case(
        "load-header-length-beyond-limit",
        _huge_header_length,
        ModelFileError,
        r"its header claims 4,611,686,018,427,387,904 bytes, more than the 100,000,000",
        (2,),
    ),
    Case(
        "load-header-altered",
        _header_altered,
        ModelFileError,
        r"is corrupted: its header does not match the checksum",
        (2,),
    ),
    Case(
        "load-without-checksum",
        _without_checksum,
        ModelFileError,
        r"has no checksum of its (tensors|header) .* cannot be told from a good one",
    ),
    Case(
        "load-header-nested-100000-deep",
        _deeply_nested,
        ModelFileError,
        r"the sysid header is nested deeper than Python can parse",
        (2,),
    ),
    Case(
        "load-typed-value-not-a-number",
        _set_param("NeuralODE", "lr", {"__float__": "abc"}),
        ModelFileError,
        r"params\.lr: \{'__float__': 'abc'\} is not a number \(expected 'inf', '-inf' or 'nan'\)",
    ),
    Case(
        "load-typed-value-of-a-wrong-type",
        _set_param("NeuralODE", "lr", {"__float__": [1]}),
        ModelFileError,
        r"params\.lr: \{'__float__': \[1\]\} is not a number",
    ),
    Case(
        "load-state-names-disagree-with-the-tensors",
        _set_fitted("state_names_", ["x", "v", "w"]),
        ModelFileError,
        r"state_names_ \(3 name\(s\)\) disagrees with n_states_in_=2",
    ),
    Case(
        "load-dimensions-disagree-with-the-tensors",
        _set_fitted("n_dims_", 3),
        ModelFileError,
        r"the fitted state does not match a NeuralODE: ValueError: n_dims_=3 is not n_states_in_=2 \+ n_augment=0",
    ),
    Case(
        "load-parameter-of-a-wrong-type",
        _set_param("NeuralODE", "hidden", "many"),
        ModelFileError,
        r"the NeuralODE it describes is invalid: (Linear)?MLP: hidden must be a non-empty tuple of positive ints",
    ),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_a_hostile_model_file_is_refused_fast_without_allocating(case: Case, version: int, files: Files) -> None:
    if version not in case.versions:
        pytest.skip(f"{case.id} concerns format version {case.versions} only")
    run_case(case, files, version)


# -- checkpoints ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def killed_checkpoint(tmp_path_factory) -> tuple[Path, Any]:
    """The checkpoint of a NeuralODE fit interrupted in its third epoch, and its data."""
    data = decay_data()
    return interrupted_fit_checkpoint(tmp_path_factory.mktemp("ckpt") / "fit.ckpt", data, max_epochs=5), data


def _checkpoint_with(change: Callable[[dict], Any], text: str | None = None) -> Callable[[Any, int], Any]:
    def call(ckpt: tuple[Path, Any], version: int) -> Any:
        path, data = ckpt
        header, tensors = read_raw(path)
        change(header)
        altered = write_raw(path.with_name(f"altered-v{version}.ckpt"), header, tensors, version, text=text)
        return make_estimator("NeuralODE", checkpoint_path=altered, max_epochs=5).fit(data)

    return call


CHECKPOINT_CASES = [
    Case(
        "checkpoint-scheduler-junk",
        _checkpoint_with(lambda h: h["state"].__setitem__("scheduler", "junk")),
        ConfigError,
        r"its scheduler is a str, expected an object; the file is damaged or was altered",
    ),
    Case(
        "checkpoint-next-epoch-beyond-its-history",
        _checkpoint_with(lambda h: h["state"].__setitem__("next_epoch", 10**6)),
        ConfigError,
        r"its next_epoch = 1000000 disagrees with its history, whose last completed epoch is 1",
    ),
    Case(
        "checkpoint-learning-rate-not-a-number",
        _checkpoint_with(lambda h: h["state"]["param_groups"][0].__setitem__("lr", "fast")),
        ConfigError,
        r"its param_groups = 'fast' at \[0\]\.lr, expected a number",
    ),
    Case(
        "checkpoint-nested-100000-deep",
        _checkpoint_with(lambda h: None, text=_nested(100_000).replace("sysid-model", "sysid-checkpoint")),
        ConfigError,
        r"holds no usable sysid checkpoint .*nested deeper than Python can parse",
        (2,),
    ),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=lambda c: c.id)
def test_a_hostile_checkpoint_is_refused_before_training(case: Case, version: int, killed_checkpoint) -> None:
    if version not in case.versions:
        pytest.skip(f"{case.id} concerns format version {case.versions} only")
    run_case(case, killed_checkpoint, version)


def test_the_untouched_checkpoint_still_resumes(killed_checkpoint) -> None:
    path, data = killed_checkpoint
    header, tensors = read_raw(path)
    copy = write_raw(path.with_name("copy.ckpt"), header, tensors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_estimator("NeuralODE", checkpoint_path=copy, max_epochs=5).fit(data)
    assert model.history_["epoch"].tolist() == [-1, 0, 1, 2, 3, 4]  # resumed at epoch 2, not from scratch


# -- the command line ---------------------------------------------------------------------------------------
def test_cli_info_of_a_deeply_nested_header_exits_2(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    from sysid.cli import main

    _, tensors = read_raw(files.saved["NeuralODE"])
    path = write_raw(files.tmp / "deep-info.sysid", {}, tensors, text=_nested(100_000))
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nested deeper than Python can parse" in err


# -- saving where it cannot be written ------------------------------------------------------------------------
def _save_into_missing_folder(files: Files, version: int) -> Any:
    return sysid.load(files.saved["NeuralODE"]).save(files.tmp / "no-such-folder" / "m.sysid")


def _save_onto_a_folder(files: Files, version: int) -> Any:
    folder = files.tmp / "a-folder"
    folder.mkdir(exist_ok=True)
    return sysid.load(files.saved["NeuralODE"]).save(folder)


def _failing_mkstemp(error: OSError) -> Callable[..., Any]:
    def mkstemp(*args: Any, **kwargs: Any) -> Any:
        raise error

    return mkstemp


def _save_without_permission(files: Files, version: int) -> Any:
    target = files.tmp / "kept.sysid"
    target.write_bytes(b"the previous model")
    original = tempfile.mkstemp
    tempfile.mkstemp = _failing_mkstemp(PermissionError(errno.EACCES, "Permission denied"))  # as root, chmod cannot
    try:
        return sysid.load(files.saved["NeuralODE"]).save(target)
    finally:
        tempfile.mkstemp = original
        assert target.read_bytes() == b"the previous model"


def _save_on_a_full_disk(files: Files, version: int) -> Any:
    """Every write fails with ENOSPC: the temporary file is /dev/full."""
    target = files.tmp / "kept-full.sysid"
    target.write_bytes(b"the previous model")
    original = tempfile.mkstemp
    made: list[str] = []

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = original(*args, **kwargs)
        os.close(fd)
        made.append(name)
        return os.open("/dev/full", os.O_WRONLY), name

    tempfile.mkstemp = mkstemp
    try:
        return sysid.load(files.saved["NeuralODE"]).save(target)
    finally:
        tempfile.mkstemp = original
        assert target.read_bytes() == b"the previous model"
        assert not any(Path(name).exists() for name in made)  # the temporary file is gone too


SAVE_CASES = [
    Case(
        "save-into-a-missing-folder",
        _save_into_missing_folder,
        ModelFileError,
        r"cannot write .*m\.sysid': the folder .*no-such-folder' does not exist; create it first",
    ),
    Case(
        "save-onto-a-folder",
        _save_onto_a_folder,
        ModelFileError,
        r"cannot write .*a-folder': it is a folder; give a file name such as",
    ),
    Case(
        "save-without-permission",
        _save_without_permission,
        ModelFileError,
        r"no permission to write in .* The previous file there is unchanged",
    ),
    Case(
        "save-on-a-full-disk",
        _save_on_a_full_disk,
        ModelFileError,
        r"no space left on the device .* The previous file there is unchanged",
    ),
]


@pytest.mark.parametrize("case", SAVE_CASES, ids=lambda c: c.id)
def test_a_model_file_that_cannot_be_written_gives_our_error_and_keeps_the_old_file(case: Case, files: Files) -> None:
    if not Path("/dev/full").exists() and case.id == "save-on-a-full-disk":
        pytest.skip("no /dev/full on this system")
    run_case(case, files, 2)


def test_catalogue_rows() -> None:
    """Every case above is a row of docs/reliability.md."""
    ids = [c.id for c in MODEL_CASES + CHECKPOINT_CASES + SAVE_CASES] + ["cli-info-nested-100000-deep"]
    assert len(ids) == len(set(ids))
    documented = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    missing = [i for i in ids if f"`{i}`" not in documented]
    assert not missing, f"catalogue entries missing from docs/reliability.md: {missing}"


def test_version_1_headers_with_a_checksum_still_load(files: Files) -> None:
    header, tensors = read_raw(files.saved["NeuralODE"])
    path = write_raw(files.tmp / "v1.sysid", header, tensors, 1)
    t = np.linspace(0.0, 1.0, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(
            sysid.load(path).predict(t=t, x0=[1.0, 1.0]),
            sysid.load(files.saved["NeuralODE"]).predict(t=t, x0=[1.0, 1.0]),
        )
    assert json.loads(json.dumps(header))  # the header is plain JSON
    assert torch.is_tensor(next(iter(tensors.values())))
