"""Measurement models y = h(x): what the sensor reads of the state (saturation, offset, gain)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch

from sysid.errors import ConfigError
from sysid.fields._scaling import Scaling
from sysid.parts import Part


class SensorModel(torch.nn.Module):
    """y = clip(gain * x + offset, low, high) per observed state, on scaled values.

    The solver works on scaled states z = (x - center) / spread; :meth:`forward` maps the
    scaled observed states (..., n_states) to the scaled readings the data hold. Learned
    offsets and log-gains are parameters, the rest fixed buffers (an empty parameter would
    break the adjoint).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sysid.fields import Scaling
    >>> s = Scaling(np.zeros(1), np.ones(1), np.zeros(0), np.ones(0), 1.0)
    >>> h = SensorModel(s, 1, low=[-math.inf], high=[10.0], learn_offset=[False], learn_gain=[False])
    >>> h(torch.tensor([[4.0], [12.0]], dtype=torch.float64)).ravel().tolist()
    [4.0, 10.0]
    """

    # Buffers, and offset/log_gain (Parameters when learned, buffers otherwise), for type checkers.
    center: torch.Tensor
    spread: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    offset_mask: torch.Tensor
    gain_mask: torch.Tensor
    offset: torch.Tensor
    log_gain: torch.Tensor

    def __init__(
        self,
        scaling: Scaling,
        n_states: int,
        low: Sequence[float],
        high: Sequence[float],
        learn_offset: Sequence[bool],
        learn_gain: Sequence[bool],
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        self.register_buffer("center", as_t(scaling.center[:n_states]))
        self.register_buffer("spread", as_t(scaling.spread[:n_states]))
        self.register_buffer("low", as_t(low))
        self.register_buffer("high", as_t(high))
        self.register_buffer("offset_mask", as_t([float(v) for v in learn_offset]))
        self.register_buffer("gain_mask", as_t([float(v) for v in learn_gain]))
        zeros = torch.zeros(n_states, dtype=dtype)
        if any(learn_offset):
            self.offset = torch.nn.Parameter(zeros.clone())  # in units of the state's spread
        else:
            self.register_buffer("offset", zeros.clone())
        if any(learn_gain):
            self.log_gain = torch.nn.Parameter(zeros.clone())
        else:
            self.register_buffer("log_gain", zeros.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled readings (..., n_states) of scaled observed states (..., n_states)."""
        gain = torch.exp(self.log_gain * self.gain_mask)
        x = self.center + self.spread * z
        y = gain * x + self.spread * self.offset * self.offset_mask
        y = torch.maximum(torch.minimum(y, self.high), self.low)
        return (y - self.center) / self.spread

    def readout(self) -> dict[str, Any]:
        """The fitted offsets (physical units) and gains."""
        return {
            "offset": (self.spread * self.offset * self.offset_mask).tolist(),
            "gain": torch.exp(self.log_gain * self.gain_mask).tolist(),
        }


class Sensor(Part):
    """What the sensor reads of the state: y = clip(gain x + offset, low, high).

    The model is fitted through the sensor (its loss compares the readings the model
    predicts with the data) and ``predict`` returns what the sensor would read. The
    cascaded-tanks level sensor clips at 10 V when a tank overflows:
    ``NeuralODE(output=Sensor(high=10.0))``. Give a value for every state or a dict by
    state name; states not in a dict are read as they are.

    Parameters
    ----------
    low, high : float or dict of str to float, optional
        Saturation limits of the readings (physical units).
    offset : bool or list of str, default False
        Learn an additive offset (for every state, or the states named).
    gain : bool or list of str, default False
        Learn a multiplicative gain. A learned gain or offset of a state whose dynamics
        are learned too is only identifiable through what the field cannot absorb
        (saturation limits, known physics): prefer them with grey-box fields.

    Examples
    --------
    >>> import sysid
    >>> sysid.NeuralODE(output=Sensor(high={"y": 10.0})).output
    Sensor(high={'y': 10.0})
    """

    role = "output"

    def __init__(
        self,
        *,
        low: float | Mapping[str, float] | None = None,
        high: float | Mapping[str, float] | None = None,
        offset: bool | Sequence[str] = False,
        gain: bool | Sequence[str] = False,
    ) -> None:
        self.low = low
        self.high = high
        self.offset = offset
        self.gain = gain

    def _limits(self, name: str, states: Sequence[Hashable], default: float) -> list[float]:
        value = getattr(self, name)
        if value is None:
            return [default] * len(states)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(states))
            if unknown:
                raise ConfigError(f"Sensor: {name} names {unknown}, which are not states {list(states)}.")
            items = [value.get(s, default) for s in states]
        else:
            items = [value] * len(states)
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | float) or math.isnan(item):
                raise self._fail(name, "a number, a dict {state: number} or None")
            out.append(float(item))
        return out

    def _learned(self, name: str, states: Sequence[Hashable]) -> list[bool]:
        value = getattr(self, name)
        if isinstance(value, bool):
            return [value] * len(states)
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise self._fail(name, "True, False or a list of state names")
        unknown = sorted(set(value) - set(states))
        if unknown:
            raise ConfigError(f"Sensor: {name} names {unknown}, which are not states {list(states)}.")
        return [s in value for s in states]

    def check(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                self._limits(name, ["?"], 0.0)
        for name in ("offset", "gain"):
            value = getattr(self, name)
            if not isinstance(value, bool) and (isinstance(value, str) or not isinstance(value, Sequence)):
                raise self._fail(name, "True, False or a list of state names")

    def build(self, states: Sequence[Hashable], scaling: Scaling, dtype: torch.dtype) -> SensorModel:
        """The measurement model for these observed states."""
        self.check()
        low = self._limits("low", states, -math.inf)
        high = self._limits("high", states, math.inf)
        bad = [s for s, lo, hi in zip(states, low, high) if not lo < hi]
        if bad:
            raise ConfigError(f"Sensor: low must be below high, but not for {bad}.")
        return SensorModel(
            scaling, len(states), low, high, self._learned("offset", states), self._learned("gain", states), dtype
        )
