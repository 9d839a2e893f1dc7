"""The gaze measure: estimators trained on raw synthetic, refined and target images, tested on the target."""

from __future__ import annotations

import time

import numpy as np

from simgan_tf.evaluation.run import Setup, keras_verbosity
from simgan_tf.evaluation.sets import Target
from simgan_tf.gaze import evaluate_estimator, train_estimator

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


def errors_by_pose(errors: np.ndarray, pose: np.ndarray) -> dict[str, dict]:
    """Mean error, share within 7 degrees and test images per head pose, and over |pose| <= 15.

    `errors` holds one error per test image for each seed, seed after seed (R * len(pose) values).
    """
    pose = np.asarray(pose, dtype=np.float64)
    per_seed = np.asarray(errors).reshape(-1, len(pose))
    masks = {f"{p:g}": pose == p for p in np.unique(pose)}
    masks[NEAR_POSE_KEY] = np.abs(pose) <= POSE_NEAR_DEG
    return {
        name: {
            "n": int(mask.sum()),
            "mean_deg": float(per_seed[:, mask].mean()),
            "within_7deg": float(np.mean(per_seed[:, mask] <= 7.0)),
        }
        for name, mask in masks.items()
        if mask.any()
    }


def gaze_arms(
    s: Setup, arms: dict[str, tuple[np.ndarray, np.ndarray]], target: Target
) -> tuple[dict, dict[str, np.ndarray], dict]:
    """Each arm's estimator, trained with every seed and tested on the target test set: the report's
    figures, the errors of all seeds, and the first seed's models."""
    gaze: dict[str, dict | None] = {name: None for name in ARM_LABELS}
    errors: dict[str, np.ndarray] = {}
    models = {}
    for name, (images, labels) in arms.items():
        started = time.time()
        results = []
        for r in range(s.repeats):
            s.log(f"training the gaze estimator on {ARM_LABELS[name]} images, seed {s.seed + r}")
            model = train_estimator(
                images,
                labels,
                seed=s.seed + r,
                verbose=keras_verbosity(s.verbose),
                **s.spec.to_dict(),
            )
            results.append(evaluate_estimator(model, target.test_images, target.test_labels))
            models.setdefault(name, model)
            s.log(
                f"  mean {results[-1]['mean_deg']:.2f} deg, "
                f"within 7 deg {100 * results[-1]['within_7deg']:.1f}%"
            )
        errors[name] = np.concatenate([res.pop("errors") for res in results])
        gaze[name] = average_runs(results, s.seed)
        gaze[name].update(n_train=len(images), seconds=round(time.time() - started, 1))
        if target.test_pose is not None:
            gaze[name]["by_pose"] = errors_by_pose(errors[name], target.test_pose)
    return gaze, errors, models


def gains(gaze: dict) -> tuple[float, list[float]]:
    """Refined against raw synthetic: the relative cut in mean error, overall and per seed."""

    def cut(raw: float, refined: float) -> float:
        return (raw - refined) / max(raw, 1e-9)

    runs = zip(gaze["synthetic"]["runs"], gaze["refined"]["runs"], strict=True)
    return (
        cut(gaze["synthetic"]["mean_deg"], gaze["refined"]["mean_deg"]),
        [cut(a["mean_deg"], b["mean_deg"]) for a, b in runs],
    )
