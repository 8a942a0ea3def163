"""How a solver-trained model is fitted: the :class:`Training` part of an estimator."""

from __future__ import annotations

from typing import Any

from sysid.errors import ConfigError
from sysid.parts import Part
from sysid.training._errors import ERRORS
from sysid.training._horizons import check_horizons
from sysid.training._loop import EVAL_EVERY, MAX_EVAL_EVERY, TrainSettings

# Free-run validation spacing (sysid.training.validation_due): at least every 10 epochs (a third of
# the patience if smaller), at most every 5, otherwise once the training evaluations since the last
# check reach 5 times that check's own evaluations. A check (a no-grad solve of whole trajectories)
# costs about 0.4x a training evaluation, so validation stays near 8% of the Adam phase (it was
# 15%, every 5 epochs, on Lotka-Volterra; benchmarks/overhead.py). Counts, not wall time: the same
# fit validates at the same epochs, resumed or not. The 10-epoch cap keeps restore-best fine enough
# where checks are costly: on the cascaded tanks record gaps of up to 20 epochs left 5 checks and a
# test error of 1.30 V, against 1.14 V with 7 checks and 1.07 V with a check every 5 epochs.
EVAL_COST_RATIO = 5.0


def max_eval_every(patience: int | None) -> int:
    """Largest gap between validations: 10 epochs, or a third of the patience (at least 5).

    Examples
    --------
    >>> max_eval_every(None), max_eval_every(60), max_eval_every(12)
    (10, 10, 5)
    """
    return MAX_EVAL_EVERY if patience is None else max(EVAL_EVERY, min(MAX_EVAL_EVERY, int(patience) // 3))


OPTIMIZERS = ("adam", "least_squares")


class Training(Part):
    """How the field is fitted: multiple shooting, Adam, an L-BFGS polish, early stopping.

    Every trajectory is cut into segments of ``segment_length`` sample intervals; all
    segments of all trajectories are solved together in one batch, each from a learned
    start state, and a continuity penalty ties consecutive segments into one trajectory
    (the first segment's start is the trajectory's learned initial state ``x0_``). Before
    any solve the field is fitted to smoothing-spline derivatives of the data
    (collocation), then Adam trains it with a warm-up and an exponentially decaying
    rate, then full-batch L-BFGS polishes it. Early stopping and restore-best use the
    free-run error of whole trajectories simulated from their initial states.

    Parameters
    ----------
    max_epochs : int, default 40
        Adam epochs (one epoch is one pass over every segment) before the polish.
    lr : float, default 0.01
        Adam learning rate; it decays exponentially to lr/10 over ``max_epochs``.
    batch_size : int or None, default None
        Segments per Adam step; None puts every segment in one step.
    validation_fraction : float in [0, 1), default 0.0
        Hold out this fraction of each trajectory's time span (its tail) and stop on the
        extrapolation error there; 0 monitors the free-run error on the training data.
    patience : int or None, default 60
        Epochs without improvement of the validation score before stopping.
    lbfgs_steps : int, default 100
        Iterations of the full-batch L-BFGS polish after Adam, validated every 10
        iterations; stops after two chunks in a row that lower the best free-run error by
        less than ``sysid.training.POLISH_MIN_GAIN`` (1%), or once a chunk cannot move the
        parameters (the next would repeat it), keeping the best parameters it saw; 0
        switches it off.
    collocation_steps : int, default 300
        Steps of the collocation warm start (0 switches it off).
    segment_length : int, default 5
        Sample intervals per shooting segment (of the first stage, with ``horizons``).
    horizons : list or None, default None
        Later training stages on longer shooting windows (:mod:`sysid.training._horizons`):
        short windows find the basin, longer ones then train the model on the errors that
        build up over the horizon it predicts over. Each entry is one stage after the
        first (``segment_length``, ``max_epochs``, ``lr``, ``lbfgs_steps``):

        - an int: segments of that many sample intervals, trained by an L-BFGS polish of
          ``lbfgs_steps`` iterations (``lbfgs_steps=0`` skips these stages);
        - None (last): whole trajectories (simulation error), the same polish;
        - a tuple ``(length, adam_epochs, lr, lbfgs_steps)`` (length an int or None):
          Adam epochs at that rate, then the polish.

        Lengths increase; they are capped at the longest trajectory and a stage no longer
        than the one before is skipped. Each stage's segments start from the states the
        previous stage's model reaches there; the free-run check keeps the best parameters
        of all stages (a schedule never ends worse than where its first stage ended; that
        stage's polish is judged by its own loss where the free run misses the data at
        every check of its Adam epochs, :func:`sysid.training.train_first_stage`); stages after the
        first solve their segments in data time with backpropagation. ``history_`` has a
        ``horizon`` column (segment length of each row). None: one stage. Example:
        ``horizons=[20, None]``. Needs ``optimizer="adam"`` (least squares already ends on
        whole trajectories). Streamed fits (``lazy=True``) train the first stage only.
    continuity_weight : float, default 1.0
        Weight of the continuity penalty between segments (scaled units).
    learn_x0 : bool, default True
        Learn each trajectory's initial state; False starts each from its first observation.
    refine_steps : int, default 20
        Models whose field has named physical parameters (grey-box), trained with
        ``optimizer="adam"``: at most this many residual evaluations of a trust-region
        Gauss-Newton refinement of the whole-trajectory least squares after shooting (0
        keeps the shooting estimate).
    optimizer : {"adam", "least_squares"}, default "adam"
        ``"adam"``: the gradient training above. ``"least_squares"``: for fields whose
        free quantities are few (a :class:`~sysid.fields.GreyBox` field: its parameters and
        the initial states, no network), trust-region Gauss-Newton
        (:func:`scipy.optimize.least_squares`, bounds kept exactly) with residuals and
        Jacobian from one batched solve per evaluation, in three stages: collocation on
        the smoothed derivatives, multiple shooting (``segment_length``,
        ``continuity_weight``), single shooting of whole trajectories
        (:mod:`sysid.training._least_squares`). ``max_epochs`` then caps the residual
        evaluations of each shooting stage and ``collocation_steps`` those of the
        collocation; ``lr``, ``batch_size``, ``patience``, ``lbfgs_steps`` and
        ``refine_steps`` are not used. The default of :class:`~sysid.GreyBoxODE`.
    errors : {"additive", "log"}, default "additive"
        How simulated and measured states are compared, in the training loss, the
        free-run validation and (SparseODE) the choice of equations, its polish and its
        standard errors. ``"additive"``: differences, each state in units of its spread.
        ``"log"``: ``log(simulated) - log(measured)``, relative (multiplicative,
        lognormal) errors, for positive data such as populations, concentrations and
        counts; a DataError names a state with a measured value <= 0. Needs
        ``optimizer="adam"``; GreyBoxODE and HybridODE refine by additive least squares
        and refuse it.

    Examples
    --------
    >>> import sysid
    >>> model = sysid.NeuralODE(training=Training(max_epochs=80, lr=5e-3))
    >>> model.get_params()["training__max_epochs"]
    80
    >>> Training(horizons=[20, None]).check()  # then 20-interval windows, then whole trajectories
    >>> Training(max_epochs=0).check()
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: Training: max_epochs must be a positive integer, got 0.
    """

    role = "training"

    def __init__(
        self,
        *,
        max_epochs: int = 40,
        lr: float = 1e-2,
        batch_size: int | None = None,
        validation_fraction: float = 0.0,
        patience: int | None = 60,
        lbfgs_steps: int = 100,
        collocation_steps: int = 300,
        segment_length: int = 5,
        continuity_weight: float = 1.0,
        learn_x0: bool = True,
        refine_steps: int = 20,
        optimizer: str = "adam",
        horizons: list[Any] | tuple[Any, ...] | None = None,
        errors: str = "additive",
    ) -> None:
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.lbfgs_steps = lbfgs_steps
        self.collocation_steps = collocation_steps
        self.segment_length = segment_length
        self.continuity_weight = continuity_weight
        self.learn_x0 = learn_x0
        self.refine_steps = refine_steps
        self.optimizer = optimizer
        self.horizons = horizons
        self.errors = errors

    def check(self) -> None:
        """Validate every parameter (a :class:`~sysid.ConfigError` names the one at fault)."""
        self._positive_int("max_epochs")
        self._number("lr", low=0.0, strict_low=True)
        self._positive_int("batch_size", allow_none=True)
        fraction = self._number("validation_fraction", low=0.0)
        if fraction is not None and not fraction < 1.0:
            raise self._fail("validation_fraction", "in [0, 1)")
        self._positive_int("patience", allow_none=True)
        self._positive_int("lbfgs_steps", allow_zero=True)
        self._positive_int("collocation_steps", allow_zero=True)
        self._positive_int("segment_length")
        self._number("continuity_weight", low=0.0)
        self._flag("learn_x0")
        self._positive_int("refine_steps", allow_zero=True)
        self._choice("optimizer", OPTIMIZERS)
        self._choice("errors", ERRORS)
        if self.errors == "log" and self.optimizer == "least_squares":
            raise ConfigError(
                "Training: errors='log' needs optimizer='adam'; the least-squares fit compares additive errors."
            )
        check_horizons(self.horizons, int(self.segment_length))
        if self.horizons is not None and self.optimizer == "least_squares":
            raise ConfigError(
                f"Training: horizons={self.horizons!r} needs optimizer='adam'; the least-squares fit "
                "already ends on whole trajectories (single shooting). Use horizons=None."
            )

    def settings(self, **overrides: Any) -> TrainSettings:
        """The optimisation loop's settings (``overrides`` win: description, verbose...)."""
        lr = float(self.lr)
        values: dict[str, Any] = dict(
            max_epochs=self.max_epochs,
            lr=lr,
            lr_final=lr / 10,
            batch_size=self.batch_size,
            patience=self.patience,
            eval_every=EVAL_EVERY,
            eval_cost_ratio=EVAL_COST_RATIO,
            max_eval_every=max_eval_every(self.patience),
            lbfgs_steps=self.lbfgs_steps,
        )
        return TrainSettings(**{**values, **overrides})
