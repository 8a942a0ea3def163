"""``sysid info``: describe a model file (kind, states, settings, training, parameters or equations, provenance).

Nothing is run: the header is read and checked; only the equations of a model that has them
(SINDy, SparseODE) need the file loaded, and a model whose right-hand side is Python code
is not loaded at all (files hold no code).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sysid.cli._console import Console, one_line
from sysid.cli._files import UsageError
from sysid.cli._provenance import provenance_lines

__all__ = ["describe", "info_command"]


def info_command(args: argparse.Namespace, ui: Console, argv: Sequence[str]) -> int:
    """Run ``sysid info`` with the parsed ``args``: the description, or the header as JSON."""
    from sysid.io.format import encode, read_file

    stored = read_file(args.model)
    if args.json:  # tuples as lists; non-finite numbers and functions in their typed form
        ui.out(json.dumps(encode(stored.header, "header", tuples=False), indent=2, allow_nan=False))
        return 0
    try:
        lines = list(describe(args.model, stored.header, stored.tensors))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:  # a checksummed but odd header
        raise UsageError(
            f"{args.model!r}: its header cannot be described ({type(exc).__name__}: {exc}); "
            "`sysid info --json` prints it as stored."
        ) from None
    for label, value in lines:
        ui.out(f"{label:<13}{value}" if label else f"{'':<13}{value}")
    return 0


def _fmt(value: Any) -> str:
    from sysid.io.format import FunctionRef, ObjectRecord

    if isinstance(value, FunctionRef):
        return f"<function {value.name}>"
    if isinstance(value, ObjectRecord):
        return f"{value.name}(...)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _non_default_params(estimator: str, params: dict[str, Any]) -> dict[str, Any]:
    """The stored constructor parameters that differ from the defaults; a part's shown by their own names."""
    import inspect

    from sysid.io.format import ObjectRecord
    from sysid.registry import object_class

    def defaults(name: str) -> dict[str, Any] | None:
        try:
            cls = object_class(name)
            signature = inspect.signature(cls)
        except (KeyError, TypeError, ValueError):
            return None
        found = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
        for factory in (getattr(cls, "default_parts", None) or {}).values():  # flat keywords (version 1 files)
            found.update({k: v for k, v in factory().get_params(deep=False).items() if k not in found})
        return found

    def differing(name: str, values: dict[str, Any]) -> dict[str, Any]:
        known = defaults(name)
        shown: dict[str, Any] = {}
        for key, value in values.items():
            if key == "verbose":  # progress bars: not a modelling choice
                continue
            default = None if known is None else known.get(key, inspect.Parameter.empty)
            if isinstance(value, ObjectRecord) and (default is None or isinstance(default, ObjectRecord)):
                shown.update(differing(value.name, value.params))  # a part: its own settings, by their names
            elif known is None or default is inspect.Parameter.empty or value != default:
                shown[key] = value
        return shown

    return differing(estimator, params)


