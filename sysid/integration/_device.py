"""Where and how torch runs: the device a model trains on, and the number of threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from sysid.errors import ConfigError


def resolve_device(device: Any) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a torch.device) if usable here.

    Raises
    ------
    ConfigError
        For a name torch does not know, or a device this machine does not have.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    sysid.errors.ConfigError: device='gpu' is not a torch device name; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"device={device!r} is not a torch device name; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'."
        ) from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (resolved.index is None or resolved.index < count):
            return resolved
        found = f"only cuda:0..cuda:{count - 1} exist" if count else "torch sees no CUDA GPU on this machine"
        raise ConfigError(
            f"device={device!r} is not available: {found} (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}). Use device='cpu', or install a CUDA build of torch."
        )
    if resolved.type == "mps" and torch.backends.mps.is_available():
        return resolved
    raise ConfigError(f"device={device!r} is not available on this machine; use device='cpu'.")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore the previous setting.

    The tensors of a training step are small (segments x state, 64-wide layers):
    thread start-up and contention cost more than they save, measured 10-40x slower
    with two threads on a busy two-core machine (benchmarks/).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
