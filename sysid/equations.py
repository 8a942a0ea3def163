"""Equations people can use: coefficient tables as text, LaTeX and sympy expressions.

Sparse models (:class:`~sysid.SparseODE`, :class:`~sysid.SINDy`, :func:`~sysid.distill`)
hold their equations as a coefficient table: library terms (``"1"``, ``"prey"``,
``"prey^2"``, ``"prey predator"``, ``"sin(theta)"``) by states. This module turns such a
table into what a scientist writes down:

- text, ``d omega/dt = -(19.6 ± 0.1) sin(theta) - (0.35 ± 0.02) omega``, each coefficient
  to the precision its standard error supports (one significant digit of the error, two
  when it starts with a 1), or to three significant figures when there is no standard
  error, so ``0.0248 hare lynx`` is never shown as ``0.02``;
- LaTeX, the same with ``\\pm`` and ``\\frac{d\\,\\theta}{dt}``;
- sympy expressions of the right-hand sides (exact coefficients), to simplify,
  differentiate, or ``sympy.lambdify``.

:class:`EquationsMixin` gives a model with ``coefficients_`` (and, when it estimated
them, ``coefficients_stderr_`` of the same shape) the methods ``equations()`` and
``print()``. Plain pandas, numpy and sympy: no torch, no pysindy.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sysid.errors import ConfigError, NotFittedError

if TYPE_CHECKING:
    import sympy

__all__ = ["EquationsMixin", "format_coefficient", "format_equations", "sympy_equations", "term_expression"]

SIGNIFICANT_DIGITS = 3
"""Significant figures of a coefficient shown without a standard error."""

_KINDS = ("text", "latex", "sympy")
_FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "abs")
_POWER = re.compile(r"^(?P<base>.+)\^(?P<exp>\d+)$")
_CALL = re.compile(rf"^(?P<f>{'|'.join(_FUNCTIONS)})\((?P<arg>.*)\)$")
_NAME = re.compile(r"^[^\s()^*/+]+$")


# -- numbers ---------------------------------------------------------------------------------------
def _check_precision(precision: Any) -> int | None:
    if precision is None:
        return None
    if isinstance(precision, bool) or not isinstance(precision, int | np.integer) or precision < 0:
        raise ConfigError(f"precision must be None (automatic) or a non-negative integer of decimals, got "
                          f"{precision!r}.")
    return int(precision)


def _parts(value: float, stderr: float | None, precision: int | None) -> tuple[str, str | None, int]:
    """(|value| text, stderr text or None, power of ten) of one coefficient."""
    magnitude = abs(value)
    if not math.isfinite(magnitude):
        return str(magnitude), None, 0
    has_error = stderr is not None and math.isfinite(stderr) and stderr > 0
    if precision is not None:
        text = f"{magnitude:.{precision}f}"
        if magnitude and float(text) == 0.0:  # too small for `precision` decimals: never hide a term
            text = f"{magnitude:.{max(precision, 1)}g}"
        return text, f"{stderr:.{precision}f}" if has_error else None, 0
    reference = magnitude if magnitude else (stderr if has_error else 0.0)
    power = 0
    if reference and not 1e-3 <= float(f"{reference:.{SIGNIFICANT_DIGITS - 1}e}") < 1e5:
        power = math.floor(math.log10(float(f"{reference:.{SIGNIFICANT_DIGITS - 1}e}")))
    scale = 10.0**power
    magnitude /= scale
    if has_error:
        error = float(stderr) / scale  # type: ignore[arg-type]
        exponent = math.floor(math.log10(float(f"{error:.0e}")))
        lead = float(f"{error:.0e}") / 10.0**exponent
        place = exponent - (1 if lead < 2 else 0)  # 0.13 -> 0.13, 0.4 -> 0.4
        decimals = max(0, -place)
        rounded, error = round(magnitude, -place), round(error, -place)
        return f"{rounded:.{decimals}f}", f"{error:.{decimals}f}", power
    if not magnitude:
        return "0", None, power
    exponent = math.floor(math.log10(float(f"{magnitude:.{SIGNIFICANT_DIGITS - 1}e}")))
    place = exponent - (SIGNIFICANT_DIGITS - 1)
    return f"{round(magnitude, -place):.{max(0, -place)}f}", None, power


def format_coefficient(value: float, stderr: float | None = None, precision: int | None = None,
                       kind: str = "text") -> str:
    """One number, to the precision its standard error supports.

    Parameters
    ----------
    value : float
    stderr : float, optional
        Its standard error. The error is shown to one significant digit (two when that
        digit is a 1, so 0.14 does not become 0.1), and the value to the same decimal
        place. NaN, zero or None: no error shown.
    precision : int, optional
        Fixed decimals instead (pysindy's meaning of ``precision``).
    kind : {"text", "latex"}

    Returns
    -------
    str

    Examples
    --------
    >>> format_coefficient(-19.6234, 0.3), format_coefficient(-19.6234, 0.013), format_coefficient(1234.0, 300.0)
    ('-19.6 ± 0.3', '-19.623 ± 0.013', '1200 ± 300')
    >>> format_coefficient(0.024814), format_coefficient(1.5), format_coefficient(2.5e-6, 3e-7)
    ('0.0248', '1.50', '(2.5 ± 0.3)e-06')
    >>> format_coefficient(0.55, 0.06, kind="latex")
    '0.55 \\\\pm 0.06'
    """
    if kind not in ("text", "latex"):
        raise ConfigError(f"kind must be 'text' or 'latex', got {kind!r}.")
    digits, error, power = _parts(float(value), None if stderr is None else float(stderr),
                                  _check_precision(precision))
    return ("-" if value < 0 else "") + _render(digits, error, power, kind, bare=True)


def _render(digits: str, error: str | None, power: int, kind: str, bare: bool = False) -> str:
    """A magnitude as text or LaTeX, in parentheses when it carries an error (unless ``bare``)."""
    latex = kind == "latex"
    pm = r" \pm " if latex else " ± "
    body = digits if error is None else f"{digits}{pm}{error}"
    if error is not None and (power or not bare):
        body = rf"\left({body}\right)" if latex else f"({body})"
    if power:
        body += rf" \times 10^{{{power}}}" if latex else f"e{power:+03d}"
    return body


# -- terms -----------------------------------------------------------------------------------------
def _split_factors(term: str) -> list[str]:
    """Factors of a library term: split on spaces outside parentheses."""
    factors, depth, current = [], 0, ""
    for char in term.strip():
        depth += (char == "(") - (char == ")")
        if char.isspace() and depth == 0:
            if current:
                factors.append(current)
            current = ""
        else:
            current += char
    if current:
        factors.append(current)
    return factors


def term_expression(term: str) -> sympy.Expr:
    """A library term's name as a sympy expression.

    Understood: ``"1"``, numbers, variable names (any token without spaces, brackets or
    operators, e.g. ``"prey"``, ``"x0"``, ``"hare_thousands"``), powers ``"prey^2"``,
    products separated by spaces ``"prey predator"``, and ``sin cos tan exp log sqrt
    tanh sinh cosh abs`` of any of these (``"sin(theta)"``, pysindy's ``"sin(1 x0)"``),
    also raised to a power (``"cos(theta)^2"``).
    Anything else (a user function's name such as ``"exp(-prey)"`` or ``"f0(x0)"``)
    becomes an opaque symbol of that name: nothing is ever evaluated (no ``eval``).

    Examples
    --------
    >>> term_expression("prey^2 predator"), term_expression("sin(1 x0)"), term_expression("1")
    (predator*prey**2, sin(x0), 1)
    """
    import sympy

    product: sympy.Expr = sympy.Integer(1)
    for factor in _split_factors(str(term)):
        product *= _factor(factor)
    return product


def _factor(text: str) -> sympy.Expr:
    import sympy

    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return sympy.Integer(int(number)) if number.is_integer() else sympy.Float(number)
    power = _POWER.match(text)
    if power and power["base"].count("(") == power["base"].count(")"):
        return _factor(power["base"]) ** int(power["exp"])
    call = _CALL.match(text)
    if call and call["arg"].count("(") == call["arg"].count(")"):
        function = sympy.Abs if call["f"] == "abs" else getattr(sympy, call["f"])
        return function(term_expression(call["arg"]))
    return sympy.Symbol(text)  # a plain name, or an opaque user term


def _term_latex(term: str) -> str:
    import sympy

    return sympy.latex(term_expression(term))


# -- tables ----------------------------------------------------------------------------------------
def _check_table(coefficients: Any, stderr: Any) -> pd.DataFrame | None:
    if not isinstance(coefficients, pd.DataFrame):
        raise ConfigError(
            f"coefficients must be a pandas DataFrame (terms x states), got {type(coefficients).__name__}."
        )
    if stderr is None:
        return None
    if not isinstance(stderr, pd.DataFrame):
        raise ConfigError(f"stderr must be None or a DataFrame shaped like the coefficients (terms x states), got "
                          f"{type(stderr).__name__}.")
    unknown = [c for c in stderr.columns if c not in coefficients.columns]
    if unknown:
        raise ConfigError(f"stderr has columns {unknown} that are not states of the coefficient table "
                          f"{list(coefficients.columns)}.")
    return stderr.reindex(index=coefficients.index, columns=coefficients.columns).astype(float)


def _lhs(state: Any, kind: str) -> str:
    if kind == "text":
        return f"d {state}/dt"
    import sympy

    return rf"\frac{{d\,{sympy.latex(sympy.Symbol(str(state)))}}}{{dt}}"


def format_equations(coefficients: pd.DataFrame, stderr: pd.DataFrame | None = None,
                     precision: int | None = None, kind: str = "text",
                     lhs: Sequence[str] | None = None) -> list[str]:
    """One line ``d state/dt = ...`` per state (column) of a coefficient table.

    Parameters
    ----------
    coefficients : pandas.DataFrame
        Library terms as the index (``"1"`` is the constant), states as the columns.
        Exact zeros (pruned terms) are left out.
    stderr : pandas.DataFrame, optional
        Standard errors of the coefficients, same terms and states (NaN where unknown).
        A coefficient with one is written ``(value ± error)``, both to the digits the
        error supports (see :func:`format_coefficient`).
    precision : int, optional
        None (default): automatic, as above, and three significant figures for a
        coefficient without a standard error. An int: that many decimals for every
        coefficient (pysindy's ``precision``); a nonzero coefficient too small for them
        is written with significant digits instead, so no active term is hidden.
    kind : {"text", "latex"}
        Plain text, or LaTeX (``\\frac{d\\,x}{dt} = ...`` with sympy's symbol names, so
        ``theta`` is ``\\theta``), without surrounding ``$``.
    lhs : list of str, optional
        Left-hand sides replacing ``d state/dt``, one per state (as pysindy's ``lhs``).

    Returns
    -------
    list of str, one per column.

    Raises
    ------
    ConfigError
        For a table that is not a DataFrame, a bad precision, kind or lhs.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"hare": [0.5512, -0.02804, 0.0], "lynx": [0.0, 0.024814, -0.79]},
    ...                      index=["hare", "hare lynx", "lynx"])
    >>> for line in format_equations(table):
    ...     print(line)
    d hare/dt = 0.551 hare - 0.0280 hare lynx
    d lynx/dt = 0.0248 hare lynx - 0.790 lynx
    >>> errors = pd.DataFrame({"hare": [0.06, 0.004, 0.0], "lynx": [0.0, 0.0031, 0.09]}, index=table.index)
    >>> format_equations(table, errors)[1]
    'd lynx/dt = (0.025 ± 0.003) hare lynx - (0.79 ± 0.09) lynx'
    >>> print(format_equations(table, errors, kind="latex")[0])
    \\frac{d\\,hare}{dt} = \\left(0.55 \\pm 0.06\\right) hare - \\left(0.028 \\pm 0.004\\right) hare lynx
    """
    errors = _check_table(coefficients, stderr)
    digits = _check_precision(precision)
    if kind not in ("text", "latex"):
        raise ConfigError(f"kind must be 'text' or 'latex' (sympy expressions: sympy_equations), got {kind!r}.")
    if lhs is not None and (isinstance(lhs, str) or len(lhs) != coefficients.shape[1]):
        raise ConfigError(f"lhs must be a list of {coefficients.shape[1]} left-hand sides, one per state "
                          f"{list(coefficients.columns)}; got {lhs!r}.")
    lines = []
    for j, state in enumerate(coefficients.columns):
        parts: list[str] = []
        for term, value in coefficients[state].items():
            value = float(value)
            if value == 0.0:
                continue
            error = None if errors is None else float(errors[state].loc[term])  # type: ignore[call-overload]  # stubs: any label works
            number = _render(*_parts(value, error, digits), kind)
            name = str(term).strip()
            text = number if name == "1" else f"{number} {name if kind == 'text' else _term_latex(name)}"
            if not parts:
                parts.append(f"-{text}" if value < 0 else text)
            else:
                parts.append(f"- {text}" if value < 0 else f"+ {text}")
        left = _lhs(state, kind) if lhs is None else str(lhs[j])
        lines.append(f"{left} = {' '.join(parts) if parts else '0'}")
    return lines


def sympy_equations(coefficients: pd.DataFrame) -> list[sympy.Expr]:
    """The right-hand sides dx/dt of a coefficient table as sympy expressions, one per state.

    Coefficients are the exact floats of the table (not rounded for display), so the
    expressions evaluate to the model's vector field. Variables are
    ``sympy.Symbol(name)`` for every state and input name in the terms; see
    :func:`term_expression` for the term names understood.

    Examples
    --------
    >>> import pandas as pd, sympy
    >>> table = pd.DataFrame({"theta": [0.0, 1.0], "omega": [-19.62, -0.35]}, index=["sin(theta)", "omega"])
    >>> rhs = sympy_equations(table)
    >>> rhs[1]
    -0.35*omega - 19.62*sin(theta)
    >>> float(rhs[1].subs({sympy.Symbol("theta"): 0.5, sympy.Symbol("omega"): 0.0}))  # -19.62 sin(0.5)
    -9.406...
    """
    import sympy

    _check_table(coefficients, None)
    out = []
    for state in coefficients.columns:
        total: sympy.Expr = sympy.Integer(0)
        for term, value in coefficients[state].items():
            if float(value) != 0.0:
                total += sympy.Float(float(value)) * term_expression(str(term))
        out.append(total)
    return out


# -- the model methods -----------------------------------------------------------------------------
class EquationsMixin:
    """``equations()`` and ``print()`` for a model holding ``coefficients_`` (terms x states).

    A model that estimated the uncertainty of its coefficients stores it as
    ``coefficients_stderr_`` (a DataFrame shaped like ``coefficients_``, NaN where
    unknown); the equations then show each coefficient with its standard error.
    """

    def _equation_tables(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        table = getattr(self, "coefficients_", None)
        if table is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")
        return table, getattr(self, "coefficients_stderr_", None)

    def equations(self, precision: int | None = None, kind: str = "text") -> list[Any]:
        """The identified equations, one per state.

        Parameters
        ----------
        precision : int, optional
            None (default): each coefficient to the digits its standard error supports
            when the model has ``coefficients_stderr_``, else three significant figures.
            An int: that many decimals (as pysindy's ``precision``).
        kind : {"text", "latex", "sympy"}, default "text"
            "text": ``"d x/dt = ..."`` strings; "latex": the same in LaTeX (no ``$``);
            "sympy": the right-hand sides as sympy expressions with the exact
            coefficients (variables ``sympy.Symbol(name)``).

        Returns
        -------
        list of str, or list of sympy expressions for ``kind="sympy"``.

        See Also
        --------
        sysid.equations.format_equations, sysid.equations.sympy_equations
        """
        table, stderr = self._equation_tables()
        if kind not in _KINDS:
            raise ConfigError(f"kind must be one of {list(_KINDS)}, got {kind!r}.")
        if kind == "sympy":
            return list(sympy_equations(table))
        return format_equations(table, stderr, precision=precision, kind=kind)

    def print(self, lhs: Sequence[str] | None = None, precision: int | None = None, **kwargs: Any) -> None:
        """Print the equations, one line per state, as ``pysindy.SINDy.print`` does.

        Parameters
        ----------
        lhs : list of str, optional
            Left-hand sides replacing ``d state/dt``.
        precision : int, optional
            As for :meth:`equations`.
        **kwargs
            Passed to the built-in ``print`` (e.g. ``file=``).
        """
        table, stderr = self._equation_tables()
        for line in format_equations(table, stderr, precision=precision, lhs=lhs):
            builtins.print(line, **kwargs)
