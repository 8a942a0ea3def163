"""Write sysid files the way an attacker (or a corrupted disk) would: any header, valid checksums.

Independent of sysid's own writer: the checksums are computed here from the format's
documentation (sysid.io.format): version 1 stores ``tensors_sha256`` inside the header,
version 2 stores ``sysid_header_sha256`` (of the header text) and ``sysid_tensors_sha256``
beside it. A file written here with a valid checksum reaches every check after the
checksum, which is what the hostile-file tests need.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.numel():
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_raw(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header exactly as stored (JSON, typed values not decoded) and the tensors."""
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["sysid"])
        tensors = {name: handle.get_tensor(name).clone() for name in handle.keys()}  # noqa: SIM118 - a safetensors handle: keys() is all it has
    return header, tensors


def write_raw(path: str | Path, header: Any, tensors: dict[str, torch.Tensor], version: int | None = None,
              checksum: bool = True, text: str | None = None) -> Path:
    """A file holding ``header`` (or the raw ``text``) and ``tensors``, with valid checksums unless not ``checksum``.

    ``version`` sets ``header["format_version"]`` (1 or 2) when given.
    """
    path = Path(path)
    header = copy.deepcopy(header)
    if version is not None and isinstance(header, dict):
        header["format_version"] = version
    metadata: dict[str, str] = {}
    if isinstance(header, dict):
        header.pop("tensors_sha256", None)
        if header.get("format_version") == 1 and checksum:
            header["tensors_sha256"] = tensor_digest(tensors)
    text = json.dumps(header) if text is None else text
    metadata["sysid"] = text
    if checksum and (not isinstance(header, dict) or header.get("format_version") != 1):
        metadata["sysid_header_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        metadata["sysid_tensors_sha256"] = tensor_digest(tensors)
    path.write_bytes(save_tensors(tensors, metadata=metadata))
    return path


def interrupted_fit_checkpoint(path: Path, data: Any, max_epochs: int) -> Path:
    """Leave at ``path`` the checkpoint of a tiny NeuralODE fit interrupted (Ctrl-C) in its third epoch."""
    import warnings

    from sysid.training import _shooting

    from .conftest import make_estimator

    calls = {"n": 0}
    original = _shooting.MultipleShooting.forward

    def forward(self: Any, batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    _shooting.MultipleShooting.forward = forward
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_estimator("NeuralODE", checkpoint_path=path, max_epochs=max_epochs).fit(data)
    finally:
        _shooting.MultipleShooting.forward = original
    if not path.exists():
        raise RuntimeError(f"the interrupted fit left no checkpoint at {path}")
    return path
