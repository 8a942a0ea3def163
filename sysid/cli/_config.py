"""Run descriptions in TOML (read with :mod:`tomllib`), merged with command-line flags.

A config file holds the same settings as the flags, so a pipeline step is one
reproducible file; a flag given on the command line overrides the file. Example::

    # run.toml
    data = "runs.csv"           # relative paths are relative to the current folder, as flags are
    out = "model.sysid"
    time = "t"
    states = ["prey", "predator"]
    trajectory = "run"
    model = "neural"

    [options]                  # constructor parameters, for every model that has them
    random_state = 0

    [neural]                   # constructor parameters of one model
    hidden = [32, 32]
    max_epochs = 100

Grey-box, hybrid and classical models take ``rhs = "lv.py:f"``, ``params = {alpha = 1.0}``,
``bounds = {alpha = [0, "inf"]}`` and ``fixed = ["gamma"]``.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any

from sysid.cli._files import UsageError, sha256_of
from sysid.registry import cli_names

__all__ = ["MODEL_TABLES", "TOP_LEVEL_KEYS", "load_config", "parse_value"]

MODEL_TABLES = tuple(cli_names())
"""Tables of per-model constructor parameters: the names ``--model`` accepts (:mod:`sysid.registry`)."""

TOP_LEVEL_KEYS = {
    "data": "data file (CSV, Parquet or netCDF)",
    "out": "output file or folder",
    "time": "time column / dimension",
    "states": "state columns / variables",
    "inputs": "input columns / variables",
    "trajectory": "column / dimension telling experiments apart",
    "interpolate_inputs": "fill NaN inputs linearly in time",
    "sort": "sort each trajectory's rows by time",
    "model": "model name for fit",
    "models": "model names for compare",
    "rhs": "right-hand side for greybox/hybrid/classical: 'file.py:function' or a built-in name",
    "params": "initial parameter values for greybox/classical",
    "bounds": "parameter bounds for greybox/classical",
    "fixed": "parameters held fixed",
    "test_trajectories": "trajectories held out by compare",
    "time_fraction": "fraction of each trajectory's span used for fitting in compare (default 0.8)",
    "hold_out": "compare: false scores the models in-sample only (no time_fraction, no test_trajectories)",
    "truth": "simulated system whose true equations score compare",
    "n_jobs": "parallel jobs for compare",
    "options": "table of constructor parameters for every model",
}
PATH_KEYS = ("data", "out", "rhs")


def _closest(name: str, candidates: Any) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def load_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and check a TOML run description.

    Returns
    -------
    (settings, meta)
        ``settings``: the file's keys as written (relative paths are taken from the
        current folder, like the same paths given as flags); ``meta``:
        ``{"path", "sha256", "content"}`` for the provenance record.

    Raises
    ------
    UsageError
        Missing file, invalid TOML (with the line), an unknown key (with the closest
        known one) or a model table that is not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such config file: {str(path)!r}.")
    text = path.read_bytes()
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}.") from None
    known = set(TOP_LEVEL_KEYS) | set(MODEL_TABLES)
    for key, value in raw.items():
        if key not in known:
            raise UsageError(
                f"{path}: unknown key {key!r}{_closest(key, known)} Known keys: {sorted(known)}."
            )
        if (key in MODEL_TABLES or key == "options") and not isinstance(value, dict):
            raise UsageError(f"{path}: {key!r} must be a table ([{key}]) of constructor parameters, got {value!r}.")
    settings = dict(raw)
    for key in PATH_KEYS:
        value = settings.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{path}: {key!r} must be a string (a path), got {value!r}.")
    meta = {"path": str(path), "sha256": sha256_of(path), "content": text.decode("utf-8")}
    return settings, meta


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it; plain text otherwise.

    Examples
    --------
    >>> parse_value("3"), parse_value("0.5"), parse_value("true"), parse_value("[32, 32]")
    (3, 0.5, True, [32, 32])
    >>> parse_value("scale"), parse_value("none")
    ('scale', None)
    """
    stripped = text.strip()
    if stripped.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {stripped}")["v"]
    except tomllib.TOMLDecodeError:
        return stripped


def parse_bound(value: Any, what: str, side: str = "low") -> float | None:
    """One side of a bound: a number, or None/"none"/"" for an open side.

    Infinity means "no bound" only on its own side: ``-inf`` as a lower bound and ``inf``
    as an upper bound. ``inf`` as a lower bound (or ``-inf`` as an upper one) would
    leave no room at all, and NaN is no number: both are errors.

    Examples
    --------
    >>> parse_bound("0", "--bounds a"), parse_bound("-inf", "--bounds a"), parse_bound("inf", "--bounds a", "high")
    (0.0, None, None)
    >>> parse_bound("inf", "--bounds a")
    Traceback (most recent call last):
    ...
    sysid.cli._files.UsageError: --bounds a: inf as a lower bound leaves no value possible; leave it empty for none.
    """
    if side not in ("low", "high"):
        raise ValueError(f"side must be 'low' or 'high', got {side!r}")
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "null"):
            return None
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{what}: {value!r} is not a number (use an empty side or 'none' for no bound).") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{what}: {value!r} is not a number.")
    if math.isnan(value):
        raise UsageError(f"{what}: nan is not a bound; leave the side empty for no bound.")
    if math.isinf(value):
        name = "lower" if side == "low" else "upper"
        if (value > 0) == (side == "low"):
            raise UsageError(f"{what}: {value} as a{'n' if side == 'high' else ''} {name} bound leaves no value "
                             "possible; leave it empty for none.")
        return None
    return float(value)
