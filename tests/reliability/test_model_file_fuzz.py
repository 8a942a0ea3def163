"""Fuzzing (hypothesis) model files and checkpoints: random edits of their headers and tensors.

Each example takes a real file (a saved model of every kind, or a training checkpoint),
changes one to three things (a header value anywhere in the JSON tree replaced by a random
value, a typed value, a deep nest, or deleted; a tensor dropped, reshaped or retyped),
writes it back with valid checksums (format version 1 or 2, as a deliberate edit would),
and loads it (then predicts from it and evaluates its vector field), or resumes a fit from
it. Only success or our own errors may come out (:class:`~sysid.SysidError`,
scikit-learn's ``NotFittedError``), each example within seconds, the whole test within a
bounded growth of the process's memory.
"""

from __future__ import annotations

import resource
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sysid
from sysid.errors import NotFittedError

from .conftest import decay_data, decay_numpy, decay_torch, make_estimator
from .hostile_files import interrupted_fit_checkpoint, read_raw, write_raw

OURS = (sysid.SysidError, NotFittedError)
SECONDS_PER_EXAMPLE = 5.0
MAX_GROWTH_MB = 500
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- strategies -------------------------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([10**6, 10**12, -(10**12), 2**63, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e-308, 0.0]),
    st.text(max_size=4),
    st.sampled_from(["tanh", "relu", "dopri5", "cpu", "float32", "x", "junk", ""]),
)
TYPED = st.one_of(
    st.fixed_dictionaries({"__float__": st.one_of(st.sampled_from(["inf", "-inf", "nan", "abc"]), SCALARS)}),
    st.fixed_dictionaries({"__tuple__": st.one_of(st.lists(st.integers(-2, 20), max_size=4), SCALARS)}),
    st.fixed_dictionaries({"__callable__": st.one_of(st.text(max_size=5), SCALARS)}),
    st.fixed_dictionaries(
        {
            "__object__": st.sampled_from(["NeuralODE", "SINDy", "os.system", "Ensemble"]),
            "params": st.one_of(st.dictionaries(st.text(max_size=3), SCALARS, max_size=2), SCALARS),
        }
    ),
    st.fixed_dictionaries({"__dict__": st.one_of(st.dictionaries(st.text(max_size=3), SCALARS, max_size=2), SCALARS)}),
)
VALUES = st.recursive(
    st.one_of(SCALARS, TYPED),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def deep_nests(draw) -> Any:
    depth = draw(st.sampled_from([50, 70, 1000, 100_000]))
    if depth > 100:  # deeper than Python's recursion: written as text
        return ("deep", depth)
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON tree (keys and indices), the root excluded."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*prefix, key))
        if len(found) < 2000:
            found.extend(_paths(value, (*prefix, key)))
    return found


def _perturbed(draw, value: Any) -> Any:
    """A plausible neighbour of ``value``: another number, a list one longer or shorter, other text."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, value - 1, 0, -value, value * 1000, 2**40]))
    if isinstance(value, float):
        return draw(st.sampled_from([value * 2, -value, 0.0, value * 1e12, {"__float__": "nan"}]))
    if isinstance(value, list):
        if value and draw(st.booleans()):
            return value[:-1]
        return [*value, value[-1] if value else 0]
    if isinstance(value, dict):
        keys = sorted(value)
        return {k: value[k] for k in keys[:-1]} if keys else {"extra": 1}
    if isinstance(value, str):
        return draw(st.sampled_from([value + "x", "", value.upper(), "tanh", "relu", "0"]))
    return draw(SCALARS)


@st.composite
def header_edits(draw, header: dict) -> tuple[dict, str | None]:
    """``header`` with one to three values perturbed, replaced or deleted; or raw text for a very deep nest.

    Edits aim at the constructor parameters and the fitted state more often than anywhere else.
    """
    header = _copy(header)
    text = None
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["params", "fitted", "fitted", "state", ""]))
        paths = [p for p in _paths(header) if not section or p[0] == section] or _paths(header)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["perturb", "perturb", "perturb", "replace", "typed", "delete", "nest"]))
        if action == "delete":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
            continue
        if action == "perturb":
            parent[path[-1]] = _perturbed(draw, parent[path[-1]])
            continue
        value = draw(TYPED if action == "typed" else deep_nests() if action == "nest" else VALUES)
        if isinstance(value, tuple):  # a nest too deep to build as objects
            import json

            parent[path[-1]] = "__deep__"
            text = json.dumps(header).replace('"__deep__"', "[" * value[1] + "]" * value[1], 1)
            break
        parent[path[-1]] = value
    return header, text


@st.composite
def tensor_edits(draw, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with none to two dropped, reshaped or retyped."""
    tensors = dict(tensors)
    for _ in range(draw(st.integers(0, 2)) if tensors else 0):
        name = draw(st.sampled_from(sorted(tensors)))
        action = draw(st.sampled_from(["drop", "shape", "dtype", "values"]))
        if action == "drop":
            del tensors[name]
        elif action == "shape":
            shape = draw(st.lists(st.integers(0, 5), max_size=3))
            tensors[name] = torch.zeros(shape, dtype=tensors[name].dtype)
        elif action == "dtype":
            tensors[name] = tensors[name].to(draw(st.sampled_from([torch.float32, torch.int64, torch.uint8])))
        elif tensors[name].is_floating_point():
            tensors[name] = torch.full_like(tensors[name], draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30, 0.0])))
        if not tensors:
            break
    return tensors


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# -- model files -----------------------------------------------------------------------------------------------
KINDS = ("NeuralODE", "SparseODE", "GreyBoxODE", "HybridODE", "SINDy", "ClassicalODE", "Ensemble")


