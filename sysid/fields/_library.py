"""The sparse library field's part: :class:`Polynomial` builds a :class:`PolynomialField`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from sysid.errors import ConfigError
from sysid.fields._polynomial import PolynomialField
from sysid.fields._spec import FieldContext, FieldSpec, Points

LIBRARIES = ("polynomial",)
#: ``degree="auto"`` is 3 up to this many state and input variables together (at most 20 terms per
#: equation), 2 above.
AUTO_CUBIC_VARIABLES = 3


class Polynomial(FieldSpec[PolynomialField]):
    """A sparse library of terms, dx/dt = Theta(x, u) Xi: readable equations.

    The library holds every monomial of the states and inputs up to ``degree``
    (pysindy's names: ``"1"``, ``"x"``, ``"x^2"``, ``"x y"``), optionally ``sin``/``cos``
    of every state and the user's own ``functions``. The coefficients start from a ridge
    least-squares fit of the library to smoothing-spline derivatives of the data
    (:meth:`warm_start`). Which terms stay is chosen by the estimator along a sparsity
    path by the simulation error (``threshold="auto"``, see :class:`sysid.SparseODE`), or
    by sequential thresholding (a number: train, zero every coefficient below it in
    physical units, retrain, ``n_threshold_rounds`` times), and/or an L1 penalty.

    Parameters
    ----------
    library : {"polynomial"}, default "polynomial"
        Library family.
    degree : int or "auto", default "auto"
        Highest total degree of the polynomial terms. ``"auto"``: 3 for up to
        ``AUTO_CUBIC_VARIABLES`` (3) state and input variables together, 2 above (the
        number of terms, and the search over them, grows as the cube of the variables: a
        degree-3 library of 4 states has 35 terms per equation, and on two coupled masses
        it took 862 CPU s for ten times degree 2's held-out error). Degree 3 holds the
        textbook systems with a cubic term (Van der Pol, Duffing, FitzHugh-Nagumo, the
        Brusselator, Sel'kov, a pendulum's sine) and, through the sparsity path, every
        lower-degree one; on the 2-state
        systems of the benchmark panel it predicted held-out runs and forecasts as well as
        degree 2 or far better (docs/interpretable.md, "The default degree").
    include_trig : bool, default False
        Add ``sin(state)`` and ``cos(state)`` terms.
    functions : dict of str to callable, optional
        Extra terms ``{name: g}``, ``g(x)`` taking the physical states as a torch tensor
        (batch, n_dims) and returning (batch,), e.g.
        ``{"exp(-x)": lambda x: torch.exp(-x[:, 0])}``. Model files store their names only.
    threshold : "auto" or float, default "auto"
        ``"auto"``: the terms are chosen by the information criterion of the simulation
        errors (:class:`sysid.SparseODE`). A number: coefficients with a magnitude below it
        (physical units) are pruned after each training.
    n_threshold_rounds : int, default 3
        With a numeric ``threshold``: prune-and-retrain rounds after the first training
        (0: no thresholding). Unused with ``"auto"``.
    l1 : float, default 0.0
        Weight of an L1 penalty on the scaled coefficients (their mean absolute value).

    Examples
    --------
    >>> import sysid
    >>> sysid.SparseODE(field=Polynomial(degree=3, include_trig=True)).get_params()["field__degree"]
    3
    """

    streaming_unsupported = "its closed-form warm start and its thresholding rounds refit every observation at once"

    def __init__(
        self,
        *,
        library: str = "polynomial",
        degree: int | str = "auto",
        include_trig: bool = False,
        functions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        threshold: float | str = "auto",
        n_threshold_rounds: int = 3,
        l1: float = 0.0,
    ) -> None:
        self.library = library
        self.degree = degree
        self.include_trig = include_trig
        self.functions = functions
        self.threshold = threshold
        self.n_threshold_rounds = n_threshold_rounds
        self.l1 = l1

    def check(self) -> None:
        self._choice("library", LIBRARIES)
        if self.degree != "auto" and (
            isinstance(self.degree, bool) or not isinstance(self.degree, int | np.integer) or self.degree < 0
        ):
            raise self._fail("degree", "a non-negative integer or 'auto'")
        if not isinstance(self.include_trig, bool | np.bool_):
            raise self._fail("include_trig", "True or False")
        if self.functions is not None:
            if not isinstance(self.functions, Mapping):
                raise ConfigError(f"functions must be a dict {{name: callable}}, got {type(self.functions).__name__}.")
            for name, g in self.functions.items():
                if not isinstance(name, str) or not callable(g):
                    raise ConfigError(
                        f"functions must map term names (str) to callables g(x) -> tensor (batch,); "
                        f"got {name!r}: {type(g).__name__}."
                    )
        if isinstance(self.threshold, str) and not self.auto:
            raise self._fail("threshold", "'auto' or a non-negative number")
        if not self.auto:
            self._number("threshold", low=0.0)
        self._number("l1", low=0.0)
        rounds = self.n_threshold_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 0:
            raise self._fail("n_threshold_rounds", "a non-negative integer")

    def degree_for(self, n_variables: int) -> int:
        """The degree of the library of ``n_variables`` states and inputs (``degree``, or what "auto" picks).

        Examples
        --------
        >>> [Polynomial().degree_for(n) for n in (1, 2, 3, 4)], Polynomial(degree=1).degree_for(4)
        ([3, 3, 3, 2], 1)
        """
        if self.degree == "auto":
            return 3 if n_variables <= AUTO_CUBIC_VARIABLES else 2
        return int(self.degree)

    def build(self, context: FieldContext) -> PolynomialField:
        self.check()
        names = context.dim_names
        clash = sorted(set(self.functions or {}) & set(names))
        if clash:
            raise ConfigError(f"functions names {clash} clash with state names {names}; rename them.")
        _, probe, _ = context.probe()
        n_dims = context.n_dims
        for name, g in (self.functions or {}).items():
            try:
                with torch.no_grad():
                    column = g(probe)
            except Exception as exc:  # reported with context
                raise ConfigError(
                    f"functions[{name!r}] raised {type(exc).__name__} on a probe batch of states with shape "
                    f"(2, {n_dims}): {exc}"
                ) from exc
            if not isinstance(column, torch.Tensor) or tuple(column.shape) not in ((2,), (2, 1)):
                got = tuple(column.shape) if isinstance(column, torch.Tensor) else type(column).__name__
                raise ConfigError(
                    f"functions[{name!r}] returned {got} for states of shape (2, {n_dims}); every function in "
                    "functions must return a tensor (batch,), one value per state row."
                )
        scaling = context.scaling
        return PolynomialField(
            names,
            list(context.input_names),
            self.degree_for(len(names) + len(context.input_names)),
            bool(self.include_trig),
            self.functions,
            context.tensor(scaling.center),
            context.tensor(scaling.spread),
            context.tensor(scaling.input_center),
            context.tensor(scaling.input_spread),
            scaling.time_unit,
            context.dtype,
        )

    def penalty(self, module: PolynomialField, points: Points | None) -> torch.Tensor | None:
        if not self.l1:
            return None
        return float(self.l1) * module.scaled_coefficients().abs().mean()

    @property
    def auto(self) -> bool:
        """Whether the terms are chosen by the selection (``threshold="auto"``), not by magnitude."""
        return isinstance(self.threshold, str) and self.threshold == "auto"

    def warm_start(
        self, module: PolynomialField, t: np.ndarray, x: np.ndarray, dx: np.ndarray, u: np.ndarray | None
    ) -> bool:
        return bool(module.fit_least_squares(t, x, dx, u))  # closed form: no generic collocation fit

    def rounds(self) -> int:
        return 0 if self.auto else int(self.n_threshold_rounds)

    def next_round(self, module: PolynomialField) -> bool:
        return bool(module.prune(float(self.threshold)))

    def results(self, module: PolynomialField, context: FieldContext) -> dict[str, Any]:
        names = list(module.term_names)
        xi = module.coefficients().detach().cpu().numpy()[:, : context.n_states]
        table = pd.DataFrame(
            xi, index=pd.Index(names, name="term"), columns=pd.Index(list(context.state_names), name="state")
        )
        return {"term_names_": names, "coefficients_": table}
