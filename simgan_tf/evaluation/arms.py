"""The gaze measure: estimators trained on raw synthetic, refined and target images, tested on the target."""

from __future__ import annotations

import time

import keras
import numpy as np

from simgan_tf.evaluation.breakdowns import value_label
from simgan_tf.evaluation.run import Setup, keras_verbosity
from simgan_tf.evaluation.sets import Target
from simgan_tf.gaze import (
    angular_error_deg,
    angular_error_less_bias,
    predict_gaze,
    score_predictions,
    summarise_errors,
    train_estimator,
)

# Head poses up to this (degrees) keep camera-frame yaw within the simulator's +-30 (data README).
POSE_NEAR_DEG = 15.0


NEAR_POSE_KEY = f"abs_le_{POSE_NEAR_DEG:g}"  # by_pose's entry for them


ARM_LABELS = {
    "synthetic": "raw synthetic",
    "refined": "refined",
    "oracle": "target itself (oracle)",
}


def average_runs(results: list[dict], seed: int) -> dict:
    """One arm's figures averaged over its training seeds, with each seed's own kept beside them."""
    keys = ("mean_deg", "median_deg", "within_7deg")
    out = {k: float(np.mean([res[k] for res in results])) for k in keys}
    out["mean_deg_std"] = float(np.std([res["mean_deg"] for res in results]))
    out["runs"] = [{"seed": seed + i, **{k: res[k] for k in keys}} for i, res in enumerate(results)]
    return out


def errors_by_pose(
    errors: np.ndarray, pose: np.ndarray, signed: np.ndarray | None = None
) -> dict[str, dict]:
    """Mean error, share within 7 degrees and test images per head pose, and over |pose| <= 15;
    with `signed` (the (R * len(pose), 2) signed pitch and yaw errors), each pose's mean signed
    pitch and yaw error too (`pitch_bias_deg`, `yaw_bias_deg`).

    `errors` holds one error per test image for each seed, seed after seed (R * len(pose) values).
    """
    pose = np.asarray(pose, dtype=np.float64)
    masks = {value_label(p): pose == p for p in np.unique(pose)}
    masks[NEAR_POSE_KEY] = np.abs(pose) <= POSE_NEAR_DEG
    return errors_by_group(errors, masks, signed)


def errors_by_group(
    errors: np.ndarray, masks: dict[str, np.ndarray], signed: np.ndarray | None = None
) -> dict[str, dict]:
    """errors_by_pose's figures for any groups of test images (label -> which images belong);
    a group with no test image is left out."""
    n = len(next(iter(masks.values())))
    per_seed = np.asarray(errors).reshape(-1, n)
    signed = None if signed is None else np.asarray(signed).reshape(-1, n, 2)
    table = {}
    for name, mask in masks.items():
        if not mask.any():
            continue
        row = {
            "n": int(mask.sum()),
            "mean_deg": float(per_seed[:, mask].mean()),
            "within_7deg": float(np.mean(per_seed[:, mask] <= 7.0)),
        }
        if signed is not None:
            bias = signed[:, mask].mean(axis=(0, 1))
            row.update(pitch_bias_deg=float(bias[0]), yaw_bias_deg=float(bias[1]))
        table[name] = row
    return table


