"""The parts an estimator is built from: small keyword-only configuration objects.

A solver-trained estimator is assembled from a *field* (what dx/dt is), a *solver*
(how it is integrated) and a *training* configuration (how it is fitted), each a
:class:`Part`. Parts follow scikit-learn's conventions, as pysindy's optimizers and
diffrax's solver objects do: the constructor takes keywords only and stores them
unchanged; :meth:`Part.check` validates them when the estimator is fitted. Because a
part has ``get_params``/``set_params``, its parameters appear nested in the
estimator's (``field__hidden``, ``solver__rtol``, ``training__max_epochs``), so
``clone``, ``set_params`` and ``GridSearchCV`` reach them.

Model files store a part as its class name and its parameters. Only classes defined in
sysid are known by name (:func:`part_class`), so loading a file never imports code.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, ClassVar

from sklearn.base import BaseEstimator

from sysid.errors import ConfigError

_PARTS: dict[str, type[Part]] = {}


class Part(BaseEstimator):
    """Base class of the estimator parts.

    Subclasses declare their parameters as keyword-only arguments of ``__init__`` and
    store them unchanged; they implement :meth:`check`, which raises
    :class:`~sysid.ConfigError` naming the parameter at fault.

    Examples
    --------
    >>> import sysid
    >>> solver = sysid.Solver(rtol=1e-6)
    >>> solver
    Solver(rtol=1e-06)
    >>> solver.set_params(method="rk4").get_params()["method"]
    'rk4'
    """

    #: The estimator keyword that takes this kind of part (``"field"``, ``"solver"``...).
    role: ClassVar[str] = ""
    #: Parameters added after model files were written, with the value that reproduces what those
    #: files were fitted with: a stored part without the parameter is loaded with this value, not
    #: with the (newer) default.
    recorded_before: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("sysid.") and not cls.__name__.startswith("_"):
            _PARTS[cls.__name__] = cls

    def check(self) -> None:
        """Raise :class:`~sysid.ConfigError` if a parameter cannot work; the default checks nothing."""

    def __eq__(self, other: object) -> bool:
        """Parts are equal when they are of one class with equal parameters (a copy equals its original)."""
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self.get_params(deep=False), other.get_params(deep=False)
        try:
            return bool(mine == theirs)
        except (TypeError, ValueError):  # e.g. arrays among the parameters
            return False

    __hash__ = None  # type: ignore[assignment]

    # -- helpers for subclasses ----------------------------------------------------------
    def _fail(self, name: str, expected: str) -> ConfigError:
        """A ConfigError for parameter ``name``: what was received and what is expected."""
        return ConfigError(f"{type(self).__name__}: {name} must be {expected}, got {getattr(self, name)!r}.")

    def _positive_int(self, name: str, allow_zero: bool = False, allow_none: bool = False) -> int | None:
        value = getattr(self, name)
        if value is None and allow_none:
            return None
        low = 0 if allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "a non-negative integer" if allow_zero else "a positive integer"
            raise self._fail(name, kind + (" or None" if allow_none else ""))
        return int(value)

    def _number(
        self,
        name: str,
        low: float | None = None,
        high: float | None = None,
        strict_low: bool = False,
        allow_none: bool = False,
    ) -> float | None:
        value = getattr(self, name)
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise self._fail(name, "a number" + (" or None" if allow_none else ""))
        number = float(value)
        if low is not None and (number < low or (strict_low and number == low)):
            if low == 0:
                raise self._fail(name, "a positive number" if strict_low else "a non-negative number")
            raise self._fail(name, f"a number {'>' if strict_low else '>='} {low:g}")
        if high is not None and number > high:
            raise self._fail(name, f"<= {high:g}")
        return number

    def _choice(self, name: str, choices: tuple[Any, ...]) -> Any:
        value = getattr(self, name)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{type(self).__name__}: {name} must be one of {list(choices)}, got {value!r}{hint}")
        return value

    def _flag(self, name: str) -> bool:
        value = getattr(self, name)
        if not isinstance(value, bool):
            raise self._fail(name, "True or False (a bool, not a string or number)")
        return value


def part_class(name: str) -> type[Part]:
    """The sysid part class called ``name`` (model files name parts; nothing is imported).

    Parts register themselves when their module is imported: a caller that reads parts
    by name (:mod:`sysid.io`) imports the packages that define them first.

    Raises
    ------
    KeyError
        For a name that is not a sysid part.

    Examples
    --------
    >>> import sysid
    >>> part_class("Solver") is sysid.Solver
    True
    """
    return _PARTS[name]


def part_names() -> list[str]:
    """Names of the part classes registered so far (every one, once their packages are imported)."""
    return sorted(_PARTS)


def parameter_names(cls: Any) -> list[str]:
    """Keyword parameters of a part class or factory (e.g. a ``functools.partial`` of one), in order.

    Examples
    --------
    >>> import sysid
    >>> parameter_names(sysid.Solver)[:3]
    ['method', 'rtol', 'atol']
    """
    signature = inspect.signature(cls)
    return [p.name for p in signature.parameters.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
