"""The converters to the gaze.h5 layout: UnityEyes renders and MPIIGaze Normalized .mat files."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simgan_tf.data.checks import _check_output, _one_line
from simgan_tf.data.eyeset import IMAGE_SHAPE, mpiigaze_to_look_vec
from simgan_tf.data.hdf5 import _numeric_key, save_eyes
from simgan_tf.errors import SimGANError


@dataclass
class ConvertReport:
    """What a converter wrote and what it skipped, as (name, reason) pairs."""

    out: str
    count: int
    skipped: list[tuple[str, str]]


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
