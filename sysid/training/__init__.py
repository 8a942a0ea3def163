"""Training: multiple shooting over segments, the optimisation loop (DESIGN.md step 5)."""

from sysid.training._collocation import Smoothed as Smoothed
from sysid.training._collocation import collocation_fit as collocation_fit
from sysid.training._collocation import embed_derivatives as embed_derivatives
from sysid.training._collocation import smooth_trajectory as smooth_trajectory
from sysid.training._collocation import smoothing_strengths as smoothing_strengths
from sysid.training._config import Training as Training
from sysid.training._loop import TrainResult as TrainResult
from sysid.training._loop import TrainSettings as TrainSettings
from sysid.training._loop import train as train
from sysid.training._segments import Segments as Segments
from sysid.training._segments import make_segments as make_segments
from sysid.training._shooting import MultipleShooting as MultipleShooting

from sysid.training._loop import ADVICE as ADVICE
from sysid.training._segments import interpolate_missing as interpolate_missing

__all__ = ["ADVICE", "MultipleShooting", "Segments", "Smoothed", "TrainResult", "TrainSettings", "Training",
           "collocation_fit", "embed_derivatives", "interpolate_missing", "make_segments", "smooth_trajectory",
           "smoothing_strengths", "train"]
