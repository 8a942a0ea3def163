"""Training checkpoints: resume a killed fit from its last epoch (``checkpoint_path=``).

A checkpoint is a sysid file (:mod:`sysid.io.format`: safetensors for the tensors, one
JSON header, both checksummed, written atomically, no pickle) holding everything the
optimisation loop needs to carry on exactly where it stopped: the current and the best
parameters (every tensor of the objective's ``state_dict``), Adam's moments, the
learning-rate schedule, the batch-order generator, the history and the counters.

It also records what it belongs to, a *fingerprint*: the estimator class, its
parameters (those that shape the fit), a digest of the data, and the training *stage*
(SparseODE trains once per thresholding round). A fit with the same fingerprint resumes
from it; one with other data or settings refuses to touch it (:class:`ConfigError`)
rather than overwrite somebody's training; a checkpoint of another stage of the same
fit is replaced by this stage's.

A checkpoint is read as untrusted: every field of its state is checked against the
model, the optimiser and the history it must agree with before anything is restored, and
a fault is a :class:`ConfigError` naming the field.
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
from sysid.io.format import CHECKPOINT_FORMAT, decode, encode, read_file, write_file

#: Parameters that may change between a killed fit and its resumption: they do not
#: change what the saved state means (more epochs, another patience, quieter output...).
RESUMABLE_CHANGES = frozenset(
    {
        "checkpoint_path",
        "verbose",
        "max_epochs",
        "patience",
        "lbfgs_steps",
        "warm_start",
        "refine_steps",
        "device",
        "n_jobs",
    }
)


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
        self.path = Path(path)
        self.fingerprint = _plain(decode(encode(fingerprint, "fingerprint")))  # as a file would give it back
        if self.path.is_dir():
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r} is a folder; give a file name such as "
                f"{str(self.path / 'fit.ckpt')!r}."
            )
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r}: the folder {str(self.path.parent)!r} "
                "does not exist; create it first."
            )

    # -- reading --------------------------------------------------------------------------
    def _read(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        if not self.path.exists():
            return None
        try:
            stored = read_file(self.path, CHECKPOINT_FORMAT)
            return stored.header, stored.tensors
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
        saved = found[0].get("fingerprint")
        if not isinstance(saved, dict) or not isinstance(saved.get("params"), dict):
            raise self._fault("fingerprint", "is not an object with the fit's params")
        saved = _plain(saved)
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

    def restore(
        self, objective: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, generator: torch.Generator
    ) -> Resumed | None:
        """Load the saved state into the modules; None if there is nothing of this stage to resume.

        Raises
        ------
        ConfigError
            The checkpoint belongs to another fit, or a field of its state is unusable
            (named in the message); nothing has been restored then.
        """
        if not self.resumable():
            return None
        header, tensors = self._read()  # type: ignore[misc]
        state = header.get("state")
        if not isinstance(state, dict):
            raise self._fault("state", "is not an object")
        resumed = self._counters(state)
        current, best = _prefixed(tensors, "current."), _prefixed(tensors, "best.")
        self._check_tensors("current", current, objective)
        self._check_tensors("best", best, objective)
        groups, per_param = self._optimizer_state(state, tensors, optimizer)
        self._check_like("scheduler", state.get("scheduler"), scheduler.state_dict())
        saved_generator = tensors.get("generator")
        expected_generator = generator.get_state()
        if (
            saved_generator is None
            or saved_generator.dtype != expected_generator.dtype
            or saved_generator.shape != expected_generator.shape
        ):
            raise self._fault("generator", "is missing or is not a torch.Generator state")
        try:
            objective.load_state_dict(current, strict=True)
            optimizer.load_state_dict({"state": per_param, "param_groups": groups})
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(saved_generator)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"checkpoint_path {str(self.path)!r} does not match this model ({exc}); delete it or choose "
                "another checkpoint_path."
            ) from None
        return Resumed(best_state=best, **resumed)

    # -- checks of an untrusted state ------------------------------------------------------
    def _fault(self, field: str, problem: str) -> ConfigError:
        return ConfigError(
            f"checkpoint_path {str(self.path)!r}: its {field} {problem}; the file is damaged or was "
            "altered. Delete it, or choose another checkpoint_path."
        )

    def _counters(self, state: dict[str, Any]) -> dict[str, Any]:
        """The loop's counters and history, each checked, and checked against each other."""
        values: dict[str, Any] = {}
        for name in ("next_epoch", "since_best", "failures_in_row", "failures", "best_epoch"):
            value = state.get(name)
            low = -1 if name == "best_epoch" else 0
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_COUNT:
                raise self._fault(name, f"= {value!r:.40} is not an integer in [{low}, {_MAX_COUNT}]")
            values[name] = value
        score = state.get("best_score")
        if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
            raise self._fault("best_score", f"= {score!r:.40} is not a number")
        stop = state.get("stop_reason", "max_epochs")
        if stop not in _STOP_REASONS:
            raise self._fault("stop_reason", f"= {stop!r:.40} is not one of {list(_STOP_REASONS)}")
        history = state.get("history")
        if not isinstance(history, list) or not all(_is_epoch_record(row) for row in history):
            raise self._fault("history", f"is not a list of epoch records ({', '.join(_HISTORY_KEYS)}, numbers)")
        epochs = [row["epoch"] for row in history if row["stage"] == "adam"]
        last = max(epochs, default=-1)
        if values["next_epoch"] != last + 1 and not (stop == "early_stopping" and values["next_epoch"] > last):
            raise self._fault(
                "next_epoch",
                f"= {values['next_epoch']} disagrees with its history, whose last completed epoch is {last}",
            )
        if values["best_epoch"] > last:
            raise self._fault("best_epoch", f"= {values['best_epoch']} is after the last completed epoch {last}")
        values.update(best_score=float(score), stop_reason=stop, history=history)
        return values

    def _check_tensors(self, prefix: str, tensors: dict[str, torch.Tensor], objective: torch.nn.Module) -> None:
        expected = {k: (tuple(v.shape), v.dtype) for k, v in objective.state_dict().items()}
        found = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
        if found != expected:
            wrong = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
            raise self._fault(f"{prefix!r} parameters", f"do not match this model ({wrong[:3]} differ)")

    def _optimizer_state(
        self, state: dict[str, Any], tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer
    ) -> tuple[list[dict[str, Any]], dict[int, Any]]:
        own = optimizer.state_dict()
        groups = state.get("param_groups")
        self._check_like("param_groups", groups, own["param_groups"])
        if not isinstance(groups, list):
            raise self._fault("param_groups", f"must be a list, got {type(groups).__name__}")
        for group, mine in zip(groups, own["param_groups"]):  # only the learning rates move during training
            for key, value in group.items():
                if key in ("lr", "initial_lr"):
                    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                        raise self._fault("param_groups", f"hold the learning rate {key}={value!r:.40}")
                elif _plain(value) != _plain(mine[key]):
                    raise self._fault(
                        "param_groups", f"set {key}={value!r:.40}, where this fit's optimizer has {mine[key]!r:.40}"
                    )
        groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in groups]
        shapes = [tuple(p.shape) for g in optimizer.param_groups for p in g["params"]]
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in _prefixed(tensors, "optimizer.").items():
            index, _, name = key.partition(".")
            if (
                not index.isdigit()
                or int(index) >= len(shapes)
                or name not in ("step", "exp_avg", "exp_avg_sq")
                or tuple(value.shape) != (() if name == "step" else shapes[int(index)])
            ):
                raise self._fault("optimizer state", f"entry {key!r} does not match the model's parameters")
            per_param.setdefault(int(index), {})[name] = value
        if any(set(entry) != {"step", "exp_avg", "exp_avg_sq"} for entry in per_param.values()):
            raise self._fault("optimizer state", "is incomplete (Adam needs step, exp_avg and exp_avg_sq)")
        return groups, per_param

    def _check_like(self, field: str, value: Any, reference: Any) -> None:
        """``value`` must have ``reference``'s structure: the same keys, lengths and kinds of values."""
        problem = _unlike(value, reference)
        if problem is not None:
            raise self._fault(field, problem)

    # -- writing --------------------------------------------------------------------------
    def save(
        self,
        next_epoch: int,
        objective: torch.nn.Module,
        best_state: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        generator: torch.Generator,
        result: Any,
        since_best: int,
        failures_in_row: int,
    ) -> None:
        """Write the loop's state atomically (the previous checkpoint stays whole until replaced)."""
        optim = optimizer.state_dict()
        tensors = {f"current.{k}": v for k, v in objective.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
        for index, values in optim["state"].items():
            for name, value in values.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
        tensors["generator"] = generator.get_state()
        state = {
            "next_epoch": next_epoch,
            "since_best": since_best,
            "failures_in_row": failures_in_row,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_score": result.best_score if math.isfinite(result.best_score) else float("inf"),
            "failures": result.failures,
            "stop_reason": result.stop_reason,
            "param_groups": optim["param_groups"],
            "scheduler": scheduler.state_dict(),  # LambdaLR: counters and rates; its lambdas show as None
        }
        write_file(self.path, CHECKPOINT_FORMAT, {"fingerprint": self.fingerprint, "state": state}, tensors)

    def remove(self) -> None:
        """Delete the checkpoint (the fit completed); a missing file is fine."""
        self.path.unlink(missing_ok=True)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


_MAX_COUNT = 10**9
_HISTORY_KEYS = ("epoch", "stage", "loss", "val_loss", "nfe_forward", "nfe_backward", "lr", "seconds")


def _is_epoch_record(row: Any) -> bool:
    """A row of the loop's history: the keys it writes (nfe_validation when it validated, horizon in a
    horizon schedule, whose earlier stages also leave L-BFGS rows), numbers."""
    optional = {"nfe_validation", "horizon", "stage_loss"}
    if not isinstance(row, dict) or not set(_HISTORY_KEYS) <= set(row) <= {*_HISTORY_KEYS, *optional}:
        return False
    if (
        not isinstance(row["epoch"], int)
        or isinstance(row["epoch"], bool)
        or row["stage"] not in ("start", "adam", "lbfgs")
    ):
        return False
    return all(isinstance(v, int | float) and not isinstance(v, bool) for k, v in row.items() if k != "stage")


_STOP_REASONS = ("max_epochs", "early_stopping", "interrupted", "failed")


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: settings compare equal however a file stored their sequences."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _unlike(value: Any, reference: Any, where: str = "") -> str | None:
    """What makes ``value`` structurally different from ``reference`` (None if nothing)."""
    at = f" at {where}" if where else ""
    if isinstance(reference, dict):
        if not isinstance(value, dict):
            return f"is a {type(value).__name__}{at}, expected an object"
        if set(value) != set(reference):
            return f"has keys {sorted(value)[:8]}{at}, expected {sorted(reference)}"
        return next((p for k in reference if (p := _unlike(value[k], reference[k], f"{where}.{k}".strip(".")))), None)
    if isinstance(reference, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(reference):
            return f"is {value!r:.40}{at}, expected {len(reference)} values"
        return next(
            (p for i, (v, r) in enumerate(zip(value, reference)) if (p := _unlike(v, r, f"{where}[{i}]"))), None
        )
    if reference is None or isinstance(reference, bool | str):
        return (
            None
            if type(value) is type(reference) or (reference is None and value is None)
            else f"= {value!r:.40}{at}, expected a {type(reference).__name__}"
        )
    if isinstance(reference, int | float):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(reference, int) and not isinstance(value, int))
        ):
            return f"= {value!r:.40}{at}, expected a number"
        return None
    return None


def fingerprint(estimator: Any, data: Any, stage: Any = 0, ignore: Iterable[str] = RESUMABLE_CHANGES) -> dict[str, Any]:
    """What identifies a fit: class, the parameters that shape it, the data, the stage.

    Parameters are read deep (a part's as ``training__max_epochs``) and compared by their
    last name, so ``ignore`` names ``max_epochs`` wherever it lives.
    """
    from sysid.parts import Part

    skip = set(ignore)
    params = {
        k: v
        for k, v in estimator.get_params(deep=True).items()
        if not isinstance(v, Part) and k.rsplit("__", 1)[-1] not in skip
    }
    return {"estimator": type(estimator).__name__, "params": params, "data": data_digest(data), "stage": stage}
