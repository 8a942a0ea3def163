"""Fit a Neural ODE to three noisy, irregularly sampled Lotka-Volterra experiments and
predict a fourth one it has never seen (its orbit lies between the training orbits;
see benchmarks/ for an unseen orbit outside them, which is harder).

Run: python examples/quickstart.py
"""

import numpy as np

import sysid

data = sysid.datasets.simulate("lotka_volterra", n_trajectories=4, noise=0.05, irregular=True, random_state=0)
train, test = data.split(test_trajectories=["run2"])

model = sysid.NeuralODE(random_state=0).fit(train)
print(f"fit in {model.history_['seconds'].iloc[-1]:.1f} s, {model.n_function_evals_} function evaluations")
print(f"R^2 on the unseen experiment: {model.score(test):.3f}")

prediction = model.predict(test)  # a Trajectories, like the input
error = prediction[0].y - test[0].y
print(f"relative RMSE on the unseen experiment: {np.sqrt(np.nanmean(error**2)) / np.nanstd(test[0].y):.3f}")
