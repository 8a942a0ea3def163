"""The canonical container of measured experiments (see DESIGN.md, "Data flows one way")."""

from sysid.trajectories._container import Trajectories as Trajectories
from sysid.trajectories._container import Trajectory as Trajectory
from sysid.trajectories._container import UnionGrid as UnionGrid

__all__ = ["Trajectories", "Trajectory", "UnionGrid"]
