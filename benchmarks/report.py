"""Write benchmark rows as a markdown table with the machine and versions on top."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import pandas as pd


def environment() -> str:
    import numpy
    import scipy
    import torch
    import torchdiffeq

    import sysid

    return (f"{datetime.date.today().isoformat()}; {platform.machine()} {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; torch {torch.__version__}; torchdiffeq {torchdiffeq.__version__}; "
            f"numpy {numpy.__version__}; scipy {scipy.__version__}; sysid {sysid.__version__}")


def write_table(rows: list[dict], path: str, title: str) -> pd.DataFrame:
    """Write ``rows`` to ``path`` (markdown) and ``path`` with .json (raw figures); print the table."""
    table = pd.DataFrame(rows)
    text = f"## {title}\n\n{environment()}\n\n{table.to_markdown(index=False, floatfmt='.3g')}\n"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
    print(text)
    return table