def describe(path: str, header: dict[str, Any], tensors: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The lines of ``sysid info``: (label, text) pairs, the label empty on a continuation line."""
    fitted = header.get("fitted") or {}
    estimator = str(header.get("estimator"))
    size = Path(path).stat().st_size
    yield "file", f"{path} ({size / 1024:.1f} kB, {len(tensors)} tensors)"
    yield "model", f"{estimator} (saved by sysid {header.get('sysid_version')}, format {header.get('format_version')})"
    yield "states", ", ".join(map(str, fitted.get("state_names_", []))) or "?"
    yield "inputs", ", ".join(map(str, fitted.get("input_names_", []))) or "none"
    options = fitted.get("data_options_") or {}
    if options:
        yield "data columns", ", ".join(f"{k}={_fmt(v)}" for k, v in options.items())
    names = fitted.get("trajectory_names_")
    if names:
        shown = ", ".join(map(str, names[:8])) + (", ..." if len(names) > 8 else "")
        yield "trained on", f"{len(names)} trajector{'y' if len(names) == 1 else 'ies'}: {shown}"
    settings = _non_default_params(estimator, header.get("params") or {})
    yield "settings", ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items()) or "defaults"
    for i, line in enumerate(_training_lines(fitted)):
        yield ("training" if i == 0 else ""), line
    params = fitted.get("params_")
    if isinstance(params, dict) and params:
        stderr = fitted.get("params_stderr_") or {}
        first = True
        for key, value in params.items():
            err = stderr.get(key)
            shown = f" ± {err:.2g}" if isinstance(err, int | float) and np.isfinite(err) and err > 0 else ""
            yield ("parameters" if first else ""), f"{key} = {value:.6g}{shown}"
            first = False
    for i, line in enumerate(_equation_lines(path, header)):
        yield ("equations" if i == 0 else ""), line
    for i, line in enumerate(provenance_lines(header)):
        yield ("provenance" if i == 0 else ""), line


def _training_lines(fitted: dict[str, Any]) -> list[str]:
    lines = []
    history = fitted.get("history_")
    if isinstance(history, dict) and history.get("loss"):
        everything = history
        history, refit_line = _kept_attempt(history)
        stages = history.get("stage") or ["adam"] * len(history["loss"])
        adam = sum(s == "adam" for s in stages)
        lbfgs = sum(s == "lbfgs" for s in stages)
        rounds = len(set(history.get("round", [0])))
        parts = [f"{adam} Adam epoch{'s' if adam != 1 else ''}"]
        if lbfgs:
            parts.append(f"{lbfgs} L-BFGS round{'s' if lbfgs != 1 else ''} of 10 steps")
        text = " + ".join(parts) + (f" over {rounds} thresholding rounds" if rounds > 1 else "")
        stop = fitted.get("stop_reason_")
        if stop:
            text += f"; stopped: {stop}"
        if fitted.get("best_epoch_") is not None:
            text += f"; best epoch {fitted['best_epoch_']}"
        lines.append(text)
        losses = [v for v in history["loss"] if isinstance(v, int | float)]
        val = [v for v in history.get("val_loss", []) if isinstance(v, int | float) and np.isfinite(v)]
        seconds = history.get("seconds") or []
        summary = f"final loss {losses[-1]:.4g}" if losses else "no loss recorded"
        if val:
            summary += f", best validation loss {min(val):.4g}"
        if seconds:
            summary += f", {sum(_round_seconds(history)):.1f} s"
        lines.append(summary)
        if refit_line:
            lines.append(f"{refit_line}; both fits {sum(_round_seconds(everything)):.1f} s")
    if fitted.get("cost_") is not None:
        lines.append(
            f"least-squares cost {fitted['cost_']:.4g} over {fitted.get('n_observations_', '?')} observed values"
        )
    if fitted.get("n_pieces_") is not None:
        lines.append(f"regression on {fitted['n_pieces_']} trajectory piece(s)")
    if fitted.get("n_function_evals_") is not None:
        lines.append(f"{int(fitted['n_function_evals_']):,} function evaluations")
    return lines


def _kept_attempt(history: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The rows of the fit that was kept, and a line saying so, when the history holds a refit.

    A NeuralODE fit that missed its own data is fitted once more from its other start; its
    ``history_`` then holds both fits (column ``attempt``) and the one with the lower free-run
    error (``val_loss``) is the model. Without that column: the history as it is, no line.
    """
    attempts = history.get("attempt")
    if not attempts:
        return history, ""
    best: dict[Any, float] = {}
    for attempt, value in zip(attempts, history.get("val_loss") or []):
        if isinstance(value, int | float) and np.isfinite(value):
            best[attempt] = min(best.get(attempt, np.inf), float(value))
    if not best:
        return history, ""
    # the refit is kept only when it is strictly better (FreeRunCheckMixin._refit_if_poor)
    kept = min(sorted(best), key=lambda a: best[a])
    rows = [i for i, a in enumerate(attempts) if a == kept]
    kept_history = {
        key: [values[i] for i in rows] if isinstance(values, list) and len(values) == len(attempts) else values
        for key, values in history.items()
    }
    which = "the first fit" if kept == min(best) else "the refit"
    line = f"refitted once from its other start (free run {min(best.values()):.4g} kept: {which})"
    return kept_history, line


def _round_seconds(history: dict[str, Any]) -> list[float]:
    """Training time per fit and thresholding round (the clock restarts for each)."""
    seconds = history.get("seconds") or []
    rounds = history.get("round") or [0] * len(seconds)
    attempts = history.get("attempt") or [0] * len(seconds)
    last: dict[Any, float] = {}
    for key, s in zip(zip(attempts, rounds), seconds):
        if isinstance(s, int | float):
            last[key] = max(last.get(key, 0.0), float(s))
    return list(last.values())


def _equation_lines(path: str, header: dict[str, Any]) -> list[str]:
    """The equations of a model that has them (SINDy, SparseODE): the file is loaded, nothing else runs."""
    from sysid.io.format import FunctionRef
    from sysid.registry import estimator_class

    try:
        has_equations = hasattr(estimator_class(str(header.get("estimator"))), "equations")
    except KeyError:
        return []
    params: dict[str, Any] = header["params"] if isinstance(header.get("params"), dict) else {}
    if not has_equations or any(isinstance(v, FunctionRef) for v in params.values()):  # files hold no code
        return []
    try:
        import sysid.io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(sysid.io.load(path).equations())
    except Exception as exc:  # noqa: BLE001 - info never fails on what it only describes
        return [f"(not shown: {one_line(exc)})"]