def pose_blindness(signed: np.ndarray, pose: np.ndarray) -> float | None:
    """How much of the head pose the estimator misses: the slope of its yaw error on the pose.

    Camera-frame yaw is the gaze's yaw relative to the head minus the head pose, so an estimator
    that reads the head's turn from the image has no slope (0); one that reads only where the
    pupil sits in the patch has a slope near the pupil's share of the turn it fails to see (up to
    1: the pose entirely invisible). None where the test set has a single pose.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if np.ptp(pose) == 0:
        return None
    yaw = np.asarray(signed).reshape(-1, len(pose), 2)[:, :, 1]
    return float(np.polyfit(np.tile(pose, len(yaw)), yaw.ravel(), 1)[0])


def error_less_pose_bias(
    predictions: np.ndarray, look_vec: np.ndarray, pose: np.ndarray
) -> float | None:
    """The mean angular error once each head pose's mean signed pitch and yaw error (each seed's
    own) is taken out of that pose's predictions. What is left is the scatter within a pose; the
    gap to the mean error is what the per-pose biases cost, most of it the head's turn that the
    estimator does not see (`pose_blindness`). None where the test set has a single pose.

    `predictions` is (seeds, N, 3), `look_vec` (N, 3) and `pose` (N,).
    """
    pose = np.asarray(pose, dtype=np.float64)
    if np.ptp(pose) == 0:
        return None
    return float(np.mean([angular_error_less_bias(p, look_vec, pose) for p in predictions]))


def reading_slopes(
    predictions: np.ndarray, look_vec: np.ndarray, pose: np.ndarray | None = None
) -> dict[str, float | None]:
    """How much of the gaze an estimator reads, per axis: the slope of its predicted pitch (yaw) on
    the true one within each head pose (each pose's means taken out of both), and their
    correlation (`pitch_r`, `yaw_r`), each the mean over seeds. A slope of 1 reads every degree, 0
    none; a low slope with a low correlation is a noisy reading shrunk, not a reading too small
    (what varies within a pose, not the turn: that is `pose_blindness`). The two axes can fail
    apart: an estimator trained on our renders reads real eyes' yaw at 0.87 (r 0.57) and their
    pitch at 0.21 (r 0.36). None for an axis whose true angle never varies.

    `predictions` is (seeds, N, 3), `look_vec` (N, 3) and `pose` (N,) or None (all one pose).
    """
    from simgan_tf.simulator import look_vec_to_pitch_yaw

    groups = np.zeros(len(look_vec)) if pose is None else np.asarray(pose)

    def within(angles: np.ndarray) -> np.ndarray:
        out = np.asarray(angles, dtype=np.float64).copy()
        for g in np.unique(groups):
            out[groups == g] -= out[groups == g].mean(axis=0)
        return out

    true = within(look_vec_to_pitch_yaw(look_vec))
    read = [within(look_vec_to_pitch_yaw(p)) for p in predictions]
    out = {}
    for axis, name in enumerate(("pitch", "yaw")):
        t = true[:, axis]
        if np.ptp(t) < 1e-9:
            out[name] = out[f"{name}_r"] = None
            continue
        per_seed = [seed[:, axis] for seed in read]
        out[name] = float(np.mean([np.dot(t, x) / np.dot(t, t) for x in per_seed]))
        norm_t = np.linalg.norm(t)
        out[f"{name}_r"] = float(
            np.mean([np.dot(t, x) / (norm_t * max(np.linalg.norm(x), 1e-12)) for x in per_seed])
        )
    return out


def train_arm(
    s: Setup, name: str, images: np.ndarray, labels: np.ndarray, target: Target
) -> tuple[np.ndarray, keras.Model]:
    """One arm's estimator trained with every seed: its (seeds, test images, 3) predictions on the
    target's test set, and the first seed's model."""
    predictions, first = [], None
    for r in range(s.repeats):
        s.log(f"training the gaze estimator on {ARM_LABELS[name]} images, seed {s.seed + r}")
        model = train_estimator(
            images, labels, seed=s.seed + r, verbose=keras_verbosity(s.verbose), **s.spec.to_dict()
        )
        predictions.append(predict_gaze(model, target.test_images))
        if first is None:
            first = model
        res = summarise_errors(angular_error_deg(predictions[-1], target.test_labels))
        s.log(f"  mean {res['mean_deg']:.2f} deg, within 7 deg {100 * res['within_7deg']:.1f}%")
    return np.stack(predictions), first


def arm_figures(
    s: Setup, predictions: np.ndarray, n_train: int, target: Target
) -> tuple[dict, np.ndarray]:
    """The report's figures of one arm from its per-seed predictions on the test set, and the
    errors of all seeds (seed after seed)."""
    results = [score_predictions(pred, target.test_labels) for pred in predictions]
    errors = np.concatenate([res.pop("errors") for res in results])
    signed = np.concatenate([res.pop("pitch_yaw_errors") for res in results])
    figures = average_runs(results, s.seed)
    pitch_bias, yaw_bias = signed.mean(axis=0)
    figures.update(n_train=n_train, pitch_bias_deg=float(pitch_bias), yaw_bias_deg=float(yaw_bias))
    figures["reading_slope"] = reading_slopes(predictions, target.test_labels, target.test_pose)
    if target.test_pose is not None:
        figures["by_pose"] = errors_by_pose(errors, target.test_pose, signed)
        figures["pose_blindness"] = pose_blindness(signed, target.test_pose)
        figures["mean_deg_less_pose_bias"] = error_less_pose_bias(
            predictions, target.test_labels, target.test_pose
        )
    if target.test_groups:
        figures["by"] = {
            name: errors_by_group(errors, masks, signed)
            for name, masks in target.test_groups.items()
        }
    return figures, errors


def gaze_arms(
    s: Setup,
    arms: dict[str, tuple[np.ndarray, np.ndarray]],
    target: Target,
    reused: dict[str, tuple[np.ndarray, keras.Model]] | None = None,
) -> tuple[dict, dict[str, np.ndarray], dict, dict[str, np.ndarray]]:
    """Each arm's estimator, trained with every seed and tested on the target test set, or taken
    from `reused` ((predictions, first model) of an earlier evaluation, evaluation.reuse): the
    report's figures (computed from the predictions either way), the errors of all seeds, the first
    seed's models and the per-seed test predictions. A reused arm's `seconds` is None."""
    gaze: dict[str, dict | None] = {name: None for name in ARM_LABELS}
    errors, models, predictions = {}, {}, {}
    for name, (images, labels) in arms.items():
        started = time.time()
        was_reused = name in (reused or {})
        if was_reused:
            predictions[name], models[name] = reused[name]
        else:
            predictions[name], models[name] = train_arm(s, name, images, labels, target)
        gaze[name], errors[name] = arm_figures(s, predictions[name], len(images), target)
        gaze[name]["seconds"] = None if was_reused else round(time.time() - started, 1)
    return gaze, errors, models, predictions


def gains(gaze: dict) -> tuple[float, list[float]]:
    """Refined against raw synthetic: the relative cut in mean error, overall and per seed."""

    def cut(raw: float, refined: float) -> float:
        return (raw - refined) / max(raw, 1e-9)

    runs = zip(gaze["synthetic"]["runs"], gaze["refined"]["runs"], strict=True)
    return (
        cut(gaze["synthetic"]["mean_deg"], gaze["refined"]["mean_deg"]),
        [cut(a["mean_deg"], b["mean_deg"]) for a, b in runs],
    )
