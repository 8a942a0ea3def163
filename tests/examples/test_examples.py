"""Run every script in examples/ as a user would and check what it prints.

Each runs in a subprocess from a temporary directory (nothing is written into the
repository). All are marked slow except the learned-clock example, the quickest.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


@pytest.mark.slow  # over 15 s: run by .ci/run's slow step, outside the default run
def test_learned_sampling_interval(tmp_path):
    out = run_example("learned_sampling_interval.py", tmp_path)
    assert number(r"time_scale_\[1\] = ([-\d.]+)", out) == pytest.approx(1 / 1.2, rel=0.03)


@pytest.mark.slow
def test_quickstart(tmp_path):
    out = run_example("quickstart.py", tmp_path)
    assert number(r"R\^2 on the unseen experiment: ([-\d.]+)", out) > 0.8


@pytest.mark.slow
def test_lab_csv_to_predictions(tmp_path):
    out = run_example("lab_csv_to_predictions.py", tmp_path, str(tmp_path / "out"))
    assert number(r"R\^2 = ([-\d.]+)", out) > 0.9
    written = (tmp_path / "out" / "predictions.csv").read_text().splitlines()[0]
    assert written == "trajectory,t,x,v"


@pytest.mark.slow
def test_lorenz_sparse_vs_sindy(tmp_path):
    out = run_example("lorenz_sparse_vs_sindy.py", tmp_path)
    assert "SINDy:" in out and "SparseODE:" in out
    assert number(r"SparseODE coefficient error: relative ([-\d.]+)", out) < 0.2
    assert number(r"SINDy coefficient error: relative ([-\d.]+)", out) >= 0


@pytest.mark.slow
def test_greybox_confidence_intervals(tmp_path):
    out = run_example("greybox_confidence_intervals.py", tmp_path)
    assert number(r"GreyBoxODE worst relative parameter error: ([-\d.]+)", out) < 0.15
    assert number(r"ClassicalODE worst relative parameter error: ([-\d.]+)", out) < 0.15


@pytest.mark.slow
def test_forced_system_inputs(tmp_path):
    out = run_example("forced_system_inputs.py", tmp_path)
    assert number(r"R\^2 on the new experiment \(mean over states\): ([-\d.]+)", out) > 0.8


@pytest.mark.slow
def test_partial_observation_augmented(tmp_path):
    out = run_example("partial_observation_augmented.py", tmp_path)
    assert number(r"theta R\^2 on the unseen experiment: ([-\d.]+)", out) > 0.9
    assert number(r"hidden state with the true angular velocity: ([-\d.]+)", out) > 0.8
