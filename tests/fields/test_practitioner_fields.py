"""Linear-plus-network, structured and UDE fields recover what they should."""

import warnings

import numpy as np
import pytest
import torch

import sysid
from sysid.fields import UDE, LinearMLP, LinearMLPField, Structured

FAST = dict(max_epochs=30, lbfgs_steps=20, verbose=False, gradient="backprop")


@pytest.fixture(scope="module")
def oscillator():
    """A damped linear oscillator: x' = v, v' = -4 x - 0.4 v (3 runs, 40 samples, 1% noise)."""
    rng = np.random.default_rng(0)
    a = np.array([[0.0, 1.0], [-4.0, -0.4]])
    ts, ys = [], []
    for x0 in ([1.0, 0.0], [0.0, 1.5], [-0.8, 0.5]):
        t = np.linspace(0, 6, 40)
        w, v = np.linalg.eig(a)
        path = np.real((v @ np.diag(np.linalg.solve(v, x0)) @ np.exp(np.outer(w, t))).T)
        ts.append(t)
        ys.append(path + 0.01 * rng.standard_normal(path.shape))
    return sysid.Trajectories.from_arrays(ts, ys, state_names=["x", "v"])


def test_linear_part_starts_as_the_data_s_linearisation(oscillator):
    model = sysid.NeuralODE(field=LinearMLP(hidden=(8,)), max_epochs=1, lbfgs_steps=0, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(oscillator)
    field = model.field_
    x = torch.tensor([[1.5, -0.5], [-0.5, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        linear = field.linear_part(torch.zeros(2), x, None).numpy()
    np.testing.assert_allclose(linear, x.numpy() @ np.array([[0.0, 1.0], [-4.0, -0.4]]).T, atol=0.35)


def test_a_linear_part_started_at_zero_is_fitted_with_the_network(oscillator, tmp_path):
    # the least-squares start leaves the linear part to shooting; from zero the collocation fits it with the network
    fits = {}
    for start in ("least_squares", "zero"):
        model = sysid.NeuralODE(
            field=LinearMLP(hidden=(8,), linear_start=start),
            max_epochs=1,
            lbfgs_steps=0,
            collocation_steps=50,
            verbose=False,
            checkpoint_path=tmp_path / f"{start}.ckpt",  # the start given, trained alone: never refitted
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[start] = model.fit(oscillator).field_.linear_state.detach().numpy()
        assert model.field_part_.linear_start == start and "attempt" not in model.history_
    assert np.abs(fits["zero"]).max() > 0.05  # moved off zero in the collocation and the epoch
    assert not np.allclose(fits["zero"], fits["least_squares"], atol=0.05)
    with pytest.raises(sysid.ConfigError, match="linear_start must be one of"):
        sysid.NeuralODE(field=LinearMLP(linear_start="ols")).fit(oscillator)


@pytest.mark.slow  # about 9 s: run by .ci/run's slow step, outside the default run
def test_linear_plus_network_extrapolates_like_the_linear_system(oscillator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.NeuralODE(field=LinearMLP(hidden=(8,)), **FAST).fit(oscillator)
        far = model.vector_field([[3.0, 0.0], [0.0, -4.0]])  # beyond every training state
    np.testing.assert_allclose(far, [[0.0, -12.0], [-4.0, 1.6]], atol=1.5)


def test_structured_equations_read_only_what_they_declare():
    spec = Structured(reads={"x": ["v"], "v": ["x", "v", "u"]}, hidden=(4,))
    from tests.fields.test_specs import context

    module = spec.build(context(inputs=("u",)))
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    u = torch.randn(6, 1, dtype=torch.float64, requires_grad=True)
    out = module(torch.zeros(6), x, u)
    gx, gu = torch.autograd.grad(out[:, 0].sum(), (x, u))
    assert torch.all(gx[:, 0] == 0) and torch.all(gu == 0) and torch.any(gx[:, 1] != 0)  # x' reads v only


@pytest.mark.parametrize(
    ("reads", "match"),
    [
        ({"x": ["v"]}, r"declares no equation for \['v'\]"),
        ({"x": ["v"], "v": ["x"], "w": ["x"]}, r"equations for \['w'\], which are not state dimensions"),
        ({"x": ["v"], "v": ["pump"]}, r"the equation of 'v' reads \['pump'\], which are neither states"),
    ],
)
def test_structured_names_what_does_not_match_the_data(reads, match, oscillator):
    with pytest.raises(sysid.ConfigError, match=match):
        sysid.NeuralODE(field=Structured(reads=reads), verbose=False).fit(oscillator)


def _damped(t, x, p, u, nn):
    """x' = v, v' = -k x + (unknown damping) nn["damping"](v)."""
    return torch.stack([x[:, 1], -p["k"] * x[:, 0] + nn["damping"](x[:, 1:2])], -1)


@pytest.mark.slow  # over 10 s: run by .ci/run's slow step, outside the default run
def test_a_ude_learns_its_parameter_and_its_unknown_term(oscillator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.HybridODE(_damped, {"k": 2.0}, networks={"damping": 1}, hidden=(8,), **FAST).fit(oscillator)
    assert model.params_["k"] == pytest.approx(4.0, rel=0.05)
    damping = model.field_.networks["damping"]
    with torch.no_grad():
        learned = damping(torch.tensor([[-1.0], [1.0]], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(learned, [0.4, -0.4], atol=0.15)
    with pytest.raises(sysid.ConfigError, match="networks sit inside your equations"):
        model.correction([0.0, 0.0])


@pytest.mark.parametrize(
    ("f", "networks", "match"),
    [
        (
            lambda t, x, p, u, nn: torch.stack([x[:, 1], nn["missing"](x)], -1),
            {"damping": 1},
            r"looked up 'missing', which is neither a parameter \['k'\] nor a network \['damping'\]",
        ),
        (
            lambda t, x, p, u, nn: torch.stack([x[:, 1], -p["k"] * x[:, 0]], -1),
            {"damping": 1},
            r"f never called the network\(s\) \['damping'\]",
        ),
        (lambda t, x, p, u, nn: nn["damping"](x), {"damping": 1}, r"returned \(9,\) for states of shape \(9, 2\)"),
    ],
)
def test_a_ude_that_does_not_fit_its_declaration_is_refused(f, networks, match, oscillator):
    with pytest.raises(sysid.ConfigError, match=match):
        sysid.HybridODE(field=UDE(f=f, params={"k": 1.0}, networks=networks), verbose=False).fit(oscillator)


def test_a_stable_linear_part_is_dissipative_and_trains_from_zero():
    field = LinearMLPField(2, n_inputs=1, hidden=(4,), stable=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        field.linear_state.copy_(torch.tensor([[1.0, 2.0], [0.0, 0.5]]))  # eigenvalues +1 and +0.5
    a = field.linear_matrix().detach().numpy()
    assert np.linalg.eigvalsh((a + a.T) / 2).max() <= 1e-12
    assert np.linalg.eigvals(a).real.max() <= 1e-12
    with torch.no_grad():
        field.linear_state.copy_(torch.tensor([[-1.0, 1.0], [-1.0, -1.0]]))  # dissipative already: unchanged
    np.testing.assert_array_equal(field.linear_matrix().detach().numpy(), [[-1.0, 1.0], [-1.0, -1.0]])
    with torch.no_grad():
        field.linear_state.zero_()  # the zero start: a repeated eigenvalue, the gradient must still pass
    out = field(torch.zeros(3), torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64))
    out.sum().backward()
    assert torch.isfinite(field.linear_state.grad).all() and field.linear_state.grad.abs().max() > 0
    free = LinearMLPField(2, hidden=(4,))
    with torch.no_grad():
        free.linear_state.copy_(torch.tensor([[1.0, 2.0], [0.0, 0.5]]))
    assert np.linalg.eigvals(free.linear_matrix().detach().numpy()).real.max() == pytest.approx(1.0)


def test_linear_part_is_stable_by_default_when_the_field_reads_inputs():
    from tests.fields.test_specs import context

    assert LinearMLP(hidden=(4,)).build(context(inputs=("u",))).stable
    assert not LinearMLP(hidden=(4,)).build(context()).stable  # autonomous: unstable linearisations allowed
    assert not LinearMLP(hidden=(4,), stable=False).build(context(inputs=("u",))).stable
    assert LinearMLP(hidden=(4,), stable=True).build(context()).stable
    with pytest.raises(sysid.ConfigError, match="stable must be True or False"):
        LinearMLP(stable="yes").check()


@pytest.mark.slow  # over 10 s: run by .ci/run's slow step, outside the default run
def test_default_neural_ode_of_a_forced_plant_keeps_a_stable_linear_part(tmp_path):
    rng = np.random.default_rng(1)
    t = np.linspace(0, 10, 50)
    u = np.sin(0.7 * t)[:, None] + 0.3 * rng.standard_normal((50, 1))
    y = np.zeros((50, 1))
    for k in range(49):  # x' = -0.5 x + u (Euler steps: any forced data will do)
        y[k + 1] = y[k] + (t[k + 1] - t[k]) * (-0.5 * y[k] + u[k])
    data = sysid.Trajectories.from_arrays([t], [y], [u], state_names=["x"], input_names=["u"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.NeuralODE(hidden=(8,), max_epochs=5, lbfgs_steps=0, n_augment=1, verbose=False).fit(data)
        assert model.field_.stable  # the plant reads an input: NeuralODE's LinearMLP resolves to a stable part
        a = model.field_.linear_matrix().detach().numpy()
        assert np.linalg.eigvals(a).real.max() <= 1e-9
        loaded = sysid.load(model.save(tmp_path / "forced.sysid"))
        assert loaded.field_.stable
        np.testing.assert_array_equal(loaded.predict(data)[0].y, model.predict(data)[0].y)


@pytest.mark.slow  # over 15 s: run by .ci/run's slow step, outside the default run
def test_weight_decay_pulls_the_field_onto_its_linear_part(oscillator):
    from tests.fields.test_specs import context

    spec = LinearMLP(hidden=(8,), weight_decay=0.5)
    module = spec.build(context())
    weights = [p for name, p in module.net.named_parameters() if name.endswith("weight")]
    expected = 0.5 * sum(float(w.detach().pow(2).sum()) for w in weights)
    assert float(spec.penalty(module, None).detach()) == pytest.approx(expected)  # biases and the linear part are free
    assert LinearMLP(hidden=(8,)).penalty(module, None) is None
    norms = {}
    for decay in (0.0, 1e-2):
        model = sysid.NeuralODE(field=LinearMLP(hidden=(8,), weight_decay=decay), random_state=0, **FAST)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(oscillator)
        net = model.field_.net
        norms[decay] = sum(float(p.detach().pow(2).sum()) for n, p in net.named_parameters() if n.endswith("weight"))
        with torch.no_grad():  # A in physical units: the linear part's response to unit states
            part = model.field_.linear_part
            points = torch.cat([torch.zeros(1, 2), torch.eye(2)]).to(torch.float64)
            response = part(torch.zeros(3), points, None).numpy()
        a = (response[1:] - response[0]).T
        if decay:
            np.testing.assert_allclose(a, [[0.0, 1.0], [-4.0, -0.4]], atol=0.35)  # the linear part carries the system
    assert norms[1e-2] < 0.3 * norms[0.0]
    with pytest.raises(sysid.ConfigError, match=r"weight_decay must be a non-negative number, got -1\.0"):
        LinearMLP(weight_decay=-1.0).check()
    with pytest.raises(sysid.ConfigError, match="weight_decay must be a finite non-negative number, got inf"):
        LinearMLP(weight_decay=float("inf")).check()


def test_network_penalty_is_the_network_s_mean_squared_output_at_the_training_states():
    from tests.fields.test_specs import context

    spec = LinearMLP(hidden=(8,), network_penalty=0.5)
    module = spec.build(context())  # center 1, spread 2, time unit 0.5
    x = torch.tensor([[1.0, 3.0], [-1.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        expected = 0.5 * float(module.net((x - 1.0) / 2.0).pow(2).mean())  # scaled units: the raw network output
        np.testing.assert_allclose(module.network_output(torch.zeros(3), x, None), module.net((x - 1.0) / 2.0))
    assert spec.needs_points()
    assert float(spec.penalty(module, (torch.zeros(3), x, None)).detach()) == pytest.approx(expected, rel=1e-12)
    assert spec.penalty(module, None) is None  # no points, no penalty
    assert not LinearMLP(hidden=(8,)).needs_points() and LinearMLP(hidden=(8,)).penalty(module, (None, x, None)) is None
    with_decay = LinearMLP(hidden=(8,), network_penalty=0.5, weight_decay=0.1).penalty(module, (None, x, None))
    decay = LinearMLP(hidden=(8,), weight_decay=0.1).penalty(module, None)
    assert float(with_decay.detach()) == pytest.approx(expected + float(decay.detach()), rel=1e-12)  # they add up
    both = LinearMLP(hidden=(8,), network_penalty=0.5, weight_decay=0.1)
    share = both.collocation_penalty(module, (None, x, None))  # the collocation's: the network's share only
    assert float(share.detach()) == pytest.approx(expected, rel=1e-12)
    assert LinearMLP(hidden=(8,), weight_decay=0.1).collocation_penalty(module, (None, x, None)) is None
    forced = LinearMLP(hidden=(8,)).build(context(inputs=("u",)))  # input centre 0, spread 1
    u = torch.tensor([[0.5], [-1.0], [2.0]], dtype=torch.float64)
    with torch.no_grad():  # the network reads the scaled inputs beside the scaled states
        expected = forced.net(torch.cat([(x - 1.0) / 2.0, u], dim=1))
        np.testing.assert_allclose(forced.network_output(torch.zeros(3), x, u), expected)
    with pytest.raises(sysid.ConfigError, match=r"network_penalty must be a non-negative number, got -1\.0"):
        LinearMLP(network_penalty=-1.0).check()
    with pytest.raises(sysid.ConfigError, match=r"network_penalty must be a number, got nan"):
        LinearMLP(network_penalty=float("nan")).check()
    with pytest.raises(sysid.ConfigError, match="network_penalty must be a finite non-negative number, got inf"):
        LinearMLP(network_penalty=float("inf")).check()


def _network_share(model, data):
    """The network's mean squared output over the data's states, in scaled units."""
    x = torch.as_tensor(np.concatenate([tr.y for tr in data]), dtype=torch.float64)
    with torch.no_grad():
        return float(model.field_.network_output(torch.zeros(len(x)), x, None).pow(2).mean())


def test_network_penalty_enters_the_collocation_warm_start(oscillator):
    # One Adam epoch after the collocation, no polish: what the penalty did, it did in the collocation.
    shares = {}
    for weight in (0.0, 1.0):
        field = LinearMLP(hidden=(8,), linear_start="zero", network_penalty=weight)
        model = sysid.NeuralODE(field=field, random_state=0, **{**FAST, "max_epochs": 1, "lbfgs_steps": 0})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(oscillator)
        shares[weight] = _network_share(model, oscillator)
    assert shares[1.0] < 0.1 * shares[0.0]


@pytest.mark.slow  # about 15 s: run by .ci/run's slow step, outside the default run
def test_network_penalty_leaves_a_linear_system_to_the_linear_part(oscillator):
    fitted = {}
    for weight in (0.0, 1e-2):
        field = LinearMLP(hidden=(8,), linear_start="zero", network_penalty=weight)
        model = sysid.NeuralODE(field=field, random_state=0, **FAST)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(oscillator)
        fitted[weight] = model
    assert _network_share(fitted[1e-2], oscillator) < 0.1 * _network_share(fitted[0.0], oscillator)
    points = torch.cat([torch.zeros(1, 2), torch.eye(2)]).to(torch.float64)
    with torch.no_grad():  # A in physical units: the linear part's response to unit states
        response = fitted[1e-2].field_.linear_part(torch.zeros(3), points, None).numpy()
    np.testing.assert_allclose((response[1:] - response[0]).T, [[0.0, 1.0], [-4.0, -0.4]], atol=0.3)


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_the_network_reads_inputs_clipped_to_their_training_range(tmp_path):
    from sysid.fields import MLPField, Scaling

    rng = np.random.default_rng(2)
    t = np.linspace(0, 10, 60)
    u = np.clip(np.sin(0.9 * t)[:, None] + 0.2 * rng.standard_normal((60, 1)), -1.0, 1.0)
    y = np.zeros((60, 1))
    for k in range(59):  # x' = -x + u^3: an input effect the linear part alone cannot carry
        y[k + 1] = y[k] + (t[k + 1] - t[k]) * (-y[k] + u[k] ** 3)
    data = sysid.Trajectories.from_arrays([t], [y], [u], state_names=["x"], input_names=["u"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sysid.NeuralODE(hidden=(8,), max_epochs=5, lbfgs_steps=0, verbose=False, random_state=0).fit(data)
    field, x, now = model.field_, torch.tensor([[0.2]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)

    def rate(value: float, part=field) -> float:
        return float(part(now, x, torch.tensor([[value]], dtype=torch.float64)))

    def linear(value: float) -> float:
        return float(field.linear_part(now, x, torch.tensor([[value]], dtype=torch.float64)))

    high = float(u.max())
    # beyond the training range only the linear part follows the input: the network's share is held at the edge
    for beyond in (high + 0.5, high + 3.0):
        assert rate(beyond) - rate(high) == pytest.approx(linear(beyond) - linear(high), rel=1e-12, abs=1e-12)
    assert rate(-4.0) - rate(float(u.min())) == pytest.approx(linear(-4.0) - linear(float(u.min())), abs=1e-12)
    # inside it, the network reads the input
    assert abs((rate(0.8) - rate(-0.8)) - (linear(0.8) - linear(-0.8))) > 1e-6
    # a saved model keeps its range; a model file without one (written before) reads inputs unclipped
    loaded = sysid.load(model.save(tmp_path / "clipped.sysid"))
    assert rate(high + 3.0, loaded.field_) == rate(high + 3.0)
    # a warm start on inputs beyond the first fit's range widens it: the network then reads them
    wider = sysid.Trajectories.from_arrays([t], [y], [2.0 * u], state_names=["x"], input_names=["u"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.set_params(warm_start=True, max_epochs=1).fit(wider)
    assert model.field_ is field
    np.testing.assert_array_equal(model.scaling_.input_range, [[2.0 * u.min()], [2.0 * u.max()]])
    assert abs((rate(high + 0.5) - rate(high)) - (linear(high + 0.5) - linear(high))) > 1e-6
    state = {k: v for k, v in model.scaling_.to_dict().items() if k != "input_range"}
    older = LinearMLPField(1, 1, hidden=(4,), scaling=Scaling.from_dict(state))
    assert LinearMLPField(1, 1, hidden=(4,), scaling=model.scaling_).clip_inputs
    assert not MLPField(1, 1, hidden=(4,), scaling=model.scaling_).clip_inputs  # no linear part to carry it
    assert not older.clip_inputs
