"""Fixtures shared by several test folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest


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
