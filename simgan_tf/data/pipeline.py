"""The tf.data stream of training batches, and the conversions to and from the model's [-1, 1].

TensorFlow is imported only inside the stream functions, so the data CLI starts fast.
"""

from __future__ import annotations

import numpy as np

from simgan_tf.errors import SimGANError


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 gray levels (N, H, W) -> float32 (N, H, W, 1) in [-1, 1], the refiner's tanh range."""
    return (np.asarray(images, dtype=np.float32)[..., None] / 127.5) - 1.0


def to_gray_levels(x: np.ndarray) -> np.ndarray:
    """Inverse of to_model_range: float in [-1, 1] (N, H, W[, 1]) -> uint8 (N, H, W)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x[..., 0]
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_stream(
    images: np.ndarray,
    batch_size: int,
    groups: int,
    seed: int,
    start_step: int = 0,
    stream: int = 0,
):
    """An endless tf.data stream of (groups, batch, H, W, 1) float32 tensors in [-1, 1].

    Shuffles indices (not images) once per pass, so the shuffle buffer stays small whatever the
    set's size, and gathers whole steps at once from one in-memory uint8 copy: one gather, one cast
    and one scale per step, no per-image work.

    The order is a pure function of (seed, stream, position): pass p uses a stateless permutation
    seeded by (seed, stream, p), and `start_step` skips the indices that earlier steps consumed. A
    resumed run thus sees exactly the batches an uninterrupted one would have seen, and skipping
    costs no image work. `stream` (0 <= stream < 2**31) numbers independent orders of one seed.
    """
    import tensorflow as tf

    if batch_size < 1 or groups < 1:
        raise SimGANError(f"batch size and groups must be >= 1, got {batch_size} and {groups}")
    if not (0 <= seed < 2**32 and 0 <= stream < 2**31):
        raise SimGANError(
            f"seed must be in [0, 2**32) and stream in [0, 2**31), got {seed}, {stream}"
        )
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    n = len(images)
    if n < batch_size:
        raise SimGANError(f"the data set has {n} images, fewer than one batch of {batch_size}")
    table = tf.constant(images)
    h, w = images.shape[1:3]

    def gather(idx):
        x = tf.cast(tf.gather(table, idx), tf.float32) * (1.0 / 127.5) - 1.0
        return tf.reshape(x, (groups, batch_size, h, w, 1))

    first_pass, offset = divmod(start_step * batch_size * groups, n)

    # One int64 holds both: seeds are below 2**32.
    key = tf.constant(seed + stream * 2**32, tf.int64)

    def one_pass(p):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([key, p])
        )
        return tf.data.Dataset.from_tensor_slices(order)

    return (
        tf.data.Dataset.range(first_pass, 2**62)
        .flat_map(one_pass)
        .skip(offset)
        .batch(batch_size * groups, drop_remainder=True)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    )


def training_dataset(
    synthetic: np.ndarray,
    real: np.ndarray,
    batch_size: int,
    synthetic_groups: int,
    real_groups: int,
    seed: int,
    start_step: int = 0,
    stream: int = 0,
):
    """Zip synthetic and real streams: each element is one train_step's worth of fresh batches.

    `start_step` positions both streams where step number `start_step` would find them (resume).
    Each `stream` number gives other orders of both sets (train.py: one per training phase).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.zip(
        (
            image_stream(synthetic, batch_size, synthetic_groups, seed, start_step, 2 * stream),
            image_stream(real, batch_size, real_groups, seed, start_step, 2 * stream + 1),
        )
    )
    return ds.prefetch(tf.data.AUTOTUNE)
