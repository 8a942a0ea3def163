"""Only the angle is measured: a Neural ODE with an augmented (hidden) state.

Partial observation. A video of a damped pendulum gives its angle at irregular frames;
nobody measures the angular velocity. One observed state cannot oscillate on its own
(a 1-D autonomous ODE is monotone), so ``sysid.NeuralODE(n_augment=1)`` adds a second,
never-observed dimension. It starts as a derivative embedding (the smoothed rate of
change of the angle), its initial value in every experiment is learned, it never enters
the loss, and predictions return the angle only.

The check at the end asks what the hidden state learned: along the unseen experiment it
should move with the true angular velocity, which the model never saw.

Run: python examples/partial_observation_augmented.py   (about a minute on two cores)
"""

import numpy as np

import sysid

# Five filmed swings, 60 irregular frames each, 3% noise; the simulator knows omega too.
full = sysid.datasets.simulate("pendulum", n_trajectories=5, noise=0.03, random_state=0)
angle_only = sysid.Trajectories.from_arrays(
    [traj.t for traj in full], [traj.y[:, :1] for traj in full], state_names=["theta"], names=list(full.names)
)
train, test = angle_only.split(test_trajectories=["run4"])

model = sysid.NeuralODE(hidden=(32, 32), n_augment=1, max_epochs=25, lbfgs_steps=30, random_state=0, verbose=False).fit(
    train
)
print(f"x0_ shape {model.x0_.shape} (theta + 1 hidden state per experiment)")

prediction = model.predict(test)  # theta only, as in the data
print(f"predicted states: {list(prediction.state_names)}")
print(f"theta R^2 on the unseen experiment: {model.score(test):.3f}")

# What did the hidden dimension learn? It has no units (the model may scale it freely),
# so compare it with the true angular velocity, which the model never saw, by correlation.
hidden = model.hidden_states(test)[0][:, 0]
omega = full["run4"].y[:, 1]
print(f"|correlation| of the hidden state with the true angular velocity: {abs(np.corrcoef(hidden, omega)[0, 1]):.2f}")
