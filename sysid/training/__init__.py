"""Training: multiple shooting over segments, the optimisation loop (DESIGN.md step 5)."""

from sysid.training._loop import TrainResult as TrainResult
from sysid.training._loop import TrainSettings as TrainSettings
from sysid.training._loop import train as train
from sysid.training._segments import Segments as Segments
from sysid.training._segments import make_segments as make_segments
from sysid.training._shooting import MultipleShooting as MultipleShooting

__all__ = ["MultipleShooting", "Segments", "TrainResult", "TrainSettings", "make_segments", "train"]
