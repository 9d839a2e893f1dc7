"""The built-in eye simulator: a procedural renderer of 35 x 55 grayscale eye patches with exact gaze labels.

It stands in for UnityEyes (the paper's simulator, a Unity application). Each image is one scene: an
eyeball (a sphere) whose iris and pupil turn with the gaze, upper and lower eyelids that follow the gaze,
eye corners with a caruncle, eyelashes, a lid crease, skin, sclera and iris shaded under one light, and a
corneal glint. Every quantity is computed in float32 numpy over a batch of images at once, with edges
anti-aliased analytically (a one-pixel ramp on the signed distance), so it makes thousands of images a
second on one core.

look_vec convention (the UnityEyes one; the rest of simgan_tf relies on it)
    look_vec = (x, y, z), a unit gaze vector in camera coordinates: x toward the image's right, y toward
    the image's top, z away from the camera into the scene. An eye looking straight into the camera has
    look_vec (0, 0, -1). pitch = asin(y) (positive: looking up), yaw = atan2(x, -z) (positive: looking
    toward the image's right). `look_vec_to_pitch_yaw` and `pitch_yaw_to_look_vec` convert.

Scenes: gaze pitch and yaw uniform in +-30 degrees (UnityEyes' default eye-rotation range). The head is
frontal, as in MPIIGaze's normalised patches, so the eye corners fix where the eyeball's centre is and
the label can be read off the image exactly. Per image the simulator varies eye size, place and in-plane
rotation, canthal tilt, which side the inner corner is on, eye opening, lid shapes, iris size, texture and
shade, pupil size, sclera and skin tone, the light's direction and the glint.

Domains: "synthetic" is the clean render. "target" is the same scenes and labels (same seed, same
look_vec) imaged by a different camera: skin texture and single lash hairs, uneven illumination (a
ramp, a vignette, soft cast shadows), lens blur, a tone curve, sensor noise, and per-image histogram
equalisation as in MPIIGaze. It is the stand-in for unlabelled real data; training code sees only its
images. Its imaging parameters come from random streams of their own, so its scenes stay the same.

Determinism: scenes are drawn in blocks of CHUNK images, each block from its own seeded streams, so
`render(n, d, s)` is identical across runs and `render(k, d, s)` is the first k images of `render(n, d, s)`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from simgan_tf.errors import SimGANError

H, W = 35, 55
DOMAINS = ("synthetic", "target")
CHUNK = 1000  # images per block of random streams; fixed, so output never depends on batching
PITCH_RANGE = math.radians(30.0)
YAW_RANGE = math.radians(30.0)
# Share of eyes with the inner corner (caruncle) on the image's left; most of the real set's are.
INNER_LEFT = 0.8

_U = np.arange(W, dtype=np.float32)[None, None, :]
_V = np.arange(H, dtype=np.float32)[None, :, None]


def pitch_yaw_to_look_vec(py: np.ndarray) -> np.ndarray:
    """(N, 2) pitch, yaw in radians -> (N, 3) unit look_vec (x right, y up, z into the scene)."""
    py = np.asarray(py, dtype=np.float64)
    p, y = py[:, 0], py[:, 1]
    v = np.stack([np.cos(p) * np.sin(y), np.sin(p), -np.cos(p) * np.cos(y)], axis=1)
    return v.astype(np.float32)


def look_vec_to_pitch_yaw(v: np.ndarray) -> np.ndarray:
    """(N, 3) look_vec of any length -> (N, 2) pitch = asin(y), yaw = atan2(x, -z), in radians."""
    v = np.asarray(v, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    pitch = np.arcsin(np.clip(v[:, 1], -1.0, 1.0))
    yaw = np.arctan2(v[:, 0], -v[:, 2])
    return np.stack([pitch, yaw], axis=1).astype(np.float32)


def _streams(seed: int, block: int) -> list[np.random.Generator]:
    # One generator per array drawn (scene, iris texture, camera, skin blotches, pores, lashes, noise,
    # shading): with one draw each, rendering fewer images takes a prefix of the same numbers.
    children = np.random.SeedSequence([seed, block]).spawn(8)
    return [np.random.default_rng(c) for c in children]


def sample_scenes(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
    """Draw CHUNK scenes (always CHUNK, so any prefix is stable) and keep the first m; units: pixels or R.

    Lengths marked R are in eyeball radii; `radius` is the eyeball radius in pixels.
    """
    k = CHUNK
    u = rng.uniform

    def sign(p: float) -> np.ndarray:
        return np.where(rng.random(k) < p, 1.0, -1.0)

    pitch = u(-PITCH_RANGE, PITCH_RANGE, k)
    yaw = u(-YAW_RANGE, YAW_RANGE, k)
    light = np.stack([u(-0.7, 0.7, k), u(0.0, 0.8, k), np.ones(k)], axis=1)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    s = {
        "pitch": pitch,
        "yaw": yaw,
        "radius": u(16.5, 19.0, k),
        "cx": 26.5 + u(-2.0, 2.0, k),
        "cy": 16.5 + u(-1.5, 1.5, k),
        "roll": np.radians(u(-7.0, 7.0, k)),
        "tilt": np.radians(u(3.0, 11.0, k)),  # outer corner higher than the inner one
        "mirror": sign(INNER_LEFT),
        "half_width": u(1.28, 1.42, k),  # R; corner to corner about 48 px, as in the real set
        "open": u(0.75, 1.15, k),
        "upper_pow": u(0.45, 0.7, k),
        "lower_pow": u(0.45, 0.75, k),
        "upper_skew": u(-0.15, 0.15, k),
        "lower_skew": u(-0.15, 0.15, k),
        "iris": u(0.46, 0.52, k),  # R; the real set's iris is about 17 px across
        "pupil": u(0.3, 0.55, k),  # share of the iris radius
        "iris_shade": u(0.04, 0.25, k),
        "pupil_shade": u(0.0, 0.04, k),
        "sclera": u(0.6, 0.9, k),
        "skin": u(0.7, 0.98, k),
        "skin_slope": u(-0.25, 0.1, k),  # mostly lit from below: the cheek
        "crease_gap": u(0.18, 0.42, k),  # R above the upper lid at rest
        "crease_dark": u(0.05, 0.3, k),
        "brow_dark": u(0.0, 0.35, k),
        "bag_dark": u(0.0, 0.3, k),
        "socket": u(0.1, 0.4, k),
        "lash": u(0.7, 1.0, k),
        "lash_width": u(1.5, 3.2, k),  # px
        "lower_lash": u(0.2, 0.6, k),
        "lid_shadow": u(0.2, 0.6, k),
        "caruncle": u(0.3, 0.6, k),
        "caruncle_end": u(-0.86, -0.74, k),
        "glint": u(0.3, 1.0, k) * (rng.random(k) < 0.75),
        "ambient": u(0.35, 0.6, k),
        "lx": light[:, 0],
        "ly": light[:, 1],
        "lz": light[:, 2],
    }
    return {key: np.asarray(val[:m], dtype=np.float32) for key, val in s.items()}


def _col(x: np.ndarray) -> np.ndarray:
    return x[:, None, None]


def _ramp(d: np.ndarray) -> np.ndarray:
    # Coverage of a pixel by a straight edge at signed distance d (pixels): a box-filtered step.
    return np.clip(d + 0.5, 0.0, 1.0)


def _draw(s: dict[str, np.ndarray], tex_rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Rasterise scenes -> radiance in [0, 1], skin mask, upper lash mask; each (m, H, W) float32."""
    m = len(s["pitch"])
    c = {k: _col(v) for k, v in s.items()}
    r_px = c["radius"]
    x = (_U - c["cx"]) / r_px  # camera frame, eyeball radii, y up
    y = (c["cy"] - _V) / r_px

    # Lid frame: rotated by roll and canthal tilt; xi runs from the inner corner (-) to the outer (+).
    ang = c["roll"] + c["mirror"] * c["tilt"]
    ca, sa = np.cos(ang), np.sin(ang)
    xi = c["mirror"] * (ca * x + sa * y)
    yf = ca * y - sa * x
    t = xi / c["half_width"]
    span = np.clip(1.0 - t * t, 0.0, 1.0)

    # Lids follow the eye: the upper lid drops almost with the iris when looking down, the lower one less.
    sin_p, sin_y = np.sin(c["pitch"]), np.sin(c["yaw"])
    up_h = np.maximum(c["open"] * (0.42 + 0.68 * sin_p), 0.04)
    lo_h = np.maximum(c["open"] * (0.50 - 0.30 * sin_p), 0.12)
    look_side = c["mirror"] * sin_y  # lids bulge toward where the cornea points
    y_up = up_h * span ** c["upper_pow"] * (1.0 + c["upper_skew"] + 0.3 * look_side * t)
    y_lo = -lo_h * span ** c["lower_pow"] * (1.0 + c["lower_skew"] + 0.2 * look_side * t)
    above = (yf - y_up) * r_px  # px above the upper lid margin
    below = (y_lo - yf) * r_px  # px below the lower lid margin
    # The last factor closes the slit past the corners, where both lids meet on one line.
    tips = np.clip((1.0 - np.abs(t)) * c["half_width"] * r_px, 0.0, 1.0)
    fissure = _ramp(-above) * _ramp(-below) * tips

    # Sclera: a Lambertian sphere; beyond its silhouette (the corners) it falls into shadow.
    nz = np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, 1.0))
    lam = np.clip(c["lx"] * x + c["ly"] * y + c["lz"] * nz, 0.0, 1.0)
    sclera = c["sclera"] * (c["ambient"] + (1.0 - c["ambient"]) * lam)

    # Iris: a disc on the plane normal to the gaze g, d = sqrt(1 - r^2) from the centre; rho is the
    # in-plane distance of the point that projects to each pixel, so the ellipse is exact.
    gx = np.cos(c["pitch"]) * np.sin(c["yaw"])
    gy = sin_p
    gz = -np.cos(c["pitch"]) * np.cos(c["yaw"])
    depth = np.sqrt(1.0 - c["iris"] ** 2)
    dx = x - depth * gx
    dy = y - depth * gy
    dz = -(gx * dx + gy * dy) / gz
    rho = np.sqrt(dx * dx + dy * dy + dz * dz)
    iris_a = _ramp((c["iris"] - rho) * r_px)
    pupil_a = _ramp((c["iris"] * c["pupil"] - rho) * r_px)
    rel = rho / c["iris"]
    phase, amp = tex_rng.uniform(0.0, 1.0, (2, CHUNK, 3, 1, 1)).astype(np.float32)[:, :m]
    phase, amp = phase * np.float32(2 * np.pi), amp * np.float32(0.15)
    theta = np.arctan2(dy, dx)
    texture = (
        amp[:, 0] * np.sin(9.0 * theta + phase[:, 0])
        + amp[:, 1] * np.sin(17.0 * theta + phase[:, 1])
        + amp[:, 2] * np.sin(14.0 * rel + phase[:, 2])
    )
    limbus = 1.0 - 0.6 * np.clip((rel - 0.75) * 4.0, 0.0, 1.0)
    iris = c["iris_shade"] * (1.0 + texture) * limbus
    eye = sclera + iris_a * (iris - sclera) + pupil_a * (c["pupil_shade"] - iris)

    # Glint: the light's mirror point on the cornea (radius 0.65 R, centre 0.47 R along the gaze).
    hx, hy, hz = c["lx"], c["ly"], c["lz"] + 1.0
    hn = np.sqrt(hx * hx + hy * hy + hz * hz)
    glx = 0.47 * gx + 0.65 * hx / hn
    gly = 0.47 * gy + 0.65 * hy / hn
    g2 = ((x - glx) ** 2 + (y - gly) ** 2) * (r_px * r_px)
    eye = eye + c["glint"] * iris_a * np.exp(-g2 / 0.7)

    # Caruncle at the inner corner; the upper lid shades the eyeball just under its margin.
    car = np.clip((c["caruncle_end"] - t) * 8.0, 0.0, 1.0)
    eye = eye + car * (c["caruncle"] - eye)
    eye = eye * (1.0 - c["lid_shadow"] * np.clip(1.0 + above / 3.0, 0.0, 1.0))

    # Skin: lid crease (stays put while the lid moves), brow shadow above it, lower lid margin, bags.
    tc = xi / (c["half_width"] * 1.1)
    span_c = np.clip(1.0 - tc * tc, 0.0, 1.0)
    rest = c["open"] * 0.42 + c["crease_gap"]
    crease_y = (rest * np.sqrt(span_c) - yf) * r_px
    crease = c["crease_dark"] * np.exp(-0.15 * crease_y * crease_y)
    brow = c["brow_dark"] * np.clip(1.0 + crease_y / 6.0, 0.0, 1.0) * np.clip(-crease_y / 2.0, 0, 1)
    bag = c["bag_dark"] * np.exp(-0.08 * (below - 5.0) ** 2) * span
    # The orbit is a hollow, deepest toward the nose.
    nose = 1.0 + 0.8 * np.clip(-xi / c["half_width"], 0.0, 1.0)
    socket = c["socket"] * nose * np.exp(-(xi * xi) / 2.5 - 2.0 * yf * yf)
    skin = c["skin"] * (1.0 + c["skin_slope"] * y) * (1.0 - crease - brow - bag - socket)
    skin = skin + 0.1 * np.clip(1.0 - np.abs(below - 1.0), 0.0, 1.0) * span  # wet lower lid margin

    # Lashes: a dark band on the upper margin, thicker toward the outer corner and past it (a flick).
    along = np.clip((t + 0.97) * 6.0, 0.0, 1.0) * np.clip((1.2 - t) * 6.0, 0.0, 1.0)
    width = c["lash_width"] * (1.0 + 0.6 * np.clip(t, 0.0, 1.0))
    flick = np.clip(t - 1.0, 0.0, 1.0) * r_px * 0.6  # the outer end sweeps up
    lifted = above - flick
    lash_up = np.clip(1.0 - lifted / width, 0.0, 1.0) * _ramp(lifted + 0.5)
    lash = c["lash"] * along * lash_up
    lash = lash + c["lower_lash"] * span * np.clip(1.0 - below / 1.2, 0.0, 1.0) * (below > -1.0)
    lash = np.clip(lash, 0.0, 1.0)

    img = fissure * eye + (1.0 - fissure) * skin * (1.0 - lash)
    outside = 1.0 - fissure
    return np.clip(img, 0.0, 1.0), outside * (1.0 - lash), outside * along * lash_up


