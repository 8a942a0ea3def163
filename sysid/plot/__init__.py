"""Figures of data, predictions, vector fields and comparison tables (matplotlib).

Every function builds and returns a :class:`matplotlib.figure.Figure` without touching
pyplot's global state: nothing is shown and nothing is left open. Save one with
``fig.savefig("file.png")``, or display it in a notebook by leaving it as the cell's
value.

Conventions shared by the figures: measurements are black dots; each model has one
colour (:func:`model_colours`), the same in every figure that gets the same names;
axes carry units, from the data's attributes (``variable_attrs[name]["units"]``,
``attrs["time_units"]``) or from column names ending in a unit (``t_s``, ``u_V``,
``hare_thousands``, ``omega_rad_s``); a legend entry exists only for something drawn.
"""

from sysid.plot._dense import predict_dense
from sysid.plot._phase import phase_portrait
from sysid.plot._scores import scores
from sysid.plot._style import axis_label, model_colours
from sysid.plot._trajectories import trajectories

__all__ = ["axis_label", "model_colours", "phase_portrait", "predict_dense", "scores", "trajectories"]
