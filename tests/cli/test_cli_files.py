"""The command line and the user's files: no input overwritten, bounded requests, bounds as written, ISO times.

Catalogue rows (docs/reliability.md, "The command line and your files"): each case exits 2
with one line on stderr naming the fault, and leaves every input file as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from sysid.cli import main
from sysid.datasets import simulate

ROOT = Path(__file__).parents[2]
SINDY = ["--model", "sindy", "--trajectory", "trajectory", "--quiet"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Lotka-Volterra CSV, a SINDy model fitted on it, a config and a right-hand side file."""
    root = tmp_path_factory.mktemp("cli-files")
    paths = {
        "csv": root / "runs.csv",
        "model": root / "model.sysid",
        "config": root / "run.toml",
        "rhs": root / "lv.py",
        "root": root,
    }
    simulate("lotka_volterra", n_trajectories=2, n_samples=30, random_state=0, as_frame=True).to_csv(
        paths["csv"], index=False
    )
    assert main(["fit", str(paths["csv"]), *SINDY, "--out", str(paths["model"])]) == 0
    paths["config"].write_text(f'data = "{paths["csv"]}"\nmodel = "sindy"\ntrajectory = "trajectory"\n')
    paths["rhs"].write_text("def lv(t, x, p, u):\n    return [p['a'] * x[0], -p['b'] * x[1]]\n")
    return paths


def run_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


# -- an output that is one of the inputs --------------------------------------------------------------------------
def _link(files: dict, name: str, target: str, hard: bool = False) -> Path:
    link = files["root"] / name
    link.unlink(missing_ok=True)
    (os.link if hard else os.symlink)(files[target], link)
    return link


CASES = [
    (
        "cli-fit-out-is-the-data",
        lambda f: ["fit", f["csv"], *SINDY, "--out", f["csv"]],
        r"--out '.*runs\.csv' is the data file '.*runs\.csv': that would replace an input",
    ),
    (
        "cli-fit-out-is-a-link-to-the-data",
        lambda f: ["fit", f["csv"], *SINDY, "--out", _link(f, "alias.csv", "csv")],
        r"--out '.*alias\.csv' is the data file",
    ),
    (
        "cli-fit-out-is-a-hard-link-to-the-data",
        lambda f: ["fit", f["csv"], *SINDY, "--out", _link(f, "hard.csv", "csv", hard=True)],
        r"is the data file",
    ),
    (
        "cli-fit-out-is-the-config",
        lambda f: ["fit", "--config", f["config"], "--out", f["config"], "--quiet"],
        r"--out '.*run\.toml' is the config file",
    ),
    (
        "cli-fit-out-is-the-right-hand-side",
        lambda f: [
            "fit",
            f["csv"],
            "--model",
            "classical",
            "--trajectory",
            "trajectory",
            "--rhs",
            f"{f['rhs']}:lv",
            "--params",
            "a=1,b=1",
            "--out",
            f["rhs"],
            "--quiet",
        ],
        r"--out '.*lv\.py' is the right-hand side file",
    ),
    (
        "cli-predict-out-is-the-data",
        lambda f: ["predict", f["model"], f["csv"], "--out", f["csv"], "--quiet"],
        r"--out '.*runs\.csv' is the data file",
    ),
    (
        "cli-predict-out-is-the-model",
        lambda f: ["predict", _link(f, "model-alias.sysid", "model"), f["csv"], "--out", f["model"], "--quiet"],
        r"--out '.*model\.sysid' is the model file",
    ),
    (
        "cli-compare-out-holds-the-data",
        lambda f: [
            "compare",
            _comparison_csv(f),
            "--models",
            "sindy",
            "--trajectory",
            "trajectory",
            "--out",
            _comparison_csv(f).parent,
            "--quiet",
        ],
        r"--out '.*report' writes comparison\.csv into the data file",
    ),
    (
        "cli-predict-n-times-10000000000",
        lambda f: ["predict", f["model"], "--t1", "1", "--x0", "1,1", "--n-times", "10000000000"],
        r"--n-times must be between 2 and 10,000,000, got 10,000,000,000",
    ),
    (
        "cli-bounds-inf-as-a-lower-bound",
        lambda f: [
            "fit",
            f["csv"],
            "--model",
            "classical",
            "--trajectory",
            "trajectory",
            "--rhs",
            "lotka_volterra",
            "--bounds",
            "alpha=inf:2",
            "--out",
            f["root"] / "lv.sysid",
        ],
        r"--bounds alpha: inf as a lower bound leaves no value possible",
    ),
    (
        "cli-bounds-nan",
        lambda f: [
            "fit",
            f["csv"],
            "--model",
            "classical",
            "--trajectory",
            "trajectory",
            "--rhs",
            "lotka_volterra",
            "--bounds",
            "alpha=nan:",
            "--out",
            f["root"] / "lv.sysid",
        ],
        r"--bounds alpha: nan is not a bound",
    ),
]