def _smooth_noise(rng: np.random.Generator, m: int, gh: int, gw: int) -> np.ndarray:
    """Bilinearly upsampled (m, H, W) noise from a (gh, gw) grid of N(0, 1): smooth texture."""
    grid = rng.standard_normal((m, gh, gw), dtype=np.float32)
    return _interp_matrix(H, gh) @ grid @ _interp_matrix(W, gw).T


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


def equalize(images: np.ndarray) -> np.ndarray:
    """Per-image histogram equalisation of uint8 (m, H, W), the cdf mapping of OpenCV's equalizeHist."""
    m = len(images)
    flat = images.reshape(m, -1).astype(np.int64)
    counts = np.bincount((flat + 256 * np.arange(m)[:, None]).ravel(), minlength=256 * m)
    cdf = np.cumsum(counts.reshape(m, 256), axis=1)
    cdf_min = cdf[np.arange(m), flat.min(axis=1)][:, None]
    denom = np.maximum(flat.shape[1] - cdf_min, 1)
    lut = np.clip(np.round((cdf - cdf_min) * 255.0 / denom), 0, 255).astype(np.uint8)
    return np.take_along_axis(lut, flat, axis=1).reshape(images.shape)


def _target(
    img: np.ndarray,
    skin: np.ndarray,
    lash: np.ndarray,
    rngs: list[np.random.Generator],
) -> np.ndarray:
    """Image the clean scene with another camera: texture, light falloff, blur, tone, noise, equalise."""
    m = len(img)
    cam, blotch_rng, pore_rng, lash_rng, noise_rng, shade_rng = rngs
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
    p = {key: _col(np.asarray(v[:m], np.float32)) for key, v in p.items()}

    # Skin: blotches and pores.
    pores = pore_rng.standard_normal((m, H, W), dtype=np.float32)
    tex = p["skin_tex"] * _smooth_noise(blotch_rng, m, 6, 9) + p["pore"] * pores
    # Lashes: single hairs growing up from the band. Smear the band's mask up the image (toward row
    # 0), then break it into strands: noise blurred along the vertical only.
    vertical = _gauss_matrices(np.array([1.6], np.float32), H)[0]
    hairs = vertical @ lash_rng.standard_normal((m, H, W), dtype=np.float32)
    rows = np.arange(H, dtype=np.float32)
    up = rows[None, :] - rows[:, None]  # source row minus target row; >= 0 lies below
    reach = p["lash_reach"][:, 0, :, None]
    smear = np.where(up[None] >= 0, np.exp(-up[None] / reach), 0.0).astype(np.float32)
    region = np.clip(smear @ lash, 0.0, 1.0)
    strands = np.clip(hairs * 1.5, 0.0, 1.0)
    img = img * (1.0 + tex * skin) * (1.0 - p["lash_tex"] * region * strands)

    # Light falling off across the face: a ramp in a random direction, a vignette, soft shadows.
    xs = (_U - W / 2) / W
    ys = (_V - H / 2) / H
    ramp = np.cos(p["grad_dir"]) * xs + np.sin(p["grad_dir"]) * ys
    light = 1.0 + p["grad"] * ramp - p["vignette"] * (xs * xs + ys * ys) * 2.0
    # A soft cast shadow (brow, nose, glasses frame) over part of the patch.
    side = np.cos(p["shadow_dir"]) * xs + np.sin(p["shadow_dir"]) * ys - p["shadow_at"]
    light = light * (1.0 - p["shadow"] * np.clip(0.5 + side / p["shadow_soft"], 0.0, 1.0))
    img = img * light * (1.0 + p["shading"] * _smooth_noise(shade_rng, m, 3, 4))

    sigma = p["blur"][:, 0, 0]
    img = (
        _gauss_matrices(sigma, H)
        @ np.clip(img, 0.0, 1.0)
        @ _gauss_matrices(sigma, W).transpose(0, 2, 1)
    )
    img = np.clip(img, 0.0, 1.0) ** p["gamma"]
    img = img + p["noise"] * noise_rng.standard_normal((m, H, W), dtype=np.float32)
    img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return equalize(img)


