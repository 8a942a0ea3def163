"""Fitted estimators in model files: :func:`save` and :func:`load`.

A model file (:mod:`sysid.io.format`) holds the estimator's class name, its constructor
parameters, its fitted state (names, scaling, history...) and its tensors. Class names
are resolved through :mod:`sysid.registry` only, so a file naming anything else is
refused and no code is imported; user functions (a grey-box right-hand side) are stored
by name and passed again to :func:`load`.

Loading never trusts the file. Before the estimator rebuilds its modules, every tensor
factory call is measured on torch's ``meta`` device and charged to a budget of what the
file actually holds (twice its elements, plus a small allowance): constructor parameters
that would build more than that (``hidden=[4, 16000, 16000]`` in a 3 kB file) are refused
before the memory is allocated. Afterwards the loaded model must be consistent (state
and input names against their counts, a vector field that evaluates), or the file is
refused; every fault is a :class:`~sysid.ModelFileError` naming the file.

The estimator's side of the contract: ``model._fitted_state()`` returns JSON-ready fitted
attributes and a dict of tensors; ``model._set_fitted_state(state, tensors)`` rebuilds
them on an unfitted estimator built from the stored parameters. Fitted sub-estimators
listed under ``"members"`` (an Ensemble's) are written and read like the estimator itself.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from sysid.errors import ModelFileError, SysidError
from sysid.io.format import MODEL_FORMAT, FunctionRef, ModuleRef, ObjectRecord, read_file, write_file
from sysid.registry import estimator_names, object_class

__all__ = ["decode_params", "encode_params", "load", "read_header", "save"]

_MEMBERS = "members"
_DEFAULTS = "default_parts"  # header key: the resolved default parts (sysid >= session 3 files)
_TIME_KINDS = ("float", "datetime", "timedelta")  # sysid.trajectories.TimeKind; io sits below trajectories


# -- saving -----------------------------------------------------------------------------------------
def save(model: Any, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write a fitted estimator to ``path`` (safetensors tensors + JSON header, checksummed).

    Parameters
    ----------
    model : fitted sysid estimator
    path : file path; conventionally ending in ``.sysid``. Its folder must exist.
    extra : dict, optional
        JSON-ready information stored as is under the header key ``"extra"`` (e.g. the
        provenance the command line records: config, package version, data checksum).

    Returns
    -------
    pathlib.Path of the written file.

    Raises
    ------
    ModelFileError
        An estimator sysid cannot store (not a registered estimator, or built from
        objects a file cannot hold), or a file that cannot be written (missing folder,
        a folder at ``path``, no permission, a full disk); a previous file at ``path``
        is then unchanged.

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

    check_is_fitted(model)
    record, tensors = _record(model)
    if extra is not None:
        record["extra"] = extra
    return write_file(path, MODEL_FORMAT, record, tensors)


def _record(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header entries (estimator, params, fitted) and the tensors of one fitted estimator."""
    name = type(model).__name__
    _check_registered(model, f"cannot save a {name}: only sysid estimators ({estimator_names()}) can be saved.")
    state, tensors = model._fitted_state()  # first: it names the parameters it cannot store itself
    params = encode_params(model)
    state = dict(state)
    for bounds in ("observed_range_", "input_range_"):  # for the ExtrapolationWarning of the loaded model
        if getattr(model, bounds, None) is not None:
            state[bounds] = getattr(model, bounds)
    if getattr(model, "time_kind_", None) is not None:  # the loaded model refuses another kind of times too
        state["time_kind_"] = model.time_kind_
    if _MEMBERS in state:
        records = []
        for k, member in enumerate(state[_MEMBERS]):
            record, own = _record(member)
            records.append(record)
            tensors = {**tensors, **{f"{_MEMBERS}.{k}.{key}": value for key, value in own.items()}}
        state[_MEMBERS] = records
    record = {"estimator": name, "params": params, "fitted": state}
    defaults = _resolved_defaults(model)
    if defaults:
        record[_DEFAULTS] = defaults
    return record, tensors


def _resolved_defaults(model: Any) -> dict[str, ObjectRecord]:
    """The default parts a model built from parts was fitted with (each role it left at None).

    Stored beside the parameters so that a file keeps its parts when a later sysid
    changes an estimator's defaults (NeuralODE's field changed in issue #17).
    """
    if not hasattr(model, "default_parts"):
        return {}
    return {
        role: ObjectRecord(type(part).__name__, encode_params(part))
        for role in model.default_parts
        if model.get_params(deep=False).get(role, 0) is None
        for part in [model._part(role)]
    }


