"""Write benchmark rows as markdown tables, with the machine and versions on top."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd


def machine() -> dict[str, Any]:
    """Date, CPU count, load average and the versions that matter, as a JSON-ready dict."""
    import numpy
    import pysindy
    import scipy
    import torch
    import torchdiffeq

    import sysid

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchdiffeq": torchdiffeq.__version__,
        "pysindy": pysindy.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sysid": sysid.__version__,
    }


def environment() -> str:
    """One line: date, CPU, versions (the header of every table)."""
    m = machine()
    return (
        f"{m['date'][:10]}; {m['machine']} {m['cpu_count']} cores; Python {m['python']}; torch {m['torch']}; "
        f"torchdiffeq {m['torchdiffeq']}; pysindy {m['pysindy']}; numpy {m['numpy']}; scipy {m['scipy']}; "
        f"sysid {m['sysid']}"
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts with the same keys) as a GitHub markdown table, floats to 3 significant digits."""
    if not rows:
        return "(no rows)"
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g")


def write_table(rows: list[dict], path: str, title: str) -> pd.DataFrame:
    """Write ``rows`` to ``path`` (markdown) and ``path`` with .json (raw figures); print the table."""
    text = f"## {title}\n\n{environment()}\n\n{markdown_table(rows)}\n"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
    print(text)
    return pd.DataFrame(rows)