def _render_block(m: int, domain: str, seed: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    scene_rng, tex_rng, *target_rngs = _streams(seed, block)
    s = sample_scenes(scene_rng, m)
    img, skin, lash = _draw(s, tex_rng)
    if domain == "target":
        out = _target(img, skin, lash, target_rngs)
    else:
        out = np.round(img * 255.0).astype(np.uint8)
    look = pitch_yaw_to_look_vec(np.stack([s["pitch"], s["yaw"]], axis=1))
    return out, look


def _check(n: int, domain: str, seed: int) -> None:
    if domain not in DOMAINS:
        raise SimGANError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    if int(n) < 0:
        raise SimGANError(f"the number of images must be at least 0, got {n}")
    if int(seed) < 0:
        raise SimGANError(f"the seed must be a non-negative integer, got {seed}")


def render_blocks(n: int, domain: str = "synthetic", seed: int = 0):
    """Yield (images uint8 (m, 35, 55), look_vec float32 (m, 3)) in blocks of up to CHUNK images."""
    _check(n, domain, seed)
    for block, start in enumerate(range(0, int(n), CHUNK)):
        yield _render_block(min(CHUNK, int(n) - start), domain, int(seed), block)


def render(
    n: int, domain: str = "synthetic", seed: int = 0, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """n eye images, uint8 (n, 35, 55), and their unit look_vec, float32 (n, 3); same seed, same output.

    domain "target" renders the same scenes (and so the same look_vec) as "synthetic" for the same seed,
    imaged by a different camera. progress=True shows a tqdm bar.
    """
    from tqdm import tqdm

    _check(n, domain, seed)
    images = np.empty((int(n), H, W), np.uint8)
    look = np.empty((int(n), 3), np.float32)
    with tqdm(total=int(n), desc=f"simulating {domain}", unit="img", disable=not progress) as bar:
        for i, (img, lv) in enumerate(render_blocks(n, domain, seed)):
            images[i * CHUNK : i * CHUNK + len(img)] = img
            look[i * CHUNK : i * CHUNK + len(img)] = lv
            bar.update(len(img))
    return images, look


def scene_parameters(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The per-image scene parameters behind render(n, domain, seed), either domain (see sample_scenes)."""
    _check(n, "synthetic", seed)
    blocks = [
        sample_scenes(_streams(int(seed), b)[0], min(CHUNK, int(n) - start))
        for b, start in enumerate(range(0, int(n), CHUNK))
    ]
    if not blocks:
        return {k: v[:0] for k, v in sample_scenes(_streams(int(seed), 0)[0], 0).items()}
    return {k: np.concatenate([blk[k] for blk in blocks]) for k in blocks[0]}


def default_path(domain: str, n: int, seed: int, data_dir: str | os.PathLike = "data") -> Path:
    """Where a simulated set is cached: the parameters are in the name, e.g. data/synthetic_n20000_seed0.h5."""
    return Path(data_dir) / f"{domain}_n{int(n)}_seed{int(seed)}.h5"


def ensure_simulated(
    domain: str, n: int, seed: int, data_dir: str | os.PathLike = "data", *, progress: bool = True
) -> Path:
    """Return default_path(...), rendering and saving it first if absent (save_eyes writes atomically)."""
    from simgan_tf.data import save_eyes

    _check(n, domain, seed)
    if int(n) < 1:
        raise SimGANError(f"cannot simulate {n} images; need at least 1")
    path = default_path(domain, n, seed, data_dir)
    if path.exists():
        return path
    images, look = render(n, domain, seed, progress=progress)
    save_eyes(path, images, look, source_names(domain, n, seed), overwrite=True)
    return path


def source_names(domain: str, n: int, seed: int) -> list[str]:
    """The `path` entries of a simulated file: where each image came from."""
    return [f"simgan_tf.simulator/{domain}/seed{seed}/{i}" for i in range(int(n))]
