"""Fixtures shared by several test folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from hypothesis import settings

# The default run draws the same hypothesis cases every time (derandomized, per test), so a
# commit's test verdict does not depend on luck: a CI run once drew a fuzzed model file that
# ground for minutes and was killed at 24 GB, on a commit whose previous run had passed.
# `python -m pytest --hypothesis-profile=explore` draws new random cases to hunt bugs.
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("reproducible")


@pytest.fixture(scope="session")
def dask_computes() -> Callable[[list], AbstractContextManager[None]]:
    """``with dask_computes(log):`` runs dask synchronously, opening a new group in ``log`` at every compute.

    Arrays that record their reads append to ``log[-1]``, so each group lists what one
    compute read: how many computes ran, and how much each materialised.
    """
    dask = pytest.importorskip("dask")
    from dask.callbacks import Callback

    class Computes(Callback):
        def __init__(self, log: list) -> None:
            super().__init__()
            self.log = log

        def _start(self, dsk: object) -> None:
            self.log.append([])

    @contextmanager
    def computes(log: list) -> Iterator[None]:
        with dask.config.set(scheduler="synchronous"), Computes(log):
            yield

    return computes
