"""A forced system: Neural ODE with an input, predicting an experiment with a new force.

Shows how known inputs (controls) enter a model: a mass-spring-damper is driven by a
measured force (input ``"force"``, a different multisine in each experiment); the
``sysid.NeuralODE`` learns dx/dt = f(x, u) and then predicts a new experiment driven by
a force it has never seen, ``model.predict(t=..., x0=..., u=...)``. The prediction is
compared with the true system simulated under the same force,
``sysid.datasets.truth("mass_spring_damper").simulate(t, x0, u=callable)``.

Run: python examples/forced_system_inputs.py   (about 40 s on two cores)
"""

import numpy as np

import sysid

truth = sysid.datasets.truth("mass_spring_damper")
data = sysid.datasets.simulate(
    "mass_spring_damper", n_trajectories=4, t_span=(0.0, 10.0), n_samples=80, noise=0.02, irregular=True, random_state=0
)
print(f"states {data.state_names}, inputs {data.input_names}, {len(data)} experiments")

model = sysid.NeuralODE(hidden=(32, 32), max_epochs=30, lbfgs_steps=30, random_state=0, verbose=False)
model.fit(data)
print(f"R^2 on the training experiments: {model.score(data):.3f}")


# A new experiment: a chirp-like force the model has not seen, from a new initial state.
def new_force(t):
    return np.array([1.5 * np.sin(0.8 * t + 0.3 * t**2 / 10)])


t = np.linspace(0.0, 10.0, 101)
x0 = np.array([0.5, -0.3])
u = np.stack([new_force(s) for s in t])  # (n_times, n_inputs) for the model
predicted = model.predict(t=t, x0=x0, u=u)  # (n_times, n_states)
expected = truth.simulate(t, x0, u=new_force)  # the true system under the same force

rmse = np.sqrt(np.mean((predicted - expected) ** 2, axis=0))
r2 = 1 - np.sum((predicted - expected) ** 2, axis=0) / np.sum((expected - expected.mean(0)) ** 2, axis=0)
for k, name in enumerate(data.state_names):
    print(f"new force, {name}: RMSE {rmse[k]:.3f}, R^2 {r2[k]:.3f}")
print(f"R^2 on the new experiment (mean over states): {r2.mean():.3f}")
