"""Gaze arms kept for the next evaluation: `evaluate --reuse-arms EVAL_DIR`.

The raw-synthetic and oracle arms do not depend on the refiner, yet they are most of an evaluation's
time. Every evaluation writes each arm's per-seed predictions on the test set and its first-seed
estimator to EVAL_DIR/arms/, with a fingerprint of everything those depend on: the arm's training
images and labels, the test set, the estimator's recipe and seeds, and the code and library versions
that train it. A later evaluation takes an arm from there only where every part of the fingerprint
matches, and only where the saved estimator still gives the saved predictions, so a reused arm is
the arm it would have trained (to the bit on the same machine); the arm's figures are computed from
the predictions again, by the evaluation's own code.

Every arm's predictions, the refined one's too, are also kept in EVAL_DIR/predictions.npz with the
test images' rows in the target file, for breakdowns the report does not make (save_predictions).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import zipfile
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from simgan_tf import gaze as gaze_module
from simgan_tf import models as models_module
from simgan_tf.distribute import cpu_threads_in_effect
from simgan_tf.errors import SimGANError
from simgan_tf.evaluation.arms import gaze_arms, train_arm
from simgan_tf.evaluation.run import Setup
from simgan_tf.evaluation.sets import Target
from simgan_tf.files import atomic_write
from simgan_tf.gaze import predict_gaze

ARMS_DIR = "arms"
# The refined arm is what each evaluation measures: never reused, so never kept.
REUSABLE = ("synthetic", "oracle")

# What each part of a fingerprint is called in the line that says why an arm was not reused.
PARTS = {
    "train": "training images",
    "test": "test set",
    "estimator": "estimator recipe",
    "seeds": "seeds",
    "code": "estimator code (gaze.py, models.py, arms.train_arm)",
    "software": "TensorFlow/Keras versions, dtype policy, device or CPU threads",
}

# A saved arm as read back: its fingerprint, (seeds, test images, 3) predictions, and its file.
Saved = dict[str, tuple[dict, np.ndarray, str]]


def _sha(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def _code_sha() -> str:
    # What trains an arm and predicts with it; its figures are computed again from the predictions.
    h = hashlib.sha256()
    for module in (gaze_module, models_module):
        with open(module.__file__, "rb") as f:
            h.update(f.read())
    h.update(inspect.getsource(train_arm).encode())
    return h.hexdigest()[:16]


def _software() -> str:
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    policy = keras.config.dtype_policy().name
    # The thread count changes an estimator's last bits (distribute.set_cpu_threads).
    threads = f"{cpu_threads_in_effect()} threads"
    return f"tensorflow {tf.__version__}, keras {keras.__version__}, {policy}, {device}, {threads}"


def _seeds(s: Setup) -> list[int]:
    return list(range(s.seed, s.seed + s.repeats))


def fingerprint(s: Setup, images: np.ndarray, labels: np.ndarray, target: Target) -> dict:
    """Everything an arm's result depends on, as short hashes and plain values."""
    return {
        "train": _sha(images, labels),
        "test": _sha(target.test_images, target.test_labels, target.test_pose),
        "estimator": s.spec.to_dict(),
        "seeds": _seeds(s),
        "code": _code_sha(),
        "software": _software(),
    }


def save_arms(
    out: str, predictions: dict[str, np.ndarray], models: dict, fingerprints: dict[str, dict]
) -> None:
    """Write each fingerprinted arm to OUT/arms/: NAME.npz (fingerprint, per-seed test
    predictions) and NAME.keras (the first seed's estimator, which label drift reads). An arm this
    evaluation did not measure is removed, so that no file describes an earlier one."""
    for name in REUSABLE:
        base = os.path.join(out, ARMS_DIR, name)
        if name not in fingerprints:
            for stale in (base + ".npz", base + ".keras"):
                if os.path.exists(stale):
                    os.remove(stale)
            continue
        with atomic_write(base + ".keras") as tmp:
            models[name].save(tmp)
        with atomic_write(base + ".npz") as tmp:
            print_ = np.array(json.dumps(fingerprints[name]))
            np.savez(tmp, fingerprint=print_, predictions=predictions[name])


def save_predictions(s: Setup, predictions: dict[str, np.ndarray], target: Target) -> None:
    """S.OUT/predictions.npz: each arm's (seeds, test images, 3) predictions under its name, with
    `look_vec` (the test labels), `rows` (the test images' rows in the target file, to join any
    per-image column of it), `seeds` and, where the target has one, `head_pose_deg`."""
    keep = {name: np.asarray(p, np.float32) for name, p in predictions.items()}
    keep["look_vec"] = np.asarray(target.test_labels, np.float32)
    keep["seeds"] = np.asarray(_seeds(s), np.int64)
    keep["rows"] = np.asarray(target.test_rows, np.int64)
    if target.test_pose is not None:
        keep["head_pose_deg"] = np.asarray(target.test_pose, np.float32)
    with atomic_write(os.path.join(s.out, "predictions.npz")) as tmp:
        np.savez(tmp, **keep)


