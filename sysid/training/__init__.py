"""Training: multiple shooting over segments, the optimisation loop (DESIGN.md step 5)."""

from sysid.training._checkpoint import Checkpoint as Checkpoint
from sysid.training._checkpoint import fingerprint as fingerprint
from sysid.training._collocation import Smoothed as Smoothed
from sysid.training._collocation import collocation_fit as collocation_fit
from sysid.training._collocation import embed_derivatives as embed_derivatives
from sysid.training._collocation import smooth_trajectory as smooth_trajectory
from sysid.training._collocation import smoothing_strengths as smoothing_strengths
from sysid.training._config import Training as Training
from sysid.training._errors import ERRORS as ERRORS
from sysid.training._errors import check_positive as check_positive
from sysid.training._errors import compare as compare_errors
from sysid.training._errors import log_floor as log_floor
from sysid.training._first_stage import stage_loss as stage_loss
from sysid.training._first_stage import train_first_stage as train_first_stage
from sysid.training._horizons import HorizonStage as HorizonStage
from sysid.training._horizons import plan_horizons as plan_horizons
from sysid.training._horizons import resumable_stage as resumable_stage
from sysid.training._horizons import train_horizons as train_horizons
from sysid.training._least_squares import LeastSquaresResult as LeastSquaresResult
from sysid.training._least_squares import solve_least_squares as solve_least_squares
from sysid.training._loop import ADVICE as ADVICE
from sysid.training._loop import POLISH_MIN_GAIN as POLISH_MIN_GAIN
from sysid.training._loop import POOR_FREE_RUN as POOR_FREE_RUN
from sysid.training._loop import REFIT_FREE_RUN as REFIT_FREE_RUN
from sysid.training._loop import TrainResult as TrainResult
from sysid.training._loop import TrainSettings as TrainSettings
from sysid.training._loop import train as train
from sysid.training._residuals import FAILED_RESIDUAL as FAILED_RESIDUAL
from sysid.training._residuals import CollocationResiduals as CollocationResiduals
from sysid.training._residuals import SegmentResiduals as SegmentResiduals
from sysid.training._residuals import TrajectoryResiduals as TrajectoryResiduals
from sysid.training._segments import Segments as Segments
from sysid.training._segments import interpolate_missing as interpolate_missing
from sysid.training._segments import make_segments as make_segments
from sysid.training._shooting import MultipleShooting as MultipleShooting
from sysid.training._streaming import StreamingShooting as StreamingShooting
from sysid.training._streaming import StreamSettings as StreamSettings
from sysid.training._streaming import validation_positions as validation_positions

__all__ = [
    "ADVICE",
    "ERRORS",
    "FAILED_RESIDUAL",
    "POLISH_MIN_GAIN",
    "POOR_FREE_RUN",
    "REFIT_FREE_RUN",
    "Checkpoint",
    "CollocationResiduals",
    "HorizonStage",
    "LeastSquaresResult",
    "MultipleShooting",
    "SegmentResiduals",
    "Segments",
    "Smoothed",
    "StreamSettings",
    "StreamingShooting",
    "TrainResult",
    "TrainSettings",
    "Training",
    "TrajectoryResiduals",
    "check_positive",
    "collocation_fit",
    "compare_errors",
    "embed_derivatives",
    "fingerprint",
    "interpolate_missing",
    "log_floor",
    "make_segments",
    "plan_horizons",
    "resumable_stage",
    "smooth_trajectory",
    "smoothing_strengths",
    "solve_least_squares",
    "stage_loss",
    "train",
    "train_first_stage",
    "train_horizons",
    "validation_positions",
]
