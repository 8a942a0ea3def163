"""From a lab CSV to a CSV of predictions with a Neural ODE.

Shows the round trip a lab user makes: a long-format CSV (one row per experiment and
time, irregular times, some missing entries) is read with pandas, turned into
``sysid.Trajectories`` with ``sysid.from_pandas``, fitted with ``sysid.NeuralODE``,
and the predictions are written back as a CSV with the same columns. The data are a
simulated Van der Pol oscillator standing in for a measurement file.

Run: python examples/lab_csv_to_predictions.py [output_dir]
(writes lab.csv and predictions.csv to output_dir, default a temporary directory;
about a minute on two cores).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import sysid

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="sysid-lab-"))
out_dir.mkdir(parents=True, exist_ok=True)

# 1. A lab-like CSV: columns trajectory, t, x, v; irregular times, 10% of entries missing.
frame = sysid.datasets.simulate(
    "van_der_pol",
    n_trajectories=3,
    n_samples=40,
    noise=0.03,
    irregular=True,
    missing=0.1,
    random_state=0,
    as_frame=True,
)
frame.to_csv(out_dir / "lab.csv", index=False)

# 2. Read it back as a scientist would, and hand it to sysid.
df = pd.read_csv(out_dir / "lab.csv")
print(f"read {len(df)} rows, columns {list(df.columns)}, {int(df[['x', 'v']].isna().sum().sum())} missing entries")
data = sysid.from_pandas(df, time="t", states=["x", "v"], trajectory="trajectory")

# 3. Fit (small settings for speed; the defaults train longer).
model = sysid.NeuralODE(hidden=(32, 32), max_epochs=30, lbfgs_steps=30, random_state=0, verbose=False)
model.fit(data)

# 4. Predict the same experiments: a DataFrame with the same columns and rows.
predictions = model.predict(df, time="t", states=["x", "v"], trajectory="trajectory")
predictions.to_csv(out_dir / "predictions.csv", index=False)
print(f"wrote {out_dir / 'predictions.csv'} with columns {list(predictions.columns)}")

# Rows where nothing was measured have no prediction; align the rest on (trajectory, t).
both = df.merge(predictions, on=["trajectory", "t"], suffixes=("", "_pred"))
observed = both[["x", "v"]].to_numpy()
predicted = both[["x_pred", "v_pred"]].to_numpy()
rmse = np.sqrt(np.nanmean((predicted - observed) ** 2, axis=0))
print(f"RMSE per state: x {rmse[0]:.3f}, v {rmse[1]:.3f}")
ss_res = np.nansum((predicted - observed) ** 2, axis=0)
ss_tot = np.nansum((observed - np.nanmean(observed, axis=0)) ** 2, axis=0)
print(f"R^2 = {np.mean(1 - ss_res / ss_tot):.3f}  (observed entries, averaged over states, as model.score)")
