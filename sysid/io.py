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

import json
import os
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
_HEADER_KEY = "sysid"


def _registry() -> dict[str, type]:
    import sysid.estimators as estimators

    return {name: getattr(estimators, name) for name in estimators.__all__}


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
    name = type(model).__name__
    if name not in _registry():
        raise ModelFileError(f"cannot save a {name}: only sysid estimators ({sorted(_registry())}) can be saved.")
    state, tensors = model._fitted_state()
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sysid_version": sysid.__version__,
        "estimator": name,
        "params": jsonable(model.get_params(deep=False)),
        "fitted": jsonable(state),
    }
    if extra is not None:
        header["extra"] = jsonable(extra)
    blob = save_tensors({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()},
                        metadata={_HEADER_KEY: json.dumps(header, allow_nan=False)})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)  # never leave a half-written model behind
    return path


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model file's JSON header and tensors (no objects are built)."""
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
    if header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{str(path)!r}: unknown format {header.get('format')!r}.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} has model format version {header.get('format_version')!r}; this sysid "
            f"({_version()}) reads version {FORMAT_VERSION}. Load it with the sysid version that wrote it "
            f"({header.get('sysid_version')!r}) and refit, or re-save."
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
    registry = _registry()
    name = header.get("estimator")
    if name not in registry:
        raise ModelFileError(f"{str(path)!r}: unknown estimator {name!r}; known: {sorted(registry)}.")
    params = dict(header.get("params", {}))
    for key, value in params.items():
        if isinstance(value, dict) and "__callable__" in value:
            if key not in functions:
                raise ModelFileError(
                    f"{name} was saved with a Python function for {key!r} ({value['__callable__']}); files hold "
                    f"no code, so pass it again: sysid.load(path, {key}=your_function)."
                )
            params[key] = functions[key]
    cls = registry[name]
    model = cls(**params)
    try:
        model._set_fitted_state(header["fitted"], tensors)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r}: the fitted state does not match a {name}: {exc}") from None
    return model
