"""Drawing scenes: the patch size, blocks of CHUNK scenes, sample_scenes and where the eye sits in the patch."""

from __future__ import annotations

import math

import numpy as np

from simgan_tf.simulator.profiles import _RANGES, DEFAULT_PROFILE, SceneProfile, get_profile

H, W = 35, 55
CHUNK = 1000  # images per block of random streams; fixed, so output never depends on batching

_ORDER = tuple(_RANGES)
# Drawn in these groups, between the draws that are not plain ranges (side, glint, head yaw).
_FIRST = _ORDER[_ORDER.index("radius") : _ORDER.index("half_width")]
_MIDDLE = _ORDER[_ORDER.index("half_width") : _ORDER.index("glint")]
_LAST = _ORDER[_ORDER.index("corner_depth") :]


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
    s["cy"] = prof.centre[1] + s["cy"] + prof.crop_follow * np.degrees(s["pitch"])
