"""A mis-specified clock: learn each experiment's time scale with NeuralODE(learn_time="scale").

Shows ``learn_time="scale"``. Two recordings of the same oscillator x'' = -x (the same
orbit, started at different phases) are made, but the second recorder's clock runs
20% fast: its time stamps are 1.2 times the true times (a wrong sampling interval or
frame rate). No single vector field explains both recordings; with a learned clock rate
per experiment the model recovers ``time_scale_[1]`` close to 1 / 1.2 = 0.833 (the
first experiment is the reference, scale 1). Both experiments must cover the same orbit
for the scale to be identifiable.

Run: python examples/learned_sampling_interval.py   (about 20 s on two cores)
"""

import numpy as np

import sysid

t_true = np.linspace(0.0, 5.0, 30)
states = [np.stack([np.cos(t_true + phase), -np.sin(t_true + phase)], axis=1) for phase in (0.0, 2.0)]
recorded_times = [t_true, 1.2 * t_true]  # the second clock runs 20% fast
data = sysid.Trajectories.from_arrays(recorded_times, states, state_names=["x", "v"])

model = sysid.NeuralODE(
    hidden=(16,), learn_time="scale", max_epochs=30, lbfgs_steps=60, gradient="backprop", random_state=0, verbose=False
).fit(data)
print(f"time_scale_ = {np.round(model.time_scale_, 4).tolist()}")
print(
    f"time_scale_[1] = {model.time_scale_[1]:.4f} (expected 1/1.2 = {1 / 1.2:.4f}, "
    f"error {abs(model.time_scale_[1] * 1.2 - 1):.1%})"
)
print(f"R^2 = {model.score(data):.3f}")
