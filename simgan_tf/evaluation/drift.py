"""The label-drift measure: how far refinement moves an appearance-blind estimator's predictions."""

from __future__ import annotations

import numpy as np

from simgan_tf.evaluation.run import Setup, keras_verbosity, scene_profile
from simgan_tf.evaluation.sets import SYNTHETIC_SEED_OFFSET, Synthetic, Target, render_builtin
from simgan_tf.gaze import (
    angular_error_deg,
    evaluate_estimator,
    predict_gaze,
    summarise_errors,
    train_drift_estimator,
)


def appearance_floor(
    model, before: np.ndarray, labels: np.ndarray, render_seed: int, profile: str = "uniform"
) -> float | None:
    """How far the drift estimator's predictions move between the held-out scenes and the very same
    scenes (same labels) rendered in the target domain: what appearance alone does to it."""
    images, look = render_builtin(len(labels), "target", render_seed, profile)
    if not np.allclose(look, labels, atol=1e-6):
        return None  # a simulator whose target domain does not keep the scenes: no floor
    return float(np.mean(angular_error_deg(before, predict_gaze(model, images))))


def label_drift(
    s: Setup, syn: Synthetic, target: Target, ref_heldout: np.ndarray, models: dict, gaze: dict
) -> dict:
    """How far refinement moves an appearance-blind estimator's predictions, and label consistency."""
    s.log("training the label-drift estimator (photometric augmentation)")
    model = train_drift_estimator(
        syn.train, syn.train_labels, seed=s.seed, spec=s.spec, verbose=keras_verbosity(s.verbose)
    )
    before = predict_gaze(model, syn.heldout)
    drift = summarise_errors(angular_error_deg(before, predict_gaze(model, ref_heldout)))
    drift.pop("errors")
    labels = syn.heldout_labels
    drift["synthetic_heldout_error_deg"] = evaluate_estimator(
        models["synthetic"], syn.heldout, labels
    )["mean_deg"]
    drift["refined_heldout_error_deg"] = evaluate_estimator(models["refined"], ref_heldout, labels)[
        "mean_deg"
    ]
    drift.update(
        appearance_floor_deg=None, oracle_refined_heldout_error_deg=None, oracle_test_error_deg=None
    )
    if syn.builtin:
        drift["appearance_floor_deg"] = appearance_floor(
            model, before, labels, s.seed + SYNTHETIC_SEED_OFFSET, scene_profile(s.config)
        )
        if "oracle" in models and target.builtin:
            # The same scenes in both built-in domains: an oracle trained on target renders reads
            # refined images as it reads the target. (Trained on real eyes it would say how real
            # eyes and our scenes differ, not whether refinement kept the labels.)
            drift["oracle_refined_heldout_error_deg"] = evaluate_estimator(
                models["oracle"], ref_heldout, labels
            )["mean_deg"]
            drift["oracle_test_error_deg"] = gaze["oracle"]["runs"][0]["mean_deg"]
    return drift
