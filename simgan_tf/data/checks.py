"""The checks that refuse bad input files, images, look_vec rows and outputs, each in one line."""

from __future__ import annotations

import os
from collections.abc import Iterable

import h5py
import numpy as np

from simgan_tf.errors import SimGANError


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_declared_size(path: str, what: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, before allocating, an array larger than this machine's memory.

    A small file can declare a huge dataset (one never written holds only its fill value), and
    reading it would fail with MemoryError, or worse, with overcommitted memory, fill the RAM.
    """
    nbytes = int(np.prod(shape, dtype=object)) * max(1, np.dtype(dtype).itemsize)
    memory = _memory_bytes()
    if memory and nbytes > memory:
        raise SimGANError(
            f"{path}: {what} declares shape {tuple(shape)} of {dtype} ({nbytes / 2**30:.3g} GiB), "
            f"more than this machine's memory ({memory / 2**30:.3g} GiB)"
        )


def _check_image_rank(path: str, shape: tuple[int, ...]) -> None:
    shape = tuple(shape)
    if len(shape) == 4 and shape[-1] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise SimGANError(
            f"{path}: images have shape {tuple(shape)}, expected (N, H, W) or (N, H, W, 1)"
        )
    if shape[0] == 0:
        raise SimGANError(f"{path}: holds no images (expected at least one)")


def _check_images(path: str, images: np.ndarray, expected: tuple[int, int] | None) -> np.ndarray:
    images = np.asarray(images)
    _check_image_rank(path, images.shape)
    if images.ndim == 4:
        images = images[..., 0]
    if expected is not None and images.shape[1:] != tuple(expected):
        raise SimGANError(
            f"{path}: images are {images.shape[1]} x {images.shape[2]}, "
            f"expected {expected[0]} x {expected[1]} (H x W)"
        )
    if 0 in images.shape:
        raise SimGANError(
            f"{path}: images are {images.shape[1]} x {images.shape[2]}, expected at least 1 x 1"
        )
    if images.dtype == np.uint8:
        # An HDF5 enum of uint8 reads with metadata on its dtype: drop it (np.savez warns on it).
        return images if images.dtype.metadata is None else images.view(np.uint8)
    if images.dtype.kind not in "uif":
        raise SimGANError(f"{path}: images have dtype {images.dtype}, expected uint8 or float")
    images = images.astype(np.float32)
    finite = np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise SimGANError(
            f"{path}: image {bad} holds NaN or infinite values (expected gray levels in [0, 255])"
        )
    lo, hi = float(images.min()), float(images.max())
    if hi <= 1.0 and lo >= -1.0:
        raise SimGANError(
            f"{path}: float images lie in [{lo:.3g}, {hi:.3g}], expected gray levels in [0, 255]"
        )
    if lo < 0 or hi > 255:
        raise SimGANError(f"{path}: images lie in [{lo:.3g}, {hi:.3g}], expected [0, 255]")
    return np.round(images).astype(np.uint8)


def _check_look_vec(path: str, look_vec: np.ndarray, n: int) -> np.ndarray:
    try:
        look_vec = np.asarray(look_vec, dtype=np.float32)
    except (TypeError, ValueError):
        raise SimGANError(
            f"{path}: look_vec is not numeric, expected an (N, 3) float dataset"
        ) from None
    # UnityEyes writes homogeneous "(x, y, z, 0)" strings: accept a zero fourth column and drop it.
    if look_vec.ndim == 2 and look_vec.shape[1] == 4 and not np.any(look_vec[:, 3]):
        look_vec = look_vec[:, :3]
    if look_vec.ndim != 2 or look_vec.shape[1] != 3:
        raise SimGANError(
            f"{path}: look_vec has shape {look_vec.shape}, expected ({n}, 3): rows of (x, y, z)"
        )
    if len(look_vec) != n:
        raise SimGANError(
            f"{path}: look_vec has {len(look_vec)} rows but there are {n} images "
            "(expected one row per image)"
        )
    if not np.isfinite(look_vec).all():
        bad = int(np.argmin(np.isfinite(look_vec).all(axis=1)))
        raise SimGANError(f"{path}: look_vec row {bad} holds NaN or infinite values")
    return look_vec


def _check_input_file(path: str) -> None:
    if not os.path.exists(path):
        raise SimGANError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SimGANError(f"{path}: is a directory, expected an HDF5 file")
    if not os.access(path, os.R_OK):
        raise SimGANError(f"{path}: cannot be read (permission denied)")
    if os.path.getsize(path) == 0:
        raise SimGANError(f"{path}: is empty (0 bytes), expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise SimGANError(f"{path}: not an HDF5 file (expected the Kaggle gaze.h5 layout)")


def _check_output(out: str, inputs: Iterable[str], overwrite: bool) -> None:
    """Refuse, before any work, an output that is an input, a folder, or an existing file."""
    for src in inputs:
        same = os.path.realpath(out) == os.path.realpath(src)
        if not same and os.path.exists(out) and os.path.exists(src):
            same = os.path.samefile(out, src)
        if same:
            raise SimGANError(f"{out}: is the input; choose another output path")
    if os.path.isdir(out):
        raise SimGANError(f"{out}: is a directory, expected an output file name")
    if os.path.lexists(out) and not overwrite:
        raise SimGANError(f"{out}: already exists (pass --overwrite to replace it)")
