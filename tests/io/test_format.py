"""The sysid file format (sysid.io.format): typed values, checksums, bounded reading, safe writing."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from sysid.errors import ModelFileError
from sysid.io.format import (
    CHECKPOINT_FORMAT,
    MAX_DEPTH,
    MODEL_FORMAT,
    FunctionRef,
    ObjectRecord,
    decode,
    encode,
    read_file,
    write_file,
)


def test_typed_values_round_trip() -> None:
    value = {
        "hidden": (32, 32),
        "bounds": {"k": (0.0, None)},
        "lr": math.inf,
        "x": -math.inf,
        "f": FunctionRef("decay"),
        "template": ObjectRecord("SINDy", {"degree": 2, "shape": (1,)}),
        "plain": [1, "a", None, True],
        "looks_typed": {"__float__": "inf"},
        "numbers": [1.5, 2],
    }
    back = decode(encode(value))
    assert back == value
    assert isinstance(back["hidden"], tuple) and isinstance(back["template"].params["shape"], tuple)
    assert math.isnan(decode(encode(math.nan)))
    assert decode(encode({"__dict__": {"a": 1}})) == {"__dict__": {"a": 1}}  # a user dict that looks typed


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        ({"a": {"__float__": "abc"}}, r"header\.a: \{'__float__': 'abc'\} is not a number"),
        ({"a": {"__float__": "inf", "b": 1}}, r"header\.a: a '__float__' value must be alone in its object"),
        ({"a": [{"__tuple__": 3}]}, r"header\.a\[0\]: a tuple must hold a list, got int"),
        ({"a": {"__callable__": 3}}, r"header\.a: a function is stored by its name \(text\), got 3"),
        ({"a": {"__object__": "SINDy", "params": [1]}}, r"header\.a\.params: the parameters of 'SINDy' are a list"),
        ({"a": {"__object__": 1}}, r"header\.a: an object record must be"),
        ({"a": {"__dict__": []}}, r"header\.a: \{'__dict__': \.\.\.\} must hold an object"),
    ],
)
def test_bad_typed_values_name_the_field(stored, match: str) -> None:
    with pytest.raises(ModelFileError, match=match):
        decode(stored, "header")


def test_nesting_beyond_the_limit_is_refused() -> None:
    value: list = []
    for _ in range(MAX_DEPTH + 2):
        value = [value]
    with pytest.raises(ModelFileError, match=f"nested more than {MAX_DEPTH} levels deep"):
        decode(value)


def test_what_json_cannot_hold_is_refused_on_writing(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"header\.extra\.when is a object"):
        write_file(tmp_path / "x.sysid", MODEL_FORMAT, {"extra": {"when": object()}}, {})
    assert not list(tmp_path.iterdir())


def test_a_file_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    path = write_file(tmp_path / "fit.ckpt", CHECKPOINT_FORMAT, {"state": {}}, {"w": torch.zeros(1)})
    with pytest.raises(ModelFileError, match=r"format 'sysid-checkpoint', expected 'sysid-model'"):
        read_file(path, MODEL_FORMAT)
    assert read_file(path, CHECKPOINT_FORMAT).header["state"] == {}


def test_every_byte_of_header_and_tensors_is_covered(tmp_path: Path) -> None:
    """Flip each byte of a small file in turn: none may load unnoticed."""
    path = write_file(tmp_path / "small.sysid", MODEL_FORMAT, {"note": "abc", "n": 12}, {"w": torch.arange(3.0)})
    raw = path.read_bytes()
    undetected = []
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x20
        target = tmp_path / "flipped.sysid"
        target.write_bytes(bytes(flipped))
        try:
            stored = read_file(target)
        except ModelFileError:
            continue
        if stored.header != read_file(path).header or not torch.equal(stored.tensors["w"], torch.arange(3.0)):
            undetected.append(i)
    assert not undetected, f"bytes {undetected} changed the content without an error"


def test_the_format_module_knows_nothing_of_estimators() -> None:
    source = (Path(__file__).parents[2] / "sysid" / "io" / "format.py").read_text()
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [node])
    }
    sysid_imports = {name for name in imported if name and name.startswith("sysid")}
    assert sysid_imports <= {"sysid", "sysid.errors"}, sysid_imports
