"""What each pixel looks like: the shaded eyeball (sclera, iris, pupil, glint), skin and lashes; _draw composes them.

Every quantity is computed in float32 numpy over a batch of images at once, so the clean render makes
thousands of images a second on one core.
"""

from __future__ import annotations

import numpy as np

from simgan_tf.simulator.geometry import (
    Frame,
    IrisDisc,
    Lids,
    _col,
    _frame,
    _iris_disc,
    _lids,
    _ramp,
)
from simgan_tf.simulator.scenes import CHUNK


def _draw(s: dict[str, np.ndarray], tex_rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Rasterise scenes -> radiance in [0, 1], skin mask, upper lash mask; each (m, H, W) float32."""
    c = {k: _col(v) for k, v in s.items()}
    f = _frame(c)
    lids = _lids(c, f)
    eye = _eyeball(c, f, lids, tex_rng)
    skin = _skin(c, f, lids)
    lash, along, lash_up = _lashes(c, f, lids)
    fissure = lids.fissure
    img = fissure * eye + (1.0 - fissure) * skin * (1.0 - lash)
    outside = 1.0 - fissure
    return np.clip(img, 0.0, 1.0), outside * (1.0 - lash), outside * along * lash_up


def _eyeball(
    c: dict[str, np.ndarray], f: Frame, lids: Lids, tex_rng: np.random.Generator
) -> np.ndarray:
    """The eyeball's radiance: sclera, iris and pupil, the glint, the caruncle, the lid's shadow."""
    disc = _iris_disc(c, f)
    eye, iris_a = _iris(c, f, disc, tex_rng)
    eye = eye + c["glint"] * iris_a * _glint(c, f, disc)

    # Caruncle at the inner corner; the upper lid shades the eyeball just under its margin.
    car = np.clip((c["caruncle_end"] - f.t) * 8.0, 0.0, 1.0)
    eye = eye + car * (c["caruncle"] - eye)
    return eye * (1.0 - c["lid_shadow"] * np.clip(1.0 + lids.above / 3.0, 0.0, 1.0))


def _iris(
    c: dict[str, np.ndarray], f: Frame, disc: IrisDisc, tex_rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The sclera with the textured iris and the pupil over it, and the iris's coverage."""
    # Sclera: a Lambertian sphere; beyond its silhouette (the corners) it falls into shadow.
    x, y = f.x, f.y
    nz = np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, 1.0))
    lam = np.clip(c["lx"] * x + c["ly"] * y + c["lz"] * nz, 0.0, 1.0)
    sclera = c["sclera"] * (c["ambient"] + (1.0 - c["ambient"]) * lam)

    rho, r_px = disc.rho, f.r_px
    iris_a = _ramp((c["iris"] - rho) * r_px)
    pupil_a = _ramp((c["iris"] * c["pupil"] - rho) * r_px)
    rel = rho / c["iris"]
    # Drawn for CHUNK images (a prefix of m is stable): two radial and one concentric wave.
    phase, amp = tex_rng.uniform(0.0, 1.0, (2, CHUNK, 3, 1, 1)).astype(np.float32)[:, : len(rho)]
    phase, amp = phase * np.float32(2 * np.pi), amp * np.float32(0.15)
    theta = np.arctan2(disc.dy, disc.dx)
    texture = (
        amp[:, 0] * np.sin(9.0 * theta + phase[:, 0])
        + amp[:, 1] * np.sin(17.0 * theta + phase[:, 1])
        + amp[:, 2] * np.sin(14.0 * rel + phase[:, 2])
    )
    limbus = 1.0 - 0.6 * np.clip((rel - 0.75) * 4.0, 0.0, 1.0)
    iris = c["iris_shade"] * (1.0 + texture) * limbus
    return sclera + iris_a * (iris - sclera) + pupil_a * (c["pupil_shade"] - iris), iris_a


def _glint(c: dict[str, np.ndarray], f: Frame, disc: IrisDisc) -> np.ndarray:
    """The glint's shape: the light's mirror point on the cornea (radius 0.65 R, centre 0.47 R along
    the gaze), a small Gaussian spot."""
    hx, hy, hz = c["lx"], c["ly"], c["lz"] + 1.0
    hn = np.sqrt(hx * hx + hy * hy + hz * hz)
    glx = 0.47 * disc.gx + 0.65 * hx / hn
    gly = 0.47 * disc.gy + 0.65 * hy / hn
    g2 = ((f.x - glx) ** 2 + (f.y - gly) ** 2) * (f.r_px * f.r_px)
    return np.exp(-g2 / 0.7)


def _skin(c: dict[str, np.ndarray], f: Frame, lids: Lids) -> np.ndarray:
    """Skin: lid crease (stays put while the lid moves), brow shadow above it, lower lid margin, bags,
    the orbit's hollow."""
    xi, yf, below = f.xi, f.yf, lids.below
    tc = xi / (c["half_width"] * 1.1)
    span_c = np.clip(1.0 - tc * tc, 0.0, 1.0)
    rest = c["open"] * c["upper_rest"] + c["crease_gap"]
    crease_y = (rest * np.sqrt(span_c) - yf) * f.r_px
    crease = c["crease_dark"] * np.exp(-0.15 * crease_y * crease_y)
    brow = c["brow_dark"] * np.clip(1.0 + crease_y / 6.0, 0.0, 1.0) * np.clip(-crease_y / 2.0, 0, 1)
    bag = c["bag_dark"] * np.exp(-0.08 * (below - 5.0) ** 2) * f.span
    # The orbit is a hollow, deepest toward the nose.
    nose = 1.0 + 0.8 * np.clip(-xi / c["half_width"], 0.0, 1.0)
    socket = c["socket"] * nose * np.exp(-(xi * xi) / 2.5 - 2.0 * yf * yf)
    skin = c["skin"] * (1.0 + c["skin_slope"] * f.y) * (1.0 - crease - brow - bag - socket)
    # The wet lower lid margin.
    return skin + 0.1 * np.clip(1.0 - np.abs(below - 1.0), 0.0, 1.0) * f.span


def _lashes(
    c: dict[str, np.ndarray], f: Frame, lids: Lids
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lashes' darkness, and the upper band's two factors (along the lid, across it)."""
    # A dark band on the upper margin, thicker toward the outer corner and past it (a flick).
    t = f.t
    along = np.clip((t + 0.97) * 6.0, 0.0, 1.0) * np.clip((1.2 - t) * 6.0, 0.0, 1.0)
    width = c["lash_width"] * (1.0 + 0.6 * np.clip(t, 0.0, 1.0))
    flick = np.clip(t - 1.0, 0.0, 1.0) * f.r_px * 0.6  # the outer end sweeps up
    lifted = lids.above - flick
    lash_up = np.clip(1.0 - lifted / width, 0.0, 1.0) * _ramp(lifted + 0.5)
    lash = c["lash"] * along * lash_up
    below = lids.below
    lash = lash + c["lower_lash"] * f.span * np.clip(1.0 - below / 1.2, 0.0, 1.0) * (below > -1.0)
    return np.clip(lash, 0.0, 1.0), along, lash_up
