"""The estimators sysid knows by name: one table for ``sysid.<Name>``, model files, the CLI and the docs.

Every place that needs the list of estimators reads it from :data:`ESTIMATORS`:
``sysid.NeuralODE`` and ``sysid.estimators.NeuralODE`` (lazy imports), :func:`sysid.load`
(the ``"estimator"`` a model file names), the command line's ``--model neural`` and the
``[neural]`` table of a TOML config, and the model tables of the docs (a test checks them).

This module imports nothing from sysid: classes are imported on first use, by the
module path written here, so a model file naming something else cannot import code.

Examples
--------
>>> from sysid.registry import cli_names, estimator_class, estimator_names
>>> cli_names()
['neural', 'sparse', 'greybox', 'hybrid', 'sindy', 'classical']
>>> "Ensemble" in estimator_names()
True
>>> estimator_class("SINDy").__name__
'SINDy'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ESTIMATORS", "Entry", "by_cli_name", "cli_names", "entry", "estimator_class", "estimator_names",
           "object_class"]


@dataclass(frozen=True)
class Entry:
    """One estimator sysid knows by name.

    Attributes
    ----------
    name : str
        The class name: ``sysid.<name>``, and the ``"estimator"`` of model files.
    module : str
        The module defining the class (imported on first use).
    cli_name : str or None
        ``--model <cli_name>`` on the command line and ``[<cli_name>]`` in a TOML config;
        None for estimators the command line does not build (an ``Ensemble`` wraps one).
    function_parameter : str or None
        The constructor parameter taking the user's right-hand side (``--rhs`` on the
        command line), for the models built from the user's equations.
    summary : str
        One line for help texts and docs.
    """

    name: str
    module: str
    cli_name: str | None = None
    function_parameter: str | None = None
    summary: str = ""


ESTIMATORS: tuple[Entry, ...] = (
    Entry("NeuralODE", "sysid.estimators._neural", "neural", None,
          "a neural network vector field trained through the ODE solver"),
    Entry("SparseODE", "sysid.estimators._sparse", "sparse", None,
          "sparse polynomial equations trained through the ODE solver"),
    Entry("GreyBoxODE", "sysid.estimators._greybox", "greybox", "f",
          "the parameters of your own torch equations, trained through the solver, with standard errors"),
    Entry("HybridODE", "sysid.estimators._hybrid", "hybrid", "known",
          "your own torch equations plus a small neural correction"),
    Entry("SINDy", "sysid.estimators._sindy", "sindy", None,
          "pysindy's sparse regression on estimated derivatives (baseline)"),
    Entry("ClassicalODE", "sysid.estimators._classical", "classical", "f",
          "the parameters of your own numpy equations by scipy least squares over solve_ivp (baseline)"),
    Entry("Ensemble", "sysid.ensemble", None, None,
          "a bootstrap ensemble of one estimator: mean prediction and quantile bands"),
)
"""Every estimator sysid can build, save and load, in the order the docs list them."""


def estimator_names() -> list[str]:
    """The class names of every registered estimator, in :data:`ESTIMATORS` order."""
    return [e.name for e in ESTIMATORS]


def cli_names() -> list[str]:
    """The ``--model`` names of the command line (and the model tables of a TOML config)."""
    return [e.cli_name for e in ESTIMATORS if e.cli_name is not None]


def entry(name: str) -> Entry:
    """The entry of the estimator class called ``name``.

    Raises
    ------
    KeyError
        For a name that is not a registered estimator.
    """
    return _first(lambda e: e.name == name, name)


def by_cli_name(cli_name: str) -> Entry:
    """The entry whose ``--model`` name is ``cli_name``.

    Raises
    ------
    KeyError
        For a name the command line does not know.
    """
    return _first(lambda e: e.cli_name is not None and e.cli_name == cli_name, cli_name)


def _first(matches: Callable[[Entry], bool], key: object) -> Entry:
    found = next((e for e in ESTIMATORS if matches(e)), None)
    if found is None:
        raise KeyError(key)
    return found


def estimator_class(name: str) -> type:
    """The estimator class called ``name`` (its module is imported on first use).

    Raises
    ------
    KeyError
        For a name that is not a registered estimator: nothing is imported then.
    """
    found = entry(name) if isinstance(name, str) else None
    if found is None:
        raise KeyError(name)
    return getattr(importlib.import_module(found.module), found.name)


def object_class(name: str) -> type:
    """The class a model file may name: a registered estimator, or one of sysid's parts (:mod:`sysid.parts`).

    Raises
    ------
    KeyError
        For any other name: nothing is imported then but sysid's own modules.
    """
    try:
        return estimator_class(name)
    except KeyError:
        pass
    if not isinstance(name, str):
        raise KeyError(name)
    return importlib.import_module("sysid.parts").part_class(name)
