"""Ensembles: many fits of one estimator, a mean prediction with quantile bands.

:class:`Ensemble` clones an estimator ``n_members`` times, fits every clone on a
bootstrap resample of the data (whole trajectories, or contiguous time segments of them),
or on all of it (``bootstrap=None``: a seed ensemble), with its own seed, in parallel
through joblib, and predicts the members' mean; the spread between members gives
uncertainty bands (:meth:`Ensemble.predict_quantiles`).
With ``joblib.parallel_config(backend="dask")`` the members are fitted on a Dask cluster.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from sysid.errors import ConfigError, DataError
from sysid.estimators import TrajectoryEstimator
from sysid.trajectories import Trajectories

__all__ = ["Ensemble"]

#: Most parallel jobs: joblib's process pool cannot hold more (a fuzzed model file asked for 2,000,000).
_MAX_JOBS = 1024
_BOOTSTRAPS = ("trajectories", "segments", None)


def _fit_member(estimator: Any, data: Trajectories) -> Any:
    return estimator.fit(data)


def _member_prediction(member: Any, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
    predicted = member.predict(data, x0=x0)
    return [np.asarray(tr.y, dtype=float) for tr in predicted]


class Ensemble(TrajectoryEstimator):
    """An ensemble of one estimator (bootstrap or seeds): mean prediction and quantile bands.

    Each member is a clone of ``estimator`` fitted on its own bootstrap resample of the
    training data (or on all of it, ``bootstrap=None``), with its own seed. ``predict``
    returns the members' mean trajectory; :meth:`predict_quantiles` returns pointwise
    quantiles across members (e.g. a 90% band), in the same format. The band reflects how
    much the fitted model depends on which data it saw (and on the seed): model
    uncertainty, not measurement noise.

    Parameters
    ----------
    estimator : estimator
        Any sysid estimator (``NeuralODE``, ``SparseODE``, ``SINDy``...), cloned, never
        fitted itself. When it has a ``random_state`` parameter, each member gets its own
        seed drawn from ``random_state`` (the estimator's own seed is not used).
    n_members : int, default 10
        Number of members (at least 2).
    bootstrap : {"trajectories", "segments"} or None, default "trajectories"
        None: every member is fitted on all the data and members differ only by their
        seed (a seed ensemble: it averages out how a neural fit depends on its random
        start; its band shows that dependence, not how the model depends on the data).
        ``"trajectories"``: each member sees as many trajectories as the data has, drawn
        with replacement (needs at least two trajectories). ``"segments"``: every
        trajectory is cut into ``n_segments`` contiguous pieces of about equal length
        (neighbours share their boundary sample), and each member sees as many pieces as
        there are, drawn with replacement from all of them, each piece a trajectory of its
        own (with its own initial state). Use it with one or few long experiments.
    n_segments : int, default 4
        Pieces per trajectory for ``bootstrap="segments"``.
    n_jobs : int or None, default None
        Members fitted (and predicted) in parallel by joblib; None runs serially, unless
        a ``joblib.parallel_config`` (e.g. ``backend="dask"``) says otherwise. Results do
        not depend on it.
    random_state : int or None, default 0
        Seeds the resampling and the members' seeds: the same value gives the same
        ensemble. None draws fresh entropy at every fit.

    Attributes
    ----------
    estimators_ : list of fitted estimators
    samples_ : list of lists
        What each member was fitted on: trajectory names (``"trajectories"``, and every
        name once for ``None``), or ``(name, first_row, last_row)`` pieces
        (``"segments"``), with repeats.
    member_seeds_ : list of int
        The ``random_state`` each member was given.
    n_function_evals_ : int
        Vector-field evaluations of all members' fits, when the members count them.

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> from sysid.estimators._sindy import SINDy
    >>> data = simulate("lotka_volterra", n_trajectories=4, n_samples=100, noise=0.02, irregular=False)
    >>> ensemble = Ensemble(SINDy(), n_members=5).fit(data)
    >>> mean = ensemble.predict(data)
    >>> lower, upper = ensemble.predict_quantiles(data, quantiles=(0.05, 0.95))
    >>> bool((lower[0].y <= upper[0].y).all()), len(ensemble.estimators_)
    (True, 5)
    """

    @property
    def _flags_extrapolation(self) -> bool:  # as its members do
        return bool(getattr(self.estimator, "_flags_extrapolation", True))

    def __init__(
        self,
        estimator: Any,
        n_members: int = 10,
        bootstrap: str = "trajectories",
        n_segments: int = 4,
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.estimator = estimator
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.n_segments = n_segments
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- configuration -------------------------------------------------------------------
    def _check_config(self) -> None:
        if not (
            hasattr(self.estimator, "fit")
            and hasattr(self.estimator, "predict")
            and hasattr(self.estimator, "get_params")
        ):
            raise ConfigError(
                f"estimator must be a sysid estimator (with fit, predict, get_params), got "
                f"{type(self.estimator).__name__}."
            )
        if isinstance(self.n_members, bool) or not isinstance(self.n_members, numbers.Integral) or self.n_members < 2:
            raise ConfigError(f"n_members must be an integer >= 2, got {self.n_members!r}.")
        if self.bootstrap is not None and not (isinstance(self.bootstrap, str) and self.bootstrap in _BOOTSTRAPS):
            raise ConfigError(f"bootstrap must be one of {list(_BOOTSTRAPS)}, got {self.bootstrap!r}.")
        if (
            isinstance(self.n_segments, bool)
            or not isinstance(self.n_segments, numbers.Integral)
            or self.n_segments < 1
        ):
            raise ConfigError(f"n_segments must be a positive integer, got {self.n_segments!r}.")
        if self.n_jobs is not None and (
            isinstance(self.n_jobs, bool)
            or not isinstance(self.n_jobs, numbers.Integral)
            or self.n_jobs == 0
            or abs(self.n_jobs) > _MAX_JOBS
        ):
            raise ConfigError(
                f"n_jobs must be None or a non-zero integer from -{_MAX_JOBS} to {_MAX_JOBS} (-1: every core), "
                f"got {self.n_jobs!r}."
            )
        if self.random_state is not None and (
            isinstance(self.random_state, bool) or not isinstance(self.random_state, numbers.Integral)
        ):
            raise ConfigError(f"random_state must be None or an int, got {self.random_state!r}.")
        check = getattr(self.estimator, "_check_config", None)
        if check is not None:  # e.g. an unavailable device: fail before any member is fitted
            clone(self.estimator)._check_config()

    # -- resampling ----------------------------------------------------------------------
    def _pieces(self, data: Trajectories) -> tuple[list[Any], list[Hashable | tuple[Hashable, int, int]]]:
        """The units the bootstrap draws from, and how each is described in ``samples_``."""
        if self.bootstrap == "trajectories":
            if len(data) < 2:
                raise DataError(
                    f"bootstrap='trajectories' needs at least two trajectories, got {len(data)} "
                    f"({data.names}); use bootstrap='segments' to resample pieces of it."
                )
            return list(data), list(data.names)
        pieces: list[Any] = []
        labels: list[Hashable | tuple[Hashable, int, int]] = []
        n = int(self.n_segments)
        for tr in data:
            if tr.n_times < 2 * n + 1:
                raise DataError(
                    f"bootstrap='segments' cuts trajectory {tr.name!r} ({tr.n_times} samples) into "
                    f"n_segments={n} pieces, which needs at least {2 * n + 1} samples; lower n_segments."
                )
            bounds = np.round(np.linspace(0, tr.n_times - 1, n + 1)).astype(int)
            for first, last in itertools.pairwise(bounds):
                rows = slice(int(first), int(last) + 1)
                pieces.append(tr.replace(t=tr.t[rows], y=tr.y[rows], u=None if tr.u is None else tr.u[rows]))
                labels.append((tr.name, int(first), int(last)))
        return pieces, labels

    def _resamples(self, data: Trajectories) -> tuple[list[Trajectories], list[list[Any]], list[int]]:
        """Every member's data, what it holds, and its seed."""
        members = np.random.SeedSequence(self.random_state).spawn(int(self.n_members))
        if self.bootstrap is None:  # a seed ensemble: all the data for every member
            seeds = [int(child.generate_state(1)[0]) for child in members]
            return [data] * len(members), [list(data.names) for _ in members], seeds
        pieces, labels = self._pieces(data)
        datasets, samples, seeds = [], [], []
        for k, child in enumerate(members):
            drawn = np.random.default_rng(child).integers(0, len(pieces), size=len(pieces))
            trajs = [pieces[i].replace(name=f"{labels[i]} #{j}") for j, i in enumerate(drawn)]
            try:
                datasets.append(data.subset(trajs))
            except DataError as exc:
                raise DataError(f"ensemble member {k}: a bootstrap piece is unusable ({exc}).") from None
            samples.append([labels[i] for i in drawn])
            seeds.append(int(child.generate_state(1)[0]))
        return datasets, samples, seeds

    # -- the TrajectoryEstimator contract ------------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        datasets, samples, seeds = self._resamples(data)
        seeded = "random_state" in self.estimator.get_params(deep=False)
        members = []
        for seed in seeds:
            member = clone(self.estimator)
            if seeded:
                member.set_params(random_state=seed)
            members.append(member)
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(member, subset) for member, subset in zip(members, datasets)
        )
        self.samples_ = samples
        self.member_seeds_ = seeds
        evals = [getattr(m, "n_function_evals_", None) for m in self.estimators_]
        counts = [int(e) for e in evals if isinstance(e, numbers.Integral)]
        if len(counts) == len(evals):
            self.n_function_evals_ = sum(counts)

    def _member_predictions(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        """Per trajectory, the members' predictions stacked: (n_members, n_times_i, n_states)."""
        per_member = Parallel(n_jobs=self.n_jobs)(
            delayed(_member_prediction)(member, data, x0) for member in self.estimators_
        )
        return [np.stack([member[i] for member in per_member]) for i in range(len(data))]

    def _predict(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        with warnings.catch_warnings():  # every member failed somewhere: NaN, flagged by predict
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
            return [np.nanmean(stack, axis=0) for stack in self._member_predictions(data, x0)]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimators_")

    # -- public extras -------------------------------------------------------------------
    def predict(self, X: Any = None, t: Any = None, x0: Any = None, u: Any = None, **data_options: Any) -> Any:
        """The members' mean trajectory, in ``X``'s format (see :meth:`predict_quantiles` for bands).

        Parameters and return value as for the members' ``predict``: data ``X`` (initial
        states estimated by each member from the observations unless ``x0`` is given),
        or a new experiment from ``t=`` and ``x0=`` (and ``u=``). A member whose
        simulation failed (NaN) is left out of the mean.
        """
        return super().predict(X, t=t, x0=x0, u=u, **data_options)

    def predict_quantiles(
        self,
        X: Any = None,
        t: Any = None,
        x0: Any = None,
        u: Any = None,
        quantiles: Sequence[float] = (0.05, 0.95),
        **data_options: Any,
    ) -> tuple[Any, ...]:
        """Pointwise quantiles of the members' predictions, one prediction per quantile.

        Parameters
        ----------
        X, t, x0, u, data_options
            As for :meth:`predict`.
        quantiles : sequence of float in [0, 1], default (0.05, 0.95)
            The default gives the lower and upper edges of a 90% band.

        Returns
        -------
        tuple
            One entry per quantile, each in the format :meth:`predict` returns (DataFrame,
            Dataset, Trajectories, array...): ``lower, upper = model.predict_quantiles(data)``.
            Members whose simulation failed (NaN) are left out.

        Examples
        --------
        Plot the mean with its band:

        >>> from sysid import plot
        >>> from sysid.datasets import simulate
        >>> from sysid.estimators._sindy import SINDy
        >>> data = simulate("lotka_volterra", n_trajectories=3, n_samples=100, noise=0.02, irregular=False)
        >>> ensemble = Ensemble(SINDy(), n_members=4).fit(data)
        >>> fig = plot.trajectories(data, ensemble.predict(data), bands=[ensemble.predict_quantiles(data)])
        """
        check_is_fitted(self)
        levels = np.asarray(quantiles, dtype=float).reshape(-1) if _is_number_list(quantiles) else None
        if levels is None or levels.size == 0 or not np.all((levels >= 0) & (levels <= 1)):
            raise ConfigError(f"quantiles must be a sequence of numbers in [0, 1], got {quantiles!r}.")
        data, starts, like = self._prediction_request(X, t, x0, u, data_options)
        stacks = self._member_predictions(data, starts)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            return tuple(
                self._format_prediction(data, [np.nanquantile(s, q, axis=0) for s in stacks], like) for q in levels
            )

    def vector_field(self, x: Any, t: Any = 0.0, u: Any = None) -> np.ndarray:
        """The members' mean dx/dt at states ``x`` (as the members' ``vector_field``)."""
        check_is_fitted(self)
        return np.mean([np.asarray(m.vector_field(x, t, u), dtype=float) for m in self.estimators_], axis=0)

    # -- model files (sysid.io) ----------------------------------------------------------
    _FITTED_JSON = ("state_names_", "input_names_", "n_states_in_", "n_controls_in_", "data_options_", "member_seeds_")

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """JSON-ready fitted attributes; the fitted members under ``"members"`` (:mod:`sysid.io` writes each)."""
        state: dict[str, Any] = {name: getattr(self, name) for name in self._FITTED_JSON}
        state["samples_"] = [[list(s) if isinstance(s, tuple) else s for s in drawn] for drawn in self.samples_]
        state["n_function_evals_"] = getattr(self, "n_function_evals_", None)
        state["members"] = list(self.estimators_)
        return state, {}

    def _set_fitted_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Rebuild from :meth:`_fitted_state` output whose ``"members"`` :mod:`sysid.io` has loaded."""
        self._check_config()  # stored parameters (n_jobs...) are checked as fit checks them
        for name in self._FITTED_JSON:
            setattr(self, name, state[name])
        self.estimators_ = list(state["members"])
        if len(self.estimators_) != len(self.member_seeds_):
            raise ValueError(f"{len(self.estimators_)} members for {len(self.member_seeds_)} seeds")
        self.samples_ = [[tuple(s) if isinstance(s, list) else s for s in drawn] for drawn in state["samples_"]]
        if state.get("n_function_evals_") is not None:
            self.n_function_evals_ = int(state["n_function_evals_"])

    def save(self, path: Any) -> Any:
        """Write this fitted ensemble, every member included, to ``path``; see :func:`sysid.save`.

        Examples
        --------
        >>> import os, tempfile, sysid
        >>> from sysid.datasets import simulate
        >>> data = simulate("lotka_volterra", n_trajectories=4, n_samples=60, noise=0.02, irregular=False)
        >>> ensemble = Ensemble(sysid.SINDy(), n_members=3).fit(data)
        >>> loaded = sysid.load(ensemble.save(os.path.join(tempfile.mkdtemp(), "ensemble.sysid")))
        >>> lower, upper = loaded.predict_quantiles(data)
        >>> bool((lower[0].y == ensemble.predict_quantiles(data)[0][0].y).all()), len(loaded.estimators_)
        (True, 3)
        """
        return super().save(path)


def _is_number_list(values: Any) -> bool:
    if isinstance(values, str | bytes):
        return False
    try:
        return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in np.asarray(values).reshape(-1))
    except (TypeError, ValueError):
        return False
