"""Hypothesis strategies shared by the input-signal tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


@st.composite
def ragged_records(draw, max_records: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """1 to ``max_records`` ragged records: 1-12 increasing sample times each, 2 input channels."""
    times, values = [], []
    for _ in range(draw(st.integers(1, max_records))):
        steps = draw(st.lists(st.floats(0.01, 3.0), min_size=0, max_size=11))
        times.append(draw(st.floats(-5.0, 5.0)) + np.concatenate([[0.0], np.cumsum(steps)]))
        size = 2 * len(times[-1])
        values.append(np.asarray(draw(st.lists(st.floats(-10, 10), min_size=size, max_size=size))).reshape(-1, 2))
    return times, values
