"""The conventions every figure shares: colours, the style of measurements, axis labels with units.

Each model has one colour (:func:`model_colours`); measurements are black dots
(``DATA_STYLE``); axis labels carry units from the data's attributes or from a unit at the
end of a column name (:func:`axis_label`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sysid.adapters import as_trajectories
from sysid.trajectories import Trajectories

_PALETTE = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")  # C7 (grey) is left for annotations
DATA_STYLE: dict[str, Any] = {"color": "black", "marker": "o", "markersize": 3.5, "linestyle": "none", "alpha": 0.85}
_UNIT_SUFFIXES = {
    "rad_s": "rad/s",
    "m_s": "m/s",
    "m_s2": "m/s²",
    "deg_s": "deg/s",
    "rpm": "rpm",
    **{
        u: u
        for u in (
            "s",
            "ms",
            "us",
            "ns",
            "min",
            "h",
            "d",
            "days",
            "years",
            "yr",
            "V",
            "mV",
            "kV",
            "A",
            "mA",
            "W",
            "kW",
            "Hz",
            "kHz",
            "N",
            "Nm",
            "m",
            "mm",
            "cm",
            "um",
            "km",
            "kg",
            "g",
            "rad",
            "deg",
            "K",
            "degC",
            "Pa",
            "kPa",
            "bar",
            "percent",
            "thousands",
            "millions",
            "counts",
        )
    },
}


def as_data(data: Any) -> Trajectories:
    """``data`` as :class:`~sysid.Trajectories` (anything :func:`sysid.adapters.as_trajectories` reads)."""
    return data if isinstance(data, Trajectories) else as_trajectories(data)


def model_colours(names: Sequence[Any], colors: Mapping[Any, Any] | None = None) -> dict[Any, Any]:
    """One colour per model name, in order (matplotlib's cycle without its grey).

    Figures given the same names in the same order (or the same ``colors`` mapping) use
    the same colour for each model. ``colors`` overrides single names.

    Examples
    --------
    >>> model_colours(["NeuralODE", "SINDy"], {"SINDy": "red"})
    {'NeuralODE': 'C0', 'SINDy': 'red'}
    """
    given = dict(colors or {})
    return {name: given.get(name, _PALETTE[i % len(_PALETTE)]) for i, name in enumerate(names)}


def _split_unit(name: str) -> tuple[str, str | None]:
    """("omega", "rad/s") from "omega_rad_s"; (name, None) when no unit suffix is recognised."""
    for size in (2, 1):
        parts = name.rsplit("_", size)
        if len(parts) == size + 1 and parts[0]:
            suffix = "_".join(parts[1:])
            if suffix in _UNIT_SUFFIXES:
                return parts[0], _UNIT_SUFFIXES[suffix]
    return name, None


def axis_label(data: Trajectories, name: Any = None) -> str:
    """``"name [units]"`` for a state or input of ``data`` (or its time axis with ``name=None``).

    Units come from ``data.variable_attrs[name]["units"]`` (the time axis:
    ``attrs["time_units"]`` or the time coordinate's ``units``), else from a unit at the
    end of the column name (``t_s`` -> ``t [s]``, ``omega_rad_s`` -> ``omega [rad/s]``),
    else none is shown.

    Examples
    --------
    >>> import numpy as np
    >>> data = Trajectories.from_arrays(np.arange(3.0), np.ones((3, 2)), state_names=["theta_rad", "hare"])
    >>> data.variable_attrs["hare"] = {"units": "thousands of pelts"}
    >>> axis_label(data, "theta_rad"), axis_label(data, "hare"), axis_label(data)
    ('theta [rad]', 'hare [thousands of pelts]', 'time')
    """
    if name is None:
        label = str(data.source.get("time") or "time")
        units = data.attrs.get("time_units") or (data.source.get("time_attrs") or {}).get("units")
        if units is None and data.time_kind != "float":
            units = "s since the start"
    else:
        label = str(name)
        units = (data.variable_attrs.get(name) or {}).get("units")
    if units:
        return f"{label} [{units}]"
    base, suffix = _split_unit(label)
    return f"{base} [{suffix}]" if suffix else label