def _restore_defaults(model: Any, stored: Any, functions: Mapping[str, Callable[..., Any]], where: str) -> None:
    """Put back the default parts a file was fitted with, where this sysid's defaults differ."""
    name = type(model).__name__
    if stored is None:  # a file written before the defaults were stored: the estimator's defaults of then
        legacy = getattr(model, "defaults_before_recorded", {})
        for role, part in legacy.items():
            if model.get_params(deep=False).get(role, 0) is None:
                setattr(model, role, part())
        return
    if not isinstance(stored, dict) or not all(isinstance(v, ObjectRecord) for v in stored.values()):
        raise ModelFileError(f"{where!r}: the {name}'s default parts are not a mapping of role to part.")
    for role, part_record in stored.items():
        if role not in getattr(model, "default_parts", {}) or model.get_params(deep=False).get(role, 0) is not None:
            raise ModelFileError(f"{where!r}: the {name} has no default {str(role)[:40]!r} part to restore.")
        part = _build(part_record.name, part_record.params, functions, where, owner=name)
        current = model._part(role)
        if type(current) is not type(part) or encode_params(current) != encode_params(part):
            setattr(model, role, part)


def _check_registered(obj: Any, message: str) -> None:
    name = type(obj).__name__
    try:
        known = _object_class(name)
    except KeyError:
        known = None
    if known is not type(obj):
        raise ModelFileError(message)


def _object_class(name: str) -> type:
    """The class a model file may name (a registered estimator or a part); KeyError for anything else."""
    return object_class(name)


def encode_params(model: Any) -> dict[str, Any]:
    """``model``'s constructor parameters as a model file stores them.

    Nested sysid objects (an Ensemble's ``estimator``, the parts ``field=MLP(...)``,
    ``training=Training(...)``) become :class:`ObjectRecord` (class name and their own
    parameters), the user's functions :class:`FunctionRef` and torch modules
    :class:`ModuleRef` (the name only: :func:`load` takes them again);
    :func:`sysid.io.format.encode` writes the rest. The inverse is :func:`decode_params`.
    """
    name = type(model).__name__
    params: dict[str, Any] = {}
    for key, value in model.get_params(deep=False).items():
        if isinstance(value, torch.nn.Module):
            params[key] = ModuleRef(type(value).__qualname__)
        elif hasattr(value, "get_params") and not isinstance(value, type):
            _check_registered(
                value,
                (
                    f"cannot save this {name}: its {key}= is a {type(value).__name__}, and a model file holds no "
                    f"code, so only {name}s of sysid estimators ({estimator_names()}) and sysid's parts can be saved."
                ),
            )
            params[key] = ObjectRecord(type(value).__name__, encode_params(value))
        elif callable(value) and not isinstance(value, type):
            params[key] = FunctionRef(str(getattr(value, "__qualname__", None) or repr(value)))
        else:
            params[key] = value
    return params


def decode_params(
    name: str,
    params: Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    where: str,
    owner: str | None = None,
) -> dict[str, Any]:
    """The constructor keywords of ``name`` (an estimator or a part) from its stored parameters.

    The inverse of :func:`encode_params`: nested objects are built (unfitted), functions
    and torch modules taken from ``functions`` by parameter name. ``owner`` is the
    estimator a part belongs to, for the messages.
    """
    kwargs: dict[str, Any] = {}
    who = owner or name
    for key, value in params.items():
        if isinstance(value, ObjectRecord):
            part = value.name not in estimator_names()
            kwargs[key] = _build(value.name, value.params, functions, where, owner=who if part else None)
        elif isinstance(value, FunctionRef):
            if key not in functions:
                raise ModelFileError(
                    f"{who} was saved with a Python function for {key!r} ({value.name}); files hold "
                    f"no code, so pass it again: sysid.load(path, {key}=your_function)."
                )
            kwargs[key] = functions[key]
        elif isinstance(value, ModuleRef):
            module = functions.get(key)
            if not isinstance(module, torch.nn.Module):
                raise ModelFileError(
                    f"{who} was saved with your torch module {value.name} as its {key}; files hold no code, so "
                    f"pass a new instance of it: sysid.load(path, {key}={value.name}(...)). Its weights come from "
                    "the file."
                )
            kwargs[key] = module
        else:
            kwargs[key] = value
    return kwargs


