"""Simulated sets on disk: where each is cached (default_path), ensure_simulated and the source names."""

from __future__ import annotations

import os
from pathlib import Path

from simgan_tf.errors import SimGANError
from simgan_tf.simulator.profiles import DEFAULT_PROFILE
from simgan_tf.simulator.rendering import _check, render


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
        return path
    images, look = render(n, domain, seed, profile, progress=progress)
    save_eyes(path, images, look, source_names(domain, n, seed, profile), overwrite=True)
    return path


def source_names(domain: str, n: int, seed: int, profile: str = DEFAULT_PROFILE) -> list[str]:
    """The `path` entries of a simulated file: where each image came from."""
    where = f"simgan_tf.simulator/{domain}{_profile_tag(profile).replace('_', '/')}/seed{seed}"
    return [f"{where}/{i}" for i in range(int(n))]
