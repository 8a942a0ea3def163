"""One run's settings: the config file's values overridden by the flags given, per model.

The one place the precedence lives, for ``fit`` and ``compare``: ``[options]`` (where it
applies) < the model's own table < ``--set`` < the dedicated flags (``--hidden``...).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import Any

from sysid.cli._config import load_config
from sysid.cli._files import UsageError, parse_names
from sysid.cli._models import (
    MODEL_FLAGS,
    constructor_parameters,
    model_class,
    parse_bounds,
    parse_fixed,
    parse_params,
    parse_set,
)
from sysid.registry import cli_names

__all__ = ["DATA_KEYS", "DEFAULT_TIME_FRACTION", "data_settings", "flag_settings", "model_settings", "required",
           "rhs_settings", "settings_of"]

DATA_KEYS = ("time", "states", "inputs", "trajectory", "interpolate_inputs", "sort")
"""Settings that say how to read the data file (the adapters' options)."""

DEFAULT_TIME_FRACTION = 0.8
"""Share of each trajectory's time span ``demo`` and ``compare`` fit on by default; the rest is held out."""


def settings_of(args: argparse.Namespace, keys: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Config-file settings overridden by the flags that were given.

    Returns
    -------
    (settings, meta)
        ``meta`` describes the config file for the provenance record (None without ``--config``).

    Examples
    --------
    >>> args = argparse.Namespace(config=None, data="runs.csv", out=None)
    >>> settings_of(args, ("data", "out"))
    ({'data': 'runs.csv'}, None)
    """
    settings: dict[str, Any] = {}
    meta = None
    if getattr(args, "config", None):
        settings, meta = load_config(args.config)
    for key in keys:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    return settings, meta


def data_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The options for reading the data file (:data:`DATA_KEYS`), names split and values typed.

    Examples
    --------
    >>> data_settings({"time": "t", "states": "prey, predator", "model": "neural"})
    {'time': 't', 'states': ['prey', 'predator']}
    """
    options: dict[str, Any] = {}
    for key in DATA_KEYS:
        value = settings.get(key)
        if value is None:
            continue
        if key in ("states", "inputs"):
            value = parse_names(value, f"--{key}")
        elif key in ("interpolate_inputs", "sort"):
            value = bool(value)
        else:
            value = str(value)
        options[key] = value
    return options


def flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options given on the command line: --set, then the dedicated flags."""
    options = parse_set(getattr(args, "set_options", None))
    for flag in MODEL_FLAGS:
        value = getattr(args, flag.parameter, None)
        if value is not None:
            options[flag.parameter] = value
    return options


def _shared_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The config's [options] table, each key checked against every model's parameters."""
    shared = dict(settings.get("options", {}))
    if not shared:
        return shared
    known: set[str] = set()
    for name in cli_names():
        with contextlib.suppress(UsageError):
            known.update(constructor_parameters(model_class(name)))
    unknown = sorted(set(shared) - known)
    if unknown:
        raise UsageError(f"[options] in the config sets {unknown}, which no model has.")
    return shared


def model_settings(settings: dict[str, Any], flags: dict[str, Any], model: str, accepted: set[str],
                   every_flag: bool) -> dict[str, Any]:
    """Constructor options for one model: [options] (where it applies) < [model] table < --set < flags.

    ``flags`` are the command line's (:func:`flag_settings`); with ``every_flag`` all of
    them are kept, for the estimator to refuse those it lacks (fit: one model, every flag
    meant for it), else only those the model has (compare: each flag goes to the models
    that have it).
    """
    options = {k: v for k, v in _shared_options(settings).items() if k in accepted}
    table = dict(settings.get(model, {}))
    unknown = sorted(set(table) - accepted)
    if unknown:
        raise UsageError(f"[{model}] in the config sets {unknown}, which {model_class(model).__name__} does not have; "
                         f"its settings are {sorted(accepted)}.")
    options.update(table)
    options.update(flags if every_flag else {k: v for k, v in flags.items() if k in accepted})
    return options


def rhs_settings(settings: dict[str, Any]) -> tuple[dict[str, float] | None, dict[str, Any] | None, list[str] | None]:
    """``(params, bounds, fixed)`` for a right-hand side model, parsed; None where not given.

    Examples
    --------
    >>> rhs_settings({"params": "a=1,b=2", "fixed": "b"})
    ({'a': 1.0, 'b': 2.0}, None, ['b'])
    """
    params = parse_params(settings["params"]) if settings.get("params") is not None else None
    bounds = parse_bounds(settings["bounds"]) if settings.get("bounds") is not None else None
    return params, bounds, parse_fixed(settings.get("fixed"))


def required(settings: dict[str, Any], key: str, what: str) -> Any:
    """``settings[key]``, or a UsageError saying where to give it."""
    value = settings.get(key)
    if value is None or value == "":
        raise UsageError(f"missing {what} (give it on the command line or as {key!r} in --config).")
    return value
