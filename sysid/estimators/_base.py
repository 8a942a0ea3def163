"""The front door every estimator shares: data in through the adapters, predictions back.

Public ``fit``/``predict``/``score`` validate and convert; subclasses implement
``_fit(data)`` and ``_predict(data, x0)`` on a validated :class:`Trajectories`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from sysid.adapters import as_trajectories, to_caller_format
from sysid.errors import ConfigError, DataError, FitWarning
from sysid.estimators._observed_range import flag_extrapolation
from sysid.fields import Scaling
from sysid.metrics import r2
from sysid.trajectories import LazyTrajectories, Trajectories, Trajectory, is_complex

DATA_OPTIONS = (
    "time",
    "states",
    "inputs",
    "trajectory",
    "state_names",
    "input_names",
    "interpolate_inputs",
    "lazy",
    "sort",
)
_LABELLED_OPTIONS = ("time", "states", "inputs", "trajectory", "interpolate_inputs", "sort")
_ARRAY_OPTIONS = ("interpolate_inputs", "sort")  # the fit's reading rules that also apply to arrays


def as_numbers(values: Any, what: str) -> np.ndarray:
    """``values`` as a float64 array, or a :class:`DataError` naming ``what`` (never numpy's own error).

    Examples
    --------
    >>> as_numbers([1, 2], "x0").tolist()
    [1.0, 2.0]
    >>> as_numbers(["a", 1], "x0")
    Traceback (most recent call last):
    ...
    sysid.errors.DataError: x0 must be numbers, got ['a', 1] (could not convert string to float: 'a').
    """
    if is_complex(values):
        raise DataError(f"{what} must be real numbers, got complex values; pass the real part explicitly.")
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        shown = repr(values) if len(repr(values)) < 80 else f"a {type(values).__name__}"
        raise DataError(f"{what} must be numbers, got {shown} ({exc}).") from None


def as_finite_numbers(values: Any, what: str) -> np.ndarray:
    """``values`` as a float64 array of finite numbers, or a :class:`DataError` naming ``what``.

    For inputs an estimator evaluates directly (``vector_field`` states, inputs, times): a
    NaN or infinite entry has no meaningful answer, so it is refused rather than passed on.

    Examples
    --------
    >>> as_finite_numbers([[1, 2], [3, 4]], "x").shape
    (2, 2)
    >>> as_finite_numbers([[1.0, 2.0], [3.0, float("inf")]], "x")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    sysid.errors.DataError: x must be finite numbers, got inf at position (1, 1) (1 non-finite value(s));
    NaN and inf have no dx/dt: pass finite states (and inputs and times).
    """
    arr = as_numbers(values, what)
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        position = tuple(int(i) for i in bad[0])
        shown = position if len(position) != 1 else position[0]
        raise DataError(
            f"{what} must be finite numbers, got {float(arr[tuple(bad[0])])} at position {shown} "
            f"({len(bad)} non-finite value(s)); NaN and inf have no dx/dt: pass finite states (and inputs and "
            "times)."
        )
    return arr


#: Observations per unknown below which :func:`warn_if_underdetermined` warns. One per unknown
#: is the least a least-squares fit needs to be determined at all; with noisy data and
#: numerical derivatives that bare minimum fits the noise exactly, hence two.
MIN_OBSERVATIONS_PER_UNKNOWN = 2.0


def warn_if_underdetermined(
    owner: str,
    n_observations: int,
    n_unknowns: int,
    *,
    unknowns: str = "parameters",
    observations: str = "observed values",
    per_unknown: float = MIN_OBSERVATIONS_PER_UNKNOWN,
    advice: str = "Add data (more trajectories or times), or fit a smaller model.",
    stacklevel: int = 4,
) -> bool:
    """Warn (:class:`~sysid.FitWarning`) when the data are too few to determine the model; True if it warned.

    Call it from ``_fit`` before the optimisation, with what the data give and what the
    model asks: ``n_observations`` observed values (or samples per equation) for
    ``n_unknowns`` free parameters (or library terms per equation). Below
    ``per_unknown`` observations per unknown (default :data:`MIN_OBSERVATIONS_PER_UNKNOWN`)
    the fit still runs, but its result is whatever the starting point or the
    regularisation makes of it, not what the data say.

    Parameters
    ----------
    owner : str
        Who fits, for the message (``"SINDy"``).
    n_observations, n_unknowns : int
    unknowns, observations : str
        What they count, for the message (``"library terms per state"``, ``"samples"``).
    per_unknown : float
        The sensible minimum of observations per unknown for this kind of model.
    advice : str
        What to do about it.
    stacklevel : int
        Passed to :func:`warnings.warn`; 4 points at the user's ``fit`` call when called
        from ``_fit``.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_underdetermined("SINDy", 3, 6, unknowns="library terms per state", observations="samples")
    True
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    SINDy: 3 samples cannot determine 6 library terms per state: a fit needs at least 12 (2 per unknown);
    with fewer, the result is what the starting point or the regularisation makes of it, not what the
    data say. Add data (more trajectories or times), or fit a smaller model.
    >>> warn_if_underdetermined("SINDy", 30, 6)
    False
    """
    needed = int(np.ceil(per_unknown * n_unknowns))
    if n_observations >= needed:
        return False
    warnings.warn(
        f"{owner}: {n_observations} {observations} cannot determine {n_unknowns} {unknowns}: a fit needs at least "
        f"{needed} ({per_unknown:g} per unknown); with fewer, the result is what the starting point or the "
        f"regularisation makes of it, not what the data say. {advice}",
        FitWarning,
        stacklevel=stacklevel,
    )
    return True


class TrajectoryEstimator(BaseEstimator):
    """Base class: scikit-learn conventions for models fitted to trajectories.

    ``predict`` returns trajectories (not derivatives) in the caller's format;
    ``score`` is R^2 of those trajectories over observed entries.
    """

    # -- the contract subclasses implement ------------------------------------------
    def _fit(self, data: Trajectories) -> None:
        """Fit to validated data; set every learned attribute (ending in ``_``)."""
        raise NotImplementedError

    def _predict(self, data: Trajectories, x0: np.ndarray | None) -> list[np.ndarray]:
        """Simulate each trajectory of ``data``; return arrays (n_times_i, n_states).

        ``x0`` is None (estimate each initial state from the data) or (n_traj, n_states).
        """
        raise NotImplementedError

    def _check_config(self) -> None:
        """Check the parameters that need no data; ``fit`` calls it before reading any.

        The default checks nothing. Raise :class:`~sysid.ConfigError` for a setting that
        cannot work here (an unavailable device...), so no time is spent loading data first.
        """

    def _check_streaming(self) -> None:
        """Raise :class:`~sysid.ConfigError` if this estimator cannot fit streamed data.

        ``fit`` calls it before reading data given as ``lazy=True`` or as
        :class:`~sysid.trajectories.LazyTrajectories`. The default refuses: an estimator
        that can train minibatch by minibatch overrides it and :meth:`_fit_streaming`.
        """
        raise ConfigError(
            f"{type(self).__name__} cannot fit streamed data (lazy=True): it needs every observation in memory "
            "at once. Read the data without lazy=True, or fit a NeuralODE, which trains minibatch by minibatch."
        )

    def _fit_streaming(self, data: LazyTrajectories) -> None:
        """Fit to data read minibatch by minibatch; see :meth:`_check_streaming`."""
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------
    def fit(self, X: Any, t: Any = None, u: Any = None, **data_options: Any) -> TrajectoryEstimator:
        """Fit the model to measured trajectories.

        Parameters
        ----------
        X : Trajectories, pandas.DataFrame, xarray.Dataset/DataArray, array or list of arrays
            The measurements; DataFrames and Datasets go through the adapters with
            ``data_options`` (``time=``, ``states=``, ``inputs=``, ``trajectory=``,
            ``sort=True`` for rows out of time order...).
            With ``lazy=True`` (xarray data) or :class:`~sysid.trajectories.LazyTrajectories`,
            estimators that can (``NeuralODE``) train minibatch by minibatch without reading
            the whole data into memory; the others raise :class:`~sysid.ConfigError`.
        t : array or list of arrays, optional
            Times, when ``X`` is an array (or list of arrays).
        u : array or list of arrays, optional
            Inputs at those times, for array data.

        Returns
        -------
        self
        """
        self._check_data_options(data_options)
        self._check_config()
        if data_options.get("lazy") or isinstance(X, LazyTrajectories):
            self._check_streaming()  # before the data is read
        data = as_trajectories(X, t=t, u=u, **data_options)
        self.state_names_ = list(data.state_names)
        self.input_names_ = list(data.input_names)
        self.n_states_in_ = data.n_states
        self.n_controls_in_ = data.n_inputs
        self.time_kind_ = data.time_kind
        self.data_options_ = dict(data_options)
        if isinstance(data, LazyTrajectories):
            self._fit_streaming(data)
            self.observed_range_ = data.summary.states.bounds
            inputs = data.summary.inputs.bounds
        else:
            self._fit(data)
            self.observed_range_ = np.stack(data.observed_range())
            inputs = Scaling.input_bounds(data)
        self.input_range_ = inputs
        return self

    def predict(self, X: Any = None, t: Any = None, x0: Any = None, u: Any = None, **data_options: Any) -> Any:
        """Simulate trajectories: at the times of ``X`` (in ``X``'s format), or a new experiment.

        Parameters
        ----------
        X : data as accepted by :meth:`fit`, or None
            Predict at these times with these inputs; initial states are estimated
            from the observations unless ``x0`` is given.
        t : array (n_times,), optional
            With ``X=None``: the times of a new experiment.
        x0 : array (n_states,) or (n_trajectories, n_states), optional
            Initial states at each trajectory's first time.
        u : array (n_times, n_inputs), optional
            With ``X=None``: the inputs of the new experiment at ``t``.

        Returns
        -------
        The predicted states in the caller's format (DataFrame, Dataset, Trajectories,
        or an array (n_times, n_states) for ``t=``/``x0=`` calls).
        """
        check_is_fitted(self)
        data, starts, like = self._prediction_request(X, t, x0, u, data_options)
        predictions = self._predict(data, starts)
        observed = not isinstance(like, _NewExperiment)  # a new experiment's rows are placeholders
        flagged = self._flag_extrapolation(data, predictions, starts, "predict", observed)
        result = self._format_prediction(data, predictions, like)
        if flagged and hasattr(result, "attrs"):
            result.attrs["extrapolated"] = flagged
        return result

    def score(self, X: Any, t: Any = None, u: Any = None, **data_options: Any) -> float:
        """R^2 of predicted trajectories over observed entries, averaged over states.

        Initial states are estimated from each trajectory's observations, as in
        :meth:`predict`. 1 is perfect, 0 is no better than each state's mean. Computed by
        :func:`sysid.metrics.r2` with ``failed="penalize"``: where a simulation failed
        (a :class:`~sysid.SolverWarning` says so) the score is very bad but finite, so that
        ``GridSearchCV`` still ranks the candidates; :func:`sysid.metrics.r2` (default) and
        :func:`sysid.compare` report NaN for it.
        """
        check_is_fitted(self)
        data = self._data_like_fit(X, t, u, data_options)
        predictions = self._predict(data, None)
        self._flag_extrapolation(data, predictions, None, "score")
        return float(r2(data, predictions, failed="penalize"))

    def save(self, path: Any) -> Any:
        """Write this fitted model to ``path`` (no pickle); see :func:`sysid.save` and :func:`sysid.load`.

        Models built with your own Python functions (``f=``) store their names only: pass
        the functions again to :func:`sysid.load`.
        """
        from sysid.io import save

        return save(self, path)

    # -- helpers ---------------------------------------------------------------------
    @property
    def _flags_extrapolation(self) -> bool:
        """Whether predict/score warn beyond the observed states (:class:`~sysid.ExtrapolationWarning`).

        Models whose equations are the user's own (grey-box, classical) do not: their validity
        outside the data is the modelling assumption the user made, not something learned.
        A property (subclasses override it with a property or a class attribute), so that the
        ones that decide from their parts or members type-check.
        """
        return True

    def _flag_extrapolation(
        self,
        data: Trajectories,
        predictions: list[np.ndarray],
        starts: np.ndarray | None,
        owner: str,
        observed: bool = True,
    ) -> list[Any]:
        """Warn (:class:`~sysid.ExtrapolationWarning`) about trajectories beyond ``observed_range_``.

        Checks the prediction, the initial states ``starts`` and, when ``observed``, the
        observations of ``data``; a new experiment (``predict(t=..., x0=...)``) has none,
        only placeholder rows, so it passes ``observed=False``.
        """
        if not self._flags_extrapolation:
            return []
        pieces = [
            ([tr.y] if observed else []) + [p] + ([] if starts is None else [starts[i : i + 1]])
            for i, (tr, p) in enumerate(zip(data, predictions))
        ]
        where = f"{type(self).__name__}.{owner}"
        flagged = flag_extrapolation(
            getattr(self, "observed_range_", None), list(data.names), self.state_names_, pieces, where
        )
        if data.n_inputs and getattr(self, "input_range_", None) is not None:  # files before it have none
            driven = flag_extrapolation(
                self.input_range_,
                list(data.names),
                self.input_names_,
                [[] if tr.u is None else [tr.u] for tr in data],
                where,
                "inputs",
            )
            flagged += [name for name in driven if name not in flagged]
        return flagged

    @staticmethod
    def _check_data_options(options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(DATA_OPTIONS))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown}; data options are {list(DATA_OPTIONS)}.")

    def _check_same_variables(self, data: Trajectories) -> None:
        if data.n_states != self.n_states_in_:
            inputs = [n for n in data.state_names if n in self.input_names_]
            hint = f" {inputs[0]!r} is an input of the model: pass inputs={self.input_names_}." if inputs else ""
            raise DataError(
                f"the data has {data.n_states} state column(s) {list(data.state_names)}, but the model was "
                f"fitted on {self.n_states_in_} states {self.state_names_}; pass data with those states.{hint}"
            )
        if list(data.state_names) != self.state_names_:
            raise DataError(
                f"the model was fitted on states {self.state_names_}, got {list(data.state_names)}; "
                "pass data with the same state columns (in the same order)."
            )
        if list(data.input_names) != self.input_names_:
            raise DataError(
                f"the model was fitted with inputs {self.input_names_}, got {list(data.input_names)}; "
                "inputs must be given at prediction time because they drive the dynamics."
            )

    def _check_x0(self, x0: Any, n_traj: int) -> np.ndarray:
        arr = as_numbers(x0, "x0")
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (n_traj, arr.shape[0]))
        if arr.ndim != 2 or arr.shape != (n_traj, self.n_states_in_):
            raise DataError(
                f"x0 must have shape (n_states,) = ({self.n_states_in_},) or (n_trajectories, n_states) = "
                f"({n_traj}, {self.n_states_in_}) for states {self.state_names_}, got shape {np.shape(x0)}."
            )
        if not np.all(np.isfinite(arr)):
            raise DataError(f"x0 must be finite, got {arr.tolist()}.")
        return np.array(arr)

    def _prediction_request(
        self, X: Any, t: Any, x0: Any, u: Any, data_options: dict[str, Any]
    ) -> tuple[Trajectories, np.ndarray | None, Any]:
        """Validated data and initial states of a ``predict`` call, and what to format the result like.

        For ``X=None`` (a new experiment from ``t=`` and ``x0=``), ``like`` is a
        :class:`_NewExperiment`; otherwise it is ``X``.
        """
        if X is None:
            return self._new_experiment(t, x0, u)
        data = self._data_like_fit(X, t, u, data_options)
        starts = None if x0 is None else self._check_x0(x0, len(data))
        return data, starts, X

    def _data_like_fit(self, X: Any, t: Any, u: Any, data_options: dict[str, Any]) -> Trajectories:
        """``X`` read as the fit read its data, checked to hold the fitted states and inputs.

        The fit's column options (``time=``, ``states=``...) apply to labelled data only:
        a model fitted on a DataFrame also predicts Trajectories and arrays. Array columns
        take the fitted names when there are as many of them as fitted states (inputs).
        """
        self._check_data_options(data_options)
        if isinstance(X, Trajectories):
            options = dict(data_options)
        elif isinstance(X, np.ndarray | list | tuple):
            fitted = {k: v for k, v in self.data_options_.items() if k in _ARRAY_OPTIONS}
            options = {**fitted, **data_options}
        else:
            fitted = {k: v for k, v in self.data_options_.items() if k in _LABELLED_OPTIONS}
            options = {**fitted, **data_options}
            self._check_inputs_present(X, options)
        data = as_trajectories(X, t=t, u=u, **options)
        if isinstance(data, LazyTrajectories):
            raise DataError(
                "predict, score and the like read their data in memory, and got LazyTrajectories (or lazy=True); "
                "pass the Dataset itself, or data.load(positions) for some of the trajectories."
            )
        if isinstance(X, np.ndarray | list | tuple):
            data = self._with_fitted_names(data, options)
        self._check_same_variables(data)
        self._check_time_kind(data)
        return data

    def _check_time_kind(self, data: Trajectories) -> None:
        """Refuse times of another kind than the fit's: they would be read in another unit, silently.

        Datetimes and timedeltas become seconds, numbers stay in their own unit; a model
        fitted on one and given the other would predict on a rescaled clock. Models loaded
        from files that predate ``time_kind_`` are not checked.
        """
        fitted = getattr(self, "time_kind_", None)
        if fitted is None or data.time_kind == fitted:
            return
        how = {
            "datetime": "datetime64 times, e.g. pandas.to_datetime(df['t'])",
            "timedelta": "timedelta64 times, e.g. pandas.to_timedelta(df['t'], unit='s')",
            "float": "numbers in the unit the fit's times had, e.g. (df['t'] - df['t'].min()).dt.total_seconds() "
            "if that unit was seconds",
        }[fitted]
        raise DataError(
            f"the model was fitted on {fitted} times, but the data has {data.time_kind} times; sysid reads "
            "datetimes and timedeltas in seconds and numbers in their own unit, so mixing the kinds would "
            f"silently change the time scale. Give {how}."
        )

    def _check_inputs_present(self, X: Any, options: dict[str, Any]) -> None:
        """Name the fitted inputs a DataFrame or Dataset lacks before the adapter looks for them."""
        if not self.input_names_ or options.get("inputs") is None:
            return
        names = (
            set(getattr(X, "columns", []))
            | set(getattr(X, "variables", []))
            | {n for n in getattr(getattr(X, "index", None), "names", []) or [] if n is not None}
        )
        missing = [n for n in self.input_names_ if n not in names]
        if missing:
            raise DataError(
                f"the model was fitted with inputs {self.input_names_}, but the {type(X).__name__} has no "
                f"{missing[0]!r}; inputs drive the dynamics, so predict needs them at every time."
            )

    def _with_fitted_names(self, data: Trajectories, options: dict[str, Any]) -> Trajectories:
        """Default array column names (x0, u0...) replaced by the fitted names when the counts agree."""
        states = list(data.state_names)
        inputs = list(data.input_names)
        if options.get("state_names") is None and data.n_states == self.n_states_in_:
            states = list(self.state_names_)
        if options.get("input_names") is None and data.n_inputs == self.n_controls_in_:
            inputs = list(self.input_names_)
        if states == list(data.state_names) and inputs == list(data.input_names):
            return data
        return Trajectories(list(data), states, inputs, data.time_kind, dict(data.attrs), {}, dict(data.source))

    @staticmethod
    def _format_prediction(data: Trajectories, predictions: list[np.ndarray], like: Any) -> Any:
        """Predicted states of ``data`` in the format of ``like`` (see :meth:`_prediction_request`)."""
        if isinstance(like, _NewExperiment):
            return np.stack(predictions) if like.several else predictions[0]
        result = data.with_states(predictions)
        failed = [tr.name for tr, p in zip(data, predictions) if not np.all(np.isfinite(p))]
        if failed:  # a flag on the result, beside the SolverWarning the estimator gave
            result.attrs["solver_failed"] = failed
        return to_caller_format(result, like=like)

    def _new_experiment(self, t: Any, x0: Any, u: Any) -> tuple[Trajectories, np.ndarray, _NewExperiment]:
        if t is None or x0 is None:
            raise DataError("predict needs data X, or both t= (times of a new experiment) and x0= (its initial state).")
        t_arr = as_numbers(t, "t")
        if t_arr.ndim != 1 or t_arr.size < 2:
            raise DataError(
                f"t must be a 1-D array of at least two increasing times for a new experiment, got "
                f"shape {t_arr.shape}; e.g. t=numpy.linspace(0, 10, 101)."
            )
        x0_arr = as_numbers(x0, "x0")
        several = x0_arr.ndim == 2
        starts = self._check_x0(x0_arr, x0_arr.shape[0] if several else 1)
        if self.n_controls_in_ and u is None:
            raise DataError(
                f"the model was fitted with inputs {self.input_names_}: pass u= with shape "
                f"(n_times, {self.n_controls_in_}) for a new experiment."
            )
        if not self.n_controls_in_ and u is not None:
            raise DataError("the model was fitted without inputs, but u= was given.")
        placeholder = np.full((t_arr.shape[0] if t_arr.ndim else 0, self.n_states_in_), np.nan)
        if placeholder.shape[0] >= 2:
            placeholder[:2] = 0.0  # times only: the container wants two observed rows
        trajs = [Trajectory(t_arr, placeholder, None if u is None else u, i) for i in range(starts.shape[0])]
        data = Trajectories(trajs, self.state_names_, self.input_names_)
        return data, starts, _NewExperiment(several)


@dataclass(frozen=True)
class _NewExperiment:
    """``predict(t=..., x0=...)`` was called: return arrays, stacked when ``x0`` was 2-D."""

    several: bool
