"""Tests of the bundled real datasets and of their packaging."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import numpy as np
import pytest

from sysid.datasets import load_lynx_hare

REPO = Path(__file__).resolve().parents[2]
SHARED_LYNX_HARE = REPO / ".." / "shared" / "data" / "lynx_hare" / "hudson_bay_lynx_hare_1900_1920.csv"


def test_lynx_hare_structure_and_first_row():
    data = load_lynx_hare()
    assert data.names == ["hudson_bay"]
    assert data.state_names == ("hare", "lynx")
    assert data.input_names == ()
    traj = data["hudson_bay"]
    assert traj.y.shape == (21, 2)
    np.testing.assert_array_equal(traj.t, np.arange(21.0))
    assert traj.y[0].tolist() == [30.0, 4.0]  # 1900
    assert traj.y[-1].tolist() == [24.7, 8.6]  # 1920
    assert traj.y[3].tolist() == [77.4, 35.2]  # 1903
    assert not np.isnan(traj.y).any()


def test_lynx_hare_metadata():
    data = load_lynx_hare()
    assert data.attrs["time_origin_year"] == 1900
    assert data.variable_attrs["hare"]["units"] == "thousands of pelts"
    assert data.variable_attrs["lynx"]["units"] == "thousands of pelts"
    ref = data.attrs["reference_params"]
    assert ref["carpenter_stan_posterior_mean"] == {
        "alpha": 0.55,
        "beta": 0.028,
        "gamma": 0.80,
        "delta": 0.024,
    }
    assert ref["howard_2009_point_estimate"]["gamma"] == 0.84


def test_lynx_hare_agrees_with_shared_copy():
    if not SHARED_LYNX_HARE.is_file():
        pytest.skip(f"shared reference copy not present at {SHARED_LYNX_HARE}")
    with SHARED_LYNX_HARE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = load_lynx_hare()["hudson_bay"]
    assert len(rows) == data.n_times
    for i, row in enumerate(rows):
        assert float(row["year"]) - 1900 == data.t[i]
        assert float(row["hare_thousands"]) == data.y[i, 0]
        assert float(row["lynx_thousands"]) == data.y[i, 1]


def test_lynx_hare_as_frame():
    pd = pytest.importorskip("pandas")
    frame = load_lynx_hare(as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["trajectory", "t", "hare", "lynx"]
    assert len(frame) == 21
    assert frame["hare"].iloc[0] == 30.0


def test_lynx_hare_bad_argument():
    with pytest.raises(ValueError, match="as_frame must be True or False, got 'yes'"):
        load_lynx_hare(as_frame="yes")


def test_bundled_data_has_readmes():
    readme = (REPO / "data" / "lynx_hare" / "README.md").read_text(encoding="utf-8")
    for needed in ("thousands of pelts", "annual", "Licence", "0.55", "0.028", "0.80", "0.024"):
        assert needed in readme
    assert "lynx_hare" in (REPO / "data" / "README.md").read_text(encoding="utf-8")


def test_every_subpackage_is_listed_in_pyproject():
    """pyproject lists packages explicitly (to map data/ as sysid._data): keep it complete."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    assert setuptools["package-dir"]["sysid._data"] == "data"
    assert "sysid._data" in listed
    on_disk = {
        ".".join(d.relative_to(REPO).parts)
        for d in [REPO / "sysid", *(REPO / "sysid").rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    missing = sorted(on_disk - listed)
    assert not missing, (
        f"subpackages {missing} are not in [tool.setuptools] packages of pyproject.toml; "
        "add them or they are left out of the wheel."
    )
    gone = sorted(p for p in listed - {"sysid._data"} if not (REPO / p.replace(".", "/")).is_dir())
    assert not gone, f"pyproject lists packages with no folder: {gone}"
