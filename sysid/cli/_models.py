"""Estimators by name for the command line (``--model``, TOML tables), and the model flags.

The names come from the one registry, :mod:`sysid.registry`; :data:`MODEL_FLAGS` is the
one table of the dedicated model flags (``--hidden``...): the parser, the settings and the
error messages all read it.

Grey-box, hybrid and classical models need the user's right-hand side. On the command line
it comes from a Python file named with ``--rhs path.py:function``: running that file
is the user's explicit choice. The Lotka-Volterra right-hand side is built in
(``--rhs lotka_volterra``), in numpy for ClassicalODE and in torch for GreyBoxODE and
HybridODE (its known part).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sysid import registry
from sysid.cli._config import parse_bound, parse_value
from sysid.cli._files import UsageError, sha256_of

__all__ = [
    "BUILTIN_RHS",
    "MODEL_FLAGS",
    "NEEDS_RHS",
    "ModelFlag",
    "RhsSpec",
    "build_estimator",
    "check_model_name",
    "cli_name_of",
    "constructor_parameters",
    "load_rhs",
    "lotka_volterra_numpy",
    "model_class",
    "parse_bounds",
    "parse_fixed",
    "parse_params",
    "parse_set",
    "rhs_file",
    "rhs_parameter",
]

NEEDS_RHS = tuple(e.cli_name for e in registry.ESTIMATORS if e.cli_name and e.function_parameter)
"""The models built from the user's right-hand side (``--rhs``), from :mod:`sysid.registry`."""


def rhs_parameter(name: str) -> str | None:
    """The constructor parameter taking model ``name``'s right-hand side (None if it takes none)."""
    return registry.by_cli_name(check_model_name(name)).function_parameter


def cli_name_of(class_name: Any) -> str | None:
    """The ``--model`` name of an estimator class name (None for classes the command line does not build)."""
    try:
        return registry.entry(str(class_name)).cli_name
    except KeyError:
        return None


# -- the dedicated model flags: one table ---------------------------------------------------------
def int_list(text: str) -> tuple[int, ...]:
    """``"64,64"`` as ``(64, 64)``: layer widths (an argparse type)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths like 64,64, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return values


@dataclass(frozen=True)
class ModelFlag:
    """A command-line flag that sets one constructor parameter of the models that have it."""

    parameter: str
    metavar: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        """``--max-epochs`` for ``max_epochs``."""
        return "--" + self.parameter.replace("_", "-")

    def add_to(self, group: Any) -> None:
        """Add this flag to an argparse parser or argument group."""
        extra = {"choices": self.choices} if self.choices else {"type": self.type, "metavar": self.metavar}
        group.add_argument(self.flag, dest=self.parameter, help=self.help, **extra)


MODEL_FLAGS: tuple[ModelFlag, ...] = (
    ModelFlag("hidden", "64,64", "neural, hybrid: hidden layer widths", int_list),
    ModelFlag("max_epochs", "N", "neural, sparse, greybox, hybrid: Adam epochs", int),
    ModelFlag("lbfgs_steps", "N", "neural, sparse, greybox, hybrid: L-BFGS polish steps", int),
    ModelFlag("degree", "N", "sparse, sindy: polynomial degree", int),
    ModelFlag("threshold", "X", "sparse, sindy: sparsity threshold", float),
    ModelFlag("random_state", "N", "seed (every model that has one)", int),
    ModelFlag("gradient", "", "neural, sparse, greybox, hybrid", choices=("adjoint", "backprop")),
)
"""The dedicated model flags; any other constructor parameter goes through ``--set KEY=VALUE``."""


# -- built-in right-hand sides -------------------------------------------------------------
def lotka_volterra_numpy(t: float, x: np.ndarray, p: Mapping[str, float], u: Any) -> list[float]:
    """Lotka-Volterra for ClassicalODE: prey' = (alpha - beta predator) prey,
    predator' = (delta prey - gamma) predator; the first state is the prey."""
    prey, predator = x[0], x[1]
    return [(p["alpha"] - p["beta"] * predator) * prey, (p["delta"] * prey - p["gamma"]) * predator]


def lotka_volterra_torch(t: Any, x: Any, p: Mapping[str, Any], u: Any) -> Any:
    """Lotka-Volterra for GreyBoxODE (batched torch): the same equations as the numpy one."""
    import torch

    prey, predator = x[:, 0], x[:, 1]
    return torch.stack([(p["alpha"] - p["beta"] * predator) * prey,
                        (p["delta"] * prey - p["gamma"]) * predator], dim=-1)


@dataclass(frozen=True)
class Builtin:
    """A right-hand side shipped with sysid: one function per model kind, default parameters."""

    functions: dict[str, Callable[..., Any]]
    params: dict[str, float]
    bounds: dict[str, tuple[float | None, float | None]]
    n_states: int
    description: str


