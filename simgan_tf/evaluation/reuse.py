"""Gaze arms kept for the next evaluation: `evaluate --reuse-arms EVAL_DIR`.

The raw-synthetic and oracle arms do not depend on the refiner, yet they are most of an evaluation's
time. Every evaluation writes each arm's per-seed predictions on the test set and its first-seed
estimator to EVAL_DIR/arms/, with a fingerprint of everything those depend on: the arm's training
images and labels, the test set, the estimator's recipe and seeds, and the code and library versions
that train it. A later evaluation takes an arm from there only where every part of the fingerprint
matches, so a reused arm is the arm it would have trained (to the bit on a CPU), and computes the
arm's figures from the predictions again, with its own code.
"""

from __future__ import annotations

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from simgan_tf import gaze as gaze_module
from simgan_tf import models as models_module
from simgan_tf.errors import SimGANError
from simgan_tf.evaluation.run import Setup
from simgan_tf.evaluation.sets import Target
from simgan_tf.files import atomic_write

ARMS_DIR = "arms"

# What each part of a fingerprint is called in the line that says why an arm was not reused.
PARTS = {
    "train": "training images",
    "test": "test set",
    "estimator": "estimator recipe",
    "seeds": "seeds",
    "code": "estimator code (gaze.py, models.py)",
    "libraries": "TensorFlow/Keras versions",
}


def _sha(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def _code_sha() -> str:
    h = hashlib.sha256()
    # The estimator's network and training (the figures are computed again from the predictions).
    for module in (gaze_module, models_module):
        with open(module.__file__, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def fingerprint(s: Setup, images: np.ndarray, labels: np.ndarray, target: Target) -> dict:
    """Everything an arm's result depends on, as short hashes and plain values."""
    return {
        "train": _sha(images, labels),
        "test": _sha(target.test_images, target.test_labels, target.test_pose),
        "estimator": s.spec.to_dict(),
        "seeds": list(range(s.seed, s.seed + s.repeats)),
        "code": _code_sha(),
        "libraries": f"tensorflow {tf.__version__}, keras {keras.__version__}",
    }


def save_arms(
    out: str, predictions: dict[str, np.ndarray], models: dict, fingerprints: dict[str, dict]
) -> None:
    """Write each fingerprinted arm to OUT/arms/: NAME.npz (fingerprint, per-seed test
    predictions) and NAME.keras (the first seed's estimator, which label drift reads)."""
    for name, print_ in fingerprints.items():
        base = os.path.join(out, ARMS_DIR, name)
        with atomic_write(base + ".keras") as tmp:
            models[name].save(tmp)
        with atomic_write(base + ".npz") as tmp:
            np.savez(tmp, fingerprint=np.array(json.dumps(print_)), predictions=predictions[name])


def _read_arm(path: str) -> tuple[dict, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            print_, predictions = json.loads(str(f["fingerprint"])), f["predictions"]
    except (OSError, ValueError, KeyError) as e:
        raise SimGANError(f"{path}: not a saved gaze arm ({e})") from None
    if not isinstance(print_, dict) or predictions.ndim != 3 or predictions.shape[2] != 3:
        raise SimGANError(
            f"{path}: not a saved gaze arm (no fingerprint or (seeds, N, 3) predictions)"
        )
    return print_, predictions


def check_reuse(source: str) -> str:
    """SOURCE's arms folder, every saved arm in it readable; an error line where not."""
    folder = os.path.join(source, ARMS_DIR)
    if not os.path.isdir(folder):
        raise SimGANError(
            f"{source}: no {ARMS_DIR}/ folder of gaze arms to reuse (every evaluation with the "
            "gaze measure writes one)"
        )
    for name in sorted(os.listdir(folder)):
        if name.endswith(".npz"):
            _read_arm(os.path.join(folder, name))
    return folder


def load_arms(
    source: str, fingerprints: dict[str, dict], log
) -> dict[str, tuple[np.ndarray, keras.Model, str]]:
    """The arms under SOURCE (an evaluation directory) whose fingerprint matches: for each, its
    per-seed test predictions, first-seed estimator and file. Logs one line for each arm it takes
    or leaves, and why."""
    folder = check_reuse(source)
    reused = {}
    for name, wanted in fingerprints.items():
        path = os.path.join(folder, name + ".npz")
        if not os.path.exists(path):
            log(f"{name} arm: not in {folder}, training it")
            continue
        stored, predictions = _read_arm(path)
        differ = [PARTS[k] for k in PARTS if stored.get(k) != wanted[k]]
        if differ:
            log(f"{name} arm: {path} has other {', '.join(differ)}; training it")
            continue
        model_path = os.path.join(folder, name + ".keras")
        try:
            model = keras.models.load_model(model_path, compile=False)
        except (OSError, ValueError) as e:
            raise SimGANError(f"{model_path}: cannot be loaded ({e})") from None
        reused[name] = (predictions, model, path)
        log(f"{name} arm: reused from {path} (same images, test set, recipe, seeds and code)")
    return reused
