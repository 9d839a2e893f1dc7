"""The gaze label convention, look_vec, and its conversions to and from pitch and yaw.

look_vec convention (the UnityEyes one; the rest of simgan_tf relies on it)
    look_vec = (x, y, z), a unit gaze vector in camera coordinates: x toward the image's right, y toward
    the image's top, z away from the camera into the scene. An eye looking straight into the camera has
    look_vec (0, 0, -1). pitch = asin(y) (positive: looking up), yaw = atan2(x, -z) (positive: looking
    toward the image's right). `look_vec_to_pitch_yaw` and `pitch_yaw_to_look_vec` convert.
"""

from __future__ import annotations

import numpy as np


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
