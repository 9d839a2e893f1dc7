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

Scenes are drawn from a named profile (PROFILES; `render(..., profile=...)`): "uniform" (the default,
and the only distribution before profiles existed: its images are unchanged) has gaze pitch and yaw
uniform in +-30 degrees (UnityEyes' default eye-rotation range) and a frontal head; "columbia" and
"mpiigaze" draw the gaze and head pose of those real sets, and an eye geometry (size, placement, iris
size and darkness, lid heights and how the lids follow the gaze) calibrated against their images with
simgan_tf.eyestats. Per image the simulator varies eye size, place and in-plane rotation, canthal tilt,
which side the inner corner is on, eye opening, lid shapes, iris size, texture and shade, pupil size,
sclera and skin tone, the light's direction and the glint.

Head pose: `head_yaw` turns the eye region (corners, lids, skin) about the vertical axis through the
eyeball's centre. The region lies `corner_depth` radii in front of that centre, so a turned head shows
it foreshortened by cos(head_yaw) and shifted against the eyeball by corner_depth * sin(head_yaw).
look_vec stays the camera-frame gaze the eyeball was rendered with (camera yaw = the gaze's yaw relative
to the head minus head_yaw), so labels stay exact.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simgan_tf.errors import SimGANError
from simgan_tf.photometry import equalize  # noqa: F401 - also simulator.equalize, as before

H, W = 35, 55
DOMAINS = ("synthetic", "target")
CHUNK = 1000  # images per block of random streams; fixed, so output never depends on batching
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


# Every scene parameter drawn uniformly in [low, high], in the order drawn (uniform's images depend on
# it); lengths marked R are in eyeball radii. Profiles override some of the ranges.
_RANGES: dict[str, tuple[float, float]] = {
    "pitch": (-30.0, 30.0),  # deg, gaze; the head is never pitched, so camera and head frames agree
    "yaw": (-30.0, 30.0),  # deg, gaze relative to the head; the camera sees yaw - head_yaw
    "light_x": (-0.7, 0.7),  # the light's direction before normalising (z = 1): toward the right
    "light_y": (0.0, 0.8),  # and up: mostly from above, so the glint sits above the pupil
    "radius": (16.5, 19.0),  # px, of the eyeball, before a corner crop's zoom
    "cx": (-2.0, 2.0),  # px around the profile's centre: the eye region's centre in the patch
    "cy": (-1.5, 1.5),
    "roll": (-7.0, 7.0),  # deg
    "tilt": (3.0, 11.0),  # deg, outer corner higher than the inner one
    "half_width": (1.28, 1.42),  # R; corner to corner about 48 px, as in MPIIGaze
    "open": (0.75, 1.15),
    "upper_pow": (0.45, 0.7),
    "lower_pow": (0.45, 0.75),
    "upper_skew": (-0.15, 0.15),
    "lower_skew": (-0.15, 0.15),
    "iris": (0.46, 0.52),  # R; MPIIGaze's iris is about 17 px across
    "pupil": (0.3, 0.55),  # share of the iris radius
    "iris_shade": (0.04, 0.25),
    "pupil_shade": (0.0, 0.04),
    "sclera": (0.6, 0.9),
    "skin": (0.7, 0.98),
    "skin_slope": (-0.25, 0.1),  # mostly lit from below: the cheek
    "crease_gap": (0.18, 0.42),  # R above the upper lid at rest
    "crease_dark": (0.05, 0.3),
    "brow_dark": (0.0, 0.35),
    "bag_dark": (0.0, 0.3),
    "socket": (0.1, 0.4),
    "lash": (0.7, 1.0),
    "lash_width": (1.5, 3.2),  # px
    "lower_lash": (0.2, 0.6),
    "lid_shadow": (0.2, 0.6),
    "caruncle": (0.3, 0.6),
    "caruncle_end": (-0.86, -0.74),
    "glint": (0.3, 1.0),  # strength, where there is one
    "ambient": (0.35, 0.6),
    # Drawn last, so that profiles without head pose keep the first streams' numbers.
    # deg, the eye region turned about the vertical: + toward the image's left.
    "head_yaw": (0.0, 0.0),
    "corner_depth": (0.35, 0.55),  # R the corners and lids lie in front of the eyeball's centre
    # R the eyeball sits toward the outer corner from the corners' midpoint.
    "ball_offset": (0.0, 0.0),
    # Lid margins for a level gaze, R above and below the centre, and how far they rise per unit
    # sin(pitch); all times `open`.
    "upper_rest": (0.42, 0.42),
    "upper_follow": (0.68, 0.68),
    "lower_rest": (0.5, 0.5),
    "lower_follow": (0.3, 0.3),
    # How far the lids' peaks follow the cornea sideways, per unit sin(yaw relative to the head).
    "upper_bulge": (0.3, 0.3),
    "lower_bulge": (0.2, 0.2),
}
_ORDER = tuple(_RANGES)
# Drawn in these groups, between the draws that are not plain ranges (side, glint, head yaw).
_FIRST = _ORDER[_ORDER.index("radius") : _ORDER.index("half_width")]
_MIDDLE = _ORDER[_ORDER.index("half_width") : _ORDER.index("glint")]
_LAST = _ORDER[_ORDER.index("corner_depth") :]


@dataclass(frozen=True)
class SceneProfile:
    """A named scene distribution: the gaze and head pose drawn, and where and how big the eye is.

    ranges: overrides of _RANGES (degrees for angles). centre: where the eye region's centre sits in
    the patch, px (x, y). corner_crop: the patch is cut around the eye corners (as Columbia Gaze's
    are), so a turned head's eye keeps its width in the image and the eyeball looks bigger, by
    1 / cos(head_yaw); otherwise (MPIIGaze's normalisation, a fixed camera distance) it foreshortens.
    """

    description: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    centre: tuple[float, float] = (26.5, 16.5)
    inner_left: float = INNER_LEFT
    glint_share: float = 0.75
    corner_crop: bool = False


PROFILES: dict[str, SceneProfile] = {
    "uniform": SceneProfile(
        "gaze pitch and yaw uniform in +-30 deg (UnityEyes' default range), frontal head"
    ),
}
PROFILES["columbia"] = SceneProfile(
    "Columbia Gaze: gaze pitch -10..10, yaw -15..15 deg of a head turned -30..30 deg (camera yaw ="
    " yaw - head yaw), patches cut around the corners; eyes measured on its images",
    # Measured on Columbia's images with simgan_tf.eyestats (README, "Simulator"): the pupil moves
    # 0.28 px per degree of gaze relative to the head and -0.13 per degree of head pose, so the
    # eyeball is about 19 px in radius and lies about 0.5 R behind the corners, which are 44 px apart.
    ranges={
        "pitch": (-10.0, 10.0),
        "yaw": (-15.0, 15.0),
        "head_yaw": (-30.0, 30.0),
        "radius": (17.5, 20.0),
        "half_width": (1.02, 1.17),
        "corner_depth": (0.43, 0.63),
        # At a straight gaze the iris sits 0.4 px toward the outer corner from the corners' midpoint.
        "ball_offset": (0.03, 0.08),
        # Both lids cover a large dark iris: the dark blob rises only 0.07 px per degree of pitch
        # while the upper lid rises 0.12; the lower lid hardly moves. Lid heights vary per person
        # apart, so the opening alone does not give the pitch away.
        "open": (0.85, 1.15),
        "iris": (0.5, 0.58),
        "iris_shade": (0.07, 0.17),  # dark, yet lighter than the pupil, which must stay visible
        "pupil": (0.25, 0.45),
        "pupil_shade": (0.0, 0.03),
        "upper_rest": (0.27, 0.41),
        "upper_follow": (0.37, 0.37),
        "lower_rest": (0.34, 0.48),
        "lower_follow": (0.05, 0.05),
        "upper_bulge": (0.0, 0.0),
        "lower_bulge": (0.0, 0.0),
        # Bright sclera on darker skin, and no dark skin past the corners (Columbia's is plain).
        "sclera": (0.75, 1.0),
        "skin": (0.45, 0.8),
        "brow_dark": (0.0, 0.2),
        "bag_dark": (0.0, 0.2),
        "socket": (0.05, 0.25),
        # Little shading of the eyeball: a sphere's shading told an estimator where the eyeball's
        # centre was, which real eyes do not show, and read as looking up (pitch bias 6.6 -> 2.9 deg).
        "ambient": (0.8, 0.95),
        "light_y": (-0.3, 0.6),
    },
    centre=(27.5, 15.6),
    inner_left=1.0,
    glint_share=0.4,
    corner_crop=True,
)
PROFILES["mpiigaze"] = SceneProfile(
    "MPIIGaze (normalised laptop-camera patches): gaze mostly downward, pitch -25..5 deg, yaw -20..20"
    " deg of a head turned -10..10 deg; eyes measured on its images",
    ranges={
        "pitch": (-25.0, 5.0),
        "yaw": (-20.0, 20.0),
        "head_yaw": (-10.0, 10.0),
        "cx": (-3.5, 3.5),
        "half_width": (1.15, 1.3),
        "open": (0.85, 1.15),
        "iris": (0.48, 0.56),
        "iris_shade": (0.07, 0.17),
        "pupil": (0.25, 0.45),
        "pupil_shade": (0.0, 0.03),
        "brow_dark": (0.0, 0.25),
        "socket": (0.05, 0.3),
        "corner_depth": (0.43, 0.63),
        "upper_rest": (0.4, 0.4),
        "upper_follow": (0.37, 0.37),
        "lower_rest": (0.46, 0.46),
        "lower_follow": (0.15, 0.15),
    },
    centre=(27.0, 15.5),
)
DEFAULT_PROFILE = "uniform"


def get_profile(name: str) -> SceneProfile:
    """The scene profile called `name`; a SimGANError naming the known ones otherwise."""
    if name not in PROFILES:
        raise SimGANError(f"unknown scene profile {name!r}; expected one of {', '.join(PROFILES)}")
    return PROFILES[name]


def sample_scenes(
    rng: np.random.Generator, m: int, profile: str = DEFAULT_PROFILE
) -> dict[str, np.ndarray]:
    """Draw CHUNK scenes (always CHUNK, so any prefix is stable) and keep the first m; units: pixels,
    radians or R (eyeball radii, see _RANGES). `radius` is the eyeball radius in pixels, `cx`, `cy` its
    centre; `pitch`, `yaw` the gaze in the camera frame (what look_vec says); `head_yaw` the eye region's.
    """
    prof = get_profile(profile)
    ranges = {**_RANGES, **prof.ranges}
    k = CHUNK
    u = rng.uniform

    def draw(keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {key: u(*ranges[key], k) for key in keys}

    def angle(key: str) -> np.ndarray:
        lo, hi = ranges[key]
        return u(math.radians(lo), math.radians(hi), k)

    pitch, yaw = angle("pitch"), angle("yaw")
    light = np.stack([u(*ranges["light_x"], k), u(*ranges["light_y"], k), np.ones(k)], axis=1)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    s = {"pitch": pitch, "yaw": yaw, **draw(_FIRST)}
    s["mirror"] = np.where(rng.random(k) < prof.inner_left, 1.0, -1.0)
    s.update(draw(_MIDDLE))
    s["glint"] = u(*ranges["glint"], k) * (rng.random(k) < prof.glint_share)
    s.update(draw(("ambient",)))
    s["head_yaw"] = angle("head_yaw")
    s.update(draw(_LAST))
    s.update({"lx": light[:, 0], "ly": light[:, 1], "lz": light[:, 2]})
    _place(s, prof)
    return {key: np.asarray(val[:m], dtype=np.float32) for key, val in s.items()}


def _ball_shift(s: dict[str, np.ndarray]) -> np.ndarray:
    """R the eyeball's centre lies right of the corners' midpoint in the image: it sits behind them,
    so a turned head shows it displaced by corner_depth * sin(head_yaw), plus ball_offset."""
    return s["corner_depth"] * np.sin(s["head_yaw"]) + s["mirror"] * s["ball_offset"]


def _place(s: dict[str, np.ndarray], prof: SceneProfile) -> None:
    """Scene parameters as _draw reads them: radians, the camera-frame yaw, the eyeball's centre."""
    turn = s["head_yaw"]
    s["roll"], s["tilt"] = np.radians(s["roll"]), np.radians(s["tilt"])
    s["yaw"] = s["yaw"] - turn
    if prof.corner_crop:
        s["radius"] = s["radius"] / np.cos(turn)
    # The eye region is placed in the patch, and the eyeball where it lies against the region.
    s["cx"] = prof.centre[0] + s["cx"] + _ball_shift(s) * s["radius"]
    s["cy"] = prof.centre[1] + s["cy"]


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

    # The eye region (corners, lids, skin) lies on a surface corner_depth in front of the eyeball's
    # centre; turned by head_yaw it is seen foreshortened and shifted against the eyeball. (With no
    # turn and no ball_offset this is x itself, exactly, so uniform's scenes render as they always have.)
    turn = c["head_yaw"]
    xh = (x + _ball_shift(c)) / np.cos(turn)
    # Lid frame: rotated by roll and canthal tilt; xi runs from the inner corner (-) to the outer (+).
    ang = c["roll"] + c["mirror"] * c["tilt"]
    ca, sa = np.cos(ang), np.sin(ang)
    xi = c["mirror"] * (ca * xh + sa * y)
    yf = ca * y - sa * xh
    t = xi / c["half_width"]
    span = np.clip(1.0 - t * t, 0.0, 1.0)

    # Lids follow the eye: the upper lid drops almost with the iris when looking down, the lower one less.
    sin_p, sin_y = np.sin(c["pitch"]), np.sin(c["yaw"] + turn)  # yaw relative to the head
    up_h = np.maximum(c["open"] * (c["upper_rest"] + c["upper_follow"] * sin_p), 0.04)
    lo_h = np.maximum(c["open"] * (c["lower_rest"] - c["lower_follow"] * sin_p), 0.12)
    look_side = c["mirror"] * sin_y  # lids bulge toward where the cornea points
    y_up = (
        up_h * span ** c["upper_pow"] * (1.0 + c["upper_skew"] + c["upper_bulge"] * look_side * t)
    )
    y_lo = (
        -lo_h * span ** c["lower_pow"] * (1.0 + c["lower_skew"] + c["lower_bulge"] * look_side * t)
    )
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
    rest = c["open"] * c["upper_rest"] + c["crease_gap"]
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
