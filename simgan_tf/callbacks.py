"""Keras callbacks of a training run: the metrics log, sample grids, failure warnings, checkpoints.

fit() runs with one "epoch" per logging interval (`log_every` steps), so every callback acts at epoch
end and reads the global step from the model (`model.step`), which counts across phases.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np

from simgan_tf.data import to_gray_levels
from simgan_tf.files import atomic_write
from simgan_tf.plots import save_loss_curves, save_sample_grid
from simgan_tf.simgan import DISCRIMINATOR_METRICS, GAZE_METRIC, REFINER_METRICS
from simgan_tf.tensorboard import TensorBoardLog

if TYPE_CHECKING:
    from simgan_tf.config import Config

COLUMNS = ("step", "phase", "elapsed_s", *REFINER_METRICS, *DISCRIMINATOR_METRICS, GAZE_METRIC)


def _every(step: int, interval: int, last: int) -> bool:
    """True when a multiple of `interval` lies in (last, step]: the callbacks fire once per crossing."""
    return interval > 0 and step // interval > last // interval


class RunLog(keras.callbacks.Callback):
    """Appends one row per logging interval to metrics.csv; redraws losses.png now and then."""

    def __init__(self, out: str, resume_step: int = 0):
        super().__init__()
        self.csv_path = os.path.join(out, "metrics.csv")
        self.png_path = os.path.join(out, "losses.png")
        # A resumed run drops rows logged after its checkpoint (a killed run may have written some),
        # so the log has each step once, and continues the elapsed time.
        kept = [r for r in self.rows() if int(r["step"]) <= resume_step] if resume_step else []
        if os.path.exists(self.csv_path):
            with atomic_write(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(kept)
        self.started = time.time() - (float(kept[-1]["elapsed_s"]) if kept else 0.0)
        # A plot takes 0.3 to 1 s on a CPU: redraw at most every 15 s, and never more often than
        # keeps drawing under 2% of the run's time.
        self.drawn, self.redraw_s = 0.0, 15.0

    def rows(self) -> list[dict]:
        if not os.path.exists(self.csv_path):
            return []
        with open(self.csv_path, newline="") as f:
            return list(csv.DictReader(f))

    def on_epoch_end(self, epoch, logs=None):
        row = {"step": int(self.model.step.numpy()), "phase": self.model.phase}
        row["elapsed_s"] = f"{time.time() - self.started:.1f}"
        row.update({k: f"{float(v):.6g}" for k, v in (logs or {}).items() if k in COLUMNS})
        new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        if time.time() - self.drawn > self.redraw_s:
            self.on_train_end()

    def on_train_end(self, logs=None):
        if os.path.exists(self.csv_path):
            t0 = time.time()
            save_loss_curves(self.png_path, self.rows())
            self.redraw_s = max(15.0, 50 * (time.time() - t0))
        self.drawn = time.time()


class SampleGrids(keras.callbacks.Callback):
    """Every `every` steps, refines a fixed set of synthetic images and saves samples/step_N.png."""

    def __init__(self, out: str, synthetic: np.ndarray, real: np.ndarray, every: int, guard=None):
        super().__init__()
        self.guard = guard
        self.dir = os.path.join(out, "samples")
        os.makedirs(self.dir, exist_ok=True)
        self.synthetic, self.real, self.every = synthetic, real, every
        self.last = -1

    def save(self, step: int) -> str:
        x = self.synthetic.astype(np.float32)[..., None] / 127.5 - 1.0
        # A direct call, not predict_on_batch: under a multi-replica strategy Keras runs that whole
        # batch on every replica and concatenates the copies (8 images in, 16 out).
        refined = to_gray_levels(keras.ops.convert_to_numpy(self.model.refiner(x, training=False)))
        path = os.path.join(self.dir, f"step_{step:06d}.png")
        title = f"step {step} ({self.model.phase})"
        save_sample_grid(path, self.synthetic, refined, self.real, title)
        return path

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.step.numpy())
        if self.guard is not None and self.guard.bad_step is not None:
            return
        if self.last < 0 or _every(step, self.every, self.last):
            self.save(step)
        self.last = step


class FailureMonitor(keras.callbacks.Callback):
    """Warns, naming the step, when the run shows a failure mode of REFERENCE.md.

    - collapse: refined images nearly identical to each other (r_spread, their per-pixel spread over
      the batch relative to the synthetic images', falls below `min_spread`);
    - no-op: in adversarial training the refiner changes images by under `min_change` gray levels
      on average (the L1 term dominates);
    - discriminator wins: it tells refined from real on nearly every patch, so refinement is not
      closing the gap (if it persists: a geometry gap the refiner cannot fix). It reads the current
      refiner's images (d_acc_refined), not the history half (d_acc_history): old buffer images
      told apart say nothing about the refiner as it is now.
    Each warning prints once when it starts and again only after it has cleared.
    """

    def __init__(
        self, out: str, min_spread: float = 0.25, min_change: float = 0.5, max_acc: float = 0.99
    ):
        super().__init__()
        self.path = os.path.join(out, "warnings.txt")
        self.min_spread, self.min_change, self.max_acc = min_spread, min_change, max_acc
        self.active: set[str] = set()

    def check(self, phase: str, logs: dict) -> dict[str, str]:
        found = {}
        if phase != "adversarial":  # pretraining starts from random weights: low spread is expected
            return found
        spread = logs.get("r_spread", np.inf)
        if spread < self.min_spread:
            found["collapse"] = (
                f"collapse: refined images are nearly identical to one another "
                f"(spread {spread:.2f} of the synthetic images')"
            )
        change = logs.get("r_l1", np.inf) * 127.5
        if change < self.min_change:
            found["no-op"] = (
                f"no-op: refined images differ from synthetic by {change:.2f} gray levels on "
                "average; the L1 term dominates (try a lower --lambda-reg)"
            )
        acc = min(logs.get("d_acc_refined", 0.0), logs.get("d_acc_real", 0.0))
        if acc > self.max_acc:
            found["discriminator-wins"] = (
                f"discriminator wins: it labels {100 * acc:.1f}% of patches correctly; if this "
                "persists the simulator's geometry may be too far from the real images"
            )
        return found

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.step.numpy())
        found = self.check(self.model.phase, {k: float(v) for k, v in (logs or {}).items()})
        for key, message in found.items():
            if key not in self.active:
                line = f"warning: step {step}: {message}"
                print(f"\n{line}", flush=True)
                with open(self.path, "a") as f:
                    f.write(line + "\n")
        self.active = set(found)


class NanGuard(keras.callbacks.Callback):
    """Stops training at the end of an interval whose losses are NaN or infinite.

    The metrics are means over the interval, so one bad step shows. It runs before Checkpoints, which
    then saves nothing: the last checkpoint stays the last good state.
    """

    def __init__(self):
        super().__init__()
        self.bad_step: int | None = None
        self.bad_metrics: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        bad = sorted(k for k, v in (logs or {}).items() if not np.isfinite(float(v)))
        if bad:
            self.bad_step, self.bad_metrics = int(self.model.step.numpy()), bad
            self.model.stop_training = True


class Checkpoints(keras.callbacks.Callback):
    """Saves all of the training state, which lives in the model's weights: both networks, both
    optimizers, the history buffer and its fill, the step counter and the random generator's state.

    Written under a temporary name and renamed, so a crash mid-write leaves the previous one usable;
    only the newest `keep` are kept. With `backup`, the newest checkpoint and the run's small files
    are copied there too (a mounted Drive on Colab), so a lost --out can be restored.
    """

    def __init__(self, out: str, every: int, keep: int = 3, backup: str | None = None, guard=None):
        super().__init__()
        self.out = out
        self.dir = os.path.join(out, "checkpoints")
        os.makedirs(self.dir, exist_ok=True)
        self.every, self.keep, self.backup, self.guard = every, keep, backup, guard
        self.last = 0

    def save(self, step: int) -> str:
        path = checkpoint_path(self.out, step)
        with atomic_write(path) as tmp:
            self.model.save_weights(tmp)
        for old in list_checkpoints(self.out)[: -self.keep]:
            os.remove(old)
        if self.backup:
            backup_run(self.out, self.backup)
        return path

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.step.numpy())
        if self.guard is not None and self.guard.bad_step is not None:
            return
        if _every(step, self.every, self.last):
            self.save(step)
        self.last = step


def checkpoint_path(out: str, step: int) -> str:
    """Where the run in `out` keeps its checkpoint of `step` (steps of every phase counted)."""
    return os.path.join(out, "checkpoints", f"step_{step:09d}.weights.h5")


def checkpoint_step(path: str) -> int:
    """The step of a checkpoint file named by `checkpoint_path`."""
    return int(os.path.basename(path)[len("step_") :].split(".")[0])


def list_checkpoints(out: str) -> list[str]:
    """The run's checkpoints, oldest first (zero-padded step numbers sort in step order)."""
    return sorted(glob.glob(os.path.join(out, "checkpoints", "step_*.weights.h5")))


BACKED_UP = (
    "config.json",
    "metrics.csv",
    "losses.png",
    "summary.json",
    "warnings.txt",
    "gaze_reader.keras",  # --gaze-reg's frozen estimator: a resumed run must read with the same one
)


def _copy_atomic(src: str, dst: str) -> None:
    with atomic_write(dst) as tmp:
        shutil.copyfile(src, tmp)


def backup_run(out: str, backup: str) -> None:
    """Mirror the newest checkpoint and the small run files into `backup` (each copy atomic)."""
    os.makedirs(os.path.join(backup, "checkpoints"), exist_ok=True)
    newest = list_checkpoints(out)[-1:]
    for path in newest:
        _copy_atomic(path, os.path.join(backup, "checkpoints", os.path.basename(path)))
    for old in list_checkpoints(backup):
        if os.path.basename(old) not in {os.path.basename(p) for p in newest}:
            os.remove(old)
    for name in BACKED_UP:
        if os.path.exists(os.path.join(out, name)):
            _copy_atomic(os.path.join(out, name), os.path.join(backup, name))


def restore_run(backup: str, out: str) -> None:
    """Copy a backed-up run into an empty `out`, to resume from it."""
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
    for path in list_checkpoints(backup):
        _copy_atomic(path, os.path.join(out, "checkpoints", os.path.basename(path)))
    for name in BACKED_UP:
        if os.path.exists(os.path.join(backup, name)):
            _copy_atomic(os.path.join(backup, name), os.path.join(out, name))


@dataclass
class RunCallbacks:
    """A training run's callbacks; `all` is fit()'s list, in the order they must run."""

    guard: NanGuard
    log: RunLog
    grids: SampleGrids
    monitor: FailureMonitor
    checkpoints: Checkpoints
    board: TensorBoardLog | None  # None with tensorboard off
    extra: tuple = ()  # the caller's, after the run's own

    @property
    def all(self) -> list[keras.callbacks.Callback]:
        # The guard flags a bad interval first, so grids and checkpoints skip it; TensorBoard
        # follows the grids, whose newest PNG it logs.
        own = [self.guard, self.log, self.grids, self.monitor, self.checkpoints]
        return own + ([self.board] if self.board else []) + list(self.extra)


def run_callbacks(
    cfg: Config,
    shown_synthetic: np.ndarray,
    shown_real: np.ndarray,
    start: int = 0,
    resume: bool = False,
    extra: tuple = (),
) -> RunCallbacks:
    """The callbacks of a run of `cfg` writing into cfg.out, from global step `start`.

    train.Run trains with them; bench times fit() with the same list (at its own intervals).
    """
    guard = NanGuard()
    grids = SampleGrids(cfg.out, shown_synthetic, shown_real, cfg.sample_every, guard)
    checkpoints = Checkpoints(
        cfg.out, cfg.checkpoint_every, cfg.keep_checkpoints, cfg.backup_dir, guard
    )
    board = (
        TensorBoardLog(cfg.out, cfg.to_json(), grids.dir, start if resume else None)
        if cfg.tensorboard
        else None
    )
    grids.last = checkpoints.last = start - 1 if start else -1
    log, monitor = RunLog(cfg.out, resume_step=start), FailureMonitor(cfg.out)
    return RunCallbacks(guard, log, grids, monitor, checkpoints, board, extra)
