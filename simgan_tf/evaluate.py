"""Measure what a run's refiner is worth: `python -m simgan_tf.evaluate --run RUN [--target T.h5] [--real R.h5]`.

Three gaze estimators (the paper's network, one recipe) are trained on raw synthetic images, on the
same images refined, and on labelled target images (the oracle), and tested on held-out target images.
A target file with a person column (`--groups`, default `subject`) is split by person: nobody is both
in the test set and in the oracle's training set, and people whose eyes are in the real set are left
out of both. Then: how far refinement moved the labels (label drift), and how real the refined images
look to fresh classifiers (two-sample tests, a probe discriminator). Writes report.json, report.md
and figures to RUN/eval.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from simgan_tf import photometry
from simgan_tf.distribute import cpu_threads_in_effect, set_cpu_threads
from simgan_tf.errors import SimGANError, cli
from simgan_tf.evaluation.arms import ARM_LABELS, errors_by_pose, gains
from simgan_tf.evaluation.compare import compare_table
from simgan_tf.evaluation.drift import label_drift
from simgan_tf.evaluation.figures import save_error_histogram, save_figures, save_montage
from simgan_tf.evaluation.people import TargetSplit, real_sets, split_target
from simgan_tf.evaluation.probes import realism_tests
from simgan_tf.evaluation.report import (
    blindness_text,
    breakdown_tables,
    gaze_table,
    goals,
    pose_table,
    reading_text,
    realism_table,
    render_markdown,
)
from simgan_tf.evaluation.reuse import Saved, drop_predictions, gaze_arms_reusing, read_arms
from simgan_tf.evaluation.run import (
    EVAL_PRESETS,
    MEASURES,
    EvalSizes,
    Setup,
    check_measures,
    load_run,
    make_setup,
    run_file,
)
from simgan_tf.evaluation.sets import Synthetic, Target, real_data, synthetic_data, target_data
from simgan_tf.evaluation.simulator_alone import (
    SIMULATOR_ARMS,
    default_out,
    evaluate_simulator,
)
from simgan_tf.files import write_text
from simgan_tf.refine import refine_array
from simgan_tf.simulator import PROFILES
from simgan_tf.stats import fixed_pattern

# The public names of the evaluation, importable from here as before the measures had modules.
__all__ = [
    "ARM_LABELS",
    "EVAL_PRESETS",
    "EvalSizes",
    "TargetSplit",
    "errors_by_pose",
    "evaluate",
    "evaluate_simulator",
    "gaze_table",
    "load_run",
    "main",
    "pose_table",
    "realism_table",
    "render_markdown",
    "save_error_histogram",
    "save_montage",
    "split_target",
]


@contextmanager
def _timed(wall: dict[str, float], key: str) -> Iterator[None]:
    started = time.time()
    yield
    wall[key] = time.time() - started


@dataclass
class _Sets:
    synthetic: Synthetic
    target: Target
    real: np.ndarray
    real_source: str


def _load_sets(
    s: Setup,
    target: str | None,
    synthetic: str | None,
    real: str | None,
    groups: str,
    pose_key: str,
    by: Sequence[str],
    measures: tuple[str, ...],
) -> _Sets:
    # The target first: a target left with nobody to test on stops before anything is rendered.
    real = real or run_file(s.config, "real")
    # Only the gaze arms are tested on the target's people. Realism alone compares refined eyes
    # with the real images, which may then hold the target's people (realism against unseen eyes).
    known = real_sets(s.config, real)
    keep_out = known if "gaze" in measures else None
    tgt = target_data(s, target, groups, pose_key, keep_out, by, known)
    real_images, real_source = real_data(s, real, tgt)
    syn = synthetic_data(s, synthetic or run_file(s.config, "synthetic"))
    s.log(f"synthetic: {len(syn.train)} train + {len(syn.heldout)} held out from {syn.source}")
    s.log(
        f"target:    {len(tgt.test_images)} test + {len(tgt.oracle_images)} oracle-train from "
        f"{tgt.source}; {tgt.split['note']}"
    )
    s.log(f"real:      {len(real_images)} images from {real_source}")
    return _Sets(syn, tgt, real_images, real_source)


def _gaze(s: Setup, sets: _Sets, wall: dict, saved: Saved | None) -> tuple[dict, dict, dict]:
    """The gaze arms: raw synthetic, refined (the same images and labels), and the oracle; the
    raw and oracle arms taken from `saved` (an earlier evaluation's, reuse.read_arms) where nothing
    they depend on changed. Those two are saved for the next evaluation to reuse."""
    syn, tgt = sets.synthetic, sets.target
    with _timed(wall, "refine_train"):
        refined = refine_array(s.refiner, syn.train, s.batch_size, progress=s.verbose)
    arms = {"synthetic": (syn.train, syn.train_labels), "refined": (refined, syn.train_labels)}
    if len(tgt.oracle_images) >= 2:
        arms["oracle"] = (tgt.oracle_images, tgt.oracle_labels)
    gaze, errors, models = gaze_arms_reusing(s, arms, tgt, saved)
    for name, g in gaze.items():
        if g and g["seconds"] is not None:  # None: reused, no time spent on it here
            wall[f"gaze_{name}"] = g["seconds"]
    return gaze, errors, models


def _report(
    s: Setup,
    sets: _Sets,
    pose_key: str,
    measures: tuple[str, ...],
    measured: dict,
    wall: dict,
    pending: list[str],
) -> dict:
    """report.json: where every image came from, every measure, the goals, the time each took;
    `pending` names the measures still to run (a report written part way)."""
    syn, tgt, drift = sets.synthetic, sets.target, measured["drift"]
    gaze = measured["gaze"] or {name: None for name in ARM_LABELS}
    gain, gain_runs = gains(gaze) if measured["gaze"] else (None, [])
    report = {
        "run": s.run,
        "run_preset": s.config.get("preset"),
        "refiner": s.refiner_source,
        "preset": s.preset,
        "seed": s.seed,
        "data": {
            "synthetic": syn.source,
            "target": tgt.source,
            "real": sets.real_source,
            "input_norm": s.config.get("input_norm") or "none",
            "n_train": len(syn.train),
            "n_heldout": len(syn.heldout),
            "n_test": len(tgt.test_images),
            "n_oracle_train": len(tgt.oracle_images) if gaze["oracle"] else 0,
            "n_real": len(sets.real),
            "pose_key": pose_key if tgt.test_pose is not None else None,
            "split": tgt.split,
            "by": list(tgt.test_groups),
        },
        "estimator": s.spec.to_dict(),
        "cpu_threads": cpu_threads_in_effect(),
        "gaze": gaze,
        "gain": gain,
        "gain_runs": gain_runs,
        "repeats": s.repeats,
        "label_drift_deg": drift and drift["mean_deg"],
        "label_drift": drift,
        "realism": measured["realism"],
        "fixed_pattern": measured["fixed_pattern"],
        "figures": measured["figures"],
        "wall_seconds": {k: round(v, 1) for k, v in wall.items()},
        "measures": list(measures),
        "pending": pending,
    }
    report["goals"] = {key: met for key, _, _, met in goals(report)}
    return report


def evaluate(
    run: str,
    *,
    target: str | None = None,
    synthetic: str | None = None,
    real: str | None = None,
    out: str | None = None,
    preset: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    n_train: int | None = None,
    batch_size: int = 256,
    repeats: int = 1,
    groups: str = "subject",
    pose_key: str = "head_pose_deg",
    measures: Sequence[str] = MEASURES,
    verbose: bool = True,
    checkpoint: str | None = None,
    average: bool = True,
    reuse_arms: str | None = None,
    by: Sequence[str] = (),
    estimator_width: float | None = None,
    estimator_dense: int | None = None,
) -> dict:
    """Run the measurements and write report.json, report.md and figures; returns the report.

    `groups` names the target's per-image person column (split by person where it exists),
    `pose_key` its head-pose column (errors per pose where it exists), `measures` which of
    MEASURES to run (the ones left out are None in the report). `checkpoint` (a path or step
    number) evaluates that checkpoint's refiner instead of RUN/refiner.keras; `average` False takes
    a checkpoint's last weights rather than their moving average (runs trained with --refiner-ema).
    `reuse_arms` (an earlier evaluation's directory) takes the raw-synthetic and oracle arms from
    there where their images, test set, recipe, seeds and code are the same (evaluation.reuse).
    `by` breaks each arm's error down by per-image columns of the target (evaluation.breakdowns).
    `estimator_width` and `estimator_dense` replace the preset estimator's width and hidden layer
    (every estimator of the evaluation, drift's too).
    """
    started, wall = time.time(), {}
    measures = check_measures(measures)
    saved = None
    if reuse_arms:
        if "gaze" not in measures:
            raise SimGANError("--reuse-arms reuses gaze arms: it needs the gaze measure")
        saved = read_arms(reuse_arms)
    s = make_setup(
        run,
        out=out,
        preset=preset,
        seed=seed,
        steps=steps,
        n_train=n_train,
        batch_size=batch_size,
        repeats=repeats,
        verbose=verbose,
        checkpoint=checkpoint,
        average=average,
        width=estimator_width,
        dense=estimator_dense,
    )
    s.log(f"refiner:   {s.refiner_source}")
    with _timed(wall, "data"):
        sets = _load_sets(s, target, synthetic, real, groups, pose_key, by, measures)
    syn = sets.synthetic
    with _timed(wall, "refine"):
        ref_heldout = refine_array(s.refiner, syn.heldout, batch_size, progress=verbose)
    measured = {
        "gaze": None,
        "drift": None,
        "realism": None,
        "fixed_pattern": fixed_pattern(syn.heldout, ref_heldout),
        "figures": None,
    }
    pending = [m for m in MEASURES if m in measures] + ["figures"]

    def write(done: str) -> dict:
        # After each measure, so that an evaluation stopped part way (a time limit, a crash)
        # leaves a report of what it measured, beside the predictions.npz that gaze wrote.
        pending.remove(done)
        wall["total"] = time.time() - started
        report = _report(s, sets, pose_key, measures, measured, wall, list(pending))
        write_text(os.path.join(s.out, "report.json"), json.dumps(report, indent=2) + "\n")
        write_text(os.path.join(s.out, "report.md"), render_markdown(report))
        return report

    errors = None
    if "gaze" in measures:
        measured["gaze"], errors, models = _gaze(s, sets, wall, saved)
        write("gaze")
    else:
        drop_predictions(s.out)
    if "drift" in measures:
        with _timed(wall, "label_drift"):
            measured["drift"] = label_drift(
                s, syn, sets.target, ref_heldout, models, measured["gaze"]
            )
        write("drift")
    if "realism" in measures:
        with _timed(wall, "realism"):
            # Real eyes nobody trained on, where the target holds them: a stricter real side.
            unseen = sets.target.test_images if sets.target.test_people_unseen else None
            measured["realism"] = realism_tests(s, sets.real, syn.heldout, ref_heldout, unseen)
        write("realism")
    measured["figures"] = save_figures(
        s, syn.heldout, ref_heldout, sets.real, errors, measured["realism"]
    )
    return write("figures")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.evaluate",
        description="Gaze error with and without refinement, label drift, two-sample realism tests "
        "and probe discriminators for a training run; writes report.json, report.md and figures.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a training run directory (config.json, refiner.keras)")
    which.add_argument(
        "--scene-profile",
        choices=tuple(PROFILES),
        help="evaluate the simulator alone, no run: gaze estimators trained on raw renders of this "
        "scene profile, tested on --target (writes to --out, default runs/simulator_PROFILE)",
    )
    which.add_argument(
        "--compare",
        nargs="+",
        metavar="EVAL_DIR",
        help="print earlier evaluations' figures side by side (their report.json; a run "
        "directory means RUN/eval) with the mean and spread over them, e.g. one recipe "
        "trained with several seeds; nothing is trained or written",
    )
    p.add_argument(
        "--input-norm",
        choices=photometry.MODES,
        help="with --scene-profile: normalise the renders as training would against --real "
        "(default auto)",
    )
    p.add_argument(
        "--target",
        help="labelled test set (look_vec), e.g. one half of `python -m simgan_tf.data split` "
        "of real_gaze_columbia_dev.h5; default: the simulator's target domain",
    )
    p.add_argument(
        "--synthetic",
        help="labelled synthetic images to train on and refine; default: the "
        "run's synthetic file, else the simulator (a seed training never used)",
    )
    p.add_argument(
        "--real",
        help="real images for the two-sample tests; default: the run's real file, "
        "else the target images",
    )
    p.add_argument(
        "--groups",
        default="subject",
        metavar="KEY",
        help="the target's per-image person column: test and oracle sets share nobody, and "
        "people also in the real set are left out (default subject; without it, split by image)",
    )
    p.add_argument(
        "--pose-key",
        default="head_pose_deg",
        metavar="KEY",
        help="the target's per-image head pose column, for errors per pose (default head_pose_deg)",
    )
    p.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="KEY[=PATTERN]",
        help="also break each arm's error down by the target's per-image column KEY (one row per "
        "value: --by subject), or into the images KEY=PATTERN matches and the others "
        "(--by 'path=*_R.jpg'); repeat for several tables",
    )
    p.add_argument(
        "--checkpoint",
        metavar="STEP|PATH",
        help="evaluate the refiner of this checkpoint of the run (a step number as in "
        "RUN/checkpoints/step_N.weights.h5, or a path) instead of RUN/refiner.keras",
    )
    p.add_argument(
        "--no-average",
        action="store_true",
        help="for a run trained with --refiner-ema: the checkpoint's own weights, not their "
        "moving average (default checkpoint: the newest)",
    )
    p.add_argument("--out", help="output directory (default RUN/eval)")
    p.add_argument(
        "--preset", choices=sorted(EVAL_PRESETS), help="evaluation size (default: the run's preset)"
    )
    p.add_argument("--seed", type=int, help="default: the run's seed")
    p.add_argument(
        "--steps", type=int, help="gaze estimator training steps (default: the preset's)"
    )
    p.add_argument(
        "--estimator-width",
        type=float,
        metavar="W",
        help="scale every gaze estimator's convolutions by W (default: the preset's; quick 0.5, "
        "the paper's network 1): does a gain hold for a larger or smaller estimator",
    )
    p.add_argument(
        "--estimator-dense",
        type=int,
        metavar="N",
        help="units of the estimators' hidden layer (default: the preset's; quick 256, the "
        "paper's 1000)",
    )
    p.add_argument("--n-train", type=int, help="synthetic training images (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=256, help="refiner batch size (default 256)")
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="train every estimator with this many seeds and average (default 1); the spread "
        "between seeds is often larger than the differences measured",
    )
    p.add_argument(
        "--measures",
        nargs="+",
        default=list(MEASURES),
        metavar="M",
        help="which measures to run, of gaze, drift (needs gaze) and realism (default all); "
        "realism alone (C2ST and probe, about a minute at quick size) checks a run's balance",
    )
    p.add_argument(
        "--reuse-arms",
        metavar="EVAL_DIR",
        help="take the raw-synthetic and oracle gaze arms from an earlier evaluation (its "
        "arms/ folder) where their images, test set, estimator recipe, seeds and code are the "
        "same; arms that differ are trained and say why (saves about 60%% of the time; with "
        "--scene-profile, after a simulator change, the oracle: about half)",
    )
    p.add_argument(
        "--cpu-threads",
        type=int,
        metavar="N",
        help="threads each op's CPU work is split over (default: one per core); an evaluation "
        "repeats to the digit only at the same count, which report.json records",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _simulator_main(args: argparse.Namespace) -> int:
    """`--scene-profile`: the simulator alone (evaluation.simulator_alone)."""
    run_only = {
        "--synthetic": args.synthetic,
        "--measures": args.measures != list(MEASURES),
        "--checkpoint": args.checkpoint,
        "--no-average": args.no_average,
    }
    given = [flag for flag, value in run_only.items() if value]
    if given:
        raise SimGANError(f"{', '.join(given)} only apply with --run, not with --scene-profile")
    report = evaluate_simulator(
        args.scene_profile,
        target=args.target,
        real=args.real,
        input_norm=args.input_norm or "auto",
        out=args.out,
        preset=args.preset or "quick",
        seed=0 if args.seed is None else args.seed,
        steps=args.steps,
        n_train=args.n_train,
        repeats=args.repeats,
        groups=args.groups,
        pose_key=args.pose_key,
        verbose=not args.quiet,
        reuse_arms=args.reuse_arms,
        by=args.by,
        width=args.estimator_width,
        dense=args.estimator_dense,
    )
    out = args.out or default_out(args.scene_profile)
    tables = [gaze_table(report, SIMULATOR_ARMS), pose_table(report), breakdown_tables(report)]
    tables += [blindness_text(report), reading_text(report)]
    print("\n\n".join([t for t in tables if t] + [f"report: {os.path.join(out, 'report.md')}"]))
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.compare:
        # Every other option configures a new evaluation; given here, it would be silently unused.
        given = [k for k, v in vars(args).items() if k != "compare" and v != parser.get_default(k)]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise SimGANError(f"--compare reads earlier reports and nothing else: drop {flags}")
        print(compare_table(args.compare))
        return 0
    set_cpu_threads(args.cpu_threads)
    if args.scene_profile:
        return _simulator_main(args)
    if args.input_norm:
        raise SimGANError(
            "--input-norm applies with --scene-profile; a run's config.json records its own"
        )
    report = evaluate(
        args.run,
        target=args.target,
        synthetic=args.synthetic,
        real=args.real,
        out=args.out,
        preset=args.preset,
        seed=args.seed,
        steps=args.steps,
        n_train=args.n_train,
        batch_size=args.batch_size,
        repeats=args.repeats,
        groups=args.groups,
        pose_key=args.pose_key,
        measures=args.measures,
        verbose=not args.quiet,
        checkpoint=args.checkpoint,
        average=not args.no_average,
        reuse_arms=args.reuse_arms,
        by=args.by,
        estimator_width=args.estimator_width,
        estimator_dense=args.estimator_dense,
    )
    out = args.out or os.path.join(args.run, "eval")
    tables = [gaze_table(report) if report["gain"] is not None else None, pose_table(report)]
    tables += [reading_text(report), breakdown_tables(report)]
    if report["label_drift"] is not None:
        turn = report["label_drift"]["systematic"]["raw_arm_estimator"]
        n = report["label_drift"].get("estimators", 1)
        tables.append(
            f"label drift: {report['label_drift_deg']:.2f} deg"
            + (f" ({n} estimators' consensus)" if n > 1 else "")
            + (
                f", {report['label_drift']['after_turn_deg']:.2f} less its mean turn"
                if report["label_drift"].get("after_turn_deg") is not None
                else ""
            )
            + "; the raw arm's estimator reads "
            f"refined images {turn['pitch_deg']:+.2f} deg of pitch, {turn['yaw_deg']:+.2f} of yaw "
            "from raw ones"
        )
    tables += [realism_table(report), f"report: {os.path.join(out, 'report.md')}"]
    print("\n\n".join(t for t in tables if t))
    return 0


if __name__ == "__main__":
    main()
