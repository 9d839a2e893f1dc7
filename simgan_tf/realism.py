"""Classifier two-sample test (C2ST): can a fresh small CNN tell two image sets apart?

Held-out accuracy 0.5 means the sets are indistinguishable to it; 1.0 means any image gives its set away.
The score measures the classifier as much as the sets: report it beside a pair known to differ
(real vs raw synthetic), so that a low real-vs-refined score cannot come from a weak classifier.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from simgan_tf.errors import SimGANError


def _classifier(input_shape: tuple[int, int, int]) -> keras.Model:
    # Flatten rather than global pooling: the position of the eye's parts (the geometry gap of
    # REFERENCE.md) is a difference the test should be able to see.
    x_in = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x_in)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(x_in, layers.Dense(1)(x), name="c2st")


def _scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32)[..., None] / 127.5 - 1.0


def split_balanced(
    n_a: int, n_b: int, *, seed: int, test_fraction: float = 0.5, max_per_class: int | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Index sets ((a_train, a_test), (b_train, b_test)), equal sizes per class in each part.

    The larger set is subsampled to the smaller one's size, so chance level is exactly 0.5.
    """
    if not 0.0 < test_fraction < 1.0:
        raise SimGANError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n = min(n_a, n_b, max_per_class or max(n_a, n_b))
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n - n_test < 1:
        raise SimGANError(f"too few images for a two-sample test ({n_a} and {n_b})")
    rng = np.random.default_rng(seed)
    a = rng.permutation(n_a)[:n]
    b = rng.permutation(n_b)[:n]
    return (a[n_test:], a[:n_test]), (b[n_test:], b[:n_test])


def _two_sample_split(a, b, seed: int, test_fraction: float, max_per_class: int | None):
    """(x_train, y_train, x_test, y_test): set a labelled 0, set b labelled 1, balanced per part."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise SimGANError(
            f"two-sample test needs two (N, H, W) sets of one size, got {a.shape}, {b.shape}"
        )
    (a_tr, a_te), (b_tr, b_te) = split_balanced(
        len(a), len(b), seed=seed, test_fraction=test_fraction, max_per_class=max_per_class
    )
    x_train = np.concatenate([a[a_tr], b[b_tr]])
    y_train = np.concatenate([np.zeros(len(a_tr)), np.ones(len(b_tr))]).astype(np.float32)
    x_test = np.concatenate([a[a_te], b[b_te]])
    y_test = np.concatenate([np.zeros(len(a_te)), np.ones(len(b_te))])
    return x_train, y_train, x_test, y_test


def _train_stream(x, y, batch_size: int, seed: int, label_shape: tuple[int, ...] = ()):
    """Endless shuffled batches of uint8 images scaled to [-1, 1], each label filled to label_shape."""
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(
            lambda x, y: (
                tf.cast(x, tf.float32)[..., None] / 127.5 - 1.0,
                tf.reshape(y, (-1,) + (1,) * len(label_shape)) * tf.ones(label_shape),
            )
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def _logits(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(model(_scaled(images[i : i + batch_size]), training=False))
            for i in range(0, len(images), batch_size)
        ]
    )


def _fit_and_score(
    model: keras.Model, x_train, y_train, x_test, seed: int, steps: int, batch_size: int, lr: float
) -> np.ndarray:
    """Train `model` (logits out) with sigmoid cross-entropy, Adam and a cosine decay to zero; return
    its logits on x_test. Each label is filled to the model's output shape (per-patch targets)."""
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    label_shape = tuple(model.output_shape[1:])
    if label_shape == (1,):
        label_shape = ()  # one logit per image: labels stay scalars, as the classifier's always were
    ds = _train_stream(x_train, y_train, batch_size, seed, label_shape)
    model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return _logits(model, x_test)


def c2st(
    a: np.ndarray,
    b: np.ndarray,
    *,
    seed: int = 0,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    test_fraction: float = 0.5,
    max_per_class: int | None = None,
) -> float:
    """Held-out accuracy of a fresh CNN trained to tell uint8 (N, H, W) set `a` from set `b`."""
    x_train, y_train, x_test, y_test = _two_sample_split(a, b, seed, test_fraction, max_per_class)
    keras.utils.set_random_seed(seed)
    model = _classifier((*a.shape[1:], 1))
    logits = _fit_and_score(model, x_train, y_train, x_test, seed, steps, batch_size, learning_rate)
    logits = logits.reshape(-1)
    return float(np.mean((logits > 0) == (y_test > 0.5)))


def probe_discriminator(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    filters: tuple[int, int, int, int],
    seed: int = 0,
    steps: int = 600,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    test_fraction: float = 0.5,
    max_per_class: int | None = None,
) -> dict:
    """A fresh SimGAN discriminator trained after the fact on frozen `fake` images against `real` ones.

    In-game patch accuracy near 0.5 can mean the discriminator is outrun, not that refined images look
    real (REFERENCE.md). This probe has the run's architecture and loss (per-patch sigmoid
    cross-entropy), trains on half of each set and reports, on the other half: patch_accuracy (share
    of patches on the right side), image_accuracy (an image called real when its mean patch logit
    is positive) and patch_accuracy_map (the patch accuracy at each of the discriminator's output
    positions, rows top to bottom: where in the image the sets differ). All 0.5 for sets it cannot
    tell apart.
    """
    from simgan_tf.models import build_discriminator

    # The split labels its first set 0 and its second 1: fake first, so that 1 = real, as in training.
    x_train, y_train, x_test, y_test = _two_sample_split(
        fake, real, seed, test_fraction, max_per_class
    )
    keras.utils.set_random_seed(seed)
    model = build_discriminator((*x_train.shape[1:], 1), tuple(filters), name="probe")
    logits = _fit_and_score(model, x_train, y_train, x_test, seed, steps, batch_size, learning_rate)
    grid = logits.shape[1:3]  # (rows, columns) of patches; the last axis is the one logit
    logits = logits.reshape(len(x_test), -1)
    truth = (y_test > 0.5)[:, None]
    hits = ((logits > 0) == truth).mean(axis=0).reshape(grid)
    return {
        "patch_accuracy": float(hits.mean()),
        "image_accuracy": float(np.mean((logits.mean(axis=1) > 0) == truth[:, 0])),
        "patch_accuracy_map": np.round(hits, 3).tolist(),
        "n_per_class": int(len(x_test) // 2 + len(x_train) // 2),
        "steps": steps,
    }
