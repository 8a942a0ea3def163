"""Study 4: peak memory of one short fit as the record grows, adjoint against backprop.

One Lotka-Volterra trajectory of N irregular samples (10 per time unit, so the record
gets longer, not denser), 5% noise. Each configuration runs in its own Python process
(``python -m benchmarks.memory --child ...``), whose peak resident set size is reset just
before ``fit`` (``/proc/self/clear_refs``) and read after it (``VmHWM`` in
``/proc/self/status``): torch's CPU allocations, which ``tracemalloc`` does not see, are
counted. (``resource.getrusage(...).ru_maxrss`` alone is not usable in a child: Linux carries
the parent's peak across fork and exec, so every child of a 500 MB parent "peaked" at
500 MB; it is only the fallback where /proc is missing.) ``fit_peak_mb`` = peak
minus the resident size just before ``fit`` (after imports and data): what the fit
itself added. ``process_peak_mb`` is the whole process, torch's own ~hundreds of MB
included.

The fit: ``NeuralODE(max_epochs=2 (1 in quick mode), lbfgs_steps=0)``, otherwise defaults
(all segments in one batch, free-run validation of the whole record), with a 30-step
collocation warm start (its memory depends on the record length, not on its number of
steps) or none, to separate what the warm start and what the training itself cost.

Run alone: python -m benchmarks --only memory [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Study, check_mode

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.3
# configs: (gradient, warm start (collocation steps), segments per step or None for all).
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "samples": (1000, 2000, 5000, 10000),
        "epochs": 2,
        "configs": (
            ("adjoint", 30, None),
            ("adjoint", 0, None),
            ("backprop", 30, None),
            ("backprop", 0, None),
            ("adjoint", 0, 200),
        ),
    },
    "quick": {
        "samples": (1000, 10000),
        "epochs": 1,
        "configs": (("adjoint", 30, None), ("adjoint", 0, None), ("backprop", 0, None)),
    },
    # Tiny: both lengths in one process (one interpreter start); the figures mean nothing, the plumbing is tested.
    "tiny": {"samples": (200, 400), "epochs": 1, "configs": (("adjoint", 5, None),), "tiny": True},
}


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MiB, None where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    value = _status_mb("VmRSS")
    if value is not None:
        return value
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    """Peak RSS of this process image: VmHWM, else ``ru_maxrss``.

    ``ru_maxrss`` is not enough in a child: Linux carries the parent's peak across fork and
    exec into it (a 500 MB parent made every child "peak" at 500 MB), while VmHWM belongs to
    the process image and can be reset.
    """
    value = _status_mb("VmHWM")
    return value if value is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(
    samples: int, gradient: str, batch_size: int | None, epochs: int, collocation: int, tiny: bool
) -> dict[str, Any]:
    """One fit in this process; returns the figures (run by the parent in a subprocess)."""
    import torch

    import sysid
    from benchmarks.common import batch_simulate, quiet, warm_up

    torch.set_num_threads(1)
    warm_up(sindy=False)  # first-use imports inside fit would otherwise count as the fit's memory
    data = batch_simulate("lotka_volterra", 1, n_samples=samples, t_span=(0.0, samples / 10.0), seed=0)
    extra = {"hidden": (8,)} if tiny else {}
    model = sysid.NeuralODE(
        max_epochs=epochs,
        lbfgs_steps=0,
        gradient=gradient,
        batch_size=batch_size,
        collocation_steps=collocation,
        verbose=False,
        random_state=0,
        **extra,
    )
    reset = _reset_peak()
    before, peak_before = _rss_mb(), _peak_mb()
    start = time.perf_counter()
    with quiet():
        model.fit(data)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    history = model.history_
    return {
        "samples": samples,
        "gradient": gradient,
        "batch_size": batch_size,
        "collocation_steps": collocation,
        "rss_before_mb": before,
        "peak_before_fit_mb": peak_before,
        "peak_was_reset": reset,
        "process_peak_mb": peak,
        "fit_peak_mb": peak - before,
        "fit_s": seconds,
        "nfe_forward": int(history["nfe_forward"].sum()),
        "nfe_backward": int(history["nfe_backward"].sum()),
    }


def _spawn(
    samples: list[int], gradient: str, batch_size: int | None, epochs: int, collocation: int, tiny: bool
) -> list[dict[str, Any]]:
    """Run ``child`` in a fresh interpreter for the record length(s) ``samples``."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--child",
        "--samples",
        ",".join(map(str, samples)),
        "--gradient",
        gradient,
        "--epochs",
        str(epochs),
        "--collocation",
        str(collocation),
    ]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    if tiny:
        cmd.append("--tiny")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {cmd[3:]} failed:\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.strip().splitlines() if line.startswith("{")]


def _label(gradient: str, collocation: int, batch_size: int | None) -> str:
    return (
        f"{gradient}, "
        + ("warm start" if collocation else "no warm start")
        + (f", {batch_size} segments/step" if batch_size else "")
    )


