"""The label-drift measure: how far refinement moves the reading of appearance-blind estimators
(their consensus, one estimator per seed), beside how far another camera moves it (the floor)."""

from __future__ import annotations

import numpy as np

from simgan_tf import eyestats
from simgan_tf.evaluation.arms import reading_slopes
from simgan_tf.evaluation.run import Setup, keras_verbosity, scene_profile
from simgan_tf.evaluation.sets import SYNTHETIC_SEED_OFFSET, Synthetic, Target, render_builtin
from simgan_tf.gaze import (
    angular_error_deg,
    angular_error_less_bias,
    evaluate_estimator,
    pitch_yaw_errors_deg,
    predict_gaze,
    summarise_errors,
    train_drift_estimator,
)
from simgan_tf.simulator import H, W


def consensus(predictions: list[np.ndarray]) -> np.ndarray:
    """Several estimators' gaze readings of the same images as one: their mean, made unit length.

    Each estimator reads appearance changes with errors of its own; what refinement does to the
    gaze moves them all, so their consensus keeps that and averages the rest away."""
    mean = np.mean(predictions, axis=0)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def _each_apart(before: list[np.ndarray], after: list[np.ndarray]) -> list[float]:
    """Each estimator's mean angle (deg) between its two readings of the same images."""
    return [float(np.mean(angular_error_deg(b, a))) for b, a in zip(before, after, strict=True)]


def appearance_floor(
    models: list, before: list[np.ndarray], labels: np.ndarray, render_seed: int, profile: str
) -> tuple[float, list[float]] | None:
    """How far the drift estimators' predictions move between the held-out scenes (`before`, one
    array per model) and the very same scenes (same labels) rendered in the target domain: what
    appearance alone does to their consensus, and to each of them."""
    images, look = render_builtin(len(labels), "target", render_seed, profile)
    if not np.allclose(look, labels, atol=1e-6):
        return None  # a simulator whose target domain does not keep the scenes: no floor
    on_target = [predict_gaze(m, images) for m in models]
    together = float(np.mean(angular_error_deg(consensus(before), consensus(on_target))))
    return together, _each_apart(before, on_target)


def mean_turn(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """The mean signed change of gaze readings, after minus before (pitch up, yaw right; degrees).

    The drift is a mean distance; this keeps only what moves every image the same way, which an
    estimator trained on refined images with the synthetic labels learns as a bias and carries to
    real eyes (a refiner that makes every eye read 2 degrees to the right makes its estimator read
    real eyes 2 degrees to the left)."""
    pitch, yaw = pitch_yaw_errors_deg(after, before).mean(axis=0)
    return {"pitch_deg": float(pitch), "yaw_deg": float(yaw)}


def drift_after_turn(before: np.ndarray, after: np.ndarray) -> float:
    """The drift left per image once mean_turn is taken out of every image's `after` reading (deg).

    A refiner that turns every eye by the same angle and one that moves each eye its own way can
    give the same drift; a uniform turn is one bias, the per-image rest is label noise. Exact on
    the kept readings, where sqrt(drift^2 - turn^2) would only estimate it."""
    return float(np.mean(angular_error_less_bias(after, before)))


def blob_shift(before: np.ndarray, after: np.ndarray) -> dict[str, float] | None:
    """How far refinement moves the dark blob (visible iris and pupil, simgan_tf.eyestats): medians
    of the per-image differences, px, x right and y up. No estimator is involved, so no estimator's
    blind spots either. None for images of another size than the simulator's (eyestats' search
    window is laid out for 35 x 55)."""
    if before.shape[1:] != (H, W):
        return None
    a, b = eyestats.measure(before), eyestats.measure(after)
    return {
        "x_px": float(np.median(b["blob_x"] - a["blob_x"])),
        "y_px": float(np.median(a["blob_y"] - b["blob_y"])),  # rows grow downward
    }


def label_drift(
    s: Setup, syn: Synthetic, target: Target, ref_heldout: np.ndarray, models: dict, gaze: dict
) -> dict:
    """How far refinement moves the consensus of `s.repeats` appearance-blind estimators (seeds
    s.seed, s.seed + 1, ...; each one's own drift and floor kept too), and label consistency."""
    n = s.repeats
    s.log(f"training {n} label-drift estimator{'s' * (n > 1)} (photometric augmentation)")
    readers = [
        train_drift_estimator(
            syn.train,
            syn.train_labels,
            seed=s.seed + r,
            spec=s.spec,
            verbose=keras_verbosity(s.verbose),
        )
        for r in range(n)
    ]
    before_each = [predict_gaze(m, syn.heldout) for m in readers]
    after_each = [predict_gaze(m, ref_heldout) for m in readers]
    before, after = consensus(before_each), consensus(after_each)
    drift = summarise_errors(angular_error_deg(before, after))
    drift.pop("errors")
    drift["estimators"] = n
    drift["per_estimator_deg"] = _each_apart(before_each, after_each)
    drift["after_turn_deg"] = drift_after_turn(before, after)
    labels = syn.heldout_labels
    # A reader that reads every gaze smaller shows every drift (and floor) smaller: its scale on
    # the held-out renders, beside the distances, says whether a lower drift is a blinder reader.
    drift["reading_slope"] = reading_slopes(before[None], labels)
    # The raw arm's estimator is trained as the refined arm's is, without appearance changes: it
    # sees what refinement paints as the refined arm's estimator learns it.
    raw_before = predict_gaze(models["synthetic"], syn.heldout)
    drift["systematic"] = {
        "drift_estimator": mean_turn(before, after),
        "raw_arm_estimator": mean_turn(raw_before, predict_gaze(models["synthetic"], ref_heldout)),
        "blob": blob_shift(syn.heldout, ref_heldout),
    }
    drift["synthetic_heldout_error_deg"] = summarise_errors(angular_error_deg(raw_before, labels))[
        "mean_deg"
    ]
    drift["refined_heldout_error_deg"] = evaluate_estimator(models["refined"], ref_heldout, labels)[
        "mean_deg"
    ]
    drift.update(
        appearance_floor_deg=None,
        per_estimator_floor_deg=None,
        oracle_refined_heldout_error_deg=None,
        oracle_test_error_deg=None,
    )
    if syn.builtin:
        floor = appearance_floor(
            readers, before_each, labels, s.seed + SYNTHETIC_SEED_OFFSET, scene_profile(s.config)
        )
        if floor is not None:
            drift["appearance_floor_deg"], drift["per_estimator_floor_deg"] = floor
        if "oracle" in models and target.builtin:
            # The same scenes in both built-in domains: an oracle trained on target renders reads
            # refined images as it reads the target. (Trained on real eyes it would say how real
            # eyes and our scenes differ, not whether refinement kept the labels.)
            drift["oracle_refined_heldout_error_deg"] = evaluate_estimator(
                models["oracle"], ref_heldout, labels
            )["mean_deg"]
            drift["oracle_test_error_deg"] = gaze["oracle"]["runs"][0]["mean_deg"]
    return drift
