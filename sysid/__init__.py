"""sysid: identify dynamical systems from measured trajectories.

The core model is the Neural ODE (Chen et al., NeurIPS 2018); sparse, grey-box and
hybrid vector fields share its integration and training; SINDy and classical parametric
fits are baselines behind the same interface.
"""

from sysid.errors import ConfigError as ConfigError
from sysid.errors import DataError as DataError
from sysid.errors import FitError as FitError
from sysid.errors import FitWarning as FitWarning
from sysid.errors import ModelFileError as ModelFileError
from sysid.errors import NotFittedError as NotFittedError
from sysid.errors import SolverWarning as SolverWarning
from sysid.errors import SysidError as SysidError
from sysid.trajectories import Trajectories as Trajectories
from sysid.trajectories import Trajectory as Trajectory

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "FitError",
    "FitWarning",
    "ModelFileError",
    "NotFittedError",
    "SolverWarning",
    "SysidError",
    "Trajectories",
    "Trajectory",
    "__version__",
]
