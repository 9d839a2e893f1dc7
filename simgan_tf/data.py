"""Eye-image data sets: reading, checking, converting and streaming them to the training step.

File layout (REFERENCE.md, the Kaggle "eye-gaze" files `gaze.h5` and `real_gaze.h5`):

- `image`: an HDF5 group holding one (35, 55) uint8 dataset per image. Keys are read in numeric
  order ("2" before "10"), which must be the row order of `look_vec`. A plain (N, 35, 55) or
  (N, 35, 55, 1) dataset, uint8 or float gray levels in [0, 255], is read too.
- `look_vec` (optional): (N, 3) float gaze vectors, one row per image.
- `path` (optional): N strings naming where each image came from.

The look_vec convention (the one UnityEyes writes and the built-in simulator uses): a unit gaze
vector (x, y, z) in camera coordinates with x toward the image's right, y toward the image's TOP and
z away from the camera into the scene, so an eye looking into the camera has look_vec (0, 0, -1).
`gaze_angles` turns it into MPIIGaze's published pitch and yaw.

Group-layout files are slow to read (one HDF5 object per image), so for files of 2,000 images or
more `load_eyes` keeps a contiguous copy, `<file>.cache.npz`, beside the file (or in
$SIMGAN_CACHE_DIR if set, or in the project's `data/` when the file's folder is not writable),
keyed on the file's absolute path, size and modification time.

CLI: `python -m simgan_tf.data {inspect,convert-unityeyes,convert-mpiigaze,split,download} ...`.
TensorFlow is imported only by the tf.data functions, so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from simgan_tf.errors import SimGANError, cli
from simgan_tf.files import atomic_write

IMAGE_SHAPE = (35, 55)
KAGGLE_DATASET = "4quant/eye-gaze"
KAGGLE_FILES = ("gaze.h5", "real_gaze.h5")
# Below this many images a group-layout file reads in well under a second; a cache would be clutter.
CACHE_MIN_IMAGES = 2000
_CACHE_VERSION = 1


@dataclass
class EyeSet:
    """Images as (N, H, W) uint8, with look_vec gaze vectors (N, 3) where the file has them."""

    images: np.ndarray
    look_vec: np.ndarray | None = None
    paths: np.ndarray | None = None
    # How the file stored the images ("group" of datasets or one "dataset"), their stored dtype, and
    # whether the cache was used: `inspect` reports these.
    layout: str = ""
    stored_dtype: str = ""
    cache_status: str = ""

    def __len__(self) -> int:
        return len(self.images)


# ----------------------------------------------------------------------------------------------
# Gaze conventions


def mpiigaze_to_look_vec(gaze: np.ndarray) -> np.ndarray:
    """MPIIGaze normalised gaze vectors (N, 3) -> look_vec (N, 3), float32.

    MPIIGaze uses the OpenCV camera frame: x toward the image's right, y DOWN, z forward from the
    camera into the scene; its published angles are pitch = asin(-gy) and yaw = atan2(-gx, -gz).
    look_vec shares x and z with that frame and only points y the other way, so the conversion is
    (gx, -gy, gz): a subject looking up (gy < 0) gets a positive look_vec y, and `gaze_angles` of
    the result returns exactly MPIIGaze's pitch and yaw.
    """
    g = np.asarray(gaze, dtype=np.float32).reshape(-1, 3)
    return np.stack([g[:, 0], -g[:, 1], g[:, 2]], axis=1)


def gaze_angles(look_vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, yaw) in radians of look_vec rows, with MPIIGaze's definitions.

    pitch = asin(y) is positive looking up; yaw = atan2(-x, -z) is positive looking toward the
    image's left. Rows are normalised first, so slightly non-unit vectors keep asin in range.
    """
    v = np.asarray(look_vec, dtype=np.float64).reshape(-1, 3)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norm > 0, norm, 1.0)
    return np.arcsin(np.clip(v[:, 1], -1.0, 1.0)), np.arctan2(-v[:, 0], -v[:, 2])


# ----------------------------------------------------------------------------------------------
# Reading and checking


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _numeric_key(key: str) -> tuple[int, int | str]:
    # Unpadded keys ("2" before "10") must still follow look_vec's row order.
    return (0, int(key)) if key.isdigit() else (1, key)


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


# ----------------------------------------------------------------------------------------------
# The contiguous cache of group-layout files


def _project_data_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "data"


def _writable_dir(folder: Path) -> bool:
    # os.access says yes to root even for a folder whose mode says read-only (like the shared
    # data folder): respect the mode bits too.
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK) and bool(mode & 0o222)


