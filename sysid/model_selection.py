"""Splitting trajectories for validation: hold out whole experiments, or their tails.

Samples within one trajectory are not independent, so cross-validation here splits
**trajectories**, never time points of the same trajectory across folds.
:class:`TrajectoryKFold` is a scikit-learn CV splitter: ``GridSearchCV(SINDy(), grid,
cv=TrajectoryKFold(3)).fit(data)`` tunes on held-out experiments, scored by each
estimator's ``score`` (R^2 of simulated trajectories over observed entries). A held-out
trajectory whose simulation fails (a :class:`~sysid.SolverWarning` names it) scores very
badly but finitely there (:func:`sysid.metrics.r2` with ``failed="penalize"``), so that a
candidate failing on one fold ranks below those that simulate, instead of turning the
mean, and ``best_score_``, into NaN.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import BaseCrossValidator, KFold

from sysid.adapters import as_trajectories
from sysid.errors import ConfigError, DataError
from sysid.trajectories import Trajectories

__all__ = ["TrajectoryKFold", "train_test_split"]


def train_test_split(
    data: Any,
    test_trajectories: Sequence[Hashable] | Hashable | None = None,
    time_fraction: float | None = None,
    test_size: float | int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> tuple[Trajectories, Trajectories]:
    """Split data into training and test trajectories, or into the past and future of each.

    Give exactly one of ``test_trajectories``, ``time_fraction`` or ``test_size``.

    Parameters
    ----------
    data : Trajectories (or anything :func:`sysid.as_trajectories` reads without options)
    test_trajectories : names (or positions) of the experiments to hold out
    time_fraction : float in (0, 1)
        Keep this fraction of every trajectory's time span for training; the later
        samples form the test part (extrapolation in time).
    test_size : float in (0, 1) or int >= 1
        Hold out this fraction of the trajectories (rounded up, at least one, at most
        all but one) or this many, chosen at random.
    random_state : int, numpy Generator or None
        Seeds the random choice for ``test_size``.

    Returns
    -------
    (train, test) : tuple of Trajectories

    Raises
    ------
    ConfigError
        Not exactly one way of splitting, or a ``test_size`` out of range.
    DataError
        Unknown trajectory names, or a split that leaves a part empty.

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> data = simulate("lotka_volterra", n_trajectories=4, n_samples=20)
    >>> train, test = train_test_split(data, test_trajectories=["run3"])
    >>> train.names, test.names
    (['run0', 'run1', 'run2'], ['run3'])
    >>> train, test = train_test_split(data, test_size=0.5, random_state=0)
    >>> len(train), len(test), sorted(train.names + test.names) == data.names
    (2, 2, True)
    >>> past, future = train_test_split(data, time_fraction=0.75)
    >>> bool(past[0].t.max() < future[0].t.min())
    True
    """
    data = data if isinstance(data, Trajectories) else as_trajectories(data)
    given = [name for name, value in (("test_trajectories", test_trajectories), ("time_fraction", time_fraction),
                                      ("test_size", test_size)) if value is not None]
    if len(given) != 1:
        raise ConfigError(
            "train_test_split needs exactly one of test_trajectories= (names to hold out), time_fraction= "
            "(split every trajectory in time) or test_size= (a random fraction of trajectories); "
            f"got {given or 'none'}."
        )
    if time_fraction is not None:
        return data.split(time_fraction=time_fraction)
    if test_trajectories is not None:
        return data.split(test_trajectories=test_trajectories)
    n = len(data)
    if n < 2:
        raise DataError(f"test_size needs at least two trajectories to split, got {n}.")
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise ConfigError(f"test_size must be a fraction in (0, 1) or a count >= 1, got {test_size!r}.")
    if isinstance(test_size, numbers.Integral):
        if not 1 <= test_size <= n - 1:
            raise ConfigError(f"test_size={test_size} trajectories must be between 1 and {n - 1} (there are {n}).")
        n_test = int(test_size)
    else:
        if not 0.0 < float(test_size) < 1.0:
            raise ConfigError(f"test_size as a fraction must be in (0, 1), got {test_size!r}.")
        n_test = min(max(int(np.ceil(float(test_size) * n)), 1), n - 1)
    rng = np.random.default_rng(random_state)
    held = sorted(rng.choice(n, size=n_test, replace=False).tolist())
    kept = [i for i in range(n) if i not in held]
    return data[np.array(kept)], data[np.array(held)]


class TrajectoryKFold(BaseCrossValidator):
    """K-fold cross-validation over whole trajectories (a scikit-learn CV splitter).

    Parameters
    ----------
    n_splits : int, default 3
        Number of folds (at least 2, at most the number of trajectories).
    shuffle : bool, default False
        Shuffle the trajectories before cutting folds.
    random_state : int or None
        Seeds the shuffle.

    Examples
    --------
    >>> from sysid.datasets import simulate
    >>> data = simulate("lotka_volterra", n_trajectories=3, n_samples=20)
    >>> [(train.tolist(), test.tolist()) for train, test in TrajectoryKFold(3).split(data)]
    [([1, 2], [0]), ([0, 2], [1]), ([0, 1], [2])]
    >>> data[next(TrajectoryKFold(3).split(data))[0]].names
    ['run1', 'run2']
    """

    def __init__(self, n_splits: int = 3, shuffle: bool = False, random_state: int | None = None) -> None:
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def _kfold(self) -> KFold:
        if isinstance(self.n_splits, bool) or not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 2:
            raise ConfigError(f"n_splits must be an integer >= 2, got {self.n_splits!r}.")
        return KFold(int(self.n_splits), shuffle=bool(self.shuffle),
                     random_state=self.random_state if self.shuffle else None)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train, test) arrays of trajectory positions.

        Parameters
        ----------
        X : Trajectories (or a sequence of trajectories)
        y, groups : ignored

        Yields
        ------
        train, test : int arrays of positions into ``X``; ``X[train]`` is a Trajectories.
        """
        kfold = self._kfold()
        n = len(X)
        if n < kfold.n_splits:
            raise DataError(
                f"TrajectoryKFold(n_splits={kfold.n_splits}) needs at least {kfold.n_splits} trajectories, got {n}; "
                "lower n_splits or add experiments."
            )
        yield from kfold.split(np.arange(n))

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of folds."""
        return int(self._kfold().n_splits)

    def _iter_test_indices(self, X: Any = None, y: Any = None, groups: Any = None) -> Iterator[np.ndarray]:
        for _, test in self.split(X):
            yield test