def functions(kind: str) -> dict[str, Any]:
    """The user functions each kind of model is loaded with (files hold none)."""
    return {"f": decay_numpy} if kind == "ClassicalODE" else {"f": decay_torch, "known": decay_torch}


@pytest.fixture(scope="module")
def saved(fitted, decay, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """Every kind of model, saved and read back raw."""
    folder = tmp_path_factory.mktemp("fuzz-models")
    models = dict(fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models["Ensemble"] = sysid.Ensemble(make_estimator("SINDy"), n_members=2).fit(decay)
    return {name: read_raw(models[name].save(folder / f"{name}.sysid")) for name in KINDS}


def _exercise(model: Any) -> None:
    """What a user does with a loaded model: predict a new experiment, evaluate the vector field."""
    n = model.n_states_in_
    model.predict(
        t=np.linspace(0.0, 0.5, 4),
        x0=np.ones(n),
        **({"u": np.zeros((4, model.n_controls_in_))} if model.n_controls_in_ else {}),
    )
    model.vector_field(np.ones(n))


@FUZZ
@given(data=st.data())
def test_fuzzed_model_files_give_only_our_errors(data, saved, tmp_path) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    header, tensors = saved[kind]
    edited, text = data.draw(header_edits(header))
    tensors = data.draw(tensor_edits(tensors))
    version = data.draw(st.sampled_from([1, 2]))
    path = write_raw(tmp_path / "fuzzed.sysid", edited, tensors, version, text=text)
    before, start = peak_mb(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = sysid.load(path, **functions(kind))
        except OURS:
            model = None
        assert time.perf_counter() - start < SECONDS_PER_EXAMPLE  # loading (or refusing) is quick
        try:
            if model is not None:
                _exercise(model)  # bounded by the solvers' step budgets
        except OURS:
            pass
    assert peak_mb() - before < MAX_GROWTH_MB


# -- checkpoints -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[dict, dict, Any]:
    """The raw checkpoint of a NeuralODE fit interrupted in its third epoch, and the data."""
    data = decay_data()
    path = interrupted_fit_checkpoint(tmp_path_factory.mktemp("fuzz-ckpt") / "fit.ckpt", data, max_epochs=4)
    header, tensors = read_raw(path)
    return header, tensors, data


@pytest.mark.slow  # over 15 s: run by .ci/run's slow step, outside the default run
@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_fuzzed_checkpoints_give_only_our_errors(data, checkpoint, tmp_path) -> None:
    header, tensors, trajectories = checkpoint
    state_only = {"state": header["state"]}  # edits of the fingerprint are refused at once: aim at the state
    edited_state, text = data.draw(header_edits(state_only))
    edited = {**header, **edited_state}
    if text is not None:
        import json

        text = json.dumps({**header, "state": "__state__"}).replace('"__state__"', text[len('{"state": ') : -1], 1)
    tensors = data.draw(tensor_edits(tensors))
    path = write_raw(tmp_path / "fuzzed.ckpt", edited, tensors, data.draw(st.sampled_from([1, 2])), text=text)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            make_estimator("NeuralODE", checkpoint_path=path, max_epochs=4).fit(trajectories)
        except OURS:  # a refusal comes before any training: quickly (a resumed fit takes what it takes)
            assert time.perf_counter() - start < SECONDS_PER_EXAMPLE


def test_unedited_files_pass_through_the_fuzzer_helpers(saved, tmp_path) -> None:
    """The fuzzer's writer keeps a file loadable when nothing is edited (so edits are what is tested)."""
    for kind in KINDS:
        header, tensors = saved[kind]
        for version in (1, 2):
            path = write_raw(tmp_path / f"{kind}-{version}.sysid", header, tensors, version)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _exercise(sysid.load(path, **functions(kind)))
    assert Path(tmp_path).is_dir()


# -- a systematic sweep: every top-level field of every kind of model file, perturbed every way ----------------
def _perturbations(value: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(value, bool):
        out.append(not value)
    elif isinstance(value, int):
        out += [value + 1, -1, 0, 10**12]
    elif isinstance(value, float):
        out += [-value, 0.0, 1e300]
    elif isinstance(value, list):
        out += [value[:-1], [*value, value[-1] if value else 0], []]
        if value and isinstance(value[0], list):
            out.append([row[:-1] for row in value])
    elif isinstance(value, dict):
        keys = sorted(value)
        out += [{k: value[k] for k in keys[:-1]}, {}, {**value, "zz": 1.0}]
    elif isinstance(value, str):
        out += [value + "x", ""]
    return [*out, "junk", None, "__delete__"]


@pytest.mark.slow
def test_every_field_of_every_model_file_perturbed_gives_only_our_errors(saved, forced, tmp_path) -> None:
    """About 1900 files (a minute): each top-level parameter and fitted value changed, shortened, lengthened,
    emptied, retyped or deleted, for every kind of model (and two fitted with an input)."""
    files = dict(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("NeuralODE", "SINDy"):
            files[f"{name} with an input"] = read_raw(make_estimator(name).fit(forced).save(tmp_path / "u.sysid"))
    raw = []
    before = peak_mb()
    for kind, (header, tensors) in files.items():
        for section in ("params", "fitted"):
            for key in list(header[section]):
                for new in _perturbations(header[section][key]):
                    edited = _copy(header)
                    if new == "__delete__":
                        del edited[section][key]
                    else:
                        edited[section][key] = new
                    path = write_raw(tmp_path / "swept.sysid", edited, tensors, 2)
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            _exercise(sysid.load(path, **functions(kind.split()[0])))
                        except OURS:
                            pass
                        except Exception as exc:  # noqa: BLE001 - collected, reported below
                            raw.append(f"{kind} {section}.{key} = {new!r:.40}: {type(exc).__name__}: {exc!s:.100}")
                    assert time.perf_counter() - start < SECONDS_PER_EXAMPLE, f"{kind} {section}.{key} = {new!r:.40}"
    assert not raw, "\n".join(raw)
    assert peak_mb() - before < MAX_GROWTH_MB
