"""Recover the Lorenz-63 equations from noisy data: SparseODE against SINDy.

Shows the two equation-learning estimators on the same noisy, irregularly sampled
Lorenz data (short horizon, a few experiments). ``sysid.SINDy`` regresses a sparse
library on numerical derivatives (fast, but derivatives amplify noise);
``sysid.SparseODE`` trains the same kind of library through the ODE solver against
the measured states, then thresholds. Both equation sets are printed, with
``sysid.metrics.coefficient_error`` against the true coefficients.

Run: python examples/lorenz_sparse_vs_sindy.py   (about a minute on two cores)
"""

import sysid

truth = sysid.datasets.truth("lorenz")
data = sysid.datasets.simulate(
    "lorenz", n_trajectories=3, t_span=(0.0, 1.0), n_samples=80, noise=0.02, irregular=True, random_state=0
)
print("true equations:")
print(truth.equations)

sindy = sysid.SINDy(degree=2, threshold=0.5, differentiation="spline").fit(data)  # smoothing-spline derivatives
sparse = sysid.SparseODE(
    degree=2, threshold=0.5, max_epochs=20, lbfgs_steps=20, n_threshold_rounds=2, random_state=0, verbose=False
).fit(data)

for name, model in [("SINDy", sindy), ("SparseODE", sparse)]:
    err = sysid.metrics.coefficient_error(model.coefficients_, truth.coefficients)
    print(f"\n{name}:")
    for line in model.equations():
        print("  " + line)
    print(
        f"{name} coefficient error: relative {err.relative_error:.3f}, spurious terms {err.n_spurious}, "
        f"missed terms {err.n_missed} (of {err.n_true_terms} true terms)"
    )