def run(mode: str = "full") -> Study:
    check_mode(mode)
    cfg = SETTINGS[mode]
    tiny = cfg.get("tiny", False)
    rows = []
    for gradient, collocation, batch_size in cfg["configs"]:
        groups = [list(cfg["samples"])] if tiny else [[n] for n in cfg["samples"]]
        for group in groups:
            for r in _spawn(group, gradient, batch_size, cfg["epochs"], collocation, tiny):
                rows.append(
                    {
                        "config": _label(gradient, collocation, batch_size),
                        "samples": r["samples"],
                        "fit_peak_mb": r["fit_peak_mb"],
                        "process_peak_mb": r["process_peak_mb"],
                        "fit_s": r["fit_s"],
                        "nfe_forward": r["nfe_forward"],
                        "nfe_backward": r["nfe_backward"],
                    }
                )
    small, large = min(cfg["samples"]), max(cfg["samples"])
    ratios, parts = {}, []
    for gradient, collocation, batch_size in cfg["configs"]:
        label = _label(gradient, collocation, batch_size)
        sel = {r["samples"]: r for r in rows if r["config"] == label}
        fit_ratio = sel[large]["fit_peak_mb"] / max(sel[small]["fit_peak_mb"], 0.1)
        proc_ratio = sel[large]["process_peak_mb"] / sel[small]["process_peak_mb"]
        ratios[label] = {"fit": fit_ratio, "process": proc_ratio}
        parts.append(
            f"{label}: fit {sel[small]['fit_peak_mb']:.0f} -> {sel[large]['fit_peak_mb']:.0f} MB "
            f"({fit_ratio:.1f}x; process {proc_ratio:.2f}x)"
        )
    default = ratios.get(_label(*cfg["configs"][0]))
    met = None if default is None or tiny else bool(default["fit"] <= TARGET_RATIO)
    notes = [
        "Judged on `fit_peak_mb` (peak RSS minus RSS just before `fit`: what the fit adds) for the first "
        "configuration (the defaults: adjoint, warm start, all segments per step). The whole-process ratio is "
        "shown too; torch's own few hundred MB make it look flat whatever the fit does. At 1,000 samples the "
        "fit adds only a few MB, so the ratio is sensitive to the allocator's granularity; the growth in MB is "
        "the robust figure.",
        "What grows with the record: (1) multiple shooting keeps N/5 segment start states and, by default, "
        "solves all segments in one batch, so every solver stage and every network activation is (segments x "
        "width): O(N) by design, about 600 B per sample live (solve + adjoint backward; 6 MB at 10,000 samples, "
        "12 MB at 20,000), which glibc's heap turns into about 1.5 KB per sample of peak RSS (2.9 -> 17 MB "
        "without warm start). The adjoint's O(1) is in the number of solver *steps* (about 6 per segment "
        "whatever N is), not in the number of samples; backprop stores every step's graph on top, hence its "
        "steeper growth. `batch_size` bounds it (2.7 -> 3.6 MB at 256 segments per step). "
        "(2) the collocation warm start fits smoothing splines (scipy's `make_smoothing_spline`, its strength "
        "chosen by GCV once per state on a window of at most 200 samples) to the whole record: about 400 B per "
        "sample at its peak inside scipy, 48 B per sample kept (values and two derivatives), inherent to a "
        "global spline. Its regression accumulates the gradient over chunks of 512 rows, fewer than a "
        "1,000-sample record, so it peaks no higher on a long record than on a short one (before issue #8 "
        "it trained on every sample at once: about 40 MB at 10,000 samples; 2,048-row chunks still left "
        "13-16 MB of resident heap there, against 3-4 MB now): compare the rows with and without warm start.",
        "Peak RSS is not live memory: glibc keeps freed blocks of about 1 MiB (the (rows x 64) float64 "
        "activations) in its heap, so the peak is 2-3x the bytes live at once. Running a child with "
        "MALLOC_MMAP_THRESHOLD_=65536 makes RSS follow live memory (measured that way: 3.0 MB at 1,000 samples, "
        "9.5 MB at 10,000 with the defaults).",
        "Remedies, not defaults: `batch_size` bounds the per-step tensors (full mode has that row).",
    ]
    setup = (
        f"Lotka-Volterra, one trajectory of {small:,}-{large:,} irregular samples (10 per time unit), 5% noise; "
        f"`NeuralODE(max_epochs={cfg['epochs']}, lbfgs_steps=0)` with a 30-step warm start (its memory depends "
        "on the record, not on the number of steps) or none; one subprocess per row, peak RSS from `VmHWM` "
        "reset just before the fit."
    )
    return Study(
        "memory",
        "Memory: peak of one fit as the record grows",
        setup,
        rows,
        target=f"adjoint peak memory at {large:,} samples within {TARGET_RATIO}x of that at {small:,}",
        met=met,
        verdict="; ".join(parts),
        notes=notes,
        mode=mode,
        extra={"ratios": ratios},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help="run one configuration and print JSON")
    parser.add_argument("--samples", default="1000", help="record length(s), comma-separated")
    parser.add_argument("--gradient", default="adjoint")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--collocation", type=int, default=30)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        for samples in args.samples.split(","):
            print(
                json.dumps(
                    child(int(samples), args.gradient, args.batch_size, args.epochs, args.collocation, args.tiny)
                ),
                flush=True,
            )
    else:
        study = run("full")
        print(json.dumps(study.rows, indent=1))


if __name__ == "__main__":
    main()