def drop_predictions(out: str) -> None:
    """Remove OUT/predictions.npz of an earlier evaluation: an evaluation without the gaze measure
    replaces report.json, and predictions left beside it would belong to another report."""
    path = os.path.join(out, "predictions.npz")
    if os.path.isfile(path):
        os.remove(path)


def _model_path(arm_path: str) -> str:
    """NAME.keras beside an arm's NAME.npz."""
    return arm_path[: -len(".npz")] + ".keras"


def _read_arm(path: str) -> tuple[dict, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            print_, predictions = json.loads(str(f["fingerprint"])), f["predictions"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise SimGANError(f"{path}: not a saved gaze arm ({e})") from None
    if not isinstance(print_, dict) or predictions.ndim != 3 or predictions.shape[2] != 3:
        raise SimGANError(
            f"{path}: not a saved gaze arm (no fingerprint or (seeds, N, 3) predictions)"
        )
    model = _model_path(path)
    if not zipfile.is_zipfile(model):
        raise SimGANError(f"{model}: missing or not a saved Keras model (its arm is {path})")
    return print_, predictions


def read_arms(source: str) -> Saved:
    """The saved arms under SOURCE (an evaluation directory), every one checked readable; an error
    line where there is no arms folder or a file in it is not a saved arm."""
    folder = os.path.join(source, ARMS_DIR)
    if not os.path.isdir(folder):
        raise SimGANError(
            f"{source}: no {ARMS_DIR}/ folder of gaze arms to reuse (every evaluation with the "
            "gaze measure writes one, --scene-profile's too)"
        )
    saved = {}
    for name in REUSABLE:
        path = os.path.join(folder, name + ".npz")
        if os.path.exists(path):
            saved[name] = (*_read_arm(path), path)
    return saved


def load_arms(
    saved: Saved, fingerprints: dict[str, dict], target: Target, log: Callable[[str], None]
) -> dict[str, tuple[np.ndarray, keras.Model, str]]:
    """Of the saved arms, those whose fingerprint matches and whose estimator still gives its saved
    predictions: for each, the predictions, the first seed's estimator and the file. Logs one line
    for each arm it takes or leaves, and why."""
    reused = {}
    for name, wanted in fingerprints.items():
        if name not in saved:
            log(f"{name} arm: none saved there, training it")
            continue
        stored, predictions, path = saved[name]
        differ = [PARTS[k] for k in PARTS if stored.get(k) != wanted[k]]
        if differ:
            log(f"{name} arm: {path} has other {', '.join(differ)}; training it")
            continue
        if predictions.shape != (len(wanted["seeds"]), len(target.test_images), 3):
            raise SimGANError(f"{path}: predictions of shape {predictions.shape} for its test set")
        model_path = _model_path(path)
        try:
            model = keras.models.load_model(model_path, compile=False)
        except Exception as e:  # Keras raises many kinds for a damaged file
            raise SimGANError(f"{model_path}: cannot be loaded ({e})") from None
        # The two files are written one after the other: a pair from different evaluations
        # (an interrupted write, a copy by hand) must not pass for one arm.
        if not np.allclose(predict_gaze(model, target.test_images), predictions[0], atol=1e-5):
            log(f"{name} arm: {model_path} does not give {path}'s predictions; training it")
            continue
        reused[name] = (predictions, model, path)
        log(f"{name} arm: reused from {path} (same images, test set, recipe, seeds and code)")
    return reused


def gaze_arms_reusing(
    s: Setup, arms: dict[str, tuple[np.ndarray, np.ndarray]], target: Target, saved: Saved | None
) -> tuple[dict, dict[str, np.ndarray], dict]:
    """arms.gaze_arms, with the raw and oracle arms taken from `saved` (read_arms; None: train
    everything) where their fingerprint matches, each marked `reused_from`; those two are saved to
    s.out/arms/ for the next evaluation. The report's figures, the errors and the first models."""
    prints = {name: fingerprint(s, *arms[name], target) for name in arms if name in REUSABLE}
    reused = load_arms(saved, prints, target, s.log) if saved is not None else {}
    gaze, errors, models, predictions = gaze_arms(
        s, arms, target, {name: (pred, model) for name, (pred, model, _) in reused.items()}
    )
    for name, (_, _, path) in reused.items():
        gaze[name]["reused_from"] = path
    save_arms(s.out, predictions, models, prints)
    save_predictions(s, predictions, target)
    return gaze, errors, models
