"""The provenance record ``sysid fit`` stores in a model file, and reading it back.

The record (``header["extra"]["provenance"]``) says how the model was made: the command
line, the settings and config file, the data file's path, size and SHA-256, the right-hand
side, and the versions of sysid, Python and the numerical packages. ``sysid info`` shows it;
``sysid predict`` uses it to find the right-hand side the model was fitted with.
"""

from __future__ import annotations

import datetime as _dt
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from sysid.cli._files import file_format, sha256_of

__all__ = ["PACKAGES", "data_record", "package_versions", "provenance_lines", "provenance_record", "recorded_rhs"]

PACKAGES = ("numpy", "scipy", "pandas", "xarray", "torch", "torchdiffeq", "pysindy", "scikit-learn")
"""The packages whose versions the record holds (those installed)."""


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES`."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def data_record(data_path: str) -> dict[str, Any]:
    """Where the data came from: path, format, size and SHA-256 of the file as read."""
    path = Path(data_path)
    return {
        "path": str(data_path),
        "absolute_path": str(path.resolve()),
        "format": file_format(path),
        "bytes": path.stat().st_size,
        "sha256": sha256_of(path),
    }


def provenance_record(
    command: str,
    argv: Sequence[str],
    config: dict[str, Any],
    meta: dict[str, Any] | None,
    data: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record for ``sysid COMMAND argv...``: settings, config file, data, versions and time (UTC)."""
    from sysid import __version__

    record = {
        "command": f"sysid {command}",
        "argv": list(argv),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sysid_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "data": data,
        "config": config,
        "config_file": meta,
    }
    record.update(extra or {})
    return record


def recorded_rhs(header: dict[str, Any]) -> dict[str, Any]:
    """The right-hand side `sysid fit` recorded in a model file's provenance ({} if none).

    Examples
    --------
    >>> recorded_rhs({"extra": {"provenance": {"config": {"rhs": {"builtin": "lotka_volterra"}}}}})
    {'builtin': 'lotka_volterra'}
    >>> recorded_rhs({"extra": {}})
    {}
    """
    record: Any = header
    for key in ("extra", "provenance", "config", "rhs"):
        record = record.get(key) if isinstance(record, dict) else None
    return record if isinstance(record, dict) else {}


def provenance_lines(header: dict[str, Any]) -> list[str]:
    """The record as ``sysid info`` shows it, one line per source ([] for a file without one)."""
    record = (header.get("extra") or {}).get("provenance")
    if not record:
        return []
    lines = [f"written {record.get('created_utc', '?')} by: sysid {' '.join(record.get('argv', []))}"]
    data = record.get("data") or {}
    if data:
        lines.append(
            f"data {data.get('path')} ({data.get('format')}, {data.get('bytes')} bytes, "
            f"sha256 {str(data.get('sha256'))[:16]}...)"
        )
    config = record.get("config_file")
    if config:
        lines.append(f"config {config.get('path')} (sha256 {str(config.get('sha256'))[:16]}...)")
    rhs = (record.get("config") or {}).get("rhs")
    if rhs:
        lines.append(
            f"right-hand side {rhs.get('spec')}"
            + (f" (sha256 {str(rhs.get('sha256'))[:16]}...)" if rhs.get("sha256") else " (built in)")
        )
    packages = record.get("packages") or {}
    lines.append(
        f"sysid {record.get('sysid_version')}, python {record.get('python')}"
        + "".join(f", {k} {v}" for k, v in packages.items() if k in ("torch", "pysindy", "scipy"))
    )
    return lines
