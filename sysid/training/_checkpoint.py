"""Training checkpoints: resume a killed fit from its last epoch (``checkpoint_path=``).

A checkpoint is a model-format file (:func:`sysid.io.write_safely`: safetensors for the
tensors, one JSON header, written atomically, no pickle) holding everything the
optimisation loop needs to carry on exactly where it stopped: the current and the best
parameters (every tensor of the objective's ``state_dict``), Adam's moments, the
learning-rate schedule, the batch-order generator, the history and the counters.

It also records what it belongs to, a *fingerprint*: the estimator class, its
parameters (those that shape the fit), a digest of the data, and the training *stage*
(SparseODE trains once per thresholding round). A fit with the same fingerprint resumes
from it; one with other data or settings refuses to touch it (:class:`ConfigError`)
rather than overwrite somebody's training; a checkpoint of another stage of the same
fit is replaced by this stage's.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sysid.errors import ConfigError, ModelFileError

#: Parameters that may change between a killed fit and its resumption: they do not
#: change what the saved state means (more epochs, another patience, quieter output...).
RESUMABLE_CHANGES = frozenset({"checkpoint_path", "verbose", "max_epochs", "patience", "lbfgs_steps",
                               "warm_start", "refine_steps", "device"})


def data_digest(data: Any) -> str:
    """SHA-256 of a :class:`~sysid.Trajectories`' names, times, states and inputs.

    For :class:`~sysid.trajectories.LazyTrajectories` (never read whole): of the names
    and the statistics gathered when it was scanned (moments, durations, lengths).
    """
    digest = hashlib.sha256()
    digest.update(repr((list(data.state_names), list(data.input_names))).encode())
    summary = getattr(data, "summary", None)
    if summary is not None:
        digest.update(repr(list(data.names)).encode())
        for moments in (summary.states, summary.inputs):
            for values in (moments.count, moments.mean, moments.m2):
                digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        digest.update(summary.durations.tobytes() + summary.lengths.astype(np.int64).tobytes())
        return digest.hexdigest()
    for tr in data:
        digest.update(repr(tr.name).encode())
        for values in (tr.t, tr.y, tr.u):
            if values is not None:
                digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return digest.hexdigest()


@dataclass
class Resumed:
    """What :meth:`Checkpoint.restore` hands back to the loop besides the restored modules."""

    next_epoch: int
    best_state: dict[str, torch.Tensor]
    since_best: int
    failures_in_row: int
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    failures: int
    stop_reason: str


class Checkpoint:
    """One fit's checkpoint file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its folder must exist.
    fingerprint : dict
        JSON-ready description of the fit (see the module docstring); ``"stage"`` may
        differ between checkpoints of the same fit.
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        from sysid.io import jsonable

        self.path = Path(path)
        self.fingerprint = jsonable(fingerprint)
        if self.path.is_dir():
            raise ConfigError(f"checkpoint_path {str(self.path)!r} is a folder; give a file name such as "
                              f"{str(self.path / 'fit.ckpt')!r}.")
        if not self.path.parent.is_dir():
            raise ConfigError(f"checkpoint_path {str(self.path)!r}: the folder {str(self.path.parent)!r} "
                              "does not exist; create it first.")

    # -- reading --------------------------------------------------------------------------
    def _read(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        from sysid.io import CHECKPOINT_FORMAT, read_header

        if not self.path.exists():
            return None
        try:
            return read_header(self.path, expected=CHECKPOINT_FORMAT)
        except ModelFileError as exc:
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r} holds no usable sysid checkpoint ({exc}); delete it "
                "or choose another checkpoint_path."
            ) from None

    def resumable(self) -> bool:
        """True if the file is a checkpoint of this fit and stage; raise if it belongs to another fit.

        Raises
        ------
        ConfigError
            The file is not a checkpoint, or was written for other data or settings.
        """
        found = self._read()
        if found is None:
            return False
        saved = found[0].get("fingerprint", {})
        mine = self.fingerprint
        if saved.get("estimator") != mine["estimator"] or saved.get("data") != mine["data"]:
            what = "estimator" if saved.get("estimator") != mine["estimator"] else "data"
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r} holds a checkpoint of another fit (different {what}: "
                f"{saved.get('estimator')!r}); a checkpoint resumes only the same estimator on the same data. "
                "Delete it, or choose another checkpoint_path."
            )
        theirs, ours = saved.get("params", {}), mine["params"]
        changed = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        if changed:
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r} was written with other settings ({changed} differ: "
                f"{ {k: theirs.get(k) for k in changed} } then, { {k: ours.get(k) for k in changed} } now); "
                f"only {sorted(RESUMABLE_CHANGES - {'checkpoint_path'})} may change when resuming. Restore those "
                "settings, delete the file, or choose another checkpoint_path."
            )
        return saved.get("stage") == mine.get("stage")

    def restore(self, objective: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                generator: torch.Generator) -> Resumed | None:
        """Load the saved state into the modules; None if there is nothing of this stage to resume."""
        from sysid.io import _restore_floats

        if not self.resumable():
            return None
        header, tensors = self._read()  # type: ignore[misc]
        state = _restore_floats(header["state"])
        try:
            objective.load_state_dict(_prefixed(tensors, "current."), strict=True)
            best = _prefixed(tensors, "best.")
            groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in state["param_groups"]]
            per_param: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in _prefixed(tensors, "optimizer.").items():
                index, name = key.split(".", 1)
                per_param.setdefault(int(index), {})[name] = value
            optimizer.load_state_dict({"state": per_param, "param_groups": groups})
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r} does not match this model ({exc}); delete it or choose "
                "another checkpoint_path."
            ) from None
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(tensors["generator"])
        return Resumed(
            next_epoch=int(state["next_epoch"]), best_state=best, since_best=int(state["since_best"]),
            failures_in_row=int(state["failures_in_row"]), history=list(state["history"]),
            best_epoch=int(state["best_epoch"]), best_score=float(state["best_score"]),
            failures=int(state["failures"]), stop_reason=str(state.get("stop_reason", "max_epochs")),
        )

    # -- writing --------------------------------------------------------------------------
    def save(self, next_epoch: int, objective: torch.nn.Module, best_state: dict[str, torch.Tensor],
             optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator, result: Any,
             since_best: int, failures_in_row: int) -> None:
        """Write the loop's state atomically (the previous checkpoint stays whole until replaced)."""
        import sysid
        from sysid.io import CHECKPOINT_FORMAT, FORMAT_VERSION, jsonable, write_safely

        optim = optimizer.state_dict()
        tensors = {f"current.{k}": v for k, v in objective.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
        for index, values in optim["state"].items():
            for name, value in values.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
        tensors["generator"] = generator.get_state()
        state = {
            "next_epoch": next_epoch, "since_best": since_best, "failures_in_row": failures_in_row,
            "history": result.history, "best_epoch": result.best_epoch,
            "best_score": result.best_score if math.isfinite(result.best_score) else float("inf"),
            "failures": result.failures, "stop_reason": result.stop_reason, "param_groups": optim["param_groups"],
            "scheduler": scheduler.state_dict(),  # LambdaLR: counters and rates; its lambdas show as None
        }
        header = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "sysid_version": sysid.__version__,
                  "fingerprint": self.fingerprint, "state": jsonable(state)}
        write_safely(self.path, header, tensors)

    def remove(self) -> None:
        """Delete the checkpoint (the fit completed); a missing file is fine."""
        self.path.unlink(missing_ok=True)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def fingerprint(estimator: Any, data: Any, stage: Any = 0, ignore: Iterable[str] = RESUMABLE_CHANGES) -> dict[str, Any]:
    """What identifies a fit: class, the parameters that shape it, the data, the stage.

    Parameters are read deep (a part's as ``training__max_epochs``) and compared by their
    last name, so ``ignore`` names ``max_epochs`` wherever it lives.
    """
    from sysid.parts import Part

    skip = set(ignore)
    params = {k: v for k, v in estimator.get_params(deep=True).items()
              if not isinstance(v, Part) and k.rsplit("__", 1)[-1] not in skip}
    return {"estimator": type(estimator).__name__, "params": params, "data": data_digest(data), "stage": stage}
