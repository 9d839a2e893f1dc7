"""The run being evaluated and the evaluation's sizes and recipe, every option checked first."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from simgan_tf import photometry
from simgan_tf.config import PRESETS, Config
from simgan_tf.errors import SimGANError
from simgan_tf.gaze import ESTIMATOR_PRESETS, EstimatorSpec
from simgan_tf.refine import check_image_size, load_run, refiner_source


@dataclass(frozen=True)
class EvalSizes:
    n_train: int  # synthetic images each estimator trains on (and oracle target images)
    n_heldout: int  # further synthetic images, for label drift and the two-sample tests
    n_test: int  # labelled target images every estimator is tested on
    c2st_per_class: int  # also the probe discriminator's
    c2st_steps: int
    probe_steps: int
    estimator: str  # a gaze.ESTIMATOR_PRESETS key


EVAL_PRESETS: dict[str, EvalSizes] = {
    "smoke": EvalSizes(256, 128, 128, 128, 40, 40, "smoke"),
    # Sized so that 2,500 held-out refined images meet the 2,500 shared MPIIGaze patches one to one.
    "quick": EvalSizes(10_000, 2_500, 2_000, 2_500, 600, 600, "quick"),
    "paper": EvalSizes(100_000, 10_000, 10_000, 10_000, 3_000, 3_000, "paper"),
}


# What `evaluate --measures` can choose. Drift's label-consistency check reads the raw and refined
# arms' estimators, so drift needs gaze; realism (the C2ST and the probe) needs neither.
MEASURES = ("gaze", "drift", "realism")


def check_measures(measures: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The measures asked for, in MEASURES order, or a one-line error."""
    unknown = sorted(set(measures) - set(MEASURES))
    if unknown or not measures:
        raise SimGANError(
            f"--measures takes one or more of {', '.join(MEASURES)}, got {', '.join(measures) or 'none'}"
        )
    if "drift" in measures and "gaze" not in measures:
        raise SimGANError("--measures drift needs gaze too (its label check reads the gaze arms)")
    return tuple(m for m in MEASURES if m in measures)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def keras_verbosity(verbose: bool) -> int:
    # A live progress bar on a terminal; one summary line in a log file.
    return 0 if not verbose else (1 if sys.stdout.isatty() else 2)


def scene_profile(config: dict) -> str:
    """The scene profile the run's built-in data was drawn from (runs before profiles: uniform)."""
    return config.get("scene_profile") or "uniform"


def run_file(config: dict, key: str) -> str | None:
    """The data file the run trained on (config.json's `key`), None where it used built-in data."""
    value = config.get(key)
    if not isinstance(value, str) or not value:
        return None
    if not os.path.isfile(value):
        # Falling back to built-in data here would evaluate on another distribution than trained on.
        raise SimGANError(
            f"the run trained on {key} images from {value}, not found from here; pass --{key}"
        )
    return value


def discriminator_filters(config: dict) -> tuple[int, ...]:
    # Runs older than the setting in config.json used their preset's widths.
    widths = config.get("discriminator_filters") or PRESETS.get(config.get("preset"), {}).get(
        "discriminator_filters", Config.discriminator_filters
    )
    return tuple(int(w) for w in widths)


def make_sizes(
    preset: str,
    n_train: int | None,
    steps: int | None,
    repeats: int,
    width: float | None = None,
    dense: int | None = None,
) -> tuple[EvalSizes, EstimatorSpec]:
    """The evaluation preset's sizes and estimator recipe with the options' overrides, checked.

    `width` and `dense` replace the preset estimator's convolution width and hidden layer size
    (the paper's network is width 1, dense 1,000), its steps and batch kept: the same images read
    by a larger or smaller estimator."""
    if preset not in EVAL_PRESETS:
        raise SimGANError(f"unknown preset {preset!r}; expected one of {sorted(EVAL_PRESETS)}")
    sizes = EVAL_PRESETS[preset]
    if n_train is not None:
        if n_train < 2:
            raise SimGANError(f"--n-train must be at least 2, got {n_train}")
        sizes = replace(sizes, n_train=n_train)
    spec = ESTIMATOR_PRESETS[sizes.estimator]
    if steps is not None:
        if steps < 1:
            raise SimGANError(f"--steps must be >= 1, got {steps}")
        spec = replace(spec, steps=steps)
    if width is not None:
        if not np.isfinite(width) or width <= 0:
            raise SimGANError(f"--estimator-width must be a number > 0, got {width}")
        spec = replace(spec, width=float(width))
    if dense is not None:
        if dense < 1:
            raise SimGANError(f"--estimator-dense must be >= 1, got {dense}")
        spec = replace(spec, dense=int(dense))
    if repeats < 1:
        raise SimGANError(f"--repeats must be >= 1, got {repeats}")
    return sizes, spec


@dataclass
class Setup:
    run: str
    config: dict
    refiner: object
    preset: str
    sizes: EvalSizes
    spec: EstimatorSpec
    seed: int
    shape: tuple[int, int]
    out: str
    repeats: int
    batch_size: int
    verbose: bool
    prepare: Callable[[np.ndarray], np.ndarray]  # the run's input normalisation
    refiner_source: str = ""  # which file and weights the refiner came from

    def log(self, message: str) -> None:
        if self.verbose:
            _log(message)


def make_setup(
    run: str,
    *,
    out: str | None,
    preset: str | None,
    seed: int | None,
    steps: int | None,
    n_train: int | None,
    batch_size: int,
    repeats: int,
    verbose: bool,
    checkpoint: str | None = None,
    average: bool = True,
    width: float | None = None,
    dense: int | None = None,
) -> Setup:
    """The run, the sizes and the recipe, every option checked before any work."""
    config, refiner = load_run(run, checkpoint, average)
    preset = preset or (config.get("preset") if config.get("preset") in EVAL_PRESETS else "quick")
    sizes, spec = make_sizes(preset, n_train, steps, repeats, width, dense)
    shape = tuple(config.get("image_shape", (35, 55, 1)))[:2]
    check_image_size(refiner, shape, f"{run}/config.json image_shape")
    out = out or os.path.join(run, "eval")
    os.makedirs(out, exist_ok=True)
    return Setup(
        run=run,
        config=config,
        refiner=refiner,
        preset=preset,
        sizes=sizes,
        spec=spec,
        seed=int(config.get("seed", 0)) if seed is None else seed,
        shape=shape,
        out=out,
        repeats=repeats,
        batch_size=batch_size,
        verbose=verbose,
        prepare=photometry.from_config(config),
        refiner_source=refiner_source(run, config, checkpoint, average),
    )
