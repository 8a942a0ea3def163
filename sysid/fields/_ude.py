"""Neural terms inside your own equations: universal differential equations (Rackauckas et al. 2020)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from sysid.errors import ConfigError
from sysid.fields._greybox import Bound, GreyBox, GreyBoxField, check_parameter_spec
from sysid.fields._mlp import ACTIVATIONS, check_widths, make_network
from sysid.fields._spec import FieldContext, Points

UDEFunction = Callable[..., Any]
_MAX_GRID_VARIABLES = 6  # probe grid: 3**n points up to this many variables, axis points beyond


class TermNetwork(torch.nn.Module):
    """A named network of a UDE: standardised inputs in, outputs in units of the data's rates.

    ``net((inputs - input_center) / input_spread) * output_scale``: the inputs the user's
    equations pass are standardised with statistics taken when the field was built, the
    outputs multiplied by a typical derivative magnitude, so the weights are of order one.
    While :attr:`recorded` is a list, every call appends its raw (order-one) output, which
    the correction penalty reads.
    """

    # Buffers (registered in __init__), declared for type checkers.
    input_center: torch.Tensor
    input_spread: torch.Tensor
    output_scale: torch.Tensor

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int], activation: str,
                 generator: torch.Generator | None, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = make_network([n_in, *hidden, n_out], activation, generator, dtype)
        self.register_buffer("input_center", torch.zeros(n_in, dtype=dtype))
        self.register_buffer("input_spread", torch.ones(n_in, dtype=dtype))
        self.register_buffer("output_scale", torch.ones(n_out, dtype=dtype))
        self.n_in, self.n_out = n_in, n_out
        self.recorded: list[torch.Tensor] | None = None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.reshape(inputs.shape[0], -1)
        if inputs.shape[1] != self.n_in:
            raise ConfigError(f"a network of this UDE was built for {self.n_in} input column(s) and was called with "
                              f"{inputs.shape[1]}; pass the same columns every time.")
        raw = self.net((inputs - self.input_center) / self.input_spread)
        if self.recorded is not None:
            self.recorded.append(raw)
        out = raw * self.output_scale
        return out[:, 0] if self.n_out == 1 else out


class UDEField(GreyBoxField):
    """dx/dt = f(t, x, p, u, nn): the user's equations with named parameters p and networks nn.

    Parameters
    ----------
    f : callable ``f(t, x, p, u, nn)``
        As a grey-box ``f``, with ``nn`` a mapping of names to networks: ``nn["leak"](z)``
        takes a tensor (batch, k) (or (batch,)) and returns (batch,) for one output,
        (batch, m) for several.
    initial, bounds, fixed, dtype
        The physical parameters, as for :class:`~sysid.fields.GreyBoxField`.
    networks : mapping of str to TermNetwork

    Examples
    --------
    >>> import torch
    >>> def decay(t, x, p, u, nn):
    ...     return -p["k"] * x + nn["extra"](x)[:, None]
    >>> net = TermNetwork(1, 1, (4,), "tanh", torch.Generator().manual_seed(0), torch.float64)
    >>> field = UDEField(decay, {"k": 0.5}, networks={"extra": net})
    >>> field(torch.zeros(2), torch.ones(2, 1, dtype=torch.float64), None).shape
    torch.Size([2, 1])
    """

    f: UDEFunction  # GreyBoxField's f, with the networks as a fifth argument

    def __init__(self, f: UDEFunction, initial: Mapping[str, float], bounds: Mapping[str, Bound] | None = None,
                 fixed: Sequence[str] | None = None, dtype: torch.dtype = torch.float64,
                 networks: Mapping[str, TermNetwork] | None = None) -> None:
        super().__init__(f, initial, bounds, fixed, dtype)
        self.networks = torch.nn.ModuleDict(dict(networks or {}))

    def call(self, t: torch.Tensor, x: torch.Tensor, p: dict[str, torch.Tensor], u: torch.Tensor | None) -> Any:
        return self.f(t, x, p, u, self.networks)

    def network_outputs(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor | None) -> list[torch.Tensor]:
        """The raw (order-one) outputs of every network call that f makes at these points."""
        networks = self.term_networks()
        for net in networks:
            net.recorded = []
        try:
            self(t, x, u)
            return [out for net in networks for out in (net.recorded or [])]
        finally:
            for net in networks:
                net.recorded = None

    def term_networks(self) -> list[TermNetwork]:
        """The networks (a ModuleDict types its values as plain modules; they are TermNetworks)."""
        return [cast(TermNetwork, net) for net in self.networks.values()]


class _Probe:
    """Stands in for the networks while the user's f is called on probe states: records what each gets."""

    def __init__(self, outputs: Mapping[str, int]) -> None:
        self.outputs = dict(outputs)
        self.inputs: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if name not in self.outputs:
            raise KeyError(name)

        def call(inputs: torch.Tensor) -> torch.Tensor:
            inputs = torch.as_tensor(inputs).reshape(inputs.shape[0], -1)
            self.inputs[name] = inputs.detach()
            n = self.outputs[name]
            zeros = torch.zeros(inputs.shape[0], n, dtype=inputs.dtype)
            return zeros[:, 0] if n == 1 else zeros

        return call

    def __contains__(self, name: object) -> bool:
        return name in self.outputs


