"""load_eyes and load_groups: read and check an eye-image file (through the cache), or one column."""

from __future__ import annotations

import os

import h5py
import numpy as np

from simgan_tf.data.cache import (
    _cache_candidates,
    _cache_key,
    _read_cache,
    _worth_caching,
    _write_cache,
)
from simgan_tf.data.checks import _check_images, _check_input_file, _check_look_vec, _one_line
from simgan_tf.data.eyeset import IMAGE_SHAPE, EyeSet
from simgan_tf.data.hdf5 import _read_dataset, _read_hdf5
from simgan_tf.errors import SimGANError


def load_eyes(
    path: str | os.PathLike,
    *,
    require_labels: bool = False,
    expected_shape: tuple[int, int] | None = IMAGE_SHAPE,
    cache: bool = True,
) -> EyeSet:
    """Read and check an eye-image HDF5 file; any problem raises SimGANError naming the file.

    With `cache`, a group-layout file of at least CACHE_MIN_IMAGES images is read once from HDF5 and
    afterwards from its contiguous copy (see `cache_path`), rebuilt whenever the file changes.
    """
    path = os.fspath(path)
    _check_input_file(path)
    # The key is taken before reading, so a file changed during the read leaves a stale key.
    key = _cache_key(path)
    candidates = _cache_candidates(path) if cache else []
    eyes = _read_cache(key, candidates)
    if eyes is None:
        images, look_vec, paths, layout = _read_hdf5(path)
        stored_dtype = str(images.dtype)
        images = _check_images(path, images, None)
        eyes = EyeSet(images, look_vec, paths, layout=layout, stored_dtype=stored_dtype)
        if eyes.look_vec is not None:
            eyes.look_vec = _check_look_vec(path, eyes.look_vec, len(images))
        if eyes.paths is not None and len(eyes.paths) != len(images):
            eyes.paths = None
        if candidates and _worth_caching(eyes):
            eyes.cache_status = _write_cache(key, candidates, eyes)
    # Shape and label requirements vary by caller, so they are checked after the cache too.
    eyes.images = _check_images(path, eyes.images, expected_shape)
    if eyes.look_vec is None and require_labels:
        raise SimGANError(f"{path}: no 'look_vec' labels, and this command needs them")
    return eyes


def _image_count(path: str, f: h5py.File) -> int:
    # Counting the group's members reads no image, unlike load_eyes.
    if "image" not in f:
        raise SimGANError(
            f"{path}: no 'image' key (found {sorted(f.keys())}); expected the Kaggle gaze.h5 layout"
        )
    node = f["image"]
    if isinstance(node, h5py.Group):
        return len(node)
    if isinstance(node, h5py.Dataset) and node.shape:
        return node.shape[0]
    raise SimGANError(f"{path}: 'image' is neither a group nor an (N, H, W) dataset")


def _column_values(path: str, key: str, node: h5py.Dataset) -> np.ndarray:
    if node.dtype.kind in "OSU":
        try:
            return np.asarray(node.asstr()[()], dtype=str)
        except (TypeError, ValueError, UnicodeDecodeError):
            raise SimGANError(f"{path}: '{key}' holds strings that are not UTF-8 text") from None
    if node.dtype.kind not in "iuf":
        raise SimGANError(f"{path}: '{key}' has dtype {node.dtype}, expected numbers or strings")
    values = _read_dataset(path, f"'{key}'", node)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = int(np.argmin(np.isfinite(values)))
        raise SimGANError(f"{path}: '{key}' row {bad} is NaN or infinite")
    return values


def load_groups(path: str | os.PathLike, key: str = "subject") -> np.ndarray | None:
    """The per-image column `key` of an eye file (a person id, a head pose...), None if absent.

    Any other shape than one value per image, in the `image` group's key order, is an error.
    """
    path = os.fspath(path)
    _check_input_file(path)
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                return None
            node, n = f[key], _image_count(path, f)
            if not isinstance(node, h5py.Dataset):
                raise SimGANError(f"{path}: '{key}' is a group, expected a ({n},) dataset")
            if node.shape != (n,):
                raise SimGANError(
                    f"{path}: '{key}' has shape {node.shape}, expected ({n},): one value per image"
                )
            return _column_values(path, key, node)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise SimGANError(f"{path}: cannot be read as HDF5, damaged? ({_one_line(e)})") from None


def require_column(path: str | os.PathLike, key: str, purpose: str = "") -> np.ndarray:
    """load_groups where the column must exist: its absence is one error line naming the file's
    top-level keys (`purpose`, e.g. " to split by", says what it was wanted for)."""
    values = load_groups(path, key)
    if values is None:
        with h5py.File(path, "r") as f:
            found = sorted(f.keys())
        raise SimGANError(f"{os.fspath(path)}: no '{key}' dataset{purpose} (found {found})")
    return values