def _comparison_csv(files: dict) -> Path:
    report = files["root"] / "report"
    report.mkdir(exist_ok=True)
    data = report / "comparison.csv"
    if not data.exists():
        data.write_bytes(files["csv"].read_bytes())
    return data


@pytest.mark.parametrize(("case_id", "argv", "match"), CASES, ids=[c[0] for c in CASES])
def test_cli_refuses_with_exit_2_and_leaves_the_inputs_alone(
    case_id: str, argv, match: str, files: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [files[k] for k in ("csv", "model", "config", "rhs")] + [_comparison_csv(files)]
    before = [digest(p) for p in inputs]
    line = run_error(capsys, argv(files))
    assert re.search(match, line), line
    assert [digest(p) for p in inputs] == before


def test_catalogue_rows() -> None:
    documented = (ROOT / "docs" / "reliability.md").read_text()
    missing = [case[0] for case in CASES if f"`{case[0]}`" not in documented]
    assert not missing, f"catalogue entries missing from docs/reliability.md: {missing}"


def test_an_output_beside_the_inputs_is_fine(files: dict, tmp_path: Path) -> None:
    out = tmp_path / "runs.csv"  # same name, another folder
    assert main(["predict", str(files["model"]), str(files["csv"]), "--out", str(out), "--quiet"]) == 0
    assert out.exists()


def _stored_bounds(capsys: pytest.CaptureFixture[str], model: Path) -> dict:
    assert main(["info", str(model), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["params"]["bounds"]


def test_a_bound_at_infinity_on_its_own_side_is_no_bound(
    files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = [
        "fit",
        str(files["csv"]),
        "--model",
        "classical",
        "--trajectory",
        "trajectory",
        "--rhs",
        "lotka_volterra",
        "--set",
        "max_nfev=5",
        "--quiet",
    ]
    out = tmp_path / "flags.sysid"
    assert main([*fit, "--bounds", "alpha=-inf:inf,beta=0:,gamma=:5", "--out", str(out)]) == 0
    assert _stored_bounds(capsys, out) == {
        "alpha": [None, None],
        "beta": [0.0, None],
        "gamma": [None, 5.0],
        "delta": [0.0, None],
    }  # delta: the built-in's default bound
    config = tmp_path / "bounds.toml"
    config.write_text('bounds = {alpha = ["-inf", 2]}\n')
    out = tmp_path / "config.sysid"
    assert main([*fit, "--config", str(config), "--out", str(out)]) == 0
    assert _stored_bounds(capsys, out)["alpha"] == [None, 2.0]


# -- ISO text times ---------------------------------------------------------------------------------------------
def _iso_frame(files: dict) -> pd.DataFrame:
    frame = pd.read_csv(files["csv"])
    start = pd.Timestamp("2024-05-01T10:00:00")
    frame["t"] = (start + pd.to_timedelta(frame["t"], unit="h")).dt.strftime("%Y-%m-%dT%H:%M:%S")
    return frame


def test_iso_text_times_are_datetimes_without_time_flag(
    files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "iso.csv"
    _iso_frame(files).to_csv(csv, index=False)
    assert main(["fit", str(csv), *SINDY, "--out", str(tmp_path / "iso.sysid")]) == 0
    out = tmp_path / "pred.csv"
    assert main(["predict", str(tmp_path / "iso.sysid"), str(csv), "--out", str(out), "--quiet"]) == 0
    predicted = pd.read_csv(out)
    assert predicted["t"].iloc[0] == "2024-05-01 10:00:00"  # written back as times


def test_an_iso_time_column_with_a_bad_cell_names_the_row(
    files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _iso_frame(files)
    frame.loc[7, "t"] = "yesterday"
    csv = tmp_path / "iso-bad.csv"
    frame.to_csv(csv, index=False)
    line = run_error(capsys, ["fit", csv, *SINDY, "--out", tmp_path / "no.sysid"])
    assert "time column 't' holds ISO 8601 times, but row 7 is 'yesterday'" in line


# -- Parquet after a plain install -------------------------------------------------------------------------------
def test_pyarrow_is_a_core_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"pyarrow\b", d) for d in project["dependencies"])
    assert not any(re.match(r"pyarrow\b", d) for d in project["optional-dependencies"]["test"])


def test_predictions_to_parquet(files: dict, tmp_path: Path) -> None:
    out = tmp_path / "pred.parquet"
    assert main(["predict", str(files["model"]), str(files["csv"]), "--out", str(out), "--quiet"]) == 0
    assert list(pd.read_parquet(out).columns) == list(pd.read_csv(files["csv"]).columns)


# -- one registry ------------------------------------------------------------------------------------------------
def test_the_cli_and_the_config_take_their_model_names_from_the_registry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sysid.registry import cli_names

    monkeypatch.chdir(tmp_path)
    config = Path("every-table.toml")  # a table for every registered name is accepted, another name is not
    config.write_text('data = "absent.csv"\n' + "".join(f"[{name}]\n" for name in cli_names()))
    assert "no such data file" in run_error(capsys, ["fit", "--config", config, "--out", "m.sysid"])
    config.write_text('data = "absent.csv"\n[lstm]\n')
    assert "unknown key 'lstm'" in run_error(capsys, ["fit", "--config", config, "--out", "m.sysid"])
    assert main(["fit", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in cli_names())
    line = run_error(capsys, ["fit", "x.csv", "--model", "nueral", "--out", "m.sysid"])
    assert f"did you mean 'neural'? Models: {', '.join(cli_names())}." in line


def test_the_docs_list_the_registered_estimators() -> None:
    from sysid.registry import ESTIMATORS, cli_names

    cli_doc = (ROOT / "docs" / "cli.md").read_text()
    assert f"--model {'|'.join(cli_names())}" in cli_doc
    assert ", ".join(f"`[{name}]`" for name in cli_names()) in cli_doc
    assert all(f"| `{e.cli_name}` | `sysid.{e.name}` |" in cli_doc for e in ESTIMATORS if e.cli_name)
    api_doc = (ROOT / "docs" / "api.md").read_text()
    assert all(f"::: {e.module}.{e.name}" in api_doc for e in ESTIMATORS)


def test_predict_and_info_need_no_private_module(files: dict, capsys: pytest.CaptureFixture[str]) -> None:
    import ast

    modules = {
        node.module
        for path in (ROOT / "sysid" / "cli").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
    }
    assert "sysid.cli" in {m.rsplit(".", 1)[0] for m in modules if m}  # the scan sees the command's modules
    assert "sysid.estimators._equations" not in modules
    assert main(["info", str(files["model"])]) == 0
    assert "d prey/dt" in capsys.readouterr().out  # SINDy's equations, from the loaded model
