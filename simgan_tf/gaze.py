"""The paper's gaze estimator as a measuring instrument: one training recipe, and the angular error.

Every arm of an evaluation (raw synthetic, refined, oracle) is trained by `train_estimator` with the
same steps, batch order and initial weights, so that a difference in error comes from the images alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np

from simgan_tf.errors import SimGANError
from simgan_tf.models import build_gaze_estimator


@dataclass(frozen=True)
class EstimatorSpec:
    width: float
    dense: int
    steps: int
    batch_size: int
    learning_rate: float

    def to_dict(self) -> dict:
        return asdict(self)


ESTIMATOR_PRESETS: dict[str, EstimatorSpec] = {
    # Seconds: for tests and for checking an installation; the numbers it gives mean nothing.
    "smoke": EstimatorSpec(width=0.125, dense=32, steps=30, batch_size=32, learning_rate=1e-3),
    # A few minutes per arm on a 2-core CPU.
    "quick": EstimatorSpec(width=0.5, dense=256, steps=1500, batch_size=64, learning_rate=1e-3),
    # The paper's network (FC 9600 -> FC 1000); meant for a GPU.
    "paper": EstimatorSpec(width=1.0, dense=1000, steps=20_000, batch_size=128, learning_rate=1e-3),
}


def angular_error_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Angle in degrees between matching rows of two (N, 3) arrays of gaze vectors (any length).

    atan2(|a x b|, a . b) rather than arccos of the cosine: arccos loses about 0.1 degree of precision
    near 0 in float32, where a good estimator's errors lie. A zero vector counts as 90 degrees off.
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise ValueError(f"expected two (N, 3) arrays, got {pred.shape} and {true.shape}")
    pred = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
    true = true / np.maximum(np.linalg.norm(true, axis=1, keepdims=True), 1e-12)
    cross = np.linalg.norm(np.cross(pred, true), axis=1)
    dot = np.clip(np.sum(pred * true, axis=1), -1.0, 1.0)
    return np.degrees(np.arctan2(cross, dot))


def unit_vectors(look_vec: np.ndarray) -> np.ndarray:
    """(N, 3) float32 rows scaled to length 1: the estimator's regression target."""
    v = np.asarray(look_vec, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != 3:
        raise SimGANError(f"gaze labels have shape {v.shape}, expected (N, 3)")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if not np.all(norms > 1e-6):
        raise SimGANError("some gaze labels are zero vectors")
    return v / norms


def _to_model_range(images):
    import tensorflow as tf

    return tf.cast(images, tf.float32)[..., None] / 127.5 - 1.0


def train_estimator(
    images: np.ndarray,
    look_vec: np.ndarray,
    *,
    steps: int,
    batch_size: int = 64,
    seed: int = 0,
    width: float = 1.0,
    dense: int = 1000,
    learning_rate: float = 1e-3,
    verbose: int = 0,
) -> keras.Model:
    """Train a fresh estimator on uint8 (N, H, W) images and (N, 3) gaze vectors with an MSE loss.

    Deterministic given `seed`: the initial weights and the batch order depend on it and on N only, so
    two arms trained on different images of the same size see matching batches in the same order.
    """
    import tensorflow as tf

    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SimGANError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if len(images) != len(look_vec):
        raise SimGANError(f"{len(images)} images but {len(look_vec)} gaze labels")
    if steps < 1 or batch_size < 1:
        raise SimGANError(f"steps and batch size must be >= 1, got {steps} and {batch_size}")
    target = unit_vectors(look_vec)
    keras.utils.set_random_seed(seed)
    model = build_gaze_estimator(input_shape=(*images.shape[1:], 1), width=width, dense=dense)
    # A decay to zero over the fixed budget: the last weights are then a settled solution, not a
    # snapshot mid-oscillation, which would add noise to the comparison between arms.
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    # uint8 in the pipeline, float per batch: a paper-sized set stays 4x smaller in memory.
    ds = (
        tf.data.Dataset.from_tensor_slices((images, target))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(lambda x, y: (_to_model_range(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=verbose)
    return model


def predict_gaze(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, 3) unnormalised gaze vectors for uint8 (N, H, W) images."""
    out = np.empty((len(images), 3), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        x = (
            np.asarray(images[start : start + batch_size], dtype=np.float32)[..., None] / 127.5
            - 1.0
        )
        # A direct call, not predict(): no tf.function to retrace for every fresh model and batch size.
        out[start : start + len(x)] = np.asarray(model(x, training=False))
    return out


def summarise_errors(errors: np.ndarray) -> dict:
    """mean_deg, median_deg, within_7deg (a share in [0, 1]) and the errors themselves."""
    errors = np.asarray(errors, dtype=np.float64)
    return {
        "mean_deg": float(np.mean(errors)),
        "median_deg": float(np.median(errors)),
        "within_7deg": float(np.mean(errors <= 7.0)),
        "errors": errors,
    }


def evaluate_estimator(model: keras.Model, images: np.ndarray, look_vec: np.ndarray) -> dict:
    """The paper's metric on a labelled set: mean angular error and share within 7 degrees."""
    return summarise_errors(angular_error_deg(predict_gaze(model, images), look_vec))
