"""The benchmark suite runs end to end on a tiny setting and writes its tables.

Numbers are never asserted (they are reported, in benchmarks/RESULTS.md); this only
keeps ``python -m benchmarks`` working. The tiny setting shrinks every study to a few
seconds of fitting; the memory study still spawns its own interpreter. The whole tiny
run takes over two minutes on two cores (the sparse-recovery study's term selection is
most of it), so its tests are marked ``slow``: ``.ci/run`` runs them in a step of their
own after the default test run, which stays well inside its 10-minute budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_ROWS = {
    "time_to_accuracy": ["sysid NeuralODE()", "plain torchdiffeq loop (adjoint)"],
    "overhead": ["lotka_volterra"],
    "recovery": [
        "SparseODE",
        "GreyBoxODE (true form, 50% off)",
        "ClassicalODE (true form, 50% off, 4 starts)",
        "SINDy, finite differences",
        "SINDy, smoothed (Savitzky-Golay)",
        "SINDy, spline derivatives",
    ],
    "memory": ["adjoint"],
    "scaling": ["adjoint"],
    "cascaded_tanks": [
        "NeuralODE(n_augment=1)",
        "HybridODE (tank physics + NN)",
        "ClassicalODE (tank physics)",
        "SINDy with control (degree 2)",
    ],
    "parametric": ["lynx-hare (sysid.datasets)", "Lotka-Volterra 3x60", "GreyBoxODE()", "ClassicalODE("],
    "sparse_recovery": ["SparseODE() (threshold='auto')", "SINDy() defaults"],
    "generalisation": ["NeuralODE", "SparseODE", "SINDy", "ClassicalODE"],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out, done


@pytest.mark.slow
def test_suite_writes_results(tiny_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, done = tiny_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    text = (out / "RESULTS.md").read_text()
    assert results["mode"] == "tiny"
    assert results["machine_start"]["cpu_count"] >= 1 and len(results["machine_end"]["load_average"]) == 3
    for key in ("python", "torch", "torchdiffeq", "pysindy"):
        assert key in text and results["machine_start"][key]
    assert list(results["studies"]) == list(EXPECTED_ROWS)
    assert "## Summary" in text


@pytest.mark.slow
@pytest.mark.parametrize("study", list(EXPECTED_ROWS))
def test_study_table(tiny_run: tuple[Path, subprocess.CompletedProcess], study: str) -> None:
    out, done = tiny_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "results.json").read_text())["studies"][study]
    text = (out / "RESULTS.md").read_text()
    assert record["title"] in text and record["target"] and record["verdict"]
    assert not record["verdict"].startswith("crashed"), record["notes"]
    if record["skipped"]:  # the real-data study without its data folder
        assert study == "cascaded_tanks" and not record["rows"]
        return
    cells = {str(v) for row in record["rows"] for v in row.values()}
    for label in EXPECTED_ROWS[study]:
        assert any(c.startswith(label) for c in cells), (study, label, sorted(cells)[:20])
        assert label in text


def test_cascaded_tanks_skips_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import cascaded_tanks
    finally:
        sys.path.remove(str(ROOT))
    monkeypatch.setenv("SYSID_CASCADED_TANKS", str(tmp_path / "absent"))
    study = cascaded_tanks.run("tiny")
    assert study.skipped and study.met is None and not study.rows and "not found" in study.setup


def test_unknown_study_is_refused() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "speed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "unknown studies ['speed']" in done.stderr


def test_generalisation_skips_real_records_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import generalisation, generalisation_problems
    finally:
        sys.path.remove(str(ROOT))
    monkeypatch.setattr(generalisation_problems, "DATA", tmp_path / "absent")
    for problem in ("oscillator", "pendulum", "tanks", "tanks_whole", "lynx_hare", "silverbox", "emps"):
        assert generalisation.PROBLEMS[problem](0) is None, problem
    rows, skipped = generalisation.run_panel(["oscillator", "lynx_hare"], ["SINDy"], "tiny")
    assert rows == [] and skipped == ["oscillator", "lynx_hare"]
    assert generalisation.PROBLEMS["lotka_volterra"](0) is not None  # simulated problems need no files


def test_generalisation_labels_research_rows_by_their_settings() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import generalisation
    finally:
        sys.path.remove(str(ROOT))
    rows = [
        {"model": "NeuralODE", "neural": '{"horizons": [20, null]}'},
        {"model": "NeuralODE", "neural": "{}"},
        {"model": "NeuralODE", "neural": '{"lr": 0.1}'},
        {"model": "SINDy", "neural": "{}"},
    ]
    labels = [r["model"] for r in generalisation.label_rows(rows, {"horizons": [20, None]})]
    assert labels == ["NeuralODE", "NeuralODE (before #17)", 'NeuralODE {"lr": 0.1}', "SINDy"]


def test_generalisation_verdict_judges_the_latest_default_rows() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import generalisation
    finally:
        sys.path.remove(str(ROOT))

    def row(problem: str, seed: int, score: float, model: str = "NeuralODE") -> dict:
        return {"problem": problem, "model": model, "seed": seed, "metric": "m", "score": score, "fit_cpu_s": 10.0}

    rows = [row("lotka_volterra", 0, 0.08), row("lotka_volterra", 1, 0.04), row("lotka_volterra", 0, 0.03)]
    made = generalisation.study(rows)
    # seed 0's 0.08 is superseded by its later 0.03
    assert made.met is True and made.verdict == "lotka_volterra worst 0.04 (target <= 0.05)"
    rows.append(row("lotka_volterra", 1, 0.09))  # a later measurement of the default counts, whatever it says
    assert generalisation.study(rows).verdict == "lotka_volterra worst 0.09 (target <= 0.05)"
    rows += [row("lynx_hare", 0, 0.1, "ClassicalODE"), row("lynx_hare", 0, -0.5), row("lynx_hare", 0, 0.2)]
    made = generalisation.study(rows)
    assert made.met is False and "lynx_hare worst R² 0.2 (ClassicalODE 0.1)" in made.verdict


def test_systems_outside_the_panel_simulate_their_equations() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import generalisation
        from benchmarks.generalisation_unseen import SYSTEMS, UNSEEN, simulate_runs
    finally:
        sys.path.remove(str(ROOT))
    assert set(UNSEEN) <= set(generalisation.PROBLEMS) and set(SYSTEMS) <= set(UNSEEN)
    for system in SYSTEMS:
        train, test, truth, name = simulate_runs(system, seed=1)
        assert len(train) == 3 and test.names == [name] and name not in train.names, system
        assert truth.shape == (60, len(train.state_names)) and np.all(np.isfinite(truth)), system
        noise = test[0].y - truth  # 5% of each state's spread over the four runs, so below it
        assert 0 < np.std(noise) < 0.1 * np.max(np.std(truth, axis=0)), system
    # the epidemic's compartments add up to the population (S + I = 1 at the start, R = 0)
    _, _, sir, _ = simulate_runs("sir", seed=0)
    assert np.allclose(sir.sum(axis=1), 1.0, atol=1e-8) and sir[0, 2] == 0.0
    # the coupled masses are lightly damped: their energy decays
    _, _, masses, _ = simulate_runs("coupled_oscillators", seed=0)
    x1, x2, v1, v2 = masses.T
    energy = v1**2 + v2**2 + x1**2 + x2**2 + 0.5 * (x1 - x2) ** 2
    assert energy[-1] < energy[0] and np.all(np.diff(energy) < 1e-9)
    # the forced system records its force; the same seed gives the same runs, another seed others
    forced, _, _, _ = simulate_runs("forced_van_der_pol", seed=0)
    assert forced.input_names == ("force",) and np.ptp(forced[0].u) > 1.0
    again, _, _, _ = simulate_runs("forced_van_der_pol", seed=0)
    other, _, _, _ = simulate_runs("forced_van_der_pol", seed=1)
    assert np.array_equal(again[0].y, forced[0].y) and not np.allclose(other[0].y[0], forced[0].y[0])


@pytest.mark.slow  # about 40 s: run by .ci/run's slow step, outside the default run
def test_generalisation_seed_ensemble_rows_come_from_the_same_fits() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import generalisation
        from benchmarks.common import held_out, relative_rmse
    finally:
        sys.path.remove(str(ROOT))
    rows, _ = generalisation.run_panel(["lotka_volterra"], ["NeuralODE", "SINDy"], "tiny", [0], members=2)
    models = [r["model"] for r in rows]
    assert models == [
        "NeuralODE member 1 of 2",
        "NeuralODE member 2 of 2",
        "NeuralODE mean of 2 (Ensemble, bootstrap=None)",
        "NeuralODE best of 2 by training free run",
        "SINDy",
    ]
    members, mean, best = rows[:2], rows[2], rows[3]
    chosen = min(members, key=lambda r: r["train_free_run"])
    assert best["member"] == chosen["member"] and best["score"] == chosen["score"]
    assert all(np.isfinite(r["train_free_run"]) and r["train_free_run"] > 0 for r in members)
    # the ensemble's score is the error of the members' mean prediction, refitted here member by member
    import sysid

    train, test, truth, _ = held_out("lotka_volterra", seed=0)
    options = {**generalisation.TINY_NEURAL, "verbose": False}
    preds = [sysid.NeuralODE(random_state=r["member_seed"], **options).fit(train).predict(test)[0].y for r in members]
    assert abs(relative_rmse(np.mean(preds, axis=0), truth) - mean["score"]) < 1e-6
    assert abs(relative_rmse(preds[0], truth) - members[0]["score"]) < 1e-6


def test_every_render_keeps_the_hand_written_sections_and_matches_results_md() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.run import SECTIONS, render
    finally:
        sys.path.remove(str(ROOT))
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    rendered = render(results)
    sections = sorted(SECTIONS.glob("*.md"))
    assert sections, "no hand-written section found"
    for number, path in enumerate(sections, len(results["studies"]) + 1):
        assert f"## {number}. {path.read_text().partition(chr(10))[0].strip()}" in rendered
    # RESULTS.md is what the renderer makes of results.json: no hand edit that a re-render would drop
    assert rendered == (ROOT / "benchmarks" / "RESULTS.md").read_text()
