"""Simulated sets on disk: where each is cached (default_path), ensure_simulated and the source names."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from simgan_tf.errors import SimGANError
from simgan_tf.simulator.profiles import DEFAULT_PROFILE
from simgan_tf.simulator.rendering import _check, render

# A cached file's first images are compared with a fresh render of them before it is reused.
CHECK_IMAGES = 8


def _profile_tag(profile: str) -> str:
    # uniform keeps the names files had before profiles existed, so existing caches stay valid.
    return "" if profile == DEFAULT_PROFILE else f"_{profile}"


def default_path(
    domain: str,
    n: int,
    seed: int,
    data_dir: str | os.PathLike = "data",
    profile: str = DEFAULT_PROFILE,
) -> Path:
    """Where a simulated set is cached: the parameters are in the name, e.g.
    data/synthetic_n20000_seed0.h5, or data/synthetic_columbia_n20000_seed0.h5 for a profile."""
    return Path(data_dir) / f"{domain}{_profile_tag(profile)}_n{int(n)}_seed{int(seed)}.h5"


def ensure_simulated(
    domain: str,
    n: int,
    seed: int,
    data_dir: str | os.PathLike = "data",
    *,
    progress: bool = True,
    profile: str = DEFAULT_PROFILE,
) -> Path:
    """Return default_path(...), rendering and saving it first if absent (save_eyes writes atomically)."""
    from simgan_tf.data import save_eyes

    _check(n, domain, seed, profile)
    if int(n) < 1:
        raise SimGANError(f"cannot simulate {n} images; need at least 1")
    path = default_path(domain, n, seed, data_dir, profile)
    if path.exists():
        if _is_current(path, domain, seed, profile):
            return path
        print(
            f"{path}: made by another version of the simulator (or unreadable); simulating it again",
            file=sys.stderr,
        )
    images, look = render(n, domain, seed, profile, progress=progress)
    save_eyes(path, images, look, source_names(domain, n, seed, profile), overwrite=True)
    return path


def _is_current(path: Path, domain: str, seed: int, profile: str) -> bool:
    """Whether a cached file still holds what the simulator renders now (its first images): a file
    written before a change to the simulator (a profile recalibrated, say) has the same name."""
    from simgan_tf.data import load_eyes

    try:
        # Through the data cache: training's own load_eyes of this file then reads the copy made here.
        cached = load_eyes(path).images[:CHECK_IMAGES]
    except SimGANError:
        return False
    expected, _ = render(len(cached), domain, seed, profile)
    return cached.shape == expected.shape and np.array_equal(cached, expected)


def source_names(domain: str, n: int, seed: int, profile: str = DEFAULT_PROFILE) -> list[str]:
    """The `path` entries of a simulated file: where each image came from."""
    where = f"simgan_tf.simulator/{domain}{_profile_tag(profile).replace('_', '/')}/seed{seed}"
    return [f"{where}/{i}" for i in range(int(n))]