def _build(
    name: Any, params: Any, functions: Mapping[str, Callable[..., Any]], where: str, owner: str | None = None
) -> Any:
    """An unfitted estimator (or part) ``name(**params)``, with the user's functions and nested objects put back."""
    import sysid

    try:
        cls = _object_class(name) if isinstance(name, str) else None
    except KeyError:
        cls = None
    if cls is None:
        raise ModelFileError(
            f"{where!r}: unknown estimator {name!r:.80}; known: {estimator_names()} (and sysid's parts)."
        )
    if not isinstance(params, dict):
        raise ModelFileError(f"{where!r}: the {name} parameters are a {type(params).__name__}, not an object.")
    kwargs = decode_params(name, params, functions, where, owner)
    for key, value in getattr(cls, "recorded_before", {}).items():
        kwargs.setdefault(key, value)  # a file written before the parameter existed: its behaviour then
    try:
        return cls(**kwargs)
    except TypeError as exc:  # parameters this version's estimator does not take
        raise ModelFileError(
            f"{where!r}: its {name} parameters do not fit this sysid ({sysid.__version__}): {exc}."
        ) from None


# -- loading ----------------------------------------------------------------------------------------
def read_header(
    path: str | os.PathLike[str],
    expected: str = MODEL_FORMAT,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A model file's checked header, as stored (plain JSON, typed values in their JSON form), and tensors.

    Nothing is built. See :func:`sysid.io.format.read_file` for what is checked, and for
    the header with its typed values decoded (``read_file(path).header``).
    """
    stored = read_file(path, expected)
    return stored.raw_header, stored.tensors


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
        Missing, truncated, corrupted or hostile file, unknown format version, a required
        function not passed, constructor parameters that do not match the tensors the
        file holds, or a fitted state that does not make a working model.
    """
    stored = read_file(path)
    return _from_record(stored.header, stored.tensors, functions, str(path))


def _from_record(
    record: dict[str, Any], tensors: dict[str, torch.Tensor], functions: Mapping[str, Callable[..., Any]], where: str
) -> Any:
    """The fitted estimator a :func:`_record` describes (members of an ensemble included)."""
    model = _build(record.get("estimator"), record.get("params", {}), functions, where)
    _restore_defaults(model, record.get(_DEFAULTS), functions, where)
    name = type(model).__name__
    fitted = record.get("fitted")
    if not isinstance(fitted, dict):
        raise ModelFileError(f"{where!r}: the fitted state of the {name} is missing.")
    if _MEMBERS in fitted:
        members = fitted[_MEMBERS]
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise ModelFileError(f"{where!r}: the {name}'s members are not a list of models.")
        fitted = {
            **fitted,
            _MEMBERS: [
                _from_record(member, _prefixed(tensors, f"{_MEMBERS}.{k}."), functions, f"{where} member {k}")
                for k, member in enumerate(members)
            ],
        }
        tensors = {k: v for k, v in tensors.items() if not k.startswith(f"{_MEMBERS}.")}
    _check_names(fitted, where, name, required=False)  # before anything is built from them
    try:
        with warnings.catch_warnings(), _AllocationBudget(tensors, where, name):
            warnings.simplefilter("ignore")  # the stored model was fitted already: its fit warnings are old news
            model._set_fitted_state(fitted, tensors)
            for bounds in ("observed_range_", "input_range_"):  # files written before them have none
                if fitted.get(bounds) is not None:
                    setattr(model, bounds, np.asarray(fitted[bounds], dtype=float).reshape(2, -1))
            if fitted.get("time_kind_") is not None:  # files written before it existed are not checked
                if fitted["time_kind_"] not in _TIME_KINDS:
                    raise ModelFileError(
                        f"its time_kind_ must be one of {list(_TIME_KINDS)}, got {str(fitted['time_kind_'])[:40]!r}."
                    )
                model.time_kind_ = fitted["time_kind_"]
        _check_loaded(model, where)
    except ModelFileError as exc:
        if where in str(exc):
            raise
        raise ModelFileError(f"{where!r}: {exc}") from exc  # the estimator's own: name the file
    except SysidError as exc:  # e.g. a ConfigError for stored parameters that cannot work
        raise ModelFileError(f"{where!r}: the {name} it describes is invalid: {exc}") from exc
    except Exception as exc:  # anything else an untrusted fitted state makes the estimator raise
        raise ModelFileError(
            f"{where!r}: the fitted state does not match a {name}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    return model


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def _check_names(values: Mapping[str, Any], where: str, name: str, required: bool = True) -> None:
    """State and input names must agree with their counts (in a stored fitted state, or a loaded model's)."""
    for names, count in (("state_names_", "n_states_in_"), ("input_names_", "n_controls_in_")):
        if not required and (names not in values or count not in values):
            continue  # the estimator reports what its state misses
        labels, n = values.get(names), values.get(count)
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < (1 if count == "n_states_in_" else 0):
            raise ModelFileError(f"{where!r}: {count}={n!r:.40} is not a valid count for a {name}.")
        if not isinstance(labels, list | tuple) or len(labels) != n:
            shown = len(labels) if isinstance(labels, list | tuple) else type(labels).__name__
            raise ModelFileError(
                f"{where!r}: {names} ({shown} name(s)) disagrees with {count}={n}: the header "
                "was altered or belongs to another model."
            )
        if not all(isinstance(s, str | int) and not isinstance(s, bool) for s in labels) or len(set(labels)) != len(
            labels
        ):
            raise ModelFileError(f"{where!r}: {names} must be distinct names, got {labels!r:.120}.")


def _check_loaded(model: Any, where: str) -> None:
    """The fitted attributes every estimator has must agree; its vector field must evaluate."""
    name = type(model).__name__
    _check_names(
        {k: getattr(model, k, None) for k in ("state_names_", "n_states_in_", "input_names_", "n_controls_in_")},
        where,
        name,
    )
    for bounds, n, names in (
        ("observed_range_", model.n_states_in_, model.state_names_),
        ("input_range_", model.n_controls_in_, model.input_names_),
    ):
        value = getattr(model, bounds, None)
        if value is not None and np.shape(value) != (2, n):
            raise ModelFileError(
                f"{where!r}: {bounds} has shape {np.shape(value)}, expected (2, {n}) for {list(names)}."
            )
    x = np.zeros(model.n_states_in_)
    u = np.zeros(model.n_controls_in_) if model.n_controls_in_ else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = np.asarray(model.vector_field(x, 0.0, u) if u is not None else model.vector_field(x, 0.0))
    if value.shape != (model.n_states_in_,):
        raise ModelFileError(
            f"{where!r}: its vector field returns shape {value.shape} for "
            f"{model.n_states_in_} states {list(model.state_names_)}; the file is inconsistent."
        )


class _AllocationBudget(TorchFunctionMode):
    """Refuse tensor allocations beyond what a model file holds, before they happen.

    Every torch factory call (``torch.empty``, ``zeros``, ``randn``... those torch's
    ``device`` context manager redirects) is first made on the ``meta`` device, which
    allocates nothing, and its size charged to a budget: twice the file's elements plus
    :attr:`ALLOWANCE`, and four times its tensors plus :attr:`CALLS` calls. A model built
    from parameters that disagree with the file's tensors (``hidden=[4, 16000, 16000]``
    stored beside a 4-unit network) runs out of budget at once, with nothing allocated.
    """

    ALLOWANCE = 1_000_000
    CALLS = 500

    def __init__(self, tensors: Mapping[str, torch.Tensor], where: str, name: str) -> None:
        super().__init__()
        from torch.utils._device import _device_constructors

        self.constructors = _device_constructors()
        held = sum(int(t.numel()) for t in tensors.values())
        self.elements = 2 * held + self.ALLOWANCE
        self.calls = 4 * len(tensors) + self.CALLS
        self.where, self.name, self.held = where, name, held

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func not in self.constructors or kwargs.get("out") is not None:
            return func(*args, **kwargs)
        if func in (torch.tensor, torch.as_tensor, torch.asarray):  # from data that exists already
            result = func(*args, **kwargs)
            self._charge(int(result.numel()))
            return result
        probe = {k: v for k, v in kwargs.items() if k not in ("generator", "pin_memory")}
        self._charge(int(func(*args, **{**probe, "device": "meta"}).numel()))
        return func(*args, **kwargs)

    def _charge(self, elements: int) -> None:
        self.elements -= elements
        self.calls -= 1
        if self.elements < 0 or self.calls < 0:
            raise ModelFileError(
                f"{self.where!r}: its {self.name} parameters describe a model larger than the tensors the file "
                f"holds ({self.held:,} values); the header was altered or belongs to another model. Nothing was "
                "built."
            )
