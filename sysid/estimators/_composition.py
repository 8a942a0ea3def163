"""Estimators assembled from parts: ``field=``, ``solver=``, ``training=``, and flat keywords.

A solver-trained estimator stores its parts as scikit-learn parameters, so that
``get_params(deep=True)`` lists their parameters nested (``field__hidden``,
``solver__rtol``, ``training__max_epochs``) and ``set_params``/``clone``/``GridSearchCV``
reach them, as for pysindy's ``optimizer__threshold``. A part left at ``None`` stands
for the estimator's default part (its class's :attr:`PartsMixin.default_parts`); its
nested parameters are still listed, and setting one of them puts a copy of the default
part in its place.

Flat keywords are kept for what users already write: ``NeuralODE(hidden=(32, 32),
max_epochs=80)`` is ``NeuralODE(field=MLP(hidden=(32, 32)), training=Training(max_epochs=80))``.
Each flat name belongs to exactly one part (:meth:`PartsMixin.flat_parameters`); a flat
keyword is set on a copy of the part given for that role, or of the default part.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from sysid.errors import ConfigError
from sysid.fields import FieldSpec, as_field_spec
from sysid.integration import Solver
from sysid.parts import Part, parameter_names
from sysid.training import Training

ROLES = ("field", "solver", "training")
#: Flat keywords whose name differs from the part parameter they set.
ALIASES = {"solver_options": ("solver", "options")}


class PartsMixin:
    """Parameters, nested parameters and flat keywords of an estimator built from parts."""

    #: The default part of each role, as a factory: each estimator's defaults live here.
    default_parts: ClassVar[Mapping[str, Callable[[], Part]]] = {
        "solver": Solver,
        "training": Training,
    }
    #: The estimator parameters (besides the parts) in the order of the constructor.
    _base_parameters: ClassVar[tuple[str, ...]] = ()

    field: Any
    solver: Any
    training: Any

    # -- scikit-learn parameters ------------------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The estimator's own parameters; flat keywords and positional aliases are not among them."""
        return sorted(cls._base_parameters)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of the estimator; with ``deep``, its parts' too (``field__hidden``...).

        A part left at None lists the parameters of the default part it stands for.
        """
        params = super().get_params(deep=deep)  # type: ignore[misc]
        if deep:
            for role in ROLES:
                value = params.get(role)
                if value is None or (role == "solver" and isinstance(value, str)):
                    default = self._part(role)
                    params.update({f"{role}__{k}": v for k, v in default.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> Any:
        """Set parameters: the estimator's, nested ones (``training__lr``) and flat ones (``lr``).

        The estimator's own parameters are set first, so ``set_params(solver=Solver(), rtol=1e-6)``
        sets ``rtol`` on the new solver.
        """
        names = set(self._get_param_names())
        super().set_params(**{k: v for k, v in params.items() if k in names})  # type: ignore[misc]
        nested: dict[str, Any] = {}
        for key, value in params.items():
            if key in names:
                continue
            role, sep, name = key.partition("__")
            if not (sep and role in ROLES):
                role, name = self._owner(key)
            self._materialise(role)
            if isinstance(getattr(self, role), Part):  # an invalid part is fit's to report
                nested[f"{role}__{name}"] = value
        return super().set_params(**nested)  # type: ignore[misc]

    # -- parts --------------------------------------------------------------------------------
    def _default_part(self, role: str) -> Part:
        factory = self.default_parts.get(role)
        if factory is None:
            raise ConfigError(f"{type(self).__name__} has no default {role}: pass {role}=...")
        return factory()

    def _part(self, role: str) -> Part:
        """The part of ``role``: the one given (a solver name becomes ``Solver(method=name)``), or the default."""
        value = getattr(self, role)
        if value is None:
            return self._default_part(role)
        if role == "solver" and isinstance(value, str):
            solver = self._default_part("solver")
            solver.set_params(method=value)
            return solver
        if role == "field" and not isinstance(value, Part):
            return as_field_spec(value)
        return value

    def _materialise(self, role: str) -> None:
        """Replace a default (None) or shorthand part (a solver name) by the part object it stands for."""
        value = getattr(self, role)
        if value is None or (role == "solver" and isinstance(value, str)):
            setattr(self, role, self._part(role))

    @classmethod
    def flat_parameters(cls) -> dict[str, str]:
        """Flat keyword -> role of the part that owns it, for the default parts of this estimator.

        Examples
        --------
        >>> import sysid
        >>> names = sysid.NeuralODE.flat_parameters()
        >>> names["hidden"], names["rtol"], names["max_epochs"]
        ('field', 'solver', 'training')
        """
        owners: dict[str, str] = {}
        for role in ROLES:
            factory = cls.default_parts.get(role)
            if factory is not None:
                owners.update(dict.fromkeys(parameter_names(factory), role))
        owners.update({alias: role for alias, (role, _) in ALIASES.items()})
        return owners

    def _owner(self, name: str) -> tuple[str, str]:
        """(role, part parameter) of a flat keyword, or a TypeError listing what this estimator takes."""
        if name in ALIASES:
            return ALIASES[name]
        owners = self.flat_parameters()
        for role in ROLES:
            if getattr(self, role, None) is None:
                continue
            try:
                part = self._part(role)
            except ConfigError:  # an invalid part is reported by fit, not here
                continue
            if not isinstance(part, Part):
                continue
            if name in part.get_params(deep=False):
                return role, name
            if owners.get(name) == role:
                raise TypeError(
                    f"{type(self).__name__}: {name!r} is a parameter of {type(self._default_part(role)).__name__}, "
                    f"but this {role} is {part!r}; its parameters are {sorted(part.get_params(deep=False))}."
                )
        if name in owners:
            return owners[name], name
        known = sorted(set(self._get_param_names()) | set(owners))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"{type(self).__name__} got an unexpected keyword argument {name!r}.{hint} Its parameters are "
            f"{sorted(self._get_param_names())}, and the parameters of its parts given flat: {sorted(owners)}."
        )

    def _route(self, options: Mapping[str, Any]) -> None:
        """Set flat keywords on copies of the parts that own them (called by ``__init__``)."""
        copies: dict[str, Part] = {}
        for name, value in options.items():
            role, key = self._owner(name)
            if role not in copies:
                try:
                    given = self._part(role)
                except ConfigError:
                    given = None
                if not isinstance(given, Part):  # an invalid part: fit reports it, the keyword has nowhere to go
                    continue
                copies[role] = copy.deepcopy(given) if getattr(self, role) is not None else given
            part = copies[role]
            if value is None and _default_of(part, key) is not None:
                continue  # None means "the default" for a flat keyword (older files and code wrote rtol=None)
            part.set_params(**{key: value})
        for role, part in copies.items():
            setattr(self, role, part)

    def _resolved_part(self, role: str, kind: type) -> Any:
        """A checked copy of the part of ``role`` (fit never changes the user's objects)."""
        part = self._part(role)
        if not isinstance(part, kind):
            raise ConfigError(f"{role} must be a {kind.__name__}, got {type(part).__name__}: {part!r}.")
        part = copy.deepcopy(part) if not isinstance(part, FieldSpec) else part
        part.check()
        return part


def _default_of(part: Part, name: str) -> Any:
    parameter = inspect.signature(type(part).__init__).parameters.get(name)
    return None if parameter is None else parameter.default
