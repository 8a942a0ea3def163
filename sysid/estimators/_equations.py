"""Readable equations from a coefficient table (terms x states), shared by the sparse models.

Plain pandas and numpy: no torch, no pysindy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sysid.errors import ConfigError

__all__ = ["format_equations"]


def _number(value: float, precision: int) -> str:
    if not np.isfinite(value):
        return str(value)
    text = f"{value:.{precision}f}"
    if float(text) == 0.0:  # too small for `precision` decimals: show it, never hide a term
        text = f"{value:.{max(precision, 1)}g}"
    return text


def format_equations(coefficients: pd.DataFrame, precision: int = 2) -> list[str]:
    """One line ``d state/dt = ...`` per state (column) of a coefficient table.

    Parameters
    ----------
    coefficients : pandas.DataFrame
        Library terms as the index (``"1"`` is the constant), states as the columns.
    precision : int, default 2
        Decimals of each coefficient. A nonzero coefficient too small to show with
        that many decimals is written with ``precision`` significant digits instead,
        so no active term is ever hidden. Exact zeros are left out.

    Returns
    -------
    list of str, one per column.

    Raises
    ------
    ConfigError
        If ``precision`` is not a non-negative integer.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"prey": [0.0, 1.5, 0.0, -1.0], "predator": [0.1, 0.0, -3.0, 1.0]},
    ...                      index=["1", "prey", "predator", "prey predator"])
    >>> for line in format_equations(table):
    ...     print(line)
    d prey/dt = 1.50 prey - 1.00 prey predator
    d predator/dt = 0.10 - 3.00 predator + 1.00 prey predator
    >>> format_equations(pd.DataFrame({"x": [0.0, 0.0004]}, index=["1", "x"]))
    ['d x/dt = 0.0004 x']
    """
    if isinstance(precision, bool) or not isinstance(precision, int | np.integer) or precision < 0:
        raise ConfigError(f"precision must be a non-negative integer, got {precision!r}.")
    if not isinstance(coefficients, pd.DataFrame):
        raise ConfigError(
            f"coefficients must be a pandas DataFrame (terms x states), got {type(coefficients).__name__}."
        )
    lines = []
    for state in coefficients.columns:
        parts: list[str] = []
        for term, value in coefficients[state].items():
            value = float(value)
            if value == 0.0:
                continue
            number = _number(abs(value), int(precision))
            text = number if str(term).strip() == "1" else f"{number} {term}"
            if not parts:
                parts.append(f"-{text}" if value < 0 else text)
            else:
                parts.append(f"- {text}" if value < 0 else f"+ {text}")
        lines.append(f"d {state}/dt = {' '.join(parts) if parts else '0'}")
    return lines
