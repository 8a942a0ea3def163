"""The ``sysid`` command line, called as a user would: ``main([...])`` in-process and
``python -m sysid.cli`` in a subprocess, on small files in tmp_path.

Every fit here is tiny (a few epochs of a 4-unit network, backprop gradients, two
short trajectories): the file runs in well under a minute and a half on two cores.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sysid
from sysid.cli import main
from sysid.datasets import simulate
from tests.reliability.test_silent_failures import five_hertz_swing, second_start_looks_poor, starved_neural_ode

TINY_NEURAL = [
    "--hidden",
    "4",
    "--max-epochs",
    "2",
    "--lbfgs-steps",
    "0",
    "--gradient",
    "backprop",
    "--set",
    "collocation_steps=5",
]
COLUMNS = ["--time", "t", "--states", "prey,predator", "--trajectory", "trajectory"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    """The one error line; fails if there is a traceback or more than one line."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-run Lotka-Volterra CSV, the same data as Parquet and netCDF, and a fitted model."""
    root = tmp_path_factory.mktemp("cli")
    frame = simulate("lotka_volterra", n_trajectories=2, n_samples=12, random_state=0, as_frame=True)
    paths = {"csv": root / "lv.csv", "parquet": root / "lv.parquet", "nc": root / "lv.nc", "root": root}
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    dataset = simulate("lotka_volterra", n_trajectories=2, n_samples=12, random_state=0).to_xarray()
    dataset.attrs = {"system": "lotka_volterra"}  # netCDF holds text and numbers, not simulate()'s dicts
    dataset.to_netcdf(paths["nc"])
    paths["model"] = root / "model.sysid"
    code = main(["fit", str(paths["csv"]), *COLUMNS, *TINY_NEURAL, "--out", str(paths["model"]), "--quiet"])
    assert code == 0
    return paths


# -- help ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["fit", "predict", "compare", "info", "demo"])
def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert "examples:" in out and f"sysid {command}" in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "fit" in err


# -- fit -> info -> predict ----------------------------------------------------------------------------------
def test_info_describes_the_model_and_its_provenance(capsys: pytest.CaptureFixture[str], files: dict) -> None:
    code, out, _ = run(capsys, "info", files["model"])
    assert code == 0
    assert "NeuralODE" in out and "prey, predator" in out
    assert "Adam epoch" in out and "stopped:" in out and "final loss" in out
    assert "lv.csv" in out
    code, out, _ = run(capsys, "info", files["model"], "--json")
    header = json.loads(out)
    provenance = header["extra"]["provenance"]
    assert header["estimator"] == "NeuralODE" and header["params"]["field"]["params"]["hidden"] == [4]
    assert provenance["data"]["sha256"] == hashlib.sha256(files["csv"].read_bytes()).hexdigest()
    assert provenance["sysid_version"] == header["sysid_version"]
    assert provenance["config"]["model"] == "neural" and provenance["config"]["states"] == ["prey", "predator"]


