"""Loaders of the small real datasets bundled with sysid (repository folder ``data/``).

The repository's ``data/`` folder is installed as the resource package ``sysid._data``
(see ``[tool.setuptools]`` in pyproject.toml), so the files are found through
:mod:`importlib.resources` both in an installed wheel and in an editable checkout.
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from sysid.errors import DataError
from sysid.trajectories import Trajectories

if TYPE_CHECKING:  # pandas is only needed for as_frame=True, through the adapters
    import pandas as pd

__all__ = ["load_lynx_hare"]

_DATA_PACKAGE = "sysid._data"
_CHECKOUT_DATA = Path(__file__).resolve().parents[2] / "data"


def _read_text(relative: str) -> str:
    """Text of a bundled data file, e.g. ``"lynx_hare/lynx_hare_1900_1920.csv"``."""
    try:
        root: Any = resources.files(_DATA_PACKAGE)
    except ModuleNotFoundError:
        # Editable install (or running from a checkout): setuptools' editable finder
        # cannot import the namespace package sysid._data nested in the regular package
        # sysid, so read the checkout's data/ folder directly.
        root = _CHECKOUT_DATA
    resource = root
    for part in relative.split("/"):  # one part at a time: namespace packages need it
        resource = resource.joinpath(part)
    if not resource.is_file():
        raise FileNotFoundError(
            f"bundled data file {relative!r} is missing from the sysid installation "
            f"(looked in {root}). Reinstall sysid (pip install --force-reinstall sysid, or "
            "pip install -e . in a checkout)."
        )
    return resource.read_text(encoding="utf-8")


def _read_table(relative: str, columns: tuple[str, ...]) -> np.ndarray:
    """A numeric CSV table with exactly ``columns`` as a float array (rows x columns)."""
    reader = csv.reader(io.StringIO(_read_text(relative)))
    header = tuple(next(reader))
    if header != columns:
        raise DataError(f"{relative}: expected columns {list(columns)}, found {list(header)}.")
    rows = [row for row in reader if row]
    return np.array(rows, dtype=float)


@overload
def load_lynx_hare(as_frame: Literal[False] = False) -> Trajectories: ...


@overload
def load_lynx_hare(as_frame: Literal[True]) -> pd.DataFrame: ...


@overload
def load_lynx_hare(as_frame: bool) -> Trajectories | pd.DataFrame: ...


def load_lynx_hare(as_frame: bool = False) -> Trajectories | pd.DataFrame:
    """Hudson's Bay Company snowshoe-hare and lynx pelt counts, 1900-1920.

    The classic predator-prey data (Howard 2009; the Stan Lotka-Volterra case study
    by B. Carpenter): 21 annual counts of pelts traded, in thousands, for the hare
    (prey) and the Canada lynx (predator). Pelts are a noisy proxy for population.
    Provenance, licence and the published reference fits are in
    ``data/lynx_hare/README.md``.

    Parameters
    ----------
    as_frame : bool, default False
        Return ``data.to_pandas()`` (columns ``trajectory, t, hare, lynx``) instead of
        the :class:`~sysid.Trajectories`.

    Returns
    -------
    Trajectories or pandas.DataFrame
        One trajectory named ``"hudson_bay"`` with states ``("hare", "lynx")`` (prey
        first) and no inputs. ``t`` is years since 1900 as float (t = 0 is 1900,
        recorded as ``attrs["time_origin_year"] = 1900``). Units are in
        ``variable_attrs`` (``"thousands of pelts"``); published Lotka-Volterra
        estimates for these data (``du/dt = (alpha - beta v) u``,
        ``dv/dt = (-gamma + delta u) v`` with u = hare, v = lynx, t in years) are in
        ``attrs["reference_params"]``.

    Examples
    --------
    >>> from sysid.datasets import load_lynx_hare
    >>> data = load_lynx_hare()
    >>> data
    Trajectories(n_trajectories=1, states=['hare', 'lynx'], inputs=[], n_times=[21], time_kind='float')
    >>> traj = data["hudson_bay"]
    >>> traj.t[:3].tolist(), traj.y[0].tolist()
    ([0.0, 1.0, 2.0], [30.0, 4.0])
    >>> data.variable_attrs["lynx"]["units"], data.attrs["time_origin_year"]
    ('thousands of pelts', 1900)
    """
    if not isinstance(as_frame, bool | np.bool_):
        raise ValueError(f"as_frame must be True or False, got {as_frame!r}.")
    table = _read_table(
        "lynx_hare/lynx_hare_1900_1920.csv", ("year", "hare_thousands", "lynx_thousands")
    )
    origin = 1900
    data = Trajectories.from_arrays(
        [table[:, 0] - origin], [table[:, 1:3]],
        state_names=["hare", "lynx"], names=["hudson_bay"],
    )
    data.attrs.update({
        "title": "Hudson's Bay Company snowshoe hare and lynx pelts, 1900-1920",
        "source": (
            "Howard (2009), Modeling basics, http://www.math.tamu.edu/~phoward/m442/"
            "modbasics.pdf, as circulated in B. Carpenter's Stan case study "
            "'Predator-Prey Population Dynamics: the Lotka-Volterra model in Stan'"
        ),
        "time_origin_year": origin,
        "time_units": "years since 1900",
        "sampling": "annual",
        "reference_params": {
            "carpenter_stan_posterior_mean": {
                "alpha": 0.55, "beta": 0.028, "gamma": 0.80, "delta": 0.024,
            },
            "howard_2009_point_estimate": {
                "alpha": 0.55, "beta": 0.028, "gamma": 0.84, "delta": 0.026,
            },
        },
    })
    data.variable_attrs.update({
        "hare": {"units": "thousands of pelts", "long_name": "snowshoe hare pelts", "role": "prey"},
        "lynx": {"units": "thousands of pelts", "long_name": "Canada lynx pelts", "role": "predator"},
    })
    data.source.update({"time": "t", "trajectory": "trajectory"})
    return data.to_pandas() if as_frame else data
