"""Rendering: the domains, seeded random streams per block of CHUNK images, render, render_blocks and scene_parameters.

Domains: "synthetic" is the clean render (simgan_tf.simulator.appearance); "target" images the same
scenes with another camera (simgan_tf.simulator.camera).

Determinism: scenes are drawn in blocks of CHUNK images, each block from its own seeded streams, so
`render(n, d, s)` is identical across runs and `render(k, d, s)` is the first k images of `render(n, d, s)`.
"""

from __future__ import annotations

import numpy as np

from simgan_tf.errors import SimGANError
from simgan_tf.simulator.appearance import _draw
from simgan_tf.simulator.camera import _target
from simgan_tf.simulator.look_vec import pitch_yaw_to_look_vec
from simgan_tf.simulator.profiles import DEFAULT_PROFILE, get_profile
from simgan_tf.simulator.scenes import CHUNK, H, W, sample_scenes

DOMAINS = ("synthetic", "target")


def _streams(seed: int, block: int) -> list[np.random.Generator]:
    # One generator per array drawn (scene, iris texture, camera, skin blotches, pores, lashes, noise,
    # shading): with one draw each, rendering fewer images takes a prefix of the same numbers.
    children = np.random.SeedSequence([seed, block]).spawn(8)
    return [np.random.default_rng(c) for c in children]


def _render_block(
    m: int, domain: str, seed: int, block: int, profile: str
) -> tuple[np.ndarray, np.ndarray]:
    scene_rng, tex_rng, *target_rngs = _streams(seed, block)
    s = sample_scenes(scene_rng, m, profile)
    img, skin, lash = _draw(s, tex_rng)
    if domain == "target":
        out = _target(img, skin, lash, target_rngs)
    else:
        out = np.round(img * 255.0).astype(np.uint8)
    look = pitch_yaw_to_look_vec(np.stack([s["pitch"], s["yaw"]], axis=1))
    return out, look


def _check(n: int, domain: str, seed: int, profile: str = DEFAULT_PROFILE) -> None:
    if domain not in DOMAINS:
        raise SimGANError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    if int(n) < 0:
        raise SimGANError(f"the number of images must be at least 0, got {n}")
    if int(seed) < 0:
        raise SimGANError(f"the seed must be a non-negative integer, got {seed}")
    get_profile(profile)


def render_blocks(n: int, domain: str = "synthetic", seed: int = 0, profile: str = DEFAULT_PROFILE):
    """Yield (images uint8 (m, 35, 55), look_vec float32 (m, 3)) in blocks of up to CHUNK images."""
    _check(n, domain, seed, profile)
    for block, start in enumerate(range(0, int(n), CHUNK)):
        yield _render_block(min(CHUNK, int(n) - start), domain, int(seed), block, profile)


def render(
    n: int,
    domain: str = "synthetic",
    seed: int = 0,
    profile: str = DEFAULT_PROFILE,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """n eye images, uint8 (n, 35, 55), and their unit look_vec, float32 (n, 3); same seed, same output.

    domain "target" renders the same scenes (and so the same look_vec) as "synthetic" for the same seed,
    imaged by a different camera. profile names the scene distribution (PROFILES). progress=True shows
    a tqdm bar.
    """
    from tqdm import tqdm

    _check(n, domain, seed, profile)
    images = np.empty((int(n), H, W), np.uint8)
    look = np.empty((int(n), 3), np.float32)
    desc = f"simulating {domain}" + ("" if profile == DEFAULT_PROFILE else f" ({profile})")
    with tqdm(total=int(n), desc=desc, unit="img", disable=not progress) as bar:
        for i, (img, lv) in enumerate(render_blocks(n, domain, seed, profile)):
            images[i * CHUNK : i * CHUNK + len(img)] = img
            look[i * CHUNK : i * CHUNK + len(img)] = lv
            bar.update(len(img))
    return images, look


def scene_parameters(
    n: int, seed: int = 0, profile: str = DEFAULT_PROFILE
) -> dict[str, np.ndarray]:
    """The per-image scene parameters behind render(n, domain, seed, profile), either domain (see
    sample_scenes)."""
    _check(n, "synthetic", seed, profile)
    blocks = [
        sample_scenes(_streams(int(seed), b)[0], min(CHUNK, int(n) - start), profile)
        for b, start in enumerate(range(0, int(n), CHUNK))
    ]
    if not blocks:
        return {k: v[:0] for k, v in sample_scenes(_streams(int(seed), 0)[0], 0, profile).items()}
    return {k: np.concatenate([blk[k] for blk in blocks]) for k in blocks[0]}