def test_info_of_a_refitted_model_describes_the_fit_it_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NeuralODE refitted from its other start holds both fits in history_; info reports the kept one."""
    second_start_looks_poor(monkeypatch)  # the zero start trains first, cannot follow the swing, is refitted
    model = starved_neural_ode().fit(five_hertz_swing())
    history = model.history_
    assert list(history["attempt"].unique()) == [0, 1] and model.field_part_.linear_start == "least_squares"
    path = model.save(tmp_path / "refitted.sysid")
    code, out, _ = run(capsys, "info", path)
    assert code == 0
    kept = history[history["attempt"] == 1]
    assert f"final loss {kept['loss'].dropna().iloc[-1]:.4g}" in out  # the refit's own last loss
    assert f"best validation loss {kept['val_loss'].min():.4g}" in out
    assert "refitted once from its other start" in out and "kept: the refit" in out
    both = history.groupby("attempt")["seconds"].max().sum()  # each fit's clock starts at zero
    assert f"both fits {both:.1f} s" in out


@pytest.mark.parametrize(
    ("source", "target"), [("csv", "csv"), ("parquet", "parquet"), ("csv", "nc"), ("nc", "nc"), ("nc", "csv")]
)
def test_predict_keeps_the_input_columns_and_labels(
    capsys: pytest.CaptureFixture[str], files: dict, source: str, target: str
) -> None:
    out_path = files["root"] / f"pred_{source}.{target}"
    code, _, err = run(capsys, "predict", files["model"], files[source], "--out", out_path, "--quiet")
    assert code == 0 and err == ""
    if target == "nc":
        predicted = xr.open_dataset(out_path).load()
        assert set(predicted.data_vars) == {"prey", "predator"}
        assert sorted(map(str, predicted["trajectory"].values)) == ["run0", "run1"]
        return
    given = pd.read_csv(files["csv"])
    predicted = pd.read_csv(out_path) if target == "csv" else pd.read_parquet(out_path)
    assert list(predicted.columns) == list(given.columns)
    assert predicted["trajectory"].tolist() == given["trajectory"].tolist()
    np.testing.assert_allclose(predicted["t"], given["t"])
    assert np.isfinite(predicted[["prey", "predator"]].to_numpy()).all()


def test_predict_new_experiment_on_a_grid_to_stdout(capsys: pytest.CaptureFixture[str], files: dict) -> None:
    code, out, _ = run(
        capsys, "predict", files["model"], "--t0", "0", "--t1", "2", "--n-times", "5", "--x0", "1.5,1.0", "--quiet"
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "t,prey,predator" and len(lines) == 6
    assert lines[1].startswith("0.0,1.5,1.0")


def test_predict_with_x0_at_data_times(capsys: pytest.CaptureFixture[str], files: dict) -> None:
    out_path = files["root"] / "pred_x0.csv"
    code, _, _ = run(capsys, "predict", files["model"], files["csv"], "--x0", "2.0,1.0", "--out", out_path)
    assert code == 0
    first = pd.read_csv(out_path).groupby("trajectory").head(1)
    np.testing.assert_allclose(first[["prey", "predator"]].to_numpy(), [[2.0, 1.0], [2.0, 1.0]])


# -- config --------------------------------------------------------------------------------------------------------
def test_config_file_with_a_flag_override(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pipeline"
    (folder / "configs").mkdir(parents=True)
    (folder / "data.csv").write_bytes(files["csv"].read_bytes())
    config = folder / "configs" / "run.toml"
    monkeypatch.chdir(folder)  # paths in the file are relative to the current folder, like flags
    config.write_text(
        'data = "data.csv"\nout = "fitted.sysid"\ntime = "t"\nstates = ["prey", "predator"]\n'
        'trajectory = "trajectory"\nmodel = "neural"\n\n[options]\nrandom_state = 3\n\n'
        '[neural]\nhidden = [4]\nmax_epochs = 5\nlbfgs_steps = 0\ncollocation_steps = 5\ngradient = "backprop"\n'
    )
    code, _, _ = run(capsys, "fit", "--config", "configs/run.toml", "--max-epochs", "1", "--quiet")
    assert code == 0
    code, out, _ = run(capsys, "info", folder / "fitted.sysid", "--json")
    header = json.loads(out)
    params = header["params"]
    assert params["training"]["params"]["max_epochs"] == 1  # the flag wins
    assert params["field"]["params"]["hidden"] == [4] and params["random_state"] == 3  # from the file
    recorded = header["extra"]["provenance"]["config_file"]
    assert recorded["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert "max_epochs = 5" in recorded["content"]


# -- compare -------------------------------------------------------------------------------------------------------
def test_compare_writes_table_report_and_figures(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path
) -> None:
    rhs = tmp_path / "lv.py"
    rhs.write_text(
        "def lotka(t, x, p, u):\n"
        "    return [p['a'] * x[0] - p['b'] * x[0] * x[1], p['d'] * x[0] * x[1] - p['g'] * x[1]]\n"
    )
    data = tmp_path / "lv40.csv"  # SINDy needs more and cleaner samples than the tiny neural fits
    simulate("lotka_volterra", n_trajectories=2, n_samples=40, noise=0.01, random_state=0, as_frame=True).to_csv(
        data, index=False
    )
    out_dir = tmp_path / "report"
    code, out, _ = run(
        capsys,
        "compare",
        data,
        "--trajectory",
        "trajectory",
        "--models",
        "sindy,classical",
        "--rhs",
        f"{rhs}:lotka",
        "--params",
        "a=1,b=1,d=1,g=2",
        "--set",
        "max_nfev=20",
        "--test-trajectories",
        "run1",
        "--truth",
        "lotka_volterra",
        "--out",
        out_dir,
        "--quiet",
    )
    assert code == 0
    table = pd.read_csv(out_dir / "comparison.csv")
    assert sorted(zip(table["estimator"], table["split"])) == [
        ("ClassicalODE", "test"),
        ("ClassicalODE", "train"),
        ("SINDy", "test"),
        ("SINDy", "train"),
    ]
    assert table["rmse"].notna().all()
    assert (out_dir / "comparison.md").read_text().count("| SINDy |") == 2
    assert (out_dir / "fits.png").stat().st_size > 0 and (out_dir / "comparison.png").exists()
    assert "| estimator | split |" in out  # the table on stdout


# -- errors: exit 2 with one clear line ----------------------------------------------------------------------------
def _bad_cases(files: dict, tmp: Path) -> list[tuple[list, str]]:
    (tmp / "data.xlsx").write_bytes(b"not really")
    (tmp / "garbage.sysid").write_bytes(b"\x00\x01 this is not a model")
    truncated = tmp / "truncated.sysid"
    truncated.write_bytes(files["model"].read_bytes()[:200])
    (tmp / "bad.toml").write_text('data = "x.csv"\nepochs = 3\n')
    out = tmp / "m.sysid"
    return [
        (["fit", tmp / "missing.csv", "--out", out], "no such data file"),
        (["fit", tmp / "data.xlsx", "--out", out], "unknown extension '.xlsx'"),
        (
            [
                "fit",
                files["csv"],
                "--time",
                "t",
                "--states",
                "prey,predatr",
                "--trajectory",
                "trajectory",
                "--out",
                out,
            ],
            "did you mean 'predator'",
        ),
        (["fit", files["csv"], "--model", "nerual", "--out", out], "did you mean 'neural'"),
        (["compare", files["csv"], "--models", "sindy,lstm"], "unknown model 'lstm'"),
        (["predict", files["model"], files["csv"], "--x0", "1,2,3"], "--x0 has 3 value(s)"),
        (["predict", files["model"], "--t1", "3", "--x0", "1"], "the model has 2 states"),
        (["info", tmp / "garbage.sysid"], "not a readable sysid model file"),
        (["predict", truncated, files["csv"]], "not a readable sysid model file"),
        (
            [
                "fit",
                files["csv"],
                "--model",
                "classical",
                "--rhs",
                "lotka_volterra",
                "--params",
                "alpha=fast",
                "--out",
                out,
            ],
            "alpha=fast is not a number",
        ),
        (["fit", files["csv"], "--model", "sindy", "--hidden", "8", "--out", out], "--hidden does not apply"),
        (["fit", "--config", tmp / "bad.toml", "--out", out], "unknown key 'epochs'"),
        (["fit", files["csv"], "--max-epochs", "many", "--out", out], "invalid int value"),
        (
            ["compare", files["csv"], "--trajectory", "trajectory", "--models", "sindy", "--test-trajectories", "run7"],
            "no trajectory 'run7'",
        ),
        (["demo", "--dataset", "lynx_hares"], "did you mean 'lynx_hare'"),
    ]


def test_bad_input_exits_2_with_one_clear_line(capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path) -> None:
    for argv, expected in _bad_cases(files, tmp_path):
        code, out, err = run(capsys, *argv)
        line = error_line(err)
        assert code == 2, (argv, err)
        assert expected in line, (argv, line)
        assert line.startswith("sysid ") and ": error: " in line
        assert out == ""
    assert not (tmp_path / "m.sysid").exists()


def test_unknown_extension_names_the_accepted_ones(capsys: pytest.CaptureFixture[str], files: dict) -> None:
    code, _, err = run(capsys, "predict", files["model"], files["csv"], "--out", files["root"] / "pred.json")
    assert code == 2
    assert ".csv" in err and ".parquet" in err and ".nc" in err


def test_failed_fit_exits_1(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self, *args, **kwargs):
        raise sysid.FitError("training failed 5 times in a row (last: the loss is NaN or infinite)")

    monkeypatch.setattr(sysid.NeuralODE, "fit", fail)
    code, _, err = run(capsys, "fit", files["csv"], *COLUMNS, "--out", tmp_path / "m.sysid", "--quiet")
    assert code == 1
    assert "the fit failed" in error_line(err)


def test_classical_model_with_the_builtin_right_hand_side(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path
) -> None:
    out = tmp_path / "lv.sysid"
    code, _, _ = run(
        capsys,
        "fit",
        files["csv"],
        *COLUMNS,
        "--model",
        "classical",
        "--rhs",
        "lotka_volterra",
        "--params",
        "alpha=1,beta=1,gamma=2,delta=1",
        "--set",
        "max_nfev=20",
        "--out",
        out,
        "-q",
    )
    assert code == 0
    code, text, _ = run(capsys, "info", out)
    assert "ClassicalODE" in text and "alpha = " in text and "lotka_volterra (built in)" in text
    code, _, _ = run(capsys, "predict", out, files["csv"], "--out", tmp_path / "p.csv", "-q")  # no --rhs needed
    assert code == 0


def test_classical_model_with_a_right_hand_side_file(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path
) -> None:
    rhs = tmp_path / "lv.py"
    rhs.write_text(
        "def lotka(t, x, p, u):\n"
        "    return [p['a'] * x[0] - p['b'] * x[0] * x[1], p['d'] * x[0] * x[1] - p['g'] * x[1]]\n"
    )
    out = tmp_path / "lv.sysid"
    code, _, _ = run(
        capsys,
        "fit",
        files["csv"],
        *COLUMNS,
        "--model",
        "classical",
        "--rhs",
        f"{rhs}:lotka",
        "--params",
        "a=1,b=1,d=1,g=2",
        "--bounds",
        "a=0:,b=0:",
        "--set",
        "max_nfev=20",
        "--out",
        out,
        "-q",
    )
    assert code == 0
    code, _, err = run(capsys, "predict", out, files["csv"])  # files hold no code: --rhs is needed again
    assert code == 2 and f"--rhs {rhs}:lotka" in error_line(err)
    code, _, err = run(capsys, "predict", out, files["csv"], "--rhs", f"{rhs}:lotkka")
    assert code == 2 and "did you mean 'lotka'" in error_line(err)
    code, _, _ = run(capsys, "predict", out, files["csv"], "--rhs", f"{rhs}:lotka", "--out", tmp_path / "p.csv")
    assert code == 0
    code, text, _ = run(capsys, "info", out)
    assert f"{rhs}:lotka (sha256" in text and "a = " in text


# -- demo and the real entry point ---------------------------------------------------------------------------------
def test_demo_quick_writes_report_and_figures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--quick", "--out", out_dir, "--quiet")
    assert code == 0 and err == ""  # --quiet: no progress bars, no messages
    report = (out_dir / "report.md").read_text()
    assert "held-out" in report and "in-sample" in report and "(1900-1916)" in report
    assert "published" in report and "0.028" in report
    assert "fits.png" in report and (out_dir / "fits.png").stat().st_size > 0
    assert "SINDy" in out and "d hare/dt" in out and "0.55" in out
    table = pd.read_csv(out_dir / "comparison.csv")  # held out first, models ranked by held-out nrmse
    assert table["split"].tolist() == ["extrapolation", "train"] * 4
    held_out = table[table["split"] == "extrapolation"]["nrmse"].dropna()
    assert len(held_out) >= 3 and held_out.is_monotonic_increasing
    rows = [line for line in out.splitlines() if line.startswith("| ") and "estimator" not in line][: len(table)]
    assert [line.split(" | ")[:2] for line in rows] == [["| " + e, s] for e, s in zip(table.estimator, table.split)]


def test_python_dash_m_entry_point(files: dict, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sysid.cli", "fit", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "m.sysid")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no such data file" in error_line(result.stderr)


def test_compare_from_a_config_file_flags_win(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("run.toml").write_text(
        f'data = "{files["csv"]}"\ntrajectory = "trajectory"\nmodels = ["sindy"]\n\n'
        "[options]\nrandom_state = 1\nhidden = [4]\n\n[sindy]\nthreshold = 0.5\ndegree = 1\n"
    )
    built = {}
    import sysid.report as report_module

    def record(estimators, *args, **kwargs):  # capture the estimators instead of fitting them
        built.update(estimators)
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "run_comparison", record)
    code, _, _ = run(capsys, "compare", "--config", "run.toml", "--threshold", "0.2", "--quiet")
    assert code == 130
    sindy = built["SINDy"]
    assert sindy.threshold == 0.2 and sindy.degree == 1  # the flag wins over [sindy]; the table over defaults


@pytest.mark.slow  # about 5 s: run by .ci/run's slow step, outside the default run
def test_compare_holds_out_the_last_fifth_by_default(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "lv40.csv"
    simulate("lotka_volterra", n_trajectories=2, n_samples=40, noise=0.01, random_state=0, as_frame=True).to_csv(
        data, index=False
    )
    out_dir = tmp_path / "report"
    code, out, _ = run(
        capsys,
        "compare",
        data,
        "--trajectory",
        "trajectory",
        "--models",
        "sindy,classical",
        "--rhs",
        "lotka_volterra",
        "--set",
        "max_nfev=20",
        "--out",
        out_dir,
        "--quiet",
    )
    assert code == 0
    table = pd.read_csv(out_dir / "comparison.csv")
    assert table["split"].tolist() == ["extrapolation", "train"] * 2  # held out first, for every model
    assert table.loc[table["split"] == "extrapolation", "rmse"].notna().all()
    assert "ranked by nrmse on held-out data" in out  # the ranking note on stdout, as the demo prints it
    assert "Held out by default: the last 20% of each trajectory's time span" in out
    assert "Held out (the default): the last 20%" in (out_dir / "comparison.md").read_text()
    assert (out_dir / "extrapolation.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("flags", "time_fraction"),
    [
        ([], 0.8),
        (["--time-fraction", "0.6"], 0.6),
        (["--test-trajectories", "run1"], None),
        (["--no-hold-out"], None),
    ],
)
def test_compare_hold_out_choices(
    capsys: pytest.CaptureFixture[str],
    files: dict,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    time_fraction: float | None,
) -> None:
    import sysid.report as report_module

    chosen = {}

    def record(estimators, train, test, **kwargs):  # what compare would be asked to do, without fitting
        chosen.update(kwargs, test=test)
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "run_comparison", record)
    code, _, err = run(capsys, "compare", files["csv"], "--trajectory", "trajectory", "--models", "sindy", *flags)
    assert code == 130
    assert chosen["time_fraction"] == time_fraction
    assert (chosen["test"] is None) == ("--test-trajectories" not in flags)
    held = "nothing (in-sample scores only)" if flags == ["--no-hold-out"] else "held out: "
    assert held in err


def test_compare_without_hold_out_refuses_a_split_and_short_records_score_in_sample(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = error_line(
        run(capsys, "compare", files["csv"], "--models", "sindy", "--no-hold-out", "--time-fraction", "0.6")[2]
    )
    assert "--no-hold-out (hold_out = false) contradicts time_fraction" in line
    config = tmp_path / "run.toml"
    config.write_text(f'data = "{files["csv"]}"\nhold_out = "no"\n')
    assert "hold_out must be true or false, got 'no'" in error_line(run(capsys, "compare", "--config", config)[2])
    import sysid.report as report_module

    chosen = {}

    def record(estimators, train, test, **kwargs):
        chosen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "run_comparison", record)
    short = tmp_path / "short.csv"
    pd.DataFrame({"t": [0.0, 1.0, 2.0], "x": [1.0, 0.5, 0.25]}).to_csv(short, index=False)
    code, _, err = run(capsys, "compare", short, "--models", "sindy")
    assert code == 130 and chosen["time_fraction"] is None  # 3 samples: no 20% to hold out
    assert "warning: no held-out data: the last 20% of each trajectory cannot be held out" in err


def test_times_going_backwards_exit_2_unless_sort(
    capsys: pytest.CaptureFixture[str], files: dict, tmp_path: Path
) -> None:
    """One rule with the Python adapters: an error naming the trajectory and rows; --sort sorts."""
    frame = pd.read_csv(files["csv"])
    first = frame.index[frame["trajectory"] == frame["trajectory"].iloc[0]]
    shuffled = frame.copy()
    shuffled.loc[[first[2], first[3]]] = frame.loc[[first[3], first[2]]].to_numpy()  # two rows swapped
    data = tmp_path / "swapped.csv"
    shuffled.to_csv(data, index=False)
    code, _, err = run(capsys, "fit", data, *COLUMNS, "--model", "sindy", "--out", tmp_path / "m.sysid", "-q")
    assert code == 2
    line = error_line(err)
    assert "times go backwards" in line and "--sort" in line, line
    code, _, err = run(capsys, "fit", data, *COLUMNS, "--model", "sindy", "--sort", "--out", tmp_path / "m.sysid", "-q")
    assert code == 0, err
    assert (tmp_path / "m.sysid").exists()
