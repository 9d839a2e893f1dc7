"""The simulator alone on labelled eyes: gaze estimators trained on raw renders of a scene profile.

    python -m simgan_tf.evaluate --scene-profile columbia --target data/columbia_b.h5 \
        --real data/columbia_a.h5 --repeats 3

No refiner and no training run: what the simulator's gaze geometry is worth on real eyes, the figure
a simulator change has to move (issue 14). The renders are normalised as training would normalise
them against `real` (`--input-norm`, default auto), the target is split by person exactly as
`evaluate --run` splits it at the same seed (so its raw-synthetic arm is the same figure), and the
oracle, trained on the other people, shows how low the error can go. The oracle is also read the
other way round, on the renders themselves: an estimator of real eyes that misreads our eyes points at
what the simulator draws unlike real eyes (a sclera too bright read as a gaze 15 deg to the right).

Both arms are saved to OUT/arms/ as `evaluate --run` saves them (evaluation.reuse), and
`--reuse-arms EARLIER_OUT` takes back each whose fingerprint matches: after a simulator change only
the raw arm is trained again, and the oracle (the same people, split and seeds) is reused, about
half of each iteration's time. The raw arm's renders and split are those of `evaluate --run` at the
same seed and input normalisation, so an arm saved by either may be reused by the other where the
fingerprint matches.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import keras
import numpy as np

from simgan_tf import photometry
from simgan_tf.data import load_eyes
from simgan_tf.distribute import cpu_threads_in_effect
from simgan_tf.errors import SimGANError
from simgan_tf.evaluation.arms import NEAR_POSE_KEY, errors_by_pose, pose_blindness
from simgan_tf.evaluation.people import real_sets
from simgan_tf.evaluation.report import (
    blindness_text,
    breakdown_sections,
    gaze_table,
    pose_table,
    reading_text,
    reused_text,
    split_text,
)
from simgan_tf.evaluation.reuse import gaze_arms_reusing, read_arms
from simgan_tf.evaluation.run import Setup, make_sizes
from simgan_tf.evaluation.sets import SYNTHETIC_SEED_OFFSET, render_builtin, target_data
from simgan_tf.files import write_text
from simgan_tf.gaze import evaluate_estimator
from simgan_tf.simulator import H, W, get_profile, scene_parameters

SHAPE = (H, W)
SIMULATOR_ARMS = ("synthetic", "oracle")  # no refined arm: there is no refiner


def default_out(profile: str) -> str:
    """Where `evaluate --scene-profile PROFILE` writes without --out."""
    return os.path.join("runs", f"simulator_{profile}")


def _normalisation(
    input_norm: str, real: str | None, synthetic: np.ndarray
) -> tuple[str, list[int] | None, int]:
    """The mode and lookup table training would resolve, and how many real images it saw."""
    images = load_eyes(real, expected_shape=SHAPE).images if real else synthetic[:0]
    mode, lut = photometry.resolve(input_norm, synthetic, images)
    return mode, lut, len(images)


def oracle_on_renders(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, head_pose_deg: np.ndarray
) -> dict:
    """The oracle (trained on real people) tested on the renders it never saw: mean error, pitch and
    yaw bias, per head pose (rounded to 15 deg) and pose blindness. A yaw bias at a frontal head says
    something in our eyes reads as a gaze to real eyes' estimator; one that grows with the pose, that
    real eyes' cue to the head's turn is missing from ours."""
    result = evaluate_estimator(model, images, labels)
    errors, signed = result["errors"], result["pitch_yaw_errors"]
    pitch_bias, yaw_bias = signed.mean(axis=0)
    return {
        "n": len(images),
        "mean_deg": result["mean_deg"],
        "pitch_bias_deg": float(pitch_bias),
        "yaw_bias_deg": float(yaw_bias),
        "by_pose": errors_by_pose(errors, np.round(head_pose_deg / 15.0) * 15.0, signed),
        "pose_blindness": pose_blindness(signed, head_pose_deg),
    }


def evaluate_simulator(
    profile: str,
    *,
    target: str | None,
    real: str | None = None,
    input_norm: str = "auto",
    out: str | None = None,
    preset: str = "quick",
    seed: int = 0,
    steps: int | None = None,
    n_train: int | None = None,
    repeats: int = 1,
    groups: str = "subject",
    pose_key: str = "head_pose_deg",
    verbose: bool = True,
    reuse_arms: str | None = None,
    by: Sequence[str] = (),
    width: float | None = None,
    dense: int | None = None,
) -> dict:
    """Train estimators on raw `profile` renders and on the target's other people (the oracle), test
    both on the target's test people; write report.json and report.md to `out`; return the report.

    `target` None tests on the simulator's own target domain (seed + 2000), as `evaluate --run` does.
    `reuse_arms` (an earlier evaluation's directory) takes either arm from there where its images,
    test set, recipe, seeds and code are the same (evaluation.reuse). `by` breaks each arm's
    error down by per-image columns of the target (evaluation.breakdowns). `width` and `dense`
    replace the preset estimator's width and hidden layer.
    """
    started = time.time()
    get_profile(profile)
    if input_norm in ("auto", "match") and not real:
        raise SimGANError(
            f"--input-norm {input_norm} matches the renders to a real set: give --real "
            "(the images a refiner would train against), or --input-norm none or equalize"
        )
    # Before any work: a folder that holds no arms is one error line and nothing written.
    saved = read_arms(reuse_arms) if reuse_arms else None
    sizes, spec = make_sizes(preset, n_train, steps, repeats, width, dense)
    out = out or default_out(profile)
    os.makedirs(out, exist_ok=True)
    config = {"scene_profile": profile, "seed": seed, "preset": preset}
    s = Setup(
        f"simulator ({profile} scenes)", config, None, preset, sizes, spec, seed, SHAPE, out,
        repeats, 0, verbose, lambda images: images,
    )  # fmt: skip
    # The target first: a target left with nobody to test on stops before anything is rendered.
    tgt = target_data(s, target, groups, pose_key, real_sets({}, real), by)
    render_seed = seed + SYNTHETIC_SEED_OFFSET
    # The renders evaluate --run trains its raw arm on: n_heldout first (held out there), then these.
    images, labels = render_builtin(
        sizes.n_heldout + sizes.n_train, "synthetic", render_seed, profile
    )
    images, labels = images[sizes.n_heldout :], labels[sizes.n_heldout :]
    mode, lut, n_real = _normalisation(input_norm, real, images)
    images = photometry.apply(images, mode, lut)
    s.log(f"synthetic: {len(images)} {profile} renders, seed {render_seed}, input_norm {mode}")
    s.log(f"target:    {len(tgt.test_images)} test images; {tgt.split['note']}")
    arms = {"synthetic": (images, labels)}
    if len(tgt.oracle_images) >= 2:
        arms["oracle"] = (tgt.oracle_images, tgt.oracle_labels)
    gaze, _, models = gaze_arms_reusing(s, arms, tgt, saved)
    reverse = None
    if "oracle" in models:
        s.log("the oracle (real eyes' estimator, first seed) on the renders")
        turn = scene_parameters(sizes.n_heldout + sizes.n_train, render_seed, profile)["head_yaw"]
        pose = np.degrees(turn[sizes.n_heldout :].astype(np.float64))
        reverse = oracle_on_renders(models["oracle"], images, labels, pose)
    report = {
        "run": s.run,
        "scene_profile": profile,
        "preset": preset,
        "seed": seed,
        "repeats": repeats,
        "data": {
            "synthetic": f"built-in simulator, synthetic domain, {profile} scenes, seed {render_seed}",
            "target": tgt.source,
            "real": real,
            "n_real": n_real,
            "input_norm": mode,
            "n_train": len(images),
            "n_test": len(tgt.test_images),
            "n_oracle_train": len(tgt.oracle_images) if gaze["oracle"] else 0,
            "pose_key": pose_key if tgt.test_pose is not None else None,
            "split": tgt.split,
            "by": list(tgt.test_groups),
        },
        "estimator": spec.to_dict(),
        "cpu_threads": cpu_threads_in_effect(),
        "gaze": gaze,
        "oracle_on_renders": reverse,
        # As evaluate's: the time of each arm trained here (a reused one took none) and the total.
        "wall_seconds": {
            **{f"gaze_{name}": round(g["seconds"], 1) for name, g in gaze.items() if _timed(g)},
            "total": round(time.time() - started, 1),
        },
    }
    write_text(os.path.join(out, "report.json"), json.dumps(report, indent=2) + "\n")
    write_text(os.path.join(out, "report.md"), render_simulator_markdown(report))
    return report


def _timed(arm: dict | None) -> bool:
    return bool(arm) and arm["seconds"] is not None


def render_simulator_markdown(report: dict) -> str:
    """report.md of the simulator alone: where the images came from, the gaze and per-pose tables."""
    d, e = report["data"], report["estimator"]
    seeds = f"seeds {report['seed']}..{report['seed'] + report['repeats'] - 1}"
    parts = [
        f"# The simulator alone: {report['scene_profile']} scenes on {d['target']}",
        f"Gaze estimators (width {e['width']}, FC {e['dense']}, {e['steps']} steps of batch "
        f"{e['batch_size']}, {seeds if report['repeats'] > 1 else 'seed ' + str(report['seed'])}) "
        f"trained on {d['n_train']} raw renders ({d['synthetic']}; input_norm {d['input_norm']}"
        + (f", resolved against {d['real']}" if d["real"] else "")
        + f"), no refiner; tested on {d['n_test']} labelled images; "
        f"{report['wall_seconds']['total']:.0f} s.",
        split_text(d),
        *reused_text(report),
        gaze_table(report, SIMULATOR_ARMS),
    ]
    by_pose = pose_table(report)
    if by_pose:
        parts += [
            "Mean error (deg), share within 7 degrees and mean signed yaw error per head pose:",
            by_pose,
        ]
    parts += [text for text in (blindness_text(report), reading_text(report)) if text]
    parts += breakdown_sections(report)
    reverse = report.get("oracle_on_renders")
    if reverse:
        parts.append(_reverse_text(reverse))
    return "\n\n".join(parts) + "\n"


def _reverse_text(r: dict) -> str:
    rows = [
        f"| {key} | {row['n']} | {row['mean_deg']:.2f} | {row['pitch_bias_deg']:+.1f} | "
        f"{row['yaw_bias_deg']:+.1f} |"
        for key, row in r["by_pose"].items()
        if key != NEAR_POSE_KEY
    ]
    blind = "" if r["pose_blindness"] is None else f", pose blindness {r['pose_blindness']:+.2f}"
    return "\n".join(
        [
            "The other way round: the oracle (first seed, trained on real people) on the "
            f"{r['n']} renders: {r['mean_deg']:.2f} deg, pitch bias {r['pitch_bias_deg']:+.1f}, "
            f"yaw bias {r['yaw_bias_deg']:+.1f}{blind}. A yaw bias at a frontal head means something "
            "in the renders reads as a gaze to real eyes' estimator; one that grows with the head "
            "pose, that real eyes' cue to the head's turn is missing from the renders.",
            "",
            "| head pose of the renders (deg) | renders | mean error (deg) | pitch bias | yaw bias |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
