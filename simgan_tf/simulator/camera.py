"""The target domain's camera: skin texture and lash hairs, uneven light, lens blur, tone, noise, equalisation.

"target" is the same scenes and labels as "synthetic" (same seed, same look_vec) imaged by a different
camera: skin texture and single lash hairs, uneven illumination (a ramp, a vignette, soft cast
shadows), lens blur, a tone curve, sensor noise, and per-image histogram equalisation as in MPIIGaze.
It is the stand-in for unlabelled real data; training code sees only its images. Its imaging
parameters come from random streams of their own, so its scenes stay the same.
"""

from __future__ import annotations

import numpy as np

from simgan_tf.photometry import equalize
from simgan_tf.simulator.geometry import _U, _V, _col
from simgan_tf.simulator.scenes import CHUNK, H, W


def _interp_matrix(n: int, g: int) -> np.ndarray:
    pos = np.linspace(0, g - 1, n)
    lo = np.minimum(np.floor(pos).astype(int), g - 2)
    frac = pos - lo
    mat = np.zeros((n, g), np.float32)
    mat[np.arange(n), lo] = 1.0 - frac
    mat[np.arange(n), lo + 1] = frac
    return mat


def _gauss_matrices(sigma: np.ndarray, n: int) -> np.ndarray:
    # Per-image Gaussian blur as an (m, n, n) matrix; rows renormalised so edges do not darken.
    i = np.arange(n, dtype=np.float32)
    d2 = (i[:, None] - i[None, :]) ** 2
    k = np.exp(-d2[None] / (2.0 * sigma[:, None, None] ** 2))
    return k / k.sum(axis=2, keepdims=True)


def _smooth_noise(rng: np.random.Generator, m: int, gh: int, gw: int) -> np.ndarray:
    """Bilinearly upsampled (m, H, W) noise from a (gh, gw) grid of N(0, 1): smooth texture."""
    grid = rng.standard_normal((m, gh, gw), dtype=np.float32)
    return _interp_matrix(H, gh) @ grid @ _interp_matrix(W, gw).T


def _target(
    img: np.ndarray,
    skin: np.ndarray,
    lash: np.ndarray,
    rngs: list[np.random.Generator],
) -> np.ndarray:
    """Image the clean scene with another camera: texture, light falloff, blur, tone, noise, equalise."""
    cam, blotch_rng, pore_rng, lash_rng, noise_rng, shade_rng = rngs
    p = _camera_parameters(cam, len(img))
    img = _texture(img, skin, lash, p, blotch_rng, pore_rng, lash_rng)
    img = _illumination(img, p, shade_rng)
    return _sensor(img, p, noise_rng)


def _camera_parameters(cam: np.random.Generator, m: int) -> dict[str, np.ndarray]:
    """Each image's imaging parameters, (m, 1, 1) float32; drawn for CHUNK images (a stable prefix)."""
    k = CHUNK
    p = {
        "skin_tex": cam.uniform(0.03, 0.1, k),
        "pore": cam.uniform(0.0, 0.008, k),
        "lash_tex": cam.uniform(0.4, 0.9, k),
        "lash_reach": cam.uniform(1.0, 4.0, k),  # px that single hairs stick out past the band
        "grad": cam.uniform(0.0, 0.6, k),
        "grad_dir": cam.uniform(0.0, 2 * np.pi, k),
        "vignette": cam.uniform(0.0, 0.35, k),
        "shading": cam.uniform(0.0, 0.3, k),
        "shadow": cam.uniform(0.0, 0.45, k) * (cam.random(k) < 0.5),
        "shadow_dir": cam.uniform(0.0, 2 * np.pi, k),
        "shadow_at": cam.uniform(-0.5, 0.3, k),
        "shadow_soft": cam.uniform(0.05, 0.15, k),
        "blur": cam.uniform(0.9, 1.8, k),
        "gamma": np.exp(cam.uniform(np.log(0.55), np.log(1.8), k)),
        "noise": cam.uniform(0.002, 0.008, k),
    }
    return {key: _col(np.asarray(v[:m], np.float32)) for key, v in p.items()}


def _texture(
    img: np.ndarray,
    skin: np.ndarray,
    lash: np.ndarray,
    p: dict[str, np.ndarray],
    blotch_rng: np.random.Generator,
    pore_rng: np.random.Generator,
    lash_rng: np.random.Generator,
) -> np.ndarray:
    """Skin blotches and pores where skin shows, and single hairs growing up from the lash band."""
    m = len(img)
    pores = pore_rng.standard_normal((m, H, W), dtype=np.float32)
    tex = p["skin_tex"] * _smooth_noise(blotch_rng, m, 6, 9) + p["pore"] * pores
    # Lashes: smear the band's mask up the image (toward row 0), then break it into strands: noise
    # blurred along the vertical only.
    vertical = _gauss_matrices(np.array([1.6], np.float32), H)[0]
    hairs = vertical @ lash_rng.standard_normal((m, H, W), dtype=np.float32)
    rows = np.arange(H, dtype=np.float32)
    up = rows[None, :] - rows[:, None]  # source row minus target row; >= 0 lies below
    reach = p["lash_reach"][:, 0, :, None]
    smear = np.where(up[None] >= 0, np.exp(-up[None] / reach), 0.0).astype(np.float32)
    region = np.clip(smear @ lash, 0.0, 1.0)
    strands = np.clip(hairs * 1.5, 0.0, 1.0)
    return img * (1.0 + tex * skin) * (1.0 - p["lash_tex"] * region * strands)


def _illumination(
    img: np.ndarray, p: dict[str, np.ndarray], shade_rng: np.random.Generator
) -> np.ndarray:
    """Light falling off across the face: a ramp in a random direction, a vignette, soft shadows."""
    xs = (_U - W / 2) / W
    ys = (_V - H / 2) / H
    ramp = np.cos(p["grad_dir"]) * xs + np.sin(p["grad_dir"]) * ys
    light = 1.0 + p["grad"] * ramp - p["vignette"] * (xs * xs + ys * ys) * 2.0
    # A soft cast shadow (brow, nose, glasses frame) over part of the patch.
    side = np.cos(p["shadow_dir"]) * xs + np.sin(p["shadow_dir"]) * ys - p["shadow_at"]
    light = light * (1.0 - p["shadow"] * np.clip(0.5 + side / p["shadow_soft"], 0.0, 1.0))
    return img * light * (1.0 + p["shading"] * _smooth_noise(shade_rng, len(img), 3, 4))


def _sensor(
    img: np.ndarray, p: dict[str, np.ndarray], noise_rng: np.random.Generator
) -> np.ndarray:
    """Lens blur, tone curve and sensor noise, then uint8 and histogram equalisation."""
    sigma = p["blur"][:, 0, 0]
    img = (
        _gauss_matrices(sigma, H)
        @ np.clip(img, 0.0, 1.0)
        @ _gauss_matrices(sigma, W).transpose(0, 2, 1)
    )
    img = np.clip(img, 0.0, 1.0) ** p["gamma"]
    img = img + p["noise"] * noise_rng.standard_normal((len(img), H, W), dtype=np.float32)
    img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return equalize(img)
