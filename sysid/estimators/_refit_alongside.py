"""The refit of a poor fit, run alongside the first fit on a second core (``n_jobs``).

A fit whose kept parameters miss their own data (free run above
:data:`sysid.training.REFIT_FREE_RUN`) is fitted once more from the start it did not take
(:meth:`~sysid.estimators._free_run.FreeRunCheckMixin._refit_if_poor`). That refit does
not depend on the first fit: it starts from the estimator as it stood before the first
training, builds its field from the same seed and reads nothing the first fit wrote. So,
where the machine has a second core, it can start at the same time as the first fit, in a
worker process (joblib's loky backend), and be used only if the first fit misses its data;
otherwise it is stopped (the worker is killed). Both fits run single-threaded, so the wall
time of a refitted fit is the longer of the two fits rather than their sum, and its result
is the same bits as the refit run afterwards, in this process (``n_jobs=1``): the same code
on the same state (tests compare the two).

It runs alongside only where that cannot oversubscribe the machine or change the result:
``n_jobs`` other than 1, at least two usable cores (:func:`joblib.cpu_count`: affinity
and container quotas), not inside a worker process or thread already (a member of
``Ensemble(n_jobs=2)``, a model of ``compare(n_jobs=2)`` or of a grid search: those use the
cores), the fit on the CPU, and an estimator that pickles. Anything else, or a worker that dies, leaves the
refit to run afterwards in this process, as before.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import warnings
from collections.abc import Generator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, cast

import joblib
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from tqdm import tqdm

from sysid.errors import ConfigError, FitError, SysidWarning
from sysid.integration import torch_threads
from sysid.trajectories import Trajectories

#: The processes a fit may use: the first fit and one refit alongside it.
MAX_FIT_JOBS = 2


def check_n_jobs(n_jobs: Any) -> int:
    """``n_jobs`` checked: the number of processes a fit may use (1 or 2); ConfigError otherwise.

    Examples
    --------
    >>> check_n_jobs(2), check_n_jobs(-1), check_n_jobs(8)
    (2, 2, 2)
    >>> check_n_jobs(0)
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: n_jobs must be a positive integer or -1 (every core; a fit uses at most 2), got 0.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or not (n_jobs >= 1 or n_jobs == -1):
        raise ConfigError(
            f"n_jobs must be a positive integer or -1 (every core; a fit uses at most 2), got {n_jobs!r}."
        )
    return MAX_FIT_JOBS if n_jobs == -1 else min(int(n_jobs), MAX_FIT_JOBS)


@dataclass
class RefitOutcome:
    """What a refit run in a worker hands back: the estimator's fitted attributes after it.

    Attributes
    ----------
    attributes : dict
        The worker's estimator's ``__dict__`` after the refit, without its parameters (the
        caller keeps its own). The refit rebuilds every attribute a fit sets (its field, its
        scaling, its history...), so these replace what the first fit left.
    failed : bool
        The refit raised :class:`~sysid.FitError` (the first fit is then kept, as it would be here).
    caught : list of (category, message)
        sysid's warnings the refit issued, to be issued again where the refit is used.
    """

    attributes: dict[str, Any]
    failed: bool
    caught: list[tuple[type[Warning], str]]


def refit_in_worker(payload: bytes, blas_threads: dict[str, int]) -> RefitOutcome | None:
    """Unpickle ``(estimator, data, other)`` and refit the estimator from field part ``other``.

    Runs :meth:`~sysid.estimators._free_run.FreeRunCheckMixin._refit_from`, the code the
    refit runs in the fitting process, on the state that process would refit from, with the
    fitting process's BLAS and OpenMP thread counts (``blas_threads``: threadpoolctl's
    prefixes; loky starts its workers with fewer). None when the payload cannot be unpickled
    here (a class defined in the caller's ``__main__``): the caller then refits itself.
    """
    try:
        estimator, data, other = pickle.loads(payload)  # our own bytes, made by RefitAlongside.start
    except Exception:  # noqa: BLE001 - not importable in a worker: the refit runs in the fitting process
        return None
    # tqdm's default lock is a multiprocessing semaphore: a worker killed mid-fit would leave it to the
    # resource tracker, which complains at exit. A thread lock serves a process that draws no bars.
    tqdm.set_lock(threading.RLock())
    estimator.verbose = False  # no second set of bars under the first fit's (a parameter: not handed back)
    failed = False
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=blas_threads):
        warnings.simplefilter("always", SysidWarning)
        try:
            with torch_threads(1):
                estimator._refit_from(data, other)
        except FitError:
            failed = True
    params = set(estimator.get_params(deep=False))
    return RefitOutcome(
        {k: v for k, v in estimator.__dict__.items() if k not in params},
        failed,
        [(w.category, str(w.message)) for w in caught if issubclass(w.category, SysidWarning)],
    )


class RefitAlongside:
    """A refit started in a worker process when the first fit starts; waited for or stopped after it.

    Examples
    --------
    >>> import sysid
    >>> model = sysid.NeuralODE(n_jobs=1)
    >>> RefitAlongside.start(model, None, None) is None  # n_jobs=1: the refit runs afterwards, here
    True
    """

    def __init__(self, results: Generator[RefitOutcome | None]) -> None:
        self._results = results
        self._done = False

    @staticmethod
    def possible(estimator: Any) -> bool:
        """Whether a refit may run alongside ``estimator``'s fit (see the module's docstring)."""
        return (
            check_n_jobs(estimator.n_jobs) > 1
            and joblib.cpu_count() >= MAX_FIT_JOBS
            and multiprocessing.parent_process() is None
            and threading.current_thread() is threading.main_thread()
            and estimator._torch_device().type == "cpu"
        )

    @classmethod
    def start(cls, estimator: Any, data: Trajectories | None, other: Any) -> RefitAlongside | None:
        """Start the refit of ``estimator`` from field part ``other`` in a worker; None where it may not.

        The estimator is pickled here, as it stands, before the first fit changes it. Anything
        that keeps the worker from starting (an estimator that does not pickle, a process
        limit) leaves the refit to the fitting process: None.
        """
        if other is None or not cls.possible(estimator):
            return None
        try:
            payload = pickle.dumps((estimator, data, other))
            blas_threads = {pool["prefix"]: int(pool["num_threads"]) for pool in threadpool_info()}
            results = joblib.Parallel(n_jobs=MAX_FIT_JOBS, backend="loky", return_as="generator")(
                joblib.delayed(refit_in_worker)(payload, blas_threads) for _ in range(1)
            )
        except Exception:  # noqa: BLE001 - no worker: the refit runs here, afterwards, as with n_jobs=1
            return None
        return cls(cast(Generator[RefitOutcome | None], results))  # return_as="generator"

    def result(self) -> RefitOutcome | None:
        """Wait for the refit; None if its worker died or could not read its task (the caller refits here).

        An error the refit itself raised (other than FitError, which the outcome reports) is
        raised here, as a refit run here would raise it. A KeyboardInterrupt while waiting
        stops the worker and is raised again.
        """
        try:
            outcome = next(self._results)
        except BrokenProcessPool:  # the worker died (memory, a signal): the refit runs here instead
            outcome = None
        finally:
            self.cancel()
        return outcome

    def cancel(self) -> None:
        """Stop the worker if it is still running (its result is not needed); idempotent."""
        if self._done:
            return
        with warnings.catch_warnings():  # joblib says that a task was cancelled: that is the point
            warnings.simplefilter("ignore")
            self._results.close()
        self._done = True
