"""EyeSet, the in-memory eye-image set; the image shape; and the look_vec gaze convention.

The look_vec convention (the one UnityEyes writes and the built-in simulator uses): a unit gaze
vector (x, y, z) in camera coordinates with x toward the image's right, y toward the image's TOP and
z away from the camera into the scene, so an eye looking into the camera has look_vec (0, 0, -1).
`gaze_angles` turns it into MPIIGaze's published pitch and yaw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SHAPE = (35, 55)


@dataclass
class EyeSet:
    """Images as (N, H, W) uint8, with look_vec gaze vectors (N, 3) where the file has them."""

    images: np.ndarray
    look_vec: np.ndarray | None = None
    paths: np.ndarray | None = None
    # How the file stored the images ("group" of datasets or one "dataset"), their stored dtype, and
    # whether the cache was used: `inspect` reports these.
    layout: str = ""
    stored_dtype: str = ""
    cache_status: str = ""

    def __len__(self) -> int:
        return len(self.images)


def mpiigaze_to_look_vec(gaze: np.ndarray) -> np.ndarray:
    """MPIIGaze normalised gaze vectors (N, 3) -> look_vec (N, 3), float32.

    MPIIGaze uses the OpenCV camera frame: x toward the image's right, y DOWN, z forward from the
    camera into the scene; its published angles are pitch = asin(-gy) and yaw = atan2(-gx, -gz).
    look_vec shares x and z with that frame and only points y the other way, so the conversion is
    (gx, -gy, gz): a subject looking up (gy < 0) gets a positive look_vec y, and `gaze_angles` of
    the result returns exactly MPIIGaze's pitch and yaw.
    """
    g = np.asarray(gaze, dtype=np.float32).reshape(-1, 3)
    return np.stack([g[:, 0], -g[:, 1], g[:, 2]], axis=1)


def gaze_angles(look_vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, yaw) in radians of look_vec rows, with MPIIGaze's definitions.

    pitch = asin(y) is positive looking up; yaw = atan2(-x, -z) is positive looking toward the
    image's left. Rows are normalised first, so slightly non-unit vectors keep asin in range.
    """
    v = np.asarray(look_vec, dtype=np.float64).reshape(-1, 3)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norm > 0, norm, 1.0)
    return np.arcsin(np.clip(v[:, 1], -1.0, 1.0)), np.arctan2(-v[:, 0], -v[:, 2])
