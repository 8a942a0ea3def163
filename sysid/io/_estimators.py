"""Model files: tensors in safetensors, everything else in a JSON header. No pickle.

A ``.sysid`` file is a safetensors file. Its metadata holds one JSON document with the
format version, the package version, the estimator's class and constructor
parameters, and its fitted state (names, scaling, history...). Loading reads tensors
with :func:`safetensors.torch.load` and JSON with :mod:`json`: a file can hold no code,
so loading a hostile file cannot run any.

Estimators whose parameters include the user's own Python functions (e.g. a grey-box
right-hand side) store the function's name only; pass the function again to
:func:`load` by parameter name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from sysid.errors import ModelFileError

FORMAT_NAME = "sysid-model"
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "sysid-checkpoint"
_HEADER_KEY = "sysid"


def _registry() -> dict[str, type]:
    import sysid.estimators as estimators
    from sysid.ensemble import Ensemble

    return {**{name: getattr(estimators, name) for name in estimators.__all__}, "Ensemble": Ensemble}


def jsonable(value: Any) -> Any:
    """Convert numpy/tuple values to JSON types; callables become a placeholder."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if callable(value):
        return {"__callable__": getattr(value, "__qualname__", repr(value))}
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    return value


def _restore_floats(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _restore_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_floats(v) for v in value]
    return value


