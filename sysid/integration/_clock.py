"""Map the solver's time onto each batch element's data time.

Every batch element (a segment or a whole trajectory) has its own irregular sample
times; the solver integrates all of them together in one shared time variable
``sigma``. A :class:`Clock` says, for each element, which data time ``t`` a value of
``sigma`` stands for and the rate ``dt/dsigma`` (piecewise constant). Past its ``end``
an element is frozen (rate 0), so trajectories of different lengths share one solve.
"""

from __future__ import annotations

import bisect

import torch


class Clock(torch.nn.Module):
    """Piecewise-linear data time of each batch element as a function of solver time.

    Parameters
    ----------
    sigma_knots : tensor (K+1,)
        Increasing solver times shared by every element.
    time_knots : tensor (batch, K+1)
        The data time each element has at those solver times (non-decreasing; equal
        neighbours freeze the element over that interval).
    end : tensor (batch,) or None
        Solver time after which an element is frozen.

    Examples
    --------
    >>> import torch
    >>> clock = Clock(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([[0.0, 0.5, 2.5]]))
    >>> t, rate = clock(torch.tensor(1.5))
    >>> t.tolist(), rate.tolist()
    ([1.5], [2.0])
    >>> clock.rate_column(torch.tensor(1.5)).tolist()  # the rate alone, as a column
    [[2.0]]
    """

    # Buffers (registered in __init__), declared for type checkers.
    sigma_knots: torch.Tensor
    time_knots: torch.Tensor
    rates: torch.Tensor
    rate_columns: torch.Tensor
    end: torch.Tensor | None

    def __init__(self, sigma_knots: torch.Tensor, time_knots: torch.Tensor, end: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("sigma_knots", sigma_knots)
        self.register_buffer("time_knots", time_knots)
        self.register_buffer("rates", torch.diff(time_knots, dim=1) / torch.diff(sigma_knots))
        # The same rates as (K, batch, 1) columns: the lean path reads one with a single indexing.
        self.register_buffer("rate_columns", self.rates.T.unsqueeze(-1).contiguous())
        self.register_buffer("end", end)
        # Python copies of the knots: locating sigma costs no tensor operation.
        self._knots = [float(v) for v in sigma_knots]
        # Each interval's data times and rates (batch,), taken out of the tables when first read (_column).
        self._columns: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._columns_of = self.time_knots
        # A clock of one element also keeps its data times, rates and end as Python numbers (time_and_rate).
        self._one: tuple[list[float], list[float], float | None] | None = None
        if time_knots.shape[0] == 1:
            self._one = (time_knots[0].tolist(), self.rates[0].tolist(), None if end is None else float(end[0]))

    @classmethod
    def shifted(cls, starts: torch.Tensor, durations: torch.Tensor) -> Clock:
        """Element ``b`` runs at rate 1 from data time ``starts[b]`` for ``durations[b]``."""
        horizon = durations.max().clamp(min=1.0) * 2
        sigma = torch.stack([torch.zeros_like(horizon), horizon])
        return cls(sigma, torch.stack([starts, starts + horizon], dim=1), end=durations)

    def _interval(self, sigma: torch.Tensor) -> int:
        """Index k of the knot interval holding ``sigma`` (clamped to the first and last)."""
        return min(max(bisect.bisect_right(self._knots, sigma.item()) - 1, 0), len(self._knots) - 2)

    def _column(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Data times and rates (batch,) at the start of interval ``k``: a lookup instead of two tensor operations."""
        if self._columns_of is not self.time_knots:  # moved (``to``) since: the views are of the old tables
            self._columns, self._columns_of = {}, self.time_knots
        if k not in self._columns:
            self._columns[k] = (self.time_knots[:, k], self.rates[:, k])
        return self._columns[k]

    def rate_column(self, sigma: torch.Tensor) -> torch.Tensor:
        """Rates dt/dsigma (batch, 1) at solver time ``sigma``, without the data times.

        For right-hand sides that read neither the time nor inputs (see
        :class:`~sysid.integration.BatchedField`): one or two tensor operations per call
        instead of the half dozen that :meth:`forward` spends on ``t``.
        """
        rate = self.rate_columns[self._interval(sigma)]
        if self.end is not None:
            rate = rate * (sigma < self.end).to(rate.dtype)[:, None]
        return rate

    @property
    def single(self) -> bool:
        """Whether the clock has one element (:meth:`time_and_rate` reads it without tensors)."""
        return self._one is not None

    def time_and_rate(self, sigma: float) -> tuple[float, float]:
        """The data time and rate of a clock of one element at solver time ``sigma``, as Python floats.

        The same arithmetic as :meth:`forward` in double precision, so the same numbers
        (for float64 knots), without the half dozen tensor operations: a solve of one long
        record evaluates its field thousands of times.

        Examples
        --------
        >>> import torch
        >>> clock = Clock(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([[0.0, 0.5, 2.5]]))
        >>> clock.time_and_rate(1.5)
        (1.5, 2.0)
        """
        if self._one is None:
            raise ValueError(f"time_and_rate reads a clock of one element; this one has {self.time_knots.shape[0]}")
        times, rates, end = self._one
        k = min(max(bisect.bisect_right(self._knots, sigma) - 1, 0), len(self._knots) - 2)
        rate = rates[k]
        t = times[k] + (sigma - self._knots[k]) * rate
        if end is not None:
            rate = rate * (1.0 if sigma < end else 0.0)
        return t, rate

    def forward(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data times (batch,) and rates dt/dsigma (batch,) at solver time ``sigma``."""
        k = self._interval(sigma)
        start, rate = self._column(k)
        t = start + (sigma - self._knots[k]) * rate
        if self.end is not None:
            rate = rate * (sigma < self.end).to(rate.dtype)
        return t, rate