class UDE(GreyBox):
    """Your equations with neural terms inside: dx/dt = f(t, x, p, u, nn) (a universal differential equation).

    Write what you know and leave a named network where you do not: a tank whose outflow
    law is unknown, ``dh/dt = (u - nn["outflow"](h[:, None])) / p["area"]``. The physical
    parameters and the networks are trained together; the parameters' uncertainty is
    reported as for :class:`~sysid.GreyBoxODE`, conditional on the networks.

    Each network's input width is found by calling ``f`` once on probe states spread
    over the data, which also gives the statistics that standardise its inputs; its
    outputs are in units of the data's typical rate (state spread per characteristic
    time), so its weights are of order one whatever the units.

    Parameters
    ----------
    f : callable ``f(t, x, p, u, nn) -> tensor``
        The right-hand side in torch: t (batch,), x (batch, n_states), p a dict of scalar
        tensors, u (batch, n_inputs) or None, nn a mapping of networks, each called on a
        tensor (batch, k) and returning (batch,) (one output) or (batch, m). Model files
        store only its name: pass it again to ``sysid.load(path, f=f)``.
    params : dict of str to float
        The physical parameters with initial values (may be empty).
    networks : dict of str to int
        The networks ``f`` calls, by name, with their number of outputs.
    bounds, fixed
        As for :class:`GreyBox`.
    hidden : tuple of int, default (16, 16)
        Hidden widths of every network.
    activation : str, default "tanh"
    correction_penalty : float, default 1e-3
        Weight of the networks' mean squared (order-one) output in the loss, so they only
        explain what the physics cannot.

    Examples
    --------
    >>> import sysid, torch
    >>> def tank(t, x, p, u, nn):
    ...     return (u[:, 0] - nn["outflow"](x))[:, None] / p["area"]
    >>> sysid.HybridODE(field=UDE(f=tank, params={"area": 2.0}, networks={"outflow": 1})).field.networks
    {'outflow': 1}
    """

    f: UDEFunction | None  # GreyBox's f, with the networks as a fifth argument
    function_name = "f"
    flags_extrapolation = True  # its networks are black boxes
    streaming_unsupported = "its correction penalty uses every observation at once"
    observations_per_parameter = 0.01

    def __init__(self, *, f: UDEFunction | None = None, params: Mapping[str, float] | None = None,
                 networks: Mapping[str, int] | None = None, bounds: Mapping[str, Bound] | None = None,
                 fixed: Sequence[str] | None = None, hidden: Sequence[int] = (16, 16), activation: str = "tanh",
                 correction_penalty: float = 1e-3) -> None:
        self.f = f
        self.params = params
        self.networks = networks
        self.bounds = bounds
        self.fixed = fixed
        self.hidden = hidden
        self.activation = activation
        self.correction_penalty = correction_penalty

    def spec(self, owner: str = "UDE") -> tuple[dict[str, float], dict[str, Bound], list[str]]:
        self._checked_f(owner)
        return check_parameter_spec(self.params, self.bounds, self.fixed, owner)

    def _checked_f(self, owner: str = "UDE") -> UDEFunction:
        if not callable(self.f):
            raise ConfigError(f"{owner}: f must be a callable f(t, x, p, u, nn) (your equations in torch, nn the "
                              f"networks), got {type(self.f).__name__}.")
        return self.f

    def _checked_networks(self) -> Mapping[str, int]:
        if not isinstance(self.networks, Mapping) or not self.networks:
            raise ConfigError(f"UDE needs networks, a dict {{name: number of outputs}} of the networks f calls, e.g. "
                              f"{{'outflow': 1}}; got {self.networks!r}.")
        for name, n in self.networks.items():
            if not isinstance(name, str) or isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"UDE: networks[{name!r}] must be a positive number of outputs, got {n!r}.")
        return self.networks

    def check(self) -> None:
        self.spec()
        self._checked_networks()
        self._choice("activation", tuple(sorted(ACTIVATIONS)))
        check_widths(self, "hidden")
        self._number("correction_penalty", low=0.0)

    def build(self, context: FieldContext) -> UDEField:
        self.check()
        f, networks_out = self._checked_f(), self._checked_networks()
        initial, bounds, fixed = self.spec()
        probe = UDEField(f, initial, bounds, fixed, context.dtype)  # parameters only, for the probe call
        seen = self._probe_inputs(context, probe.params())
        rate = np.median(context.scaling.spread[: context.n_states] / context.scaling.time_unit)
        networks = {}
        for name, n_out in networks_out.items():
            inputs = seen[name]
            net = TermNetwork(inputs.shape[1], n_out, tuple(int(h) for h in self.hidden), self.activation,
                              context.generator, context.dtype)
            spread = inputs.std(dim=0)
            with torch.no_grad():
                net.input_center.copy_(inputs.mean(dim=0))
                net.input_spread.copy_(torch.where(spread > 1e-12 * inputs.abs().amax(dim=0).clamp(min=1e-300),
                                                   spread, torch.ones_like(spread)))
                net.output_scale.fill_(float(rate) if np.isfinite(rate) and rate > 0 else 1.0)
            networks[name] = net
        return UDEField(f, initial, bounds, fixed, context.dtype, networks)

    def _probe_inputs(self, context: FieldContext, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Call f on states and inputs spread over the data; what each network received, by name."""
        scaling = context.scaling
        n_vars = context.n_dims + context.n_inputs
        if n_vars <= _MAX_GRID_VARIABLES:
            steps = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=n_vars)))
        else:
            steps = np.vstack([np.zeros(n_vars), np.eye(n_vars), -np.eye(n_vars)])
        mid = np.concatenate([scaling.center, scaling.input_center])
        width = np.concatenate([scaling.spread, scaling.input_spread])
        points = context.tensor(mid + width * steps)
        x = points[:, : context.n_dims]
        u = points[:, context.n_dims:] if context.n_inputs else None
        t = torch.zeros(points.shape[0], dtype=context.dtype)
        f, networks = self._checked_f(), self._checked_networks()
        recorder = _Probe(networks)
        try:
            with torch.no_grad():
                out = f(t, x, p, u, recorder)
        except KeyError as exc:
            raise ConfigError(f"f(t, x, p, u, nn) looked up {exc.args[0]!r}, which is neither a parameter "
                              f"{sorted(p)} nor a network {sorted(networks)}.") from None
        except Exception as exc:  # reported with context
            raise ConfigError(f"calling f(t, x, p, u, nn) on probe states of shape {tuple(x.shape)} raised "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"f(t, x, p, u, nn) returned {got} for states of shape {tuple(x.shape)}; expected "
                              f"{tuple(x.shape)} (one derivative per state dimension, batch first).")
        unused = sorted(set(networks) - set(recorder.inputs))
        if unused:
            raise ConfigError(f"f never called the network(s) {unused} on probe states; call each declared network "
                              "(nn[name](inputs)) or remove it from networks.")
        return recorder.inputs

    def needs_points(self) -> bool:
        return bool(self.correction_penalty)

    def penalty(self, module: UDEField, points: Points | None) -> torch.Tensor | None:
        if not self.correction_penalty or points is None:
            return None
        outputs = module.network_outputs(*points)
        if not outputs:
            return None
        return float(self.correction_penalty) * torch.cat([o.reshape(-1) for o in outputs]).pow(2).mean()