def _cache_candidates(path: str | os.PathLike) -> list[Path]:
    src = Path(os.path.abspath(path))
    # Files of the same name in different folders must not share a cache slot away from home.
    tagged = f"{src.name}-{hashlib.sha1(str(src).encode()).hexdigest()[:10]}.cache.npz"
    env = os.environ.get("SIMGAN_CACHE_DIR")
    if env:
        return [Path(env) / tagged]
    candidates = []
    if _writable_dir(src.parent):
        candidates.append(src.with_name(src.name + ".cache.npz"))
    if _writable_dir(_project_data_dir()):
        candidates.append(_project_data_dir() / tagged)
    candidates.append(Path.home() / ".cache" / "simgan_tf" / tagged)
    return candidates


def cache_path(path: str | os.PathLike) -> Path:
    """Where the contiguous copy of `path` goes: $SIMGAN_CACHE_DIR if set, else beside the file
    when its folder is writable, else the project's data/ folder, else ~/.cache/simgan_tf."""
    return _cache_candidates(path)[0]


def _cache_key(path: str) -> str:
    st = os.stat(path)
    return json.dumps(
        {
            "version": _CACHE_VERSION,
            "source": os.path.realpath(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        },
        sort_keys=True,
    )


def _cached_arrays_ok(images: np.ndarray, look_vec: np.ndarray | None) -> bool:
    # What _write_cache stores; anything else (a foreign or doctored file) is not trusted.
    if images.dtype != np.uint8 or images.ndim != 3 or 0 in images.shape:
        return False
    if look_vec is None:
        return True
    return (
        look_vec.dtype == np.float32
        and look_vec.shape == (len(images), 3)
        and bool(np.isfinite(look_vec).all())
    )


def _read_cache(key: str, candidates: list[Path]) -> EyeSet | None:
    for where in candidates:
        if not where.exists():
            continue
        # A damaged or foreign cache is only a slower start: it is written again. np.load raises
        # zipfile's and zlib's errors for a damaged archive, besides the usual ones.
        try:
            z = np.load(where, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                continue  # a lone .npy array
            with z:
                if str(z["key"]) != key:
                    continue
                images = z["images"]
                look_vec = z["look_vec"] if "look_vec" in z.files else None
                paths = z["paths"] if "paths" in z.files else None
                stored_dtype = str(z["stored_dtype"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
            continue
        if not _cached_arrays_ok(images, look_vec):
            continue
        if paths is not None and paths.shape != (len(images),):
            paths = None
        return EyeSet(
            images=images,
            look_vec=look_vec,
            paths=paths,
            layout="group",
            stored_dtype=stored_dtype,
            cache_status=f"read from cache {where}",
        )
    return None


def _write_cache(key: str, candidates: list[Path], eyes: EyeSet) -> str:
    arrays = {
        "key": np.array(key),
        "images": eyes.images,
        "stored_dtype": np.array(eyes.stored_dtype),
    }
    if eyes.look_vec is not None:
        arrays["look_vec"] = eyes.look_vec
    if eyes.paths is not None:
        arrays["paths"] = eyes.paths
    problems = []
    for where in candidates:
        try:
            with atomic_write(where) as tmp:
                np.savez(tmp, **arrays)
            return f"cache written to {where}"
        except SimGANError as e:
            problems.append(str(e))
    return f"cache not written ({'; '.join(problems)})"


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
        if candidates and layout == "group" and len(images) >= CACHE_MIN_IMAGES:
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


# ----------------------------------------------------------------------------------------------
# Writing


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


# ----------------------------------------------------------------------------------------------
# UnityEyes renders -> gaze.h5 layout


def _parse_vector(text: str) -> list[float]:
    # UnityEyes writes vectors as strings such as "(0.1, -0.2, -0.97, 0.0)".
    if not isinstance(text, str):
        raise ValueError(f"expected a '(x, y, z)' string, got {type(text).__name__}")
    parts = text.strip().strip("()").split(",")
    return [float(p) for p in parts]


def crop_unityeyes(
    gray: np.ndarray, meta: dict, *, crop_scale: float = 1.4, shape: tuple[int, int] = IMAGE_SHAPE
) -> np.ndarray:
    """Crop a grayscale UnityEyes render around the eye and resize it to `shape`, as uint8.

    UnityEyes measures landmark y from the BOTTOM of the image (its own visualisation script flips
    it with `height - y`), so rows are height - y here. The box is centred on the bounding box of
    the `interior_margin_2d` and `caruncle_2d` landmarks (eyelid margin and inner corner), is
    `crop_scale` times as wide as the eye and has the output's aspect ratio, grown if the eye is
    unusually tall. Parts of the box outside the render repeat the border pixels.
    """
    from skimage.transform import resize

    height, width = gray.shape
    points = [_parse_vector(s)[:2] for s in meta["interior_margin_2d"] + meta["caruncle_2d"]]
    if len(points) < 2:
        raise ValueError("fewer than two eye landmarks")
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError("landmarks are not '(x, y, ...)' vectors")
    cols, rows = pts[:, 0], height - pts[:, 1]
    if not np.isfinite(pts).all():
        raise ValueError("landmarks hold NaN or infinite values")
    eye_w, eye_h = np.ptp(cols), np.ptp(rows)
    if eye_w < 2:
        raise ValueError(f"eye landmarks span {eye_w:.1f} pixels across")
    # Landmarks spanning more than the render are damaged (and would pad a huge crop box).
    if eye_w > width or eye_h > height:
        raise ValueError(
            f"eye landmarks span {eye_w:.0f} x {eye_h:.0f} pixels, more than the "
            f"{width} x {height} image"
        )
    aspect = shape[1] / shape[0]
    box_w = max(crop_scale * eye_w, crop_scale * eye_h * aspect)
    box_h = box_w / aspect
    cx, cy = (cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2
    left, top = int(round(cx - box_w / 2)), int(round(cy - box_h / 2))
    right, bottom = left + int(round(box_w)), top + int(round(box_h))
    if right <= 0 or bottom <= 0 or left >= width or top >= height:
        raise ValueError("the eye landmarks lie outside the image")
    pad = ((max(0, -top), max(0, bottom - height)), (max(0, -left), max(0, right - width)))
    crop = gray[max(0, top) : min(height, bottom), max(0, left) : min(width, right)]
    crop = np.pad(crop, pad, mode="edge").astype(np.float32)
    small = resize(crop, shape, anti_aliasing=True, preserve_range=True)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


def _unityeyes_pair(
    job: tuple[str, str, float],
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Read one render and its JSON; return (image, look_vec, "") or (None, None, reason)."""
    from PIL import Image

    jpg, meta_path, crop_scale = job
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        look = _parse_vector(meta["eye_details"]["look_vec"])[:3]
    except KeyError as e:
        return None, None, f"bad JSON (no {e} key)"
    except (OSError, ValueError, TypeError) as e:
        return None, None, f"bad JSON ({_one_line(e)})"
    if len(look) != 3 or not np.all(np.isfinite(look)) or not np.any(look):
        return None, None, f"bad look_vec {meta['eye_details']['look_vec']!r}"
    try:
        with Image.open(jpg) as im:
            # PIL's "L" is the ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B.
            gray = np.asarray(im.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return None, None, f"unreadable image ({_one_line(e)})"
    try:
        image = crop_unityeyes(gray, meta, crop_scale=crop_scale)
    except KeyError as e:
        return None, None, f"bad landmarks (no {e} key)"
    except (TypeError, ValueError) as e:
        return None, None, f"bad landmarks ({_one_line(e)})"
    return image, np.asarray(look, dtype=np.float32), ""


@dataclass
class ConvertReport:
    """What a converter wrote and what it skipped, as (name, reason) pairs."""

    out: str
    count: int
    skipped: list[tuple[str, str]]


def convert_unityeyes(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    crop_scale: float = 1.4,
    workers: int = 0,
) -> ConvertReport:
    """Turn a folder of UnityEyes `N.jpg` + `N.json` pairs into the gaze.h5 layout with look_vec.

    Unreadable pairs are skipped and reported by name. The JSON look_vec is stored as it is:
    UnityEyes already uses this project's convention (x right, y up, z negative toward the camera).
    `workers` = 0 picks one process below 2,000 pairs (starting more would cost more than it
    saves) and up to 8 above.
    """
    folder, out = os.fspath(folder), os.fspath(out)
    if not os.path.exists(folder):
        raise SimGANError(f"{folder}: no such folder")
    if not os.path.isdir(folder):
        raise SimGANError(f"{folder}: not a folder (expected UnityEyes N.jpg + N.json pairs)")
    _check_output(out, [folder], overwrite)
    if not 1.0 <= crop_scale <= 10.0:
        raise SimGANError(f"--crop-scale must lie in [1, 10], got {crop_scale}")
    names = os.listdir(folder)
    jpgs = {n[:-4] for n in names if n.lower().endswith(".jpg")}
    jsons = {n[:-5] for n in names if n.lower().endswith(".json")}
    stems = sorted(jpgs & jsons, key=_numeric_key)
    if not stems:
        raise SimGANError(
            f"{folder}: no UnityEyes pairs (expected N.jpg with N.json beside it; "
            f"found {len(jpgs)} .jpg and {len(jsons)} .json files)"
        )
    skipped = [(f"{s}.jpg", "no matching .json") for s in sorted(jpgs - jsons, key=_numeric_key)]
    skipped += [(f"{s}.json", "no matching .jpg") for s in sorted(jsons - jpgs, key=_numeric_key)]
    jpg_name = {n[:-4]: n for n in names if n.lower().endswith(".jpg")}
    json_name = {n[:-5]: n for n in names if n.lower().endswith(".json")}
    jobs = [
        (os.path.join(folder, jpg_name[s]), os.path.join(folder, json_name[s]), crop_scale)
        for s in stems
    ]
    if workers <= 0:
        workers = 1 if len(jobs) < 2000 else min(8, os.cpu_count() or 1)
    results = _map_with_progress(_unityeyes_pair, jobs, workers, "convert-unityeyes")
    images, looks, kept = [], [], []
    for stem, (image, look, reason) in zip(stems, results, strict=True):
        if image is None:
            skipped.append((jpg_name[stem], reason))
        else:
            images.append(image)
            looks.append(look)
            kept.append(jpg_name[stem])
    if not images:
        raise SimGANError(
            f"{folder}: none of the {len(stems)} UnityEyes pairs could be read "
            f"(first: {skipped[0][0]}: {skipped[0][1]})"
        )
    save_eyes(out, np.stack(images), np.stack(looks), kept, overwrite=overwrite)
    return ConvertReport(out, len(images), skipped)


def _map_with_progress(fn, jobs: list, workers: int, label: str) -> list:
    from tqdm import tqdm

    # disable=None hides the bar when stderr is not a terminal (CI logs, tests).
    with tqdm(total=len(jobs), desc=label, unit="img", disable=None) as bar:
        if workers == 1:
            results = []
            for job in jobs:
                results.append(fn(job))
                bar.update()
            return results
        # Spawned (not forked) workers: the caller may have TensorFlow's threads running.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = []
            for result in pool.map(fn, jobs, chunksize=64):
                results.append(result)
                bar.update()
            return results


# ----------------------------------------------------------------------------------------------
# MPIIGaze Normalized .mat files -> real_gaze.h5 layout


def _mat_field(path: str, obj: object, name: str, where: str) -> object:
    if not hasattr(obj, name):
        raise SimGANError(
            f"{path}: no '{where}.{name}' in the MATLAB struct "
            "(expected MPIIGaze Normalized data.left/right.image and .gaze)"
        )
    return getattr(obj, name)


def read_mpiigaze_mat(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One MPIIGaze Normalized file -> {"left": (images (N, 36, 60), gaze (N, 3)), "right": ...}."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = os.fspath(path)
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:
        raise SimGANError(
            f"{path}: MATLAB v7.3 file, expected the v5 .mat files MPIIGaze publishes"
        ) from None
    except (MatReadError, ValueError, OSError, TypeError, EOFError) as e:
        raise SimGANError(f"{path}: not a readable MATLAB .mat file ({_one_line(e)})") from None
    if "data" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise SimGANError(
            f"{path}: no 'data' struct (found {found}); expected MPIIGaze's data.left/right"
        )
    data = mat["data"]
    eyes = {}
    for side in ("left", "right"):
        eye = _mat_field(path, data, side, "data")
        images = np.asarray(_mat_field(path, eye, "image", f"data.{side}"))
        try:
            gaze = np.asarray(_mat_field(path, eye, "gaze", f"data.{side}"), dtype=np.float64)
        except (TypeError, ValueError):
            raise SimGANError(f"{path}: data.{side}.gaze is not numeric, expected (N, 3)") from None
        # squeeze_me drops the leading axis of a one-image file; put it back.
        if images.ndim == 2:
            images = images[None]
        gaze = gaze.reshape(-1, 3) if gaze.size % 3 == 0 else gaze
        if images.ndim != 3 or images.shape[1:] != (36, 60):
            raise SimGANError(
                f"{path}: data.{side}.image has shape {images.shape}, expected (N, 36, 60)"
            )
        if gaze.ndim != 2 or gaze.shape != (len(images), 3):
            raise SimGANError(
                f"{path}: data.{side}.gaze has shape {gaze.shape}, expected ({len(images)}, 3)"
            )
        if not np.isfinite(gaze).all():
            raise SimGANError(f"{path}: data.{side}.gaze holds NaN or infinite values")
        if not np.issubdtype(images.dtype, np.number):
            raise SimGANError(f"{path}: data.{side}.image has dtype {images.dtype}, expected uint8")
        if (
            images.dtype != np.uint8
            and images.size
            and not (np.isfinite(images).all() and images.min() >= 0 and 1 < images.max() <= 255)
        ):
            raise SimGANError(
                f"{path}: data.{side}.image values are not gray levels in [0, 255] (expected uint8)"
            )
        eyes[side] = (images, gaze)
    return eyes


def _resize_stack(images: np.ndarray, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    from skimage.transform import resize

    images = np.asarray(images, dtype=np.float32)
    # Resizing the stack at once with an unchanged first axis equals resizing image by image
    # (no smoothing or interpolation along that axis), and is much faster.
    out = resize(images, (len(images), *shape), anti_aliasing=True, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def convert_mpiigaze(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    with_labels: bool = False,
    flip_right: bool = True,
    overwrite: bool = False,
) -> ConvertReport:
    """MPIIGaze Normalized `.mat` files (a folder, searched recursively, or one file) -> .h5.

    Both eyes are kept, 36 x 60 resized to 35 x 55 with anti-aliasing. With `flip_right` (default)
    right-eye patches are mirrored left-right so that every patch shows a left eye (inner corner on
    the image's left) like the UnityEyes renders, as MPIIGaze's own pipeline does; mirroring negates
    look_vec x. With `with_labels` the gaze vectors are stored as look_vec (`mpiigaze_to_look_vec`).
    """
    source, out = os.fspath(source), os.fspath(out)
    if not os.path.exists(source):
        raise SimGANError(f"{source}: no such file or folder")
    if os.path.isdir(source):
        files = sorted(str(p) for p in Path(source).rglob("*.mat"))
        if not files:
            raise SimGANError(
                f"{source}: no .mat files (expected MPIIGaze Data/Normalized/pXX/dayYY.mat)"
            )
    else:
        files = [source]
    _check_output(out, files + [source], overwrite)
    from tqdm import tqdm

    images, looks, names = [], [], []
    for path in tqdm(files, desc="convert-mpiigaze", unit="file", disable=None):
        rel = os.path.relpath(path, source) if os.path.isdir(source) else os.path.basename(path)
        for side, (imgs, gaze) in read_mpiigaze_mat(path).items():
            if len(imgs) == 0:
                continue
            small = _resize_stack(imgs)
            look = mpiigaze_to_look_vec(gaze)
            if side == "right" and flip_right:
                small = small[:, :, ::-1]
                look[:, 0] = -look[:, 0]
            images.append(small)
            looks.append(look)
            names += [f"{rel}:{side}:{i}" for i in range(len(imgs))]
    if not names:
        raise SimGANError(f"{source}: the .mat files hold no images")
    look_vec = np.concatenate(looks) if with_labels else None
    save_eyes(out, np.concatenate(images), look_vec, names, overwrite=overwrite)
    return ConvertReport(out, len(names), [])


# ----------------------------------------------------------------------------------------------
# split by person


@dataclass
class SplitPart:
    """One output of `split_by_group`: its path, the group ids it holds and its image count."""

    out: str
    ids: list
    count: int


def _row_columns(path: str, n: int) -> tuple[dict[str, tuple[np.ndarray, np.dtype]], list[str]]:
    """Every top-level dataset but `image` with one row per image, with its stored dtype; and the
    names of the others, which a row subset cannot carry."""
    columns, left_out = {}, []
    with h5py.File(path, "r") as f:
        for name, node in f.items():
            if name == "image":
                continue
            if isinstance(node, h5py.Dataset) and node.shape and node.shape[0] == n:
                columns[name] = (_read_dataset(path, f"'{name}'", node), node.dtype)
            else:
                left_out.append(name)
    return columns, left_out


def _pick_groups(ids: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(ids)
    k = min(max(int(round(fraction * len(ids))), 1), len(ids) - 1)
    return np.sort(order[:k]), np.sort(order[k:])


def split_by_group(
    path: str | os.PathLike,
    outs: tuple[str | os.PathLike, str | os.PathLike],
    *,
    key: str = "subject",
    fraction: float = 0.5,
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[list[SplitPart], list[str]]:
    """Split an eye file into two with no group (person) in both; returns the parts and the names of
    top-level datasets left out because they are not one row per image.

    The group ids are shuffled with `seed` and the first round(fraction * ids), at least one and at
    most all but one, go to the first output. Each output keeps the input's file order and every
    per-image dataset (look_vec, path, subject, ...) subset by row. Both are written under temporary
    names and renamed only once both are complete.
    """
    path, outs = os.fspath(path), tuple(os.fspath(o) for o in outs)
    _check_input_file(path)
    for out in outs:
        _check_output(out, [path], overwrite)
    if os.path.abspath(outs[0]) == os.path.abspath(outs[1]):
        raise SimGANError(f"{outs[0]}: given as both outputs; name two different files")
    if not 0.0 < fraction < 1.0:
        raise SimGANError(f"--fraction must lie strictly between 0 and 1, got {fraction}")
    groups = load_groups(path, key)
    if groups is None:
        with h5py.File(path, "r") as f:
            found = sorted(f.keys())
        raise SimGANError(f"{path}: no '{key}' dataset to split by (found {found})")
    ids = np.unique(groups)
    if len(ids) < 2:
        raise SimGANError(f"{path}: '{key}' holds {len(ids)} distinct value, need at least 2")
    eyes = load_eyes(path, expected_shape=None)
    columns, left_out = _row_columns(path, len(eyes))
    parts = []
    with atomic_write(outs[0]) as tmp_a, atomic_write(outs[1]) as tmp_b:
        for out, tmp, part_ids in zip(
            outs, (tmp_a, tmp_b), _pick_groups(ids, fraction, seed), strict=True
        ):
            rows = np.flatnonzero(np.isin(groups, part_ids))
            save_eyes(tmp, eyes.images[rows], overwrite=True)
            with h5py.File(tmp, "a") as f:
                for name, (values, dtype) in columns.items():
                    f.create_dataset(name, data=values[rows], dtype=dtype)
            parts.append(SplitPart(out, part_ids.tolist(), len(rows)))
    return parts, left_out


# ----------------------------------------------------------------------------------------------
# inspect


def describe(path: str, eyes: EyeSet) -> list[str]:
    """The lines `inspect` prints about a loaded file."""
    n, h, w = eyes.images.shape
    layout = {"group": f"'image' group of {n} datasets", "dataset": "one 'image' dataset"}
    imgs = eyes.images
    lines = [
        f"file: {path}",
        f"layout: {layout.get(eyes.layout, eyes.layout)}"
        + (f"; {eyes.cache_status}" if eyes.cache_status else ""),
        f"images: {n} x {h} x {w}, stored {eyes.stored_dtype}, read as uint8; "
        f"values {imgs.min()}..{imgs.max()} (mean {imgs.mean():.1f}, std {imgs.std():.1f})",
    ]
    if eyes.look_vec is None:
        lines.append("look_vec: none (an unlabelled set, like real_gaze.h5)")
    else:
        v = eyes.look_vec
        norms = np.linalg.norm(v, axis=1)
        ranges = ", ".join(
            f"{c} {v[:, i].min():.3f}..{v[:, i].max():.3f}" for i, c in enumerate("xyz")
        )
        lines.append(f"look_vec: {len(v)} x 3; {ranges}; norm {norms.min():.3f}..{norms.max():.3f}")
        # Adding 0.0 turns -0.0 into 0.0 for printing.
        pitch, yaw = (np.degrees(a) + 0.0 for a in gaze_angles(v))
        for name, a in (("pitch", pitch), ("yaw", yaw)):
            lines.append(
                f"{name}: {a.min():.1f}..{a.max():.1f} deg (mean {a.mean():.1f}, std {a.std():.1f})"
            )
        if np.mean(v[:, 2] > 0) > 0.5:
            lines.append(
                "note: most look_vec z are positive; this project's convention (UnityEyes') has z "
                "negative for an eye looking toward the camera"
            )
    if eyes.paths is not None:
        lines.append(f"path: {len(eyes.paths)} names, first {str(eyes.paths[0])!r}")
    return lines


def _image_formats() -> set[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # PGF is LaTeX drawing code, not an image, and needs a TeX installation to write.
    return set(FigureCanvasAgg(Figure()).get_supported_filetypes()) - {"pgf"}


def write_montage(
    out: str | os.PathLike, eyes: EyeSet, *, count: int = 64, overwrite: bool = False
) -> int:
    """Save a grid of up to `count` images spread over the set, with gaze arrows where labelled."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out = os.fspath(out)
    if os.path.lexists(out) and not overwrite:
        raise SimGANError(f"{out}: already exists (pass --overwrite to replace it)")
    n = len(eyes)
    idx = np.unique(np.linspace(0, n - 1, min(count, n)).astype(int))
    cols = min(8, len(idx))
    rows = -(-len(idx) // cols)
    h, w = eyes.images.shape[1:]
    grid = np.full((rows * h, cols * w), 255, dtype=np.uint8)
    for k, i in enumerate(idx):
        r, c = divmod(k, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = eyes.images[i]
    fig = Figure(figsize=(cols * w / 25, rows * h / 25))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if eyes.look_vec is not None:
        v = (
            eyes.look_vec[idx]
            / np.maximum(np.linalg.norm(eyes.look_vec[idx], axis=1), 1e-6)[:, None]
        )
        for k, (x, y) in enumerate(v[:, :2]):
            r, c = divmod(k, cols)
            # look_vec y points up, image rows point down.
            ax.arrow(c * w + w / 2, r * h + h / 2, x * h / 2, -y * h / 2, color="lime", width=0.4)
    ax.set_xlim(-0.5, cols * w - 0.5)
    ax.set_ylim(rows * h - 0.5, -0.5)
    ax.set_axis_off()
    try:
        with atomic_write(out) as tmp:
            fig.savefig(tmp)
    # matplotlib and Pillow report a format they cannot write (a missing codec, say) this way.
    except (RuntimeError, ValueError) as e:
        raise SimGANError(f"{out}: cannot write ({_one_line(e)})") from None
    return len(idx)


def _check_montage_path(out: str, source: str, overwrite: bool) -> None:
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    formats = _image_formats()
    if ext not in formats:
        raise SimGANError(f"{out}: unknown image type '.{ext}', expected one of {sorted(formats)}")
    _check_output(out, [source], overwrite)


# ----------------------------------------------------------------------------------------------
# download


def _place(src: str, target: Path, overwrite: bool) -> str:
    if target.exists() and os.path.samefile(src, target):
        return "already in place"
    if os.path.lexists(target) and not overwrite:
        raise SimGANError(f"{target}: already exists (pass --overwrite to replace it)")
    with atomic_write(target) as tmp:
        try:
            os.symlink(os.path.abspath(src), tmp)
            how = "linked"
        except OSError:
            # No symlinks here (some Windows and network file systems): copy instead.
            shutil.copyfile(src, tmp)
            how = "copied"
    return how


def download(dest: str | os.PathLike = "data", *, overwrite: bool = False) -> list[str]:
    """Fetch the Kaggle eye-gaze files with kagglehub and link (or copy) them into `dest`."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise SimGANError(f"{dest}: not a folder")
    try:
        import kagglehub
    except ImportError:
        raise SimGANError(
            f"kagglehub is not installed: pip install kagglehub, or download {KAGGLE_DATASET} "
            f"from kaggle.com and put {' and '.join(KAGGLE_FILES)} in {dest}/"
        ) from None
    try:
        root = kagglehub.dataset_download(KAGGLE_DATASET)
    # kagglehub raises requests', urllib3's and its own exception types, with no common base.
    except Exception as e:
        text = f"{type(e).__name__}: {_one_line(e)}"
        text = text if len(text) <= 160 else text[:157] + "..."
        offline = isinstance(e, OSError | TimeoutError) or re.search(
            r"connect|resolve|network|timed? ?out|offline", text, re.IGNORECASE
        )
        if offline:
            raise SimGANError(
                f"cannot reach Kaggle to download {KAGGLE_DATASET}: offline? ({text})"
            ) from None
        raise SimGANError(f"kagglehub could not download {KAGGLE_DATASET} ({text})") from None
    found = {}
    for folder, _, files in os.walk(root):
        for name in KAGGLE_FILES:
            if name in files and name not in found:
                found[name] = os.path.join(folder, name)
    missing = [n for n in KAGGLE_FILES if n not in found]
    if missing:
        raise SimGANError(f"{root}: the download lacks {', '.join(missing)}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SimGANError(
            f"{dest}: cannot create the folder ({e.strerror or _one_line(e)})"
        ) from None
    lines = []
    for name in KAGGLE_FILES:
        how = _place(found[name], dest / name, overwrite)
        # Loading checks the file and writes its cache, so training's first load is fast.
        eyes = load_eyes(dest / name)
        labels = ", with look_vec" if eyes.look_vec is not None else ""
        lines.append(f"{dest / name}: {how} from {found[name]} ({len(eyes)} images{labels})")
    return lines


# ----------------------------------------------------------------------------------------------
# Pipeline


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


# ----------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.data",
        description="Inspect, convert and download eye-image data sets (README: Data).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="what an HDF5 eye-image file holds; optionally a montage")
    s.add_argument("file")
    s.add_argument("--montage", metavar="OUT.png", help="save a grid of sample images")
    s.add_argument("--count", type=int, default=64, help="images in the montage (default 64)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing montage")
    s.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")

    s = sub.add_parser(
        "convert-unityeyes", help="UnityEyes N.jpg + N.json folder -> gaze.h5 layout"
    )
    s.add_argument("folder", metavar="DIR")
    s.add_argument("out", metavar="OUT.h5")
    s.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    s.add_argument(
        "--crop-scale", type=float, default=1.4, help="crop width / eye width (default 1.4)"
    )
    s.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes (default: 1 below 2000 pairs, else up to 8)",
    )

    s = sub.add_parser(
        "convert-mpiigaze", help="MPIIGaze Normalized .mat files -> real_gaze.h5 layout"
    )
    s.add_argument(
        "source", metavar="DIR", help="Data/Normalized (searched recursively) or one .mat"
    )
    s.add_argument("out", metavar="OUT.h5")
    s.add_argument("--with-labels", action="store_true", help="also store look_vec from the gaze")
    s.add_argument("--no-flip", action="store_true", help="keep right eyes as they are")
    s.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")

    s = sub.add_parser(
        "split", help="split a file into two with no person in both (README: Data, split)"
    )
    s.add_argument("file")
    s.add_argument(
        "--by", default="subject", help="the per-image dataset to split by (default subject)"
    )
    s.add_argument("--out", nargs=2, required=True, metavar=("A.h5", "B.h5"))
    s.add_argument(
        "--fraction", type=float, default=0.5, help="share of the people in A (default 0.5)"
    )
    s.add_argument("--seed", type=int, default=0, help="shuffles the people (default 0)")
    s.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    s = sub.add_parser("download", help=f"fetch {KAGGLE_DATASET} with kagglehub")
    s.add_argument("--dest", default="data", help="where to put gaze.h5 and real_gaze.h5 (data/)")
    s.add_argument("--overwrite", action="store_true", help="replace files already in DEST")
    return p


def _print_skipped(skipped: list[tuple[str, str]], total: int) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} of {total}:")
    for name, reason in skipped[:20]:
        print(f"  {name}: {reason}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more")


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        if args.montage:
            _check_montage_path(args.montage, args.file, args.overwrite)
        if args.count < 1:
            raise SimGANError(f"--count must be >= 1, got {args.count}")
        eyes = load_eyes(args.file, cache=not args.no_cache)
        print("\n".join(describe(args.file, eyes)))
        if args.montage:
            shown = write_montage(args.montage, eyes, count=args.count, overwrite=args.overwrite)
            print(f"montage: {args.montage} ({shown} images)")
    elif args.command == "convert-unityeyes":
        report = convert_unityeyes(
            args.folder,
            args.out,
            overwrite=args.overwrite,
            crop_scale=args.crop_scale,
            workers=args.workers,
        )
        print(f"wrote {report.out}: {report.count} images with look_vec")
        _print_skipped(report.skipped, report.count + len(report.skipped))
    elif args.command == "convert-mpiigaze":
        report = convert_mpiigaze(
            args.source,
            args.out,
            with_labels=args.with_labels,
            flip_right=not args.no_flip,
            overwrite=args.overwrite,
        )
        labels = "with look_vec" if args.with_labels else "without labels"
        print(f"wrote {report.out}: {report.count} images {labels}")
    elif args.command == "split":
        parts, left_out = split_by_group(
            args.file,
            args.out,
            key=args.by,
            fraction=args.fraction,
            seed=args.seed,
            overwrite=args.overwrite,
        )
        for part in parts:
            ids = ", ".join(str(i) for i in part.ids)
            print(
                f"wrote {part.out}: {len(part.ids)} people, {part.count} images ({args.by} {ids})"
            )
        if left_out:
            print(f"left out (not one row per image): {', '.join(left_out)}")
    elif args.command == "download":
        for line in download(args.dest, overwrite=args.overwrite):
            print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