BUILTIN_RHS: dict[str, Builtin] = {
    "lotka_volterra": Builtin(
        functions={"classical": lotka_volterra_numpy, "greybox": lotka_volterra_torch,
                   "hybrid": lotka_volterra_torch},
        params={"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "delta": 1.0},
        bounds=dict.fromkeys(("alpha", "beta", "gamma", "delta"), (0.0, None)),
        n_states=2,
        description="d prey/dt = (alpha - beta predator) prey; d predator/dt = (delta prey - gamma) predator",
    ),
}


@dataclass(frozen=True)
class RhsSpec:
    """The right-hand side a user named, and where it came from (for the provenance record)."""

    spec: str
    function: Callable[..., Any]
    builtin: str | None = None
    path: str | None = None
    sha256: str | None = None
    defaults: dict[str, float] = field(default_factory=dict)
    default_bounds: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-ready description stored in the model file."""
        return {"spec": self.spec, "builtin": self.builtin, "path": self.path, "sha256": self.sha256,
                "function": getattr(self.function, "__name__", None)}


def _suggest(name: str, candidates: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {match[0]!r}?" if match else "."


def load_rhs(spec: str, kind: str) -> RhsSpec:
    """Resolve ``--rhs``: a built-in name, or ``path.py:function`` (the file is run).

    Raises
    ------
    UsageError
        Malformed spec, missing file, a file that fails to run, or a missing function
        (the closest name defined in the file is suggested).
    """
    spec = str(spec).strip()
    path_text, sep, function_name = spec.rpartition(":")
    if not sep or not path_text:
        if spec in BUILTIN_RHS:
            builtin = BUILTIN_RHS[spec]
            return RhsSpec(spec, builtin.functions[kind], builtin=spec, defaults=dict(builtin.params),
                           default_bounds=dict(builtin.bounds))
        raise UsageError(
            f"--rhs {spec!r}: expected 'path/to/file.py:function' or a built-in right-hand side "
            f"{sorted(BUILTIN_RHS)}{_suggest(spec, list(BUILTIN_RHS))}"
        )
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"--rhs {spec!r}: no such Python file {path_text!r}.")
    if not function_name.isidentifier():
        raise UsageError(f"--rhs {spec!r}: {function_name!r} is not a Python function name.")
    digest = sha256_of(path)
    module_spec = importlib.util.spec_from_file_location(f"sysid_cli_rhs_{digest[:16]}", path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"--rhs {spec!r}: {path_text!r} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)  # the user's own code, named on the command line
    except Exception as exc:  # any error in the user's file
        raise UsageError(f"--rhs {spec!r}: running {path_text} raised {type(exc).__name__}: {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        defined = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                   and getattr(v, "__module__", None) == module.__name__]
        raise UsageError(
            f"--rhs {spec!r}: {path_text} defines no function {function_name!r}"
            f"{_suggest(function_name, defined)[:-1] if defined else ''}"
            f"{'; it defines ' + str(sorted(defined)) if defined else ''}."
        )
    return RhsSpec(spec, function, path=str(path.resolve()), sha256=digest)


def rhs_file(spec: Any) -> str | None:
    """The Python file of an ``--rhs file.py:function`` spec (None for a built-in or no spec).

    Examples
    --------
    >>> rhs_file("models/lv.py:f"), rhs_file("lotka_volterra"), rhs_file(None)
    ('models/lv.py', None, None)
    """
    if not isinstance(spec, str):
        return None
    path, sep, _ = spec.strip().rpartition(":")
    return path if sep and path else None


# -- parameters ------------------------------------------------------------------------------
def _pairs(text: Any, what: str, example: str) -> list[tuple[str, str]]:
    if isinstance(text, str):
        items = [item.strip() for item in text.split(",") if item.strip()]
        pairs = []
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise UsageError(f"{what}: expected name=value pairs like {example!r}, got {item!r}.")
            pairs.append((name.strip(), value.strip()))
        if not pairs:
            raise UsageError(f"{what}: expected name=value pairs like {example!r}, got {text!r}.")
        return pairs
    if isinstance(text, Mapping):
        return [(str(k), v) for k, v in text.items()]
    raise UsageError(f"{what}: expected name=value pairs like {example!r} (or a TOML table), got {text!r}.")


def parse_params(text: Any) -> dict[str, float]:
    """``"alpha=1,beta=0.5"`` (or a TOML table) as ``{"alpha": 1.0, "beta": 0.5}``.

    Examples
    --------
    >>> parse_params("alpha=1, beta=0.5")
    {'alpha': 1.0, 'beta': 0.5}
    >>> parse_params("alpha=fast")
    Traceback (most recent call last):
    ...
    sysid.cli._files.UsageError: --params: alpha=fast is not a number; write e.g. 'alpha=1,beta=0.5'.
    """
    out = {}
    for name, value in _pairs(text, "--params", "alpha=1,beta=0.5"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not np.isfinite(number):
            raise UsageError(f"--params: {name}={value} is not a number; write e.g. 'alpha=1,beta=0.5'.")
        out[name] = number
    return out


def parse_bounds(text: Any) -> dict[str, tuple[float | None, float | None]]:
    """``"alpha=0:10,beta=0:"`` (or a TOML table of pairs) as ``{"alpha": (0, 10), "beta": (0, None)}``.

    Examples
    --------
    >>> parse_bounds("alpha=0:10, beta=0:")
    {'alpha': (0.0, 10.0), 'beta': (0.0, None)}
    """
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, value in _pairs(text, "--bounds", "alpha=0:10,beta=0:"):
        if isinstance(value, str):
            low, sep, high = value.partition(":")
            if not sep:
                raise UsageError(f"--bounds: {name}={value} must be low:high (leave a side empty for no bound).")
        elif isinstance(value, Sequence) and len(value) == 2:
            low, high = value
        else:
            raise UsageError(f"--bounds: {name} must be a pair [low, high], got {value!r}.")
        out[name] = (parse_bound(low, f"--bounds {name}", "low"), parse_bound(high, f"--bounds {name}", "high"))
    return out


def parse_fixed(text: Any) -> list[str] | None:
    """``"gamma,delta"`` (or a list) as a list of names."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [str(s).strip() for s in items if str(s).strip()]
    return names


def parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    """Repeated ``--set key=value`` as constructor parameters (values read as TOML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--set expects key=value with a parameter name, e.g. --set lr=0.005; got {item!r}.")
        out[key.strip()] = parse_value(value)
    return out


# -- classes and construction ----------------------------------------------------------------
def check_model_name(name: str) -> str:
    """The model name, or a UsageError suggesting the closest known one."""
    key = str(name).strip().lower()
    names = registry.cli_names()
    if key not in names:
        raise UsageError(f"unknown model {name!r}{_suggest(key, names)} Models: {', '.join(names)}.")
    return key


def model_class(name: str) -> type:
    """The estimator class behind a model name (:mod:`sysid.registry`)."""
    entry = registry.by_cli_name(check_model_name(name))
    try:
        return registry.estimator_class(entry.name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"model {name!r} is not available in this sysid installation: {entry.module}.{entry.name} "
            f"cannot be imported ({type(exc).__name__}: {exc})."
        ) from None


def constructor_parameters(cls: type) -> list[str]:
    """Names of the estimator's constructor parameters, with its parts' parameters given flat."""
    signature = inspect.signature(cls)
    names = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    flat = getattr(cls, "flat_parameters", None)
    return names + sorted(set(flat()) - set(names)) if flat is not None else names


def build_estimator(
    name: str,
    options: Mapping[str, Any],
    *,
    rhs: RhsSpec | None = None,
    params: Mapping[str, float] | None = None,
    bounds: Mapping[str, Any] | None = None,
    fixed: Sequence[str] | None = None,
    verbose: bool = True,
    strict: bool = True,
) -> Any:
    """An unfitted estimator with the given constructor ``options``.

    Parameters
    ----------
    name : model name (:func:`sysid.registry.cli_names`)
    options : constructor parameters; with ``strict``, each must be one of the
        estimator's (else UsageError listing them); without, the others are ignored.
    rhs, params, bounds, fixed : for the models that need a right-hand side.
    verbose : progress bars for the estimators that have them.
    """
    key = check_model_name(name)
    cls = model_class(key)
    accepted = constructor_parameters(cls)
    chosen: dict[str, Any] = {}
    for option, value in options.items():
        if option in accepted:
            chosen[option] = value
        elif strict:
            settings = [p for p in accepted if p not in ("f", "known", "params", "bounds", "fixed")]
            raise UsageError(
                f"{_flag(option)} does not apply to --model {key} ({cls.__name__}){_suggest(option, accepted)[:-1]}; "
                f"its settings are {', '.join(settings)}."
            )
    if "hidden" in chosen and isinstance(chosen["hidden"], list):
        chosen["hidden"] = tuple(chosen["hidden"])
    if "verbose" in accepted and "verbose" not in chosen:
        chosen["verbose"] = verbose
    if key in NEEDS_RHS:
        if rhs is None:
            raise UsageError(
                f"--model {key} needs the right-hand side: --rhs file.py:function (f(t, x, p, u)) or a built-in "
                f"({', '.join(BUILTIN_RHS)}), and --params name=value,..."
            )
        merged = dict(rhs.defaults)
        merged.update(params or {})
        if not merged:
            raise UsageError(f"--model {key} needs --params with the initial parameter values, e.g. alpha=1,beta=0.5.")
        parameter = rhs_parameter(key)
        if parameter is None:  # NEEDS_RHS holds only the models the registry gives a function parameter
            raise RuntimeError(f"sysid.registry: {cls.__name__} is in NEEDS_RHS without a function parameter")
        chosen.update({parameter: rhs.function, "params": merged})
        chosen_bounds = dict(rhs.default_bounds)
        chosen_bounds.update(bounds or {})
        chosen_bounds = {k: v for k, v in chosen_bounds.items() if k in merged}
        if chosen_bounds:
            chosen["bounds"] = chosen_bounds
        if fixed:
            chosen["fixed"] = list(fixed)
    elif (rhs is not None or params or bounds or fixed) and strict:
        raise UsageError(f"--rhs/--params/--bounds/--fixed apply to greybox, hybrid and classical models, "
                         f"not {key}.")
    return cls(**chosen)


def _flag(option: str) -> str:
    for flag in MODEL_FLAGS:
        if flag.parameter == option:
            return flag.flag
    return f"the setting {option!r}"
