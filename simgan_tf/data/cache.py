"""The contiguous .npz copy of group-layout files, which makes every load after the first fast.

Group-layout files are slow to read (one HDF5 object per image), so for files of 2,000 images or
more `load_eyes` keeps a contiguous copy, `<file>.cache.npz`, beside the file (or in
$SIMGAN_CACHE_DIR if set, or in the project's `data/` when the file's folder is not writable),
keyed on the file's absolute path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from simgan_tf.data.eyeset import EyeSet
from simgan_tf.errors import SimGANError
from simgan_tf.files import atomic_write

# Below this many images a group-layout file reads in well under a second; a cache would be clutter.
CACHE_MIN_IMAGES = 2000
_CACHE_VERSION = 1


def _project_data_dir() -> Path:
    # simgan_tf/data/cache.py -> the project root's data/ folder.
    return Path(__file__).resolve().parents[2] / "data"


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


def _worth_caching(eyes: EyeSet) -> bool:
    # Only group-layout files are slow to read, and only from CACHE_MIN_IMAGES images on.
    return eyes.layout == "group" and len(eyes) >= CACHE_MIN_IMAGES


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
