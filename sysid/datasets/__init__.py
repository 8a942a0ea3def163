"""Benchmark datasets: simulated systems with known ground truth, and small real data.

Simulated systems (:data:`SYSTEMS`) come with their true equations, parameters and
library coefficients (:func:`truth`), so an identified model can be scored against
the truth. :func:`simulate` makes noisy, irregularly sampled, optionally incomplete
measurements of them; :func:`load_lynx_hare` loads the classic Hudson's Bay
predator-prey pelt counts.

Examples
--------
>>> from sysid.datasets import SYSTEMS, simulate, truth
>>> "lotka_volterra" in SYSTEMS
True
>>> data = simulate("van_der_pol", n_trajectories=2, random_state=0)
>>> data.state_names, truth("van_der_pol").params
(('x', 'v'), {'mu': 1.0})
"""

from sysid.datasets._real import load_lynx_hare as load_lynx_hare
from sysid.datasets._simulate import simulate as simulate
from sysid.datasets._systems import SYSTEMS as SYSTEMS
from sysid.datasets._systems import SystemTruth as SystemTruth
from sysid.datasets._systems import truth as truth

__all__ = ["SYSTEMS", "SystemTruth", "load_lynx_hare", "simulate", "truth"]
