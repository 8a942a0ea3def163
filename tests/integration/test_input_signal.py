"""InputSignal: batched reads of several ragged records equal numpy's interpolation of each record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sysid.integration import InputSignal

from .strategies import ragged_records


@st.composite
def records(draw):
    """1-4 ragged records (1-12 increasing sample times, 2 input channels) and 1-15 reads of them."""
    times, values = draw(ragged_records(4))
    n = len(times)
    reads = draw(st.lists(st.tuples(st.integers(0, n - 1), st.floats(-10.0, 45.0)), min_size=1, max_size=15))
    # also read exactly at sample times: the boundaries of the intervals
    reads += [(i, float(times[i][k % len(times[i])])) for k, (i, _) in enumerate(reads)]
    return times, values, reads


def _read(data, kind: str) -> tuple[list, np.ndarray]:
    """The reads of ``records()`` data and what InputSignal returns for them."""
    times, values, reads = data
    traj = torch.tensor([i for i, _ in reads])
    t = torch.tensor([s for _, s in reads], dtype=torch.float64)
    return reads, InputSignal(times, values, kind)(t, traj).numpy()


@settings(max_examples=60, deadline=None)
@given(records())
def test_linear_reads_match_numpy_interpolation_of_each_record(data) -> None:
    times, values, _ = data
    reads, got = _read(data, "linear")
    for (i, s), row in zip(reads, got):  # np.interp holds the end values outside the record, as InputSignal does
        expected = [np.interp(s, times[i], values[i][:, c]) for c in range(2)]
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(records())
def test_zero_order_hold_reads_the_last_sample_at_or_before_the_time(data) -> None:
    times, values, _ = data
    reads, got = _read(data, "zoh")
    for (i, s), row in zip(reads, got):
        k = min(max(int(np.searchsorted(times[i], s, side="right")) - 1, 0), len(times[i]) - 1)
        np.testing.assert_array_equal(row, values[i][k])


@pytest.mark.parametrize(("n_records", "n_samples"), [(1, 40), (3, 40), (12, 40), (60, 4)])
def test_one_long_record_a_few_or_many_short_ones_read_alike(n_records: int, n_samples: int) -> None:
    """Each way of searching the records (one, a few long ones, many short ones) reads what numpy interpolates."""
    rng = np.random.default_rng(n_records)
    times = [np.sort(rng.uniform(0.0, 10.0, n_samples)) for _ in range(n_records)]
    values = [rng.normal(size=(n_samples, 1)) for _ in range(n_records)]
    traj = torch.as_tensor(rng.integers(0, n_records, 200))
    t = torch.as_tensor(rng.uniform(-1.0, 11.0, 200), dtype=torch.float64)
    got = InputSignal(times, values)(t, traj).numpy()[:, 0]
    expected = [np.interp(s, times[i], values[i][:, 0]) for i, s in zip(traj.tolist(), t.tolist())]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_the_derived_tables_are_not_saved_so_older_checkpoints_still_load() -> None:
    signal = InputSignal([np.arange(5.0)], [np.arange(5.0)[:, None]])
    assert set(signal.state_dict()) == {"times", "values", "lengths"}
