"""The gaze.h5 file layout: reading it into arrays, and writing it (save_eyes).

File layout (REFERENCE.md, the Kaggle "eye-gaze" files `gaze.h5` and `real_gaze.h5`):

- `image`: an HDF5 group holding one (35, 55) uint8 dataset per image. Keys are read in numeric
  order ("2" before "10"), which must be the row order of `look_vec`. A plain (N, 35, 55) or
  (N, 35, 55, 1) dataset, uint8 or float gray levels in [0, 255], is read too.
- `look_vec` (optional): (N, 3) float gaze vectors, one row per image.
- `path` (optional): N strings naming where each image came from.
"""

from __future__ import annotations

import os
import re

import h5py
import numpy as np

from simgan_tf.data.checks import _check_declared_size, _check_image_rank, _one_line
from simgan_tf.errors import SimGANError
from simgan_tf.files import atomic_write


def _numeric_key(key: str) -> tuple[int, int | str]:
    # Unpadded keys ("2" before "10") must still follow look_vec's row order.
    return (0, int(key)) if key.isdigit() else (1, key)


def _read_dataset(path: str, what: str, node: h5py.Dataset) -> np.ndarray:
    """A whole dataset as an array: a null dataspace and a declared size beyond memory are errors."""
    if node.shape is None:
        raise SimGANError(f"{path}: {what} is an empty dataset (null dataspace, no values)")
    _check_declared_size(path, what, node.shape, node.dtype)
    try:
        # Scalar string datasets read as bytes or str, not arrays.
        return np.asarray(node[()])
    except MemoryError:
        raise SimGANError(f"{path}: {what} of shape {node.shape} does not fit in memory") from None


def _read_group(path: str, group: h5py.Group) -> np.ndarray:
    keys = sorted(group.keys(), key=_numeric_key)
    if not keys:
        raise SimGANError(f"{path}: the 'image' group is empty (expected one dataset per image)")
    # The low-level API reads each small dataset about five times faster than `group[key][()]`,
    # which matters at 50,000 datasets.
    gid = group.id
    out: np.ndarray | None = None
    for i, key in enumerate(keys):
        try:
            dset = h5py.h5d.open(gid, key.encode())
        except (KeyError, ValueError, OSError):
            raise SimGANError(
                f"{path}: 'image/{key}' is not a dataset (expected one dataset per image)"
            ) from None
        if dset.shape is None:
            raise SimGANError(f"{path}: image '{key}' is an empty dataset (null dataspace)")
        if out is None:
            if dset.dtype.kind not in "uif":
                raise SimGANError(
                    f"{path}: image '{key}' has dtype {dset.dtype}, expected uint8 or float"
                )
            shape = (len(keys), *dset.shape)
            _check_declared_size(path, "the 'image' group", shape, dset.dtype)
            try:
                out = np.empty(shape, dtype=dset.dtype)
            except MemoryError:
                raise SimGANError(
                    f"{path}: {len(keys)} images of shape {dset.shape} do not fit in memory"
                ) from None
        elif dset.shape != out.shape[1:]:
            raise SimGANError(
                f"{path}: image '{key}' has shape {dset.shape}, "
                f"expected {out.shape[1:]} like the first"
            )
        if dset.shape == () or 0 in dset.shape:
            # HDF5 cannot read into an empty selection; _check_images reports the shape.
            continue
        # Other datasets' dtypes are not compared (fetching a dtype costs as much as the read):
        # HDF5 converts them to the first one's, and fails on ones it cannot convert.
        try:
            dset.read(h5py.h5s.ALL, h5py.h5s.ALL, out[i])
        except (TypeError, ValueError, OSError) as e:
            raise SimGANError(
                f"{path}: image '{key}' cannot be read as {out.dtype} "
                f"like the first ({_one_line(e)})"
            ) from None
    assert out is not None
    return out


def _read_paths(node: h5py.Dataset | h5py.Group, n: int) -> np.ndarray | None:
    # Names are optional: anything but n strings is ignored, and never read when the shape is wrong.
    if not isinstance(node, h5py.Dataset) or node.shape != (n,):
        return None
    try:
        return np.asarray(node.asstr()[()], dtype=str)
    except (TypeError, ValueError, UnicodeDecodeError):
        return None


def _read_hdf5(path: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    try:
        with h5py.File(path, "r") as f:
            if "image" not in f:
                raise SimGANError(
                    f"{path}: no 'image' key (found {sorted(f.keys())}); "
                    "expected the Kaggle gaze.h5 layout"
                )
            node = f["image"]
            if isinstance(node, h5py.Group):
                images, layout = _read_group(path, node), "group"
            elif isinstance(node, h5py.Dataset):
                # An HDF5 array type (say 55 uint8 per element) reads as trailing axes.
                if node.shape is not None:
                    _check_image_rank(path, node.shape + node.dtype.shape)
                images, layout = _read_dataset(path, "'image'", node), "dataset"
            else:
                raise SimGANError(
                    f"{path}: 'image' is a {type(node).__name__}, expected a group or a dataset"
                )
            look_vec = None
            if "look_vec" in f:
                if not isinstance(f["look_vec"], h5py.Dataset):
                    raise SimGANError(f"{path}: 'look_vec' is a group, expected an (N, 3) dataset")
                look_vec = _read_dataset(path, "'look_vec'", f["look_vec"])
            n = len(images) if images.ndim else 0
            paths = _read_paths(f["path"], n) if "path" in f else None
    except SimGANError:
        raise
    except OSError as e:
        m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(e))
        if m:
            raise SimGANError(
                f"{path}: truncated HDF5 file ({m.group(1)} of {m.group(2)} bytes); "
                "download or write it again"
            ) from None
        raise SimGANError(f"{path}: cannot be read as HDF5, damaged? ({_one_line(e)})") from None
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise SimGANError(f"{path}: cannot be read as HDF5, damaged? ({_one_line(e)})") from None
    return images, look_vec, paths, layout


def save_eyes(
    path: str | os.PathLike,
    images: np.ndarray,
    look_vec: np.ndarray | None = None,
    paths: np.ndarray | list[str] | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write the Kaggle layout (an `image` group of zero-padded keys) atomically: temp, rename."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise SimGANError(f"{path}: already exists (pass --overwrite to replace it)")
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if images.dtype != np.uint8:
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    width = max(6, len(str(len(images))))
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group("image")
        # Low-level creation is about three times faster than group.create_dataset per image.
        space = h5py.h5s.create_simple(images.shape[1:])
        dtype = h5py.h5t.py_create(images.dtype)
        for i, img in enumerate(images):
            dset = h5py.h5d.create(group.id, f"{i:0{width}d}".encode(), dtype, space)
            dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(img))
        if look_vec is not None:
            f.create_dataset("look_vec", data=np.asarray(look_vec, dtype=np.float32))
        if paths is not None:
            f.create_dataset(
                "path", data=np.asarray(paths, dtype=object), dtype=h5py.string_dtype()
            )
