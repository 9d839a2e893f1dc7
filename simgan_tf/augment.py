"""Photometric augmentation: random changes of appearance that leave every pixel where it was.

The label-drift estimator (gaze.train_drift_estimator) is trained on these so that it reads gaze off
the eye's geometry, not its shading: a camera, a light or a refiner that changes only appearance should
then barely move its predictions. The changes cover what another camera does to the same scene (the
simulator's "target" domain is one such camera): skin-like texture, uneven light, lens blur, a tone
curve, sensor noise and per-image histogram equalisation. Nothing here moves, flips or rotates pixels,
so a gaze label stays exact.
"""

from __future__ import annotations

import numpy as np

from simgan_tf.errors import SimGANError
from simgan_tf.photometry import equalize
from simgan_tf.simulator import _gauss_matrices, _interp_matrix

# Per-image draws, uniform in these ranges unless noted. They span (and go a little past) what the
# simulator's target camera does, so that camera's images lie inside what the estimator was shown.
BLUR_SIGMA = (0.0, 2.0)  # px
NOISE_GRAY = 12.0  # the most std of additive noise, gray levels: 12 u^2, mostly faint
GAMMA = (0.5, 2.0)  # log-uniform
CONTRAST = (0.7, 1.3)
BRIGHTNESS = (-0.12, 0.12)  # share of full scale
EQUALIZE_P = 0.5
RAMP = (0.0, 0.7)  # illumination change across the image, a ramp in a random direction
VIGNETTE = (0.0, 0.4)
SHADE = (0.0, 0.3)  # smooth (3 x 4 grid) multiplicative illumination noise
SHADOW = (0.0, 0.5)  # depth of a soft cast shadow over a random half-plane ...
SHADOW_P = 0.5  # ... present in this share of images
BLOTCH = (0.0, 0.12)  # skin-like blotches: smooth multiplicative noise on a (6 x 9) grid
GRAIN = (0.0, 0.08)  # fine multiplicative texture: per-pixel noise, partly smeared along columns
CHUNK = 1024  # images per vectorised step: bounds the (m, W, W) blur matrices' memory


def photometric_augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, H, W): each image with its own random draw of appearance changes.

    Deterministic given the generator's state. Geometry is never changed.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SimGANError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise SimGANError(
            f"images of {images.shape[1]} x {images.shape[2]} are too small to augment"
        )
    out = np.empty_like(images)
    for start in range(0, len(images), CHUNK):
        out[start : start + CHUNK] = _augment_chunk(images[start : start + CHUNK], rng)
    return out


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], m: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], m).astype(np.float32)[:, None, None]


def _smooth(rng: np.random.Generator, m: int, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """(m, h, w) bilinear upsampling of N(0, 1) on a (gh, gw) grid."""
    grid = rng.standard_normal((m, gh, gw), dtype=np.float32)
    return _interp_matrix(h, gh) @ grid @ _interp_matrix(w, gw).T


def _texture(rng: np.random.Generator, m: int, h: int, w: int) -> np.ndarray:
    """A multiplicative factor: blotches plus fine grain, the grain partly in vertical streaks
    (hair-like, as single lashes are)."""
    blotch = _uniform(rng, BLOTCH, m) * _smooth(rng, m, h, w, 6, 9)
    # Uniform, not normal: four times cheaper to draw, and after the streak blur hardly different.
    grain = (rng.random((m, h, w), dtype=np.float32) - 0.5) * np.float32(np.sqrt(12.0))
    streak = _gauss_matrices(np.array([1.5], np.float32), h)[0] @ grain
    mix = _uniform(rng, (0.0, 1.0), m)
    fine = _uniform(rng, GRAIN, m) * ((1.0 - mix) * grain + mix * 2.0 * streak)
    return 1.0 + blotch + fine


def _illumination(rng: np.random.Generator, m: int, h: int, w: int) -> np.ndarray:
    """A low-frequency multiplicative field: a ramp, a vignette, smooth shading and a soft shadow."""
    xs = (np.arange(w, dtype=np.float32) - w / 2) / w
    ys = (np.arange(h, dtype=np.float32)[:, None] - h / 2) / h
    angle = _uniform(rng, (0.0, 2 * np.pi), m)
    along = np.cos(angle) * xs + np.sin(angle) * ys
    field = 1.0 + _uniform(rng, RAMP, m) * along
    field = field - _uniform(rng, VIGNETTE, m) * 2.0 * (xs * xs + ys * ys)
    field = field * (1.0 + _uniform(rng, SHADE, m) * _smooth(rng, m, h, w, 3, 4))
    angle = _uniform(rng, (0.0, 2 * np.pi), m)
    side = np.cos(angle) * xs + np.sin(angle) * ys - _uniform(rng, (-0.5, 0.3), m)
    edge = np.clip(0.5 + side / _uniform(rng, (0.05, 0.15), m), 0.0, 1.0)
    depth = _uniform(rng, SHADOW, m) * (rng.random(m) < SHADOW_P)[:, None, None]
    return np.clip(field, 0.2, None) * (1.0 - depth * edge)


def _blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A Gaussian is symmetric, so blurring moves no edge's centre: the label is safe. sigma -> 0 gives
    # an identity matrix (the off-diagonal weights underflow to 0), so no special case is needed.
    sigma = np.maximum(_uniform(rng, BLUR_SIGMA, len(x))[:, 0, 0], 1e-3)
    h, w = x.shape[1:]
    return _gauss_matrices(sigma, h) @ x @ _gauss_matrices(sigma, w).transpose(0, 2, 1)


def _tone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, then contrast about the image's mean and a brightness shift, in [0, 1]."""
    m = len(x)
    gamma = np.exp(_uniform(rng, (np.log(GAMMA[0]), np.log(GAMMA[1])), m))
    x = np.clip(x, 0.0, 1.0) ** gamma
    mean = x.mean(axis=(1, 2), keepdims=True)
    x = (x - mean) * _uniform(rng, CONTRAST, m) + mean + _uniform(rng, BRIGHTNESS, m)
    return np.clip(x, 0.0, 1.0)


def _augment_chunk(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    m, h, w = images.shape
    # The order follows a camera: the scene's texture and light, then the lens, the tone curve, the
    # sensor's noise, and last the histogram equalisation some data sets apply to each image.
    x = images.astype(np.float32) / 255.0
    x = x * _texture(rng, m, h, w) * _illumination(rng, m, h, w)
    x = _tone(_blur(np.clip(x, 0.0, 1.0), rng), rng)
    noise = (
        NOISE_GRAY
        * _uniform(rng, (0.0, 1.0), m) ** 2
        * rng.standard_normal((m, h, w), dtype=np.float32)
    )
    out = np.clip(np.round(x * 255.0 + noise), 0, 255).astype(np.uint8)
    flat = rng.random(m) < EQUALIZE_P
    out[flat] = equalize(out[flat])
    return out
