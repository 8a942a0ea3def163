"""Data files by extension: CSV and Parquet through pandas, netCDF through xarray.

The command line reads a file into the object the adapters already understand (a
pandas DataFrame or an xarray Dataset) and writes predictions back the same way, so
the labels, column order and dtypes are the adapters' business, not this module's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sysid.errors import SysidError

__all__ = ["FORMATS", "UsageError", "check_not_an_input", "file_format", "parse_names", "read_data", "sha256_of",
           "write_data", "write_table"]


class UsageError(SysidError, ValueError):
    """A bad command line, config file or input file: exit status 2 with a one-line message."""


FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "parquet": (".parquet", ".pq"),
    "netcdf": (".nc", ".nc4", ".netcdf", ".cdf"),
}
"""Accepted file formats and their extensions (case-insensitive)."""


def _accepted() -> str:
    return ", ".join(ext for exts in FORMATS.values() for ext in exts)


def file_format(path: str | Path, what: str = "data file") -> str:
    """``"csv"``, ``"parquet"`` or ``"netcdf"`` from the file's extension.

    Raises
    ------
    UsageError
        For any other extension, naming the accepted ones.

    Examples
    --------
    >>> file_format("runs.CSV"), file_format("out/pred.nc")
    ('csv', 'netcdf')
    >>> file_format("runs.xlsx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sysid.cli._files.UsageError: runs.xlsx: unknown extension '.xlsx' for a data file; use one of .csv, .parquet, ...
    """
    suffix = Path(path).suffix.lower()
    for name, extensions in FORMATS.items():
        if suffix in extensions:
            return name
    shown = repr(suffix) if suffix else "(none)"
    raise UsageError(f"{path}: unknown extension {shown} for a {what}; use one of {_accepted()}.")


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_data(path: str | Path, time: Hashable | None = None) -> Any:
    """Read a data file: a DataFrame (CSV, Parquet) or an xarray Dataset (netCDF).

    Parameters
    ----------
    path : the file; its extension picks the reader.
    time : name of the time column, optional
        For CSV only: the time column (``time``, or else the column ``t`` or ``time``,
        as the adapters choose it) holding ISO 8601 text (``2024-05-01T10:00:00``) is
        parsed as datetimes, as a text column cannot be a time otherwise.

    Raises
    ------
    UsageError
        Unknown extension, missing file, or a file its reader cannot parse.
    """
    path = Path(path)
    kind = file_format(path)
    if not path.exists():
        raise UsageError(f"no such data file: {str(path)!r}.")
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a folder, not a data file.")
    try:
        if kind == "csv":
            frame = pd.read_csv(path)
            return _parse_text_times(frame, time)
        if kind == "parquet":
            return pd.read_parquet(path)
        import xarray as xr

        with xr.open_dataset(path) as dataset:  # the engine xarray picks for the file
            return dataset.load()
    except UsageError:
        raise
    except Exception as exc:  # every reader has its own exception types
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"cannot read {str(path)!r} as {kind}: {reason}") from exc


_TIME_GUESSES = ("t", "time")  # the time column the adapters take when time= is not given


def _parse_text_times(frame: pd.DataFrame, time: Hashable | None) -> pd.DataFrame:
    """``frame`` with its time column parsed as datetimes if it holds ISO 8601 text.

    The rule: the column named ``time``, or else the one column called ``t`` or ``time``.
    Every value must parse (a column of other text is left for the adapter to refuse with
    its dtype); a column that is mostly ISO times with a few other values is an error
    naming the first row that is not a time.
    """
    if time is None:
        found = [name for name in _TIME_GUESSES if name in frame.columns]
        if len(found) != 1:
            return frame
        time = found[0]
    if time not in frame.columns:
        return frame
    column = frame[time]
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return frame
    try:
        parsed = pd.to_datetime(column, format="ISO8601", errors="coerce")
    except (ValueError, TypeError, OverflowError):
        return frame  # e.g. mixed time zones: the adapter reports the column's dtype with a fix
    failed = parsed.isna() & column.notna()
    if not (parsed.notna().any() and failed.any()):
        return frame.assign(**{str(time): parsed}) if not failed.any() and isinstance(time, str) else frame
    row = int(failed.to_numpy().nonzero()[0][0])
    raise UsageError(f"time column {time!r} holds ISO 8601 times, but row {row} is {column.iloc[row]!r}, which is "
                     "not one; fix it or remove the row.")


def _prepare_path(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a folder; give a file name for --out.")
    path.parent.mkdir(parents=True, exist_ok=True)


_COMPARE_OUTPUTS = ("comparison.csv", "comparison.md", "comparison.png", "extrapolation.png", "fits.png",
                    "phase_*.png")
"""What ``sysid compare --out DIR`` writes into DIR."""


def check_not_an_input(out: str | Path, inputs: Mapping[str, Any], flag: str = "--out",
                       folder: bool = False) -> None:
    """Refuse an output that is one of the command's inputs (the same file, links resolved).

    Parameters
    ----------
    out : the output file, or with ``folder`` the output folder
    inputs : {description: path or None}
        The command's input files (None: not given).
    folder : bool
        ``out`` is a folder (``compare --out DIR``): refuse an input that is one of the
        files written into it.

    Raises
    ------
    UsageError
        Naming the input and the flag, before anything is written.
    """
    out = Path(out)
    for what, given in inputs.items():
        if given is None:
            continue
        path = Path(given)
        if folder:
            clash = _same_file(path.parent, out) and any(fnmatch.fnmatch(path.name, n) for n in _COMPARE_OUTPUTS)
        else:
            clash = _same_file(path, out)
        if clash:
            where = f"writes {path.name} into" if folder else "is"
            raise UsageError(f"{flag} {str(out)!r} {where} the {what} {str(given)!r}: that would replace an input "
                             f"of this command. Choose another {flag}.")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_data(obj: Any, path: str | Path) -> Path:
    """Write a DataFrame (CSV, Parquet) or a Dataset (netCDF) to ``path``.

    A DataFrame's plain row numbering (0, 1, 2...) is not written; any other index is.
    netCDF is written with the engine xarray picks.
    """
    path = Path(path)
    kind = file_format(path, "predictions file")
    _prepare_path(path)
    if kind == "netcdf":
        _netcdf_safe(obj).to_netcdf(path)
        return path
    keep_index = not _plain_row_numbers(obj.index)
    if kind == "csv":
        obj.to_csv(path, index=keep_index)
    else:
        obj.to_parquet(path, index=keep_index)
    return path


def _netcdf_safe(dataset: Any) -> Any:
    """A copy whose attributes netCDF can store: dicts, None and booleans become JSON text."""
    import json

    def clean(attrs: dict) -> dict:
        out = {}
        for key, value in attrs.items():
            if isinstance(value, bool) or value is None or isinstance(value, dict):
                value = json.dumps(value, default=str)
            elif isinstance(value, list | tuple) and any(v is None or isinstance(v, dict | list | tuple)
                                                         for v in value):
                value = json.dumps(list(value), default=str)
            out[str(key)] = value
        return out

    dataset = dataset.copy()
    dataset.attrs = clean(dataset.attrs)
    for name in dataset.variables:
        dataset[name].attrs = clean(dataset[name].attrs)
    return dataset


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a results table (CSV or Parquet by extension), without the row numbers."""
    path = Path(path)
    kind = file_format(path, "table")
    if kind == "netcdf":
        raise UsageError(f"{path}: write tables as .csv or .parquet.")
    _prepare_path(path)
    if kind == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    return path


def _plain_row_numbers(index: pd.Index) -> bool:
    return isinstance(index, pd.RangeIndex) and index.name is None and index.start == 0 and index.step == 1


def parse_names(text: str | Sequence[str] | None, what: str) -> list[str] | None:
    """``"a,b"`` (or a list, from a config file) as a list of names; None stays None.

    Examples
    --------
    >>> parse_names("prey, predator", "--states")
    ['prey', 'predator']
    """
    if text is None:
        return None
    items = [str(s).strip() for s in text] if not isinstance(text, str) else [s.strip() for s in text.split(",")]
    if not items or any(not s for s in items):
        raise UsageError(f"{what} must be comma-separated names like 'a,b', got {text!r}.")
    return items
