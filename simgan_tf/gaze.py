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
    images, target = _training_inputs(images, look_vec, steps, batch_size)
    return _fit_estimator(
        images,
        target,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        width=width,
        dense=dense,
        learning_rate=learning_rate,
        verbose=verbose,
    )


def _training_inputs(
    images: np.ndarray, look_vec: np.ndarray, steps: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SimGANError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if len(images) != len(look_vec):
        raise SimGANError(f"{len(images)} images but {len(look_vec)} gaze labels")
    if steps < 1 or batch_size < 1:
        raise SimGANError(f"steps and batch size must be >= 1, got {steps} and {batch_size}")
    return images, unit_vectors(look_vec)


def _fit_estimator(
    images: np.ndarray,
    target: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    width: float,
    dense: int,
    learning_rate: float,
    verbose: int,
    augment=None,
    equalize_input: bool = False,
) -> keras.Model:
    """The training behind train_estimator; `augment(step, uint8 batch) -> uint8 batch`, a tf function
    of the batch's index, changes each batch's images (never their order or labels);
    `equalize_input` puts a HistogramEqualization layer in front of the estimator."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = build_gaze_estimator(input_shape=(*images.shape[1:], 1), width=width, dense=dense)
    if equalize_input:
        x_in = keras.Input(model.input_shape[1:], name="eye")
        model = keras.Model(x_in, model(HistogramEqualization()(x_in)), name=model.name)
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
    )
    if augment is not None:
        # Keyed on the batch's index, and tf.data keeps the order: deterministic though parallel.
        ds = ds.enumerate().map(
            lambda step, xy: (augment(step, xy[0]), xy[1]), num_parallel_calls=tf.data.AUTOTUNE
        )
    ds = ds.map(lambda x, y: (_to_model_range(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
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


def pitch_yaw_errors_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(N, 2) signed pitch and yaw errors, predicted minus true, in degrees (yaw wrapped to +-180).

    The angular error says how far off an estimator is; these say which way: a bias that grows with
    the head pose means the estimator does not see the head's turn in the image.
    """
    from simgan_tf.simulator import look_vec_to_pitch_yaw

    diff = np.degrees(look_vec_to_pitch_yaw(pred).astype(np.float64) - look_vec_to_pitch_yaw(true))
    diff[:, 1] = (diff[:, 1] + 180.0) % 360.0 - 180.0
    return diff


def angular_error_less_bias(
    pred: np.ndarray, true: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """(N,) angular errors in degrees once each group's mean signed pitch and yaw error
    (pitch_yaw_errors_deg) is taken out of its predictions; `groups` None: all images one group.

    What is left is the scatter about each group's bias: a uniform turn, or a head pose's share of
    the turn an estimator misses, no longer counts.
    """
    from simgan_tf.simulator import look_vec_to_pitch_yaw, pitch_yaw_to_look_vec

    groups = np.zeros(len(pred)) if groups is None else np.asarray(groups)
    pitch_yaw = look_vec_to_pitch_yaw(pred).astype(np.float64)
    signed = np.radians(pitch_yaw_errors_deg(pred, true))
    for g in np.unique(groups):
        at = groups == g
        pitch_yaw[at] -= signed[at].mean(axis=0)
    return angular_error_deg(pitch_yaw_to_look_vec(pitch_yaw), true)


def evaluate_estimator(model: keras.Model, images: np.ndarray, look_vec: np.ndarray) -> dict:
    """The paper's metric on a labelled set: mean angular error and share within 7 degrees, with
    the per-image errors and signed pitch and yaw errors (`pitch_yaw_errors`, see
    pitch_yaw_errors_deg)."""
    return score_predictions(predict_gaze(model, images), look_vec)


def score_predictions(pred: np.ndarray, look_vec: np.ndarray) -> dict:
    """evaluate_estimator's figures from an estimator's (N, 3) predictions."""
    out = summarise_errors(angular_error_deg(pred, look_vec))
    out["pitch_yaw_errors"] = pitch_yaw_errors_deg(pred, look_vec)
    return out


@keras.saving.register_keras_serializable(package="simgan_tf")
class HistogramEqualization(keras.layers.Layer):
    """Per-image histogram equalisation of (B, H, W, 1) inputs in [-1, 1], onto [-1, 1].

    photometry.equalize's cdf mapping, without its rounding to 256 levels. The output depends only on
    each pixel's rank in its image, so any increasing tone curve (gamma, contrast, brightness) and a
    prior equalisation leave it unchanged: the estimator behind it is blind to them by construction.
    """

    def call(self, x):
        import tensorflow as tf

        shape = tf.shape(x)
        flat = tf.reshape(x, (shape[0], -1))
        ordered = tf.sort(flat, axis=1)
        at_most = tf.searchsorted(ordered, flat, side="right")  # the cdf, in pixels
        lowest = tf.searchsorted(ordered, ordered[:, :1], side="right")
        n = tf.shape(flat)[1]
        share = tf.cast(at_most - lowest, x.dtype) / tf.cast(tf.maximum(n - lowest, 1), x.dtype)
        return tf.reshape(share * 2.0 - 1.0, shape)

    def compute_output_shape(self, input_shape):
        return input_shape


# Augmented copies per raw image in the drift estimator's training (see train_drift_estimator).
AUGMENTED_COPIES = 2


def train_drift_estimator(
    images: np.ndarray,
    look_vec: np.ndarray,
    *,
    seed: int,
    spec: EstimatorSpec,
    copies: int = AUGMENTED_COPIES,
    equalize_input: bool = True,
    verbose: int = 0,
) -> keras.Model:
    """An estimator for label drift: trained like `train_estimator` with the same spec, but on images
    whose appearance is changed at random (simgan_tf.augment), so that appearance alone moves its
    predictions little. Deterministic given `seed`.

    `equalize_input` puts a HistogramEqualization layer in front (blind to any tone curve). It passes
    no gradient (it ranks pixels), so the refiner's gaze term (train.py, `--gaze-reg`) uses one
    trained without it.

    As if trained on the raw images plus `copies` augmented copies of each: in every batch a share
    copies / (copies + 1) of the images is augmented, each with a fresh draw, the rest stays raw (the
    estimator must still read raw renders well).
    """
    images, target = _training_inputs(images, look_vec, spec.steps, spec.batch_size)
    if copies < 0:
        raise SimGANError(f"the number of augmented copies must be >= 0, got {copies}")
    return _fit_estimator(
        images,
        target,
        seed=seed,
        verbose=verbose,
        augment=_batch_augmenter(seed, copies / (copies + 1)),
        equalize_input=equalize_input,
        **spec.to_dict(),
    )


def _batch_augmenter(seed: int, share: float):
    """A tf function (step, uint8 batch) -> the batch with a random `share` of it augmented."""
    import tensorflow as tf

    from simgan_tf.augment import photometric_augment

    def numpy_fn(step: np.ndarray, batch: np.ndarray) -> np.ndarray:
        # One stream per batch, apart from the seed's weight and shuffle streams.
        rng = np.random.default_rng([seed, 1, int(step)])
        pick = rng.random(len(batch)) < share
        out = batch.copy()
        out[pick] = photometric_augment(batch[pick], rng)
        return out

    def augment(step, batch):
        out = tf.numpy_function(numpy_fn, [step, batch], tf.uint8, stateful=False)
        out.set_shape(batch.shape)
        return out

    return augment
