"""The sysid file format: tensors in safetensors, one JSON header, one checksum over both. No pickle.

This module knows files, not estimators: model files (:mod:`sysid.io`) and training
checkpoints (:mod:`sysid.training`) are both written and read here.

Layout (format version 2). A safetensors file whose ``__metadata__`` holds two strings:

- ``"sysid"``: the header, one JSON object ``{"format": "sysid-model" | "sysid-checkpoint",
  "format_version": 2, "sysid_version": ..., ...}``;
- ``"sysid_header_sha256"``: SHA-256 of the header text;
- ``"sysid_tensors_sha256"``: SHA-256 of every tensor's name, dtype, shape and bytes.

A flipped bit anywhere in the header or the tensors, or a missing checksum, is a
:class:`~sysid.ModelFileError` (the checksums detect corruption; they are not a signature).

Version 1 files (sysid 0.1.0 before the checksum covered the header) are still read:
their ``"tensors_sha256"`` (inside the header) must match the tensors.

Reading never trusts the file: the header's length is bounded (:data:`MAX_HEADER_BYTES`)
before it is read, tensors are read one by one at the offsets safetensors checks against
the file's real size (nothing else is read, and a file longer than its header says is
refused), the JSON is bounded in depth (:data:`MAX_DEPTH`) and typed values are checked.
Every fault is a :class:`~sysid.ModelFileError` naming the file and the field.

Typed JSON values (:func:`encode` / :func:`decode`): a non-finite float is
``{"__float__": "inf"}`` (``"-inf"``, ``"nan"``), a tuple ``{"__tuple__": [...]}``, a user
function ``{"__callable__": "name"}`` (its name only: files hold no code; decoded as a
:class:`FunctionRef`), the user's own torch module ``{"__module__": "ClassName"}`` (its class
name; decoded as a :class:`ModuleRef`: its weights are tensors of the file), an object
described by its class name and parameters ``{"__object__": "Name", "params": {...}}``
(decoded as an :class:`ObjectRecord`: the caller decides which names it builds), and a dict
that looks like one of these ``{"__dict__": {...}}``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sysid.errors import ModelFileError

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MODEL_FORMAT",
    "READABLE_VERSIONS",
    "FunctionRef",
    "ModuleRef",
    "ObjectRecord",
    "StoredFile",
    "decode",
    "encode",
    "read_file",
    "write_file",
]

MODEL_FORMAT = "sysid-model"
CHECKPOINT_FORMAT = "sysid-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_HEADER_BYTES = 100_000_000
"""A file whose safetensors header claims more bytes is refused before reading it (safetensors' own limit)."""
MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects a header may have (real headers stay under 12)."""

_HEADER_KEY = "sysid"
_HEADER_CHECKSUM = "sysid_header_sha256"
_TENSORS_CHECKSUM = "sysid_tensors_sha256"
_V1_CHECKSUM = "tensors_sha256"
_MARKERS = ("__float__", "__tuple__", "__callable__", "__module__", "__object__", "__estimator__", "__dict__")
_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


@dataclass(frozen=True)
class FunctionRef:
    """A user function stored by name (``{"__callable__": name}``): files hold no code."""

    name: str


@dataclass(frozen=True)
class ModuleRef:
    """The user's own torch module stored by class name (``{"__module__": name}``): files hold no code."""

    name: str


@dataclass(frozen=True)
class ObjectRecord:
    """An object stored as its class name and constructor parameters (``{"__object__": ...}``)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredFile:
    """What :func:`read_file` found: the decoded header, the tensors and facts about the file."""

    path: Path
    header: dict[str, Any]
    raw_header: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    version: int
    n_bytes: int


# -- typed JSON values -----------------------------------------------------------------------------
def encode(value: Any, where: str = "value", tuples: bool = True) -> Any:
    """``value`` as JSON-ready data, with the typed values of the module docstring.

    numpy arrays and scalars become lists and numbers, paths text, callables their
    name; ``where`` names the value in the error for anything else. With
    ``tuples=False`` tuples are written as plain lists (for display: not read back as tuples).

    Raises
    ------
    TypeError
        For a value JSON cannot hold (naming ``where``).

    Examples
    --------
    >>> encode({"hidden": (32, 32), "lr": float("inf"), "f": len})
    {'hidden': {'__tuple__': [32, 32]}, 'lr': {'__float__': 'inf'}, 'f': {'__callable__': 'len'}}
    """
    if isinstance(value, ObjectRecord):
        return {"__object__": value.name, "params": encode(value.params, f"{where}.params", tuples)}
    if isinstance(value, FunctionRef):
        return {"__callable__": value.name}
    if isinstance(value, ModuleRef):
        return {"__module__": value.name}
    if isinstance(value, Mapping):
        out = {str(k): encode(v, f"{where}.{k}", tuples) for k, v in value.items()}
        return {"__dict__": out} if any(k in _MARKERS for k in out) else out
    if isinstance(value, list | tuple):
        items = [encode(v, f"{where}[{i}]", tuples) for i, v in enumerate(value)]
        return {"__tuple__": items} if tuples and isinstance(value, tuple) else items
    if isinstance(value, np.ndarray):
        return encode(value.tolist(), where, tuples)
    if isinstance(value, np.generic):
        return encode(value.item(), where, tuples)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if callable(value):
        return {"__callable__": str(getattr(value, "__qualname__", None) or repr(value))}
    raise TypeError(f"{where} is a {type(value).__name__} ({value!r:.80}), which a sysid file cannot hold")


def decode(value: Any, where: str = "header") -> Any:
    """The value :func:`encode` wrote, checked: every fault is a ModelFileError naming ``where``.

    Examples
    --------
    >>> decode({"hidden": {"__tuple__": [32, 32]}, "lr": {"__float__": "inf"}})
    {'hidden': (32, 32), 'lr': inf}
    >>> decode({"lr": {"__float__": "abc"}}, "params")
    Traceback (most recent call last):
    ...
    sysid.errors.ModelFileError: params.lr: {'__float__': 'abc'} is not a number (expected 'inf', '-inf' or 'nan').
    """
    return _decode(value, where, 0)


def _decode(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{where}: nested more than {MAX_DEPTH} levels deep; no sysid file is.")
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        raise ModelFileError(f"{where}: {type(value).__name__} is not a JSON value.")  # pragma: no cover
    markers = [k for k in value if k in _MARKERS]
    if not markers:
        return {k: _decode(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    marker = markers[0]
    content = value[marker]
    if marker in ("__object__", "__estimator__"):
        if set(value) - {marker, "params"} or not isinstance(content, str):
            raise ModelFileError(f"{where}: an object record must be {{{marker!r}: class name, 'params': {{...}}}}, "
                                 f"got keys {sorted(value)}.")
        params = value.get("params", {})
        if not isinstance(params, dict):
            raise ModelFileError(f"{where}.params: the parameters of {content!r} are a {type(params).__name__}, "
                                 "not an object.")
        return ObjectRecord(content, _decode(params, f"{where}.params", depth + 1))
    if len(value) != 1:
        raise ModelFileError(f"{where}: a {marker!r} value must be alone in its object, got keys {sorted(value)}.")
    if marker == "__float__":
        if not isinstance(content, str) or content not in _FLOATS:
            raise ModelFileError(f"{where}: {value!r} is not a number (expected 'inf', '-inf' or 'nan').")
        return _FLOATS[content]
    if marker == "__tuple__":
        if not isinstance(content, list):
            raise ModelFileError(f"{where}: a tuple must hold a list, got {type(content).__name__}.")
        return tuple(_decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(content))
    if marker in ("__callable__", "__module__"):
        if not isinstance(content, str):
            what = "function" if marker == "__callable__" else "torch module"
            raise ModelFileError(f"{where}: a {what} is stored by its name (text), got {content!r:.80}.")
        return FunctionRef(content) if marker == "__callable__" else ModuleRef(content)
    if not isinstance(content, dict):  # __dict__
        raise ModelFileError(f"{where}: {{'__dict__': ...}} must hold an object, got {type(content).__name__}.")
    return {k: _decode(v, f"{where}.{k}", depth + 1) for k, v in content.items()}


# -- checksums ------------------------------------------------------------------------------------
def _tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes (version 1's ``tensors_sha256``)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.numel():
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _header_digest(header_text: str) -> str:
    """SHA-256 of the header text (version 2)."""
    return hashlib.sha256(header_text.encode("utf-8")).hexdigest()


# -- writing ----------------------------------------------------------------------------------------
def write_file(path: str | os.PathLike[str], kind: str, content: Mapping[str, Any],
               tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``content`` (encoded as the JSON header) and ``tensors`` atomically to ``path``.

    The header gets ``"format": kind``, the format version and the sysid version first.
    The bytes go to a temporary file in the same folder, are flushed to disk, and replace
    ``path`` in one ``os.replace``: a crash, a kill or a full disk leaves the old file (or
    none) whole, never half of one.

    Raises
    ------
    ModelFileError
        ``content`` holds something JSON cannot (naming it), or the file cannot be written:
        a missing folder, a folder at ``path``, no permission, a full disk. Any previous
        file at ``path`` is then unchanged.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.sysid")
    >>> _ = write_file(path, "sysid-model", {"note": (1, 2)}, {"w": torch.ones(2)})
    >>> stored = read_file(path, "sysid-model")
    >>> stored.header["note"], stored.tensors["w"].tolist(), stored.version
    ((1, 2), [1.0, 1.0], 2)
    """
    from safetensors.torch import save as save_tensors

    import sysid

    path = Path(path)
    header = {"format": kind, "format_version": FORMAT_VERSION, "sysid_version": sysid.__version__, **content}
    try:
        text = json.dumps(encode(header, "header"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"cannot write {str(path)!r}: {exc}.") from None
    tensors = {str(k): v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    blob = save_tensors(tensors, metadata={_HEADER_KEY: text, _HEADER_CHECKSUM: _header_digest(text),
                                           _TENSORS_CHECKSUM: _tensor_digest(tensors)})
    _check_destination(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, _file_mode(path))  # mkstemp makes it private (0600); keep what a plain write gives
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # never leave a half-written file behind
        tmp = None
    except OSError as exc:
        raise ModelFileError(_write_error(path, exc)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def _check_destination(path: Path) -> None:
    if path.is_dir():
        raise ModelFileError(f"cannot write {str(path)!r}: it is a folder; give a file name such as "
                             f"{str(path / 'model.sysid')!r}.")
    if not path.parent.is_dir():
        raise ModelFileError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist; "
                             "create it first.")


def _write_error(path: Path, exc: OSError) -> str:
    kept = " The previous file there is unchanged." if path.exists() else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {str(path)!r}: no space left on the device ({exc.strerror}); free some space.{kept}"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {str(path)!r}: no permission to write in {str(path.parent)!r} ({exc.strerror}); "
                f"choose another folder.{kept}")
    if isinstance(exc, IsADirectoryError):
        return f"cannot write {str(path)!r}: it is a folder; give a file name.{kept}"
    return f"cannot write {str(path)!r}: {exc.strerror or exc}.{kept}"


def _file_mode(path: Path) -> int:
    """The permissions ``path`` has, or those a new file gets under the current umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# -- reading ----------------------------------------------------------------------------------------
def read_file(path: str | os.PathLike[str], kind: str = MODEL_FORMAT) -> StoredFile:
    """Read and check a sysid file written by :func:`write_file` (or a version 1 model file).

    Nothing is built and no code runs: the header is parsed with :mod:`json` and decoded
    (:func:`decode`), the tensors are read with safetensors at checked offsets, and the
    checksum is verified.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str
        The ``"format"`` the header must name: :data:`MODEL_FORMAT` or :data:`CHECKPOINT_FORMAT`.

    Raises
    ------
    ModelFileError
        Missing, truncated, corrupted or hostile file, another format, an unknown format
        version, a missing or wrong checksum; the message names the file and the field.
    """
    from safetensors import SafetensorError, safe_open

    if not isinstance(path, str | os.PathLike):
        raise ModelFileError(f"a model file path must be a str or os.PathLike, got {type(path).__name__} {path!r}.")
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {where!r}.")
    unreadable = f"{where!r} is not a readable sysid model file (truncated or corrupted?)"
    try:
        n_bytes = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
    except OSError as exc:
        raise ModelFileError(f"cannot read {where!r}: {exc.strerror or exc}.") from None
    if len(prefix) < 8:
        raise ModelFileError(f"{unreadable}: it is {n_bytes} bytes long, shorter than any model file.")
    header_bytes = int.from_bytes(prefix, "little")
    if header_bytes > MAX_HEADER_BYTES:
        raise ModelFileError(f"{unreadable}: its header claims {header_bytes:,} bytes, more than the "
                             f"{MAX_HEADER_BYTES:,} a sysid file may have.")
    if header_bytes < 2 or 8 + header_bytes > n_bytes:
        raise ModelFileError(f"{unreadable}: its header claims {header_bytes:,} bytes of a {n_bytes:,}-byte file.")
    try:
        with safe_open(str(path), framework="pt") as handle:  # checks the offsets against the file's size
            metadata = handle.metadata() or {}
            if _HEADER_KEY not in metadata:
                raise ModelFileError(f"{where!r} is a safetensors file but not a sysid model (no sysid header).")
            raw, version = _parse_header(metadata[_HEADER_KEY], where, kind)
            tensors = {name: handle.get_tensor(name).clone() for name in handle.keys()}  # noqa: SIM118 - a safetensors handle: keys() is all it has
    except ModelFileError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, MemoryError) as exc:
        raise ModelFileError(f"{unreadable}: {' '.join(str(exc).split())}. Save the model again with "
                             "sysid.save.") from None
    _verify(raw, metadata, tensors, version, where)
    header = decode(raw, f"{where}: header")
    return StoredFile(path, header, raw, tensors, version, n_bytes)


def _parse_header(text: str, where: str, kind: str) -> tuple[dict[str, Any], int]:
    try:
        raw = json.loads(text)
    except RecursionError:
        raise ModelFileError(f"{where!r}: the sysid header is nested deeper than Python can parse; "
                             f"no sysid file is (at most {MAX_DEPTH} levels).") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        raise ModelFileError(f"{where!r}: the sysid header is not valid JSON ({exc}).") from None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{where!r}: the sysid header is a JSON {type(raw).__name__}, not an object.")
    if raw.get("format") != kind:
        raise ModelFileError(f"{where!r}: format {raw.get('format')!r:.80}, expected {kind!r}.")
    version = raw.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        import sysid

        raise ModelFileError(
            f"{where!r} has model format version {version!r:.40}; this sysid ({sysid.__version__}) reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Load it with the sysid version that wrote it "
            f"({raw.get('sysid_version')!r:.40}) and refit, or re-save."
        )
    return raw, int(version)


def _verify(raw: dict[str, Any], metadata: dict[str, str], tensors: dict[str, torch.Tensor], version: int,
            where: str) -> None:
    """Check the checksums: version 2 covers the header text and the tensors, version 1 the tensors."""
    expected = {"tensors": _tensor_digest(tensors)}
    if version == 1:
        stored = {"tensors": raw.get(_V1_CHECKSUM)}
        names = {"tensors": _V1_CHECKSUM}
    else:
        expected["header"] = _header_digest(metadata[_HEADER_KEY])
        stored = {"header": metadata.get(_HEADER_CHECKSUM), "tensors": metadata.get(_TENSORS_CHECKSUM)}
        names = {"header": _HEADER_CHECKSUM, "tensors": _TENSORS_CHECKSUM}
    for part in ("header", "tensors"):
        if part not in expected:
            continue
        if not isinstance(stored[part], str):
            raise ModelFileError(
                f"{where!r} has no checksum of its {part} ({names[part]!r} is missing), so a corrupted or altered "
                "file cannot be told from a good one. Save the model again with sysid.save."
            )
        if stored[part] != expected[part]:
            what = "header does" if part == "header" else "tensors do"
            raise ModelFileError(f"{where!r} is corrupted: its {what} not match the checksum in its header. "
                                 "Use another copy of the file, or fit and save the model again.")
