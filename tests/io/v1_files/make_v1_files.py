"""Write the version-1 model files this folder holds, with the sysid that wrote version 1.

Run once at commit 8892584 (format version 1, the last before version 2), from the
repository root: ``python tests/io/v1_files/make_v1_files.py``. It fits tiny models of
every estimator kind, saves them, and records their predictions in ``expected.json``;
``tests/io/test_v1_files.py`` checks that today's sysid still loads these files and
predicts the same. Never rerun it with a newer sysid: the files must stay version 1.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

import sysid
from sysid.estimators import ClassicalODE, GreyBoxODE, HybridODE, NeuralODE, SINDy, SparseODE

HERE = Path(__file__).parent
TINY = {
    "max_epochs": 3,
    "lbfgs_steps": 0,
    "collocation_steps": 5,
    "gradient": "backprop",
    "verbose": False,
    "random_state": 0,
}


def decay_torch(t, x, p, u):
    return torch.stack([-p["a"] * x[:, 0], -p["b"] * x[:, 1]], dim=-1)


def decay_numpy(t, x, p, u):
    return np.array([-p["a"] * x[0], -p["b"] * x[1]])


def data() -> sysid.Trajectories:
    t = np.linspace(0.0, 2.0, 12)
    ys = [np.c_[k * np.exp(-0.7 * t), k * np.exp(-0.3 * t)] for k in (1.0, 2.0, 1.5)]
    return sysid.Trajectories.from_arrays([t, t, t], ys, state_names=["x", "v"], names=["a", "b", "c"])


def models() -> dict:
    return {
        "neural": NeuralODE(hidden=(4, 3), **TINY),
        "sparse": SparseODE(degree=2, n_threshold_rounds=1, **TINY),
        "greybox": GreyBoxODE(decay_torch, {"a": 1.0, "b": 0.5}, bounds={"a": (0.0, None)}, refine_steps=0, **TINY),
        "hybrid": HybridODE(decay_torch, {"a": 1.0, "b": 0.5}, hidden=(4,), **TINY),
        "sindy": SINDy(degree=1),
        "classical": ClassicalODE(decay_numpy, {"a": 1.0, "b": 0.5}, max_nfev=5, random_state=0),
        "ensemble": sysid.Ensemble(NeuralODE(hidden=(3,), **TINY), n_members=2, bootstrap="trajectories"),
    }


def main() -> None:
    trajectories = data()
    t = np.linspace(0.0, 1.5, 7)
    expected = {
        "sysid_version": sysid.__version__,
        "torch_version": torch.__version__,
        "t": t.tolist(),
        "x0": [1.2, 0.8],
        "predictions": {},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in models().items():
            model.fit(trajectories)
            model.save(HERE / f"{name}.sysid")
            expected["predictions"][name] = np.asarray(model.predict(t=t, x0=[1.2, 0.8]), dtype=float).tolist()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
