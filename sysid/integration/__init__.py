"""Batched integration of a vector field with torchdiffeq (DESIGN.md step 4)."""

from sysid.integration._block import ODEBlock as ODEBlock
from sysid.integration._clock import Clock as Clock
from sysid.integration._device import resolve_device as resolve_device
from sysid.integration._device import torch_threads as torch_threads
from sysid.integration._field import BatchedField as BatchedField
from sysid.integration._field import TimeParameters as TimeParameters
from sysid.integration._signals import InputSignal as InputSignal
from sysid.integration._signals import Interpolation as Interpolation
from sysid.integration._simulate import simulate as simulate
from sysid.integration._solve import Gradient as Gradient
from sysid.integration._solve import SolverFailure as SolverFailure
from sysid.integration._solve import solve as solve
from sysid.integration._solver import Solver as Solver
from sysid.integration._solver import SolverConfig as SolverConfig

__all__ = [
    "BatchedField",
    "Clock",
    "Gradient",  # shared with other sysid packages (their one public home)
    "InputSignal",
    "ODEBlock",
    "Solver",
    "SolverConfig",
    "SolverFailure",
    "TimeParameters",
    "resolve_device",
    "simulate",
    "solve",
    "torch_threads",
]
