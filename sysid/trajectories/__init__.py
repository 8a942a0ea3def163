"""The canonical container of measured experiments (see DESIGN.md, "Data flows one way")."""

from sysid.trajectories._container import TimeKind as TimeKind
from sysid.trajectories._container import Trajectories as Trajectories
from sysid.trajectories._container import Trajectory as Trajectory
from sysid.trajectories._container import UnionGrid as UnionGrid
from sysid.trajectories._container import register_writer as register_writer
from sysid.trajectories._lazy import LazyTrajectories as LazyTrajectories
from sysid.trajectories._summary import DataSummary as DataSummary
from sysid.trajectories._summary import swing_time as swing_time
from sysid.trajectories._validation import is_complex as is_complex

__all__ = ["DataSummary", "LazyTrajectories", "Trajectories", "Trajectory", "UnionGrid", "register_writer"]
__all__ += ["TimeKind", "is_complex", "swing_time"]  # shared with other sysid packages (their one public home)
