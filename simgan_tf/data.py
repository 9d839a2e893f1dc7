"""Eye-image data sets: the Kaggle `gaze.h5` / `real_gaze.h5` layout, validation, and the tf.data pipeline.

Layout (REFERENCE.md): `image` is an HDF5 group holding one (35, 55) uint8 dataset per image, keys in
numeric order; `look_vec` is an (N, 3) dataset whose rows follow that order; `path` holds source names.
A plain (N, 35, 55) or (N, 35, 55, 1) `image` dataset, uint8 or float in [0, 255], is read too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from simgan_tf.errors import SimGANError

IMAGE_SHAPE = (35, 55)


@dataclass
class EyeSet:
    """Images as (N, H, W) uint8, with UnityEyes-convention gaze vectors (N, 3) where the file has them."""

    images: np.ndarray
    look_vec: np.ndarray | None = None
    paths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


def _numeric_key(key: str) -> tuple[int, int | str]:
    # Unpadded keys ("2" before "10") must still follow look_vec's row order.
    return (0, int(key)) if key.isdigit() else (1, key)


def _read_images(path: str, node: h5py.Group | h5py.Dataset) -> np.ndarray:
    if isinstance(node, h5py.Group):
        keys = sorted(node.keys(), key=_numeric_key)
        if not keys:
            raise SimGANError(f"{path}: the 'image' group is empty (expected one dataset per image)")
        first = node[keys[0]]
        if not isinstance(first, h5py.Dataset):
            raise SimGANError(f"{path}: 'image/{keys[0]}' is not a dataset")
        out = np.empty((len(keys), *first.shape), dtype=first.dtype)
        for i, k in enumerate(keys):
            item = node[k]
            if not isinstance(item, h5py.Dataset) or item.shape != first.shape:
                shape = getattr(item, "shape", "a group")
                raise SimGANError(
                    f"{path}: image '{k}' has shape {shape}, expected {first.shape} like the first"
                )
            item.read_direct(out, dest_sel=np.s_[i])
        return out
    return node[()]


def _check_images(path: str, images: np.ndarray, expected: tuple[int, int] | None) -> np.ndarray:
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise SimGANError(
            f"{path}: images have shape {images.shape}, expected (N, H, W) or (N, H, W, 1)"
        )
    if len(images) == 0:
        raise SimGANError(f"{path}: holds no images")
    if expected is not None and images.shape[1:] != tuple(expected):
        raise SimGANError(
            f"{path}: images are {images.shape[1]} x {images.shape[2]}, "
            f"expected {expected[0]} x {expected[1]} (H x W)"
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.number):
        raise SimGANError(f"{path}: images have dtype {images.dtype}, expected uint8 or float")
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        bad = int(np.argmax(~np.isfinite(images).reshape(len(images), -1).all(axis=1)))
        raise SimGANError(f"{path}: image {bad} holds NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if hi <= 1.0 and lo >= -1.0:
        raise SimGANError(
            f"{path}: float images lie in [{lo:.3g}, {hi:.3g}], expected gray levels in [0, 255]"
        )
    if lo < 0 or hi > 255:
        raise SimGANError(f"{path}: images lie in [{lo:.3g}, {hi:.3g}], expected [0, 255]")
    return np.round(images).astype(np.uint8)


def load_eyes(
    path: str | os.PathLike,
    *,
    require_labels: bool = False,
    expected_shape: tuple[int, int] | None = IMAGE_SHAPE,
) -> EyeSet:
    """Read and validate an eye-image HDF5 file; any problem raises SimGANError naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SimGANError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SimGANError(f"{path}: is a directory, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise SimGANError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            if "image" not in f:
                raise SimGANError(
                    f"{path}: no 'image' key (found {sorted(f.keys())}); expected the Kaggle layout"
                )
            images = _check_images(path, _read_images(path, f["image"]), expected_shape)
            look_vec = f["look_vec"][()] if "look_vec" in f else None
            paths = f["path"][()] if "path" in f else None
    except SimGANError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        raise SimGANError(f"{path}: cannot be read as HDF5 ({e})") from None
    if look_vec is not None:
        look_vec = np.asarray(look_vec, dtype=np.float32)
        if look_vec.ndim != 2 or look_vec.shape[1] < 2:
            raise SimGANError(f"{path}: look_vec has shape {look_vec.shape}, expected (N, 3)")
        if len(look_vec) != len(images):
            raise SimGANError(
                f"{path}: look_vec has {len(look_vec)} rows but there are {len(images)} images"
            )
        if not np.isfinite(look_vec).all():
            raise SimGANError(f"{path}: look_vec holds NaN or infinite values")
    elif require_labels:
        raise SimGANError(f"{path}: no 'look_vec' labels, and this command needs them")
    if paths is not None and len(paths) != len(images):
        paths = None
    return EyeSet(images, look_vec, paths)


def save_eyes(
    path: str | os.PathLike,
    images: np.ndarray,
    look_vec: np.ndarray | None = None,
    paths: np.ndarray | list[str] | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write the Kaggle layout (an `image` group of zero-padded keys), atomically: temp name, rename."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise SimGANError(f"{path}: already exists (pass --overwrite to replace it)")
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if images.dtype != np.uint8:
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    width = max(6, len(str(len(images))))
    try:
        with h5py.File(tmp, "w") as f:
            group = f.create_group("image")
            for i, img in enumerate(images):
                group.create_dataset(f"{i:0{width}d}", data=img)
            if look_vec is not None:
                f.create_dataset("look_vec", data=np.asarray(look_vec, dtype=np.float32))
            if paths is not None:
                f.create_dataset("path", data=np.asarray(paths, dtype=object), dtype=h5py.string_dtype())
        os.replace(tmp, path)
    except OSError as e:
        raise SimGANError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 gray levels (N, H, W) -> float32 (N, H, W, 1) in [-1, 1], the refiner's tanh range."""
    return (np.asarray(images, dtype=np.float32)[..., None] / 127.5) - 1.0


def to_gray_levels(x: np.ndarray) -> np.ndarray:
    """Inverse of to_model_range: float in [-1, 1] (N, H, W[, 1]) -> uint8 (N, H, W)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x[..., 0]
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_stream(images: np.ndarray, batch_size: int, groups: int, seed: int):
    """An endless tf.data stream of (groups, batch, H, W, 1) float32 tensors in [-1, 1].

    Shuffles indices (not images) once per pass, so the shuffle buffer stays small whatever the set's
    size, and gathers whole batches at once from one in-memory uint8 copy.
    """
    import tensorflow as tf

    n = len(images)
    if n < batch_size:
        raise SimGANError(f"the data set has {n} images, fewer than one batch of {batch_size}")
    table = tf.constant(images)
    h, w = images.shape[1:3]

    def gather(idx):
        x = tf.cast(tf.gather(table, idx), tf.float32) / 127.5 - 1.0
        return tf.reshape(x, (groups, batch_size, h, w, 1))

    return (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .repeat()
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
):
    """Zip synthetic and real streams: each element is one train_step's worth of fresh batches."""
    import tensorflow as tf

    ds = tf.data.Dataset.zip(
        (
            image_stream(synthetic, batch_size, synthetic_groups, seed),
            image_stream(real, batch_size, real_groups, seed + 1),
        )
    )
    return ds.prefetch(tf.data.AUTOTUNE)