def save(model: Any, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write a fitted estimator to ``path`` (safetensors tensors + JSON header).

    Parameters
    ----------
    model : fitted sysid estimator
    path : file path; conventionally ending in ``.sysid``
    extra : dict, optional
        JSON-ready information stored as is under the header key ``"extra"`` (e.g. the
        provenance the command line records: config, package version, data checksum).

    Returns
    -------
    pathlib.Path of the written file.

    Examples
    --------
    >>> import numpy as np, sysid, tempfile, os
    >>> t = np.linspace(0, 1, 8)
    >>> m = sysid.NeuralODE(hidden=(4,), max_epochs=2, lbfgs_steps=0, verbose=False).fit(np.exp(-t)[:, None], t=t)
    >>> path = sysid.save(m, os.path.join(tempfile.mkdtemp(), "m.sysid"))
    >>> loaded = sysid.load(path)
    >>> bool(np.array_equal(loaded.predict(t=t, x0=[1.0]), m.predict(t=t, x0=[1.0])))
    True
    """
    from sklearn.utils.validation import check_is_fitted

    import sysid

    check_is_fitted(model)
    record, tensors = _record(model)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sysid_version": sysid.__version__,
        **record,
    }
    if extra is not None:
        header["extra"] = jsonable(extra)
    return write_safely(path, header, tensors)


_ESTIMATOR_KEY = "__estimator__"
_MEMBERS = "members"


def _record(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header entries (estimator, params, fitted) and the tensors of one fitted estimator.

    An estimator among the parameters (an Ensemble's template) is written as its class
    and parameters; fitted sub-estimators listed under ``"members"`` in the fitted state
    (an Ensemble's members) are written the same way as this one, their tensors prefixed
    ``members.<k>.``.
    """
    name = type(model).__name__
    if name not in _registry():
        raise ModelFileError(f"cannot save a {name}: only sysid estimators ({sorted(_registry())}) can be saved.")
    state, tensors = model._fitted_state()  # first: it names the parameters it cannot store itself
    params = _encode_params(model)
    state = dict(state)
    if getattr(model, "observed_range_", None) is not None:  # for the ExtrapolationWarning of the loaded model
        state["observed_range_"] = model.observed_range_
    if _MEMBERS in state:
        records = []
        for k, member in enumerate(state[_MEMBERS]):
            record, own = _record(member)
            records.append(record)
            tensors = {**tensors, **{f"{_MEMBERS}.{k}.{key}": value for key, value in own.items()}}
        state[_MEMBERS] = records
    return {"estimator": name, "params": params, "fitted": jsonable(state)}, tensors


def _encode_params(model: Any) -> dict[str, Any]:
    """``model``'s constructor parameters as JSON; an estimator among them as its class and parameters."""
    name = type(model).__name__
    params = {}
    for key, value in model.get_params(deep=False).items():
        if hasattr(value, "get_params") and hasattr(value, "fit"):
            if type(value).__name__ not in _registry():
                raise ModelFileError(
                    f"cannot save this {name}: its {key}= is a {type(value).__name__}, and a model file holds no "
                    f"code, so only {name}s of sysid estimators ({sorted(_registry())}) can be saved."
                )
            params[key] = {_ESTIMATOR_KEY: type(value).__name__, "params": _encode_params(value)}
        else:
            params[key] = jsonable(value)
    return params


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes: detects a corrupted payload."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def write_safely(path: str | os.PathLike[str], header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` with the JSON ``header`` (plus their digest) atomically to ``path``.

    The bytes go to a temporary file in the same folder, are flushed to disk, and replace
    ``path`` in one ``os.replace``: a crash or a kill leaves the old file or the new one,
    never half of one.
    """
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    header = {**header, "tensors_sha256": tensor_digest(tensors)}
    blob = save_tensors(tensors, metadata={_HEADER_KEY: json.dumps(header, allow_nan=False)})
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp makes it private (0600); keep what a plain write gives
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # never leave a half-written file behind
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_mode(path: Path) -> int:
    """The permissions ``path`` has, or those a new file gets under the current umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_header(path: str | os.PathLike[str], expected: str = FORMAT_NAME,
                ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model file's JSON header and tensors (no objects are built).

    ``expected`` is the format name the header must carry (:data:`FORMAT_NAME`, or
    :data:`CHECKPOINT_FORMAT` for training checkpoints).
    """
    if not isinstance(path, str | os.PathLike):
        raise ModelFileError(f"a model file path must be a str or os.PathLike, got {type(path).__name__} {path!r}.")
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {str(path)!r}.")
    raw = path.read_bytes()
    try:
        tensors = load_tensors(raw)
        metadata = _metadata_of(raw)
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"{str(path)!r} is not a readable sysid model file (truncated or corrupted?): {exc}. "
            "Save the model again with sysid.save."
        ) from None
    if _HEADER_KEY not in metadata:
        raise ModelFileError(f"{str(path)!r} is a safetensors file but not a sysid model (no sysid header).")
    try:
        header = _restore_floats(json.loads(metadata[_HEADER_KEY]))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{str(path)!r}: the sysid header is not valid JSON ({exc}).") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{str(path)!r}: the sysid header is a JSON {type(header).__name__}, not an object.")
    if header.get("format") != expected:
        raise ModelFileError(f"{str(path)!r}: format {header.get('format')!r}, expected {expected!r}.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} has model format version {header.get('format_version')!r}; this sysid "
            f"({_version()}) reads version {FORMAT_VERSION}. Load it with the sysid version that wrote it "
            f"({header.get('sysid_version')!r}) and refit, or re-save."
        )
    digest = header.get("tensors_sha256")  # files written before the digest existed have none
    if digest is not None and digest != tensor_digest(tensors):
        raise ModelFileError(
            f"{str(path)!r} is corrupted: its tensors do not match the checksum in its header. "
            "Use another copy of the file, or fit and save the model again."
        )
    return header, tensors


def _metadata_of(raw: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (length-prefixed JSON at the file start)."""
    if len(raw) < 8:
        raise ValueError("file shorter than the safetensors header")
    n = int.from_bytes(raw[:8], "little")
    if n <= 0 or 8 + n > len(raw):
        raise ValueError("header length is out of range")
    return json.loads(raw[8 : 8 + n].decode("utf-8")).get("__metadata__", {}) or {}


def _version() -> str:
    import sysid

    return sysid.__version__


def load(path: str | os.PathLike[str], **functions: Callable[..., Any]) -> Any:
    """Read a model written by :func:`save`; its predictions are bit-identical.

    Parameters
    ----------
    path : file path
    **functions : callables
        The user functions the estimator was built with (e.g. ``f=`` for a grey-box
        model), by parameter name. Files never contain code.

    Raises
    ------
    ModelFileError
        Missing, truncated or corrupted file, unknown format version, or a required
        function not passed.
    """
    header, tensors = read_header(path)
    return _from_record(header, tensors, functions, str(path))


def _from_record(record: dict[str, Any], tensors: dict[str, torch.Tensor], functions: dict[str, Callable[..., Any]],
                 where: str) -> Any:
    """The fitted estimator a :func:`_record` describes (members of an ensemble included)."""
    model = _build(record.get("estimator"), record.get("params", {}), functions, where, record.get("sysid_version"))
    name = type(model).__name__
    fitted = record.get("fitted")
    if not isinstance(fitted, dict):
        raise ModelFileError(f"{where!r}: the fitted state of the {name} is missing.")
    if _MEMBERS in fitted:
        members = fitted[_MEMBERS]
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise ModelFileError(f"{where!r}: the {name}'s members are not a list of models.")
        fitted = {**fitted, _MEMBERS: [
            _from_record(member, _prefixed(tensors, f"{_MEMBERS}.{k}."), functions, f"{where} member {k}")
            for k, member in enumerate(members)]}
    try:
        model._set_fitted_state(fitted, tensors)
        if fitted.get("observed_range_") is not None:  # files written before it existed have none
            model.observed_range_ = np.asarray(fitted["observed_range_"], dtype=float).reshape(2, -1)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{where!r}: the fitted state does not match a {name}: {exc}") from None
    return model


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def _build(name: Any, params: Any, functions: dict[str, Callable[..., Any]], where: str, version: Any) -> Any:
    """An unfitted estimator ``name(**params)``, with the user's functions and nested estimators put back."""
    registry = _registry()
    if name not in registry:
        raise ModelFileError(f"{where!r}: unknown estimator {name!r}; known: {sorted(registry)}.")
    if not isinstance(params, dict):
        raise ModelFileError(f"{where!r}: the estimator parameters are a {type(params).__name__}, not an object.")
    params = dict(params)
    for key, value in params.items():
        if isinstance(value, dict) and _ESTIMATOR_KEY in value:
            params[key] = _build(value[_ESTIMATOR_KEY], value.get("params", {}), functions, where, version)
        elif isinstance(value, dict) and "__callable__" in value:
            if key not in functions:
                raise ModelFileError(
                    f"{name} was saved with a Python function for {key!r} ({value['__callable__']}); files hold "
                    f"no code, so pass it again: sysid.load(path, {key}=your_function)."
                )
            params[key] = functions[key]
    try:
        return registry[name](**params)
    except TypeError as exc:  # parameters this version's estimator does not take
        raise ModelFileError(
            f"{where!r}: its {name} parameters do not fit this sysid ({_version()}): {exc}. "
            f"It was written by sysid {version!r}."
        ) from None
