"""Cascaded tanks (issue #17): structured neural fields, the saturating sensor, tank physics as a UDE.

The protocol of issue #17's table and of ``benchmarks/cascaded_tanks.py``: fit on the first
70% of the estimation record (717 of 1,024 samples, Ts = 4 s), simulate the whole record
from the pump input alone (every level after the split removed), score the RMSE (V) of the
simulated level on the last 30%. The published figures (neural state space 0.33 V, grey box
with overflow 0.18 V) are on the separate test record, which is not here.

Every configuration runs on several seeds and every row is reported (raw rows as JSON lines
beside the table). Neural models estimate their initial state, the hidden tank included,
from the first samples (``predict``); physics models start from the state they fitted.

Run::

    python -m benchmarks.tanks                       # every configuration, seeds 0 1 2
    python -m benchmarks.tanks --configs structured_sensor --seeds 0 1 2 3 4

It writes ``benchmarks/results/tanks.md`` and ``tanks.jsonl`` (``--out`` for another folder)
and skips cleanly when the data (``../shared/data/cascaded_tanks`` or
``$SYSID_CASCADED_TANKS``) are absent.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.cascaded_tanks import (
    FILE,
    TRAIN_FRACTION,
    _sqrt,
    data_dir,
    load,
    tank_records,
    tank_torch,
)

OUT = Path(__file__).resolve().parent / "results"
PARAMS = {"k1": 0.05, "k2": 0.05, "k3": 0.05, "k4": 0.04}
POSITIVE = dict.fromkeys(PARAMS, (0.0, None))
STRUCTURE = {"aug0": ["aug0", "pump"], "level": ["aug0", "level"]}  # upper tank: itself, pump; lower: both


def _offset(z: Any, offset: Any) -> Any:
    return _sqrt(z - offset)


def physics_offsets(t: Any, x: Any, p: Any, u: Any) -> Any:
    """Tank physics on levels read in the sensor's volts: the outflows see (level - offset).

    The sensor is uncalibrated, so a level of 0 V need not be an empty tank; ``o1``, ``o2``
    are the readings of the empty tanks (the upper tank's in the gauge ``x1(0) = y(0)``).
    """
    import torch

    upper, lower = x[:, 0], x[:, 1]
    return torch.stack(
        [
            -p["k1"] * _offset(upper, p["o1"]) + p["k4"] * u[:, 0],
            p["k2"] * _offset(upper, p["o1"]) - p["k3"] * _offset(lower, p["o2"]),
        ],
        dim=-1,
    )


def overflow(t: Any, x: Any, p: Any, u: Any) -> Any:
    """:func:`physics_offsets` with overflow: above its rim ``h`` a tank's net inflow spills.

    A share ``k5`` of the upper tank's spill falls into the lower tank; the lower tank's
    spill is lost. The rims are smooth steps (width 0.05 V) so the field stays differentiable.
    """
    import torch

    upper = x[:, 0]
    d_upper, d_lower = physics_offsets(t, x, p, u).unbind(-1)
    spill_upper = torch.relu(d_upper) * torch.sigmoid((upper - p["h1"]) / 0.05)
    d_lower = d_lower + p["k5"] * spill_upper
    spill_lower = torch.relu(d_lower) * torch.sigmoid((x[:, 1] - p["h2"]) / 0.05)
    return torch.stack([d_upper - spill_upper, d_lower - spill_lower], dim=-1)


def tanks_ude(t: Any, x: Any, p: Any, u: Any, nn: Any) -> Any:
    """The tank physics (pump linear) plus a network per tank for what the square-root laws miss, from the levels."""
    import torch

    upper, lower = x[:, 0], x[:, 1]
    return tank_torch(t, x, p, u) + torch.stack(
        [nn["upper"](upper[:, None]), nn["lower"](torch.stack([upper, lower], -1))], dim=-1
    )


def overflow_ude(t: Any, x: Any, p: Any, u: Any, nn: Any) -> Any:
    """:func:`overflow` plus a network per tank of the levels, for what it still misses."""
    import torch

    upper, lower = x[:, 0], x[:, 1]
    return overflow(t, x, p, u) + torch.stack(
        [nn["upper"](upper[:, None]), nn["lower"](torch.stack([upper, lower], -1))], dim=-1
    )


# The "GreyBoxODE overflow physics + Sensor" estimates on the first 70% (rounded), where the UDE starts; its
# lower rim went to ~3e4 V (never reached), so the UDE holds it fixed above every reading.
OVERFLOW_FIT = {
    "k1": 0.0478,
    "k2": 0.0444,
    "k3": 0.0508,
    "k4": 0.0529,
    "o1": -3.5151,
    "o2": -1.8497,
    "k5": 0.5411,
    "h1": 10.4133,
    "h2": 100.0,
}


def _configs() -> dict[str, tuple[Callable[[int], Any], bool]]:
    """name -> (model for a seed, whether it works on the anchored (upper, level) record)."""
    import sysid
    from sysid.fields import MLP, Structured

    sensor = sysid.Sensor(high={"level": 10.0})
    # The training measured on 2026-12-05: short windows only (NeuralODE's default before issue #17's
    # horizon schedule); the schedule has its own row below.
    neural = {"n_augment": 1, "input_interpolation": "zoh", "verbose": False, "horizons": None}
    physics = {"input_interpolation": "zoh", "verbose": False}
    offsets = {"o1": (-5.0, 2.5), "o2": (-5.0, 2.5)}  # below the lowest reading (2.9 V)

    def structured(s: int, **kw: Any) -> Any:
        return sysid.NeuralODE(field=Structured(reads=STRUCTURE), random_state=s, **{**neural, **kw})

    configs: dict[str, tuple[Callable[[int], Any], bool]] = {
        "NeuralODE, MLP field (defaults before #17)": (
            lambda s: sysid.NeuralODE(field=MLP(), random_state=s, **neural),
            False,
        ),
        "NeuralODE, MLP field, max_epochs=15, lbfgs_steps=200": (
            lambda s: sysid.NeuralODE(field=MLP(), random_state=s, max_epochs=15, lbfgs_steps=200, **neural),
            False,
        ),
        "NeuralODE, MLP field + Sensor, max_epochs=15, lbfgs_steps=200": (
            lambda s: sysid.NeuralODE(
                field=MLP(), output=sysid.Sensor(high=10.0), random_state=s, max_epochs=15, lbfgs_steps=200, **neural
            ),
            False,
        ),
        "Structured": (structured, False),
        "Structured, max_epochs=15, lbfgs_steps=200": (lambda s: structured(s, max_epochs=15, lbfgs_steps=200), False),
        "Structured + Sensor(high=10)": (lambda s: structured(s, output=sysid.Sensor(high=10.0)), False),
        "Structured + Sensor, segment_length=20": (
            lambda s: structured(s, output=sysid.Sensor(high=10.0), segment_length=20),
            False,
        ),
        "Structured + Sensor, max_epochs=15, lbfgs_steps=200": (
            lambda s: structured(s, output=sysid.Sensor(high=10.0), max_epochs=15, lbfgs_steps=200),
            False,
        ),
        "GreyBoxODE tank physics": (
            lambda s: sysid.GreyBoxODE(tank_torch, PARAMS, bounds=POSITIVE, random_state=s, **physics),
            True,
        ),
        "GreyBoxODE tank physics + Sensor": (
            lambda s: sysid.GreyBoxODE(tank_torch, PARAMS, bounds=POSITIVE, output=sensor, random_state=s, **physics),
            True,
        ),
        "GreyBoxODE physics with sensor offsets + Sensor": (
            lambda s: sysid.GreyBoxODE(
                physics_offsets,
                {**PARAMS, "o1": 0.0, "o2": 0.0},
                bounds={**POSITIVE, **offsets},
                output=sensor,
                random_state=s,
                **physics,
            ),
            True,
        ),
        "GreyBoxODE overflow physics + Sensor": (
            lambda s: sysid.GreyBoxODE(
                overflow,
                {**PARAMS, "o1": 0.0, "o2": 0.0, "k5": 0.5, "h1": 10.0, "h2": 10.0},
                bounds={**POSITIVE, **offsets, "k5": (0.0, 1.0)},
                output=sensor,
                random_state=s,
                **physics,
            ),
            True,
        ),
        "UDE tank physics + level networks + Sensor, max_epochs=60, lbfgs_steps=50": (
            lambda s: sysid.HybridODE(
                tanks_ude,
                PARAMS,
                networks={"upper": 1, "lower": 1},
                bounds=POSITIVE,
                output=sensor,
                random_state=s,
                max_epochs=60,
                lbfgs_steps=50,
                **physics,
            ),
            True,
        ),
        "UDE overflow physics + level networks + Sensor, max_epochs=60, lbfgs_steps=50": (
            lambda s: sysid.HybridODE(
                overflow_ude,
                OVERFLOW_FIT,
                networks={"upper": 1, "lower": 1},
                fixed=["h2"],
                bounds={**POSITIVE, **offsets, "k5": (0.0, 1.0)},
                output=sensor,
                random_state=s,
                max_epochs=60,
                lbfgs_steps=50,
                **physics,
            ),
            True,
        ),
    }
    configs["Structured, horizons=[20, 80, None]"] = (lambda s: structured(s, horizons=[20, 80, None]), False)
    configs["Structured + Sensor, horizons=[20, 80, None]"] = (
        lambda s: structured(s, output=sysid.Sensor(high=10.0), horizons=[20, 80, None]),
        False,
    )
    return configs


def run_one(name: str, seed: int, frame: pd.DataFrame) -> dict[str, Any]:
    """Fit one configuration on one seed; the row of the table."""
    from sysid.integration import torch_threads

    build, anchored = _configs()[name]
    train, masked, split = tank_records(frame, anchored)
    y = frame["y_V"].to_numpy(float)
    model = build(seed)
    cpu, wall = time.process_time(), time.perf_counter()
    row: dict[str, Any] = {"model": name, "seed": seed}
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")
        try:
            model.fit(train)
            row.update(fit_cpu_s=time.process_time() - cpu, fit_wall_s=time.perf_counter() - wall)
            pred = model.predict(masked, x0=model.x0_ if anchored else None)[0].y[:, -1]
            row["test_rmse_V"] = float(np.sqrt(np.mean((y[split:] - pred[split:]) ** 2)))
            row["train_rmse_V"] = float(np.sqrt(np.mean((y[:split] - pred[:split]) ** 2)))
            row["status"] = "ok" if np.isfinite(row["test_rmse_V"]) else "simulation failed"
        except Exception as exc:  # noqa: BLE001 - a failed fit is a row, not a crash
            row.update(
                fit_cpu_s=time.process_time() - cpu,
                fit_wall_s=time.perf_counter() - wall,
                test_rmse_V=np.nan,
                train_rmse_V=np.nan,
                status=f"failed: {exc}"[:100],
            )
    params = getattr(model, "params_", None)
    row["params"] = "" if not params else ", ".join(f"{k}={v:.3g}" for k, v in params.items())
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: every row, then the median, best and worst seed of each model."""
    frame = pd.DataFrame(rows)
    cols = ["model", "seed", "test_rmse_V", "train_rmse_V", "fit_cpu_s", "fit_wall_s", "status", "params"]
    every = frame[[c for c in cols if c in frame]].round(3).to_markdown(index=False)
    summary = frame.groupby("model", sort=False)["test_rmse_V"].agg(["count", "median", "min", "max"])
    # restarts: the seed a user would keep, the one that fits the training part best (no test data used)
    best = frame.loc[frame["train_rmse_V"].fillna(np.inf).groupby(frame["model"], sort=False).idxmin()]
    summary["best_train_seed"] = best.set_index("model")["seed"]
    summary["its_test_rmse"] = best.set_index("model")["test_rmse_V"]
    return (
        "### Every fit\n\n" + every + "\n\n### Per model (test RMSE, V, over seeds; the last two columns: "
        "the seed with the lowest training RMSE, as restarts would pick it)\n\n" + summary.round(3).to_markdown()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", help=f"among {list(_configs())} (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    frame = load()
    if frame is None:
        print(f"[tanks] {data_dir() / FILE} not found: skipped.")
        return 0
    names = args.configs or list(_configs())
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / "tanks.jsonl"
    rows = []
    for name in names:
        for seed in args.seeds:
            row = run_one(name, seed, frame)
            rows.append(row)
            with raw.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[tanks] {name} seed {seed}: {row['test_rmse_V']:.3f} V ({row['fit_cpu_s']:.0f} CPU s)", flush=True)
    test_part = frame["y_V"].to_numpy()[round(TRAIN_FRACTION * len(frame)) :]
    header = (
        "## Cascaded tanks, last 30% of the estimation record (issue #17)\n\n"
        "Fit on the first 70%, simulate the rest from the input; RMSE in V. Std of the test part: "
        f"{np.std(test_part):.2f} V.\n\n"
    )
    (args.out / "tanks.md").write_text(header + table(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
