"""Where each pixel lies on the eye: the pixel grid, the eyeball's and the lids' frames, the lid margins, the iris disc.

Lengths are in eyeball radii (R) unless named px. Edges are anti-aliased analytically: a pixel's
coverage is a one-pixel ramp on its signed distance to the edge (`_ramp`).

Head pose: `head_yaw` turns the eye region (corners, lids, skin) about the vertical axis through the
eyeball's centre. The region lies `corner_depth` radii in front of that centre, so a turned head shows
it foreshortened by cos(head_yaw) and shifted against the eyeball by corner_depth * sin(head_yaw).
look_vec stays the camera-frame gaze the eyeball was rendered with (camera yaw = the gaze's yaw relative
to the head minus head_yaw), so labels stay exact.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simgan_tf.simulator.scenes import H, W, _ball_shift

_U = np.arange(W, dtype=np.float32)[None, None, :]
_V = np.arange(H, dtype=np.float32)[None, :, None]


def _col(x: np.ndarray) -> np.ndarray:
    return x[:, None, None]


def _ramp(d: np.ndarray) -> np.ndarray:
    # Coverage of a pixel by a straight edge at signed distance d (pixels): a box-filtered step.
    return np.clip(d + 0.5, 0.0, 1.0)


class Frame(NamedTuple):
    """Each pixel's coordinates, (m, H, W) float32 (r_px: (m, 1, 1), the eyeball's radius in px)."""

    x: np.ndarray  # camera frame, R from the eyeball's centre, toward the image's right
    y: np.ndarray  # and up
    xi: np.ndarray  # lid frame: from the inner corner (-) to the outer (+)
    yf: np.ndarray  # and up across the lids
    t: np.ndarray  # xi in half widths: the corners are at -1 and +1
    span: np.ndarray  # 1 - t^2, clipped: 1 mid-eye, 0 at and past the corners
    r_px: np.ndarray


class Lids(NamedTuple):
    """Where each pixel lies against the lid margins, (m, H, W) float32."""

    above: np.ndarray  # px above the upper lid margin
    below: np.ndarray  # px below the lower lid margin
    fissure: np.ndarray  # coverage of the open eye between the lids


class IrisDisc(NamedTuple):
    """The gaze g and the point on the iris's plane that projects to each pixel."""

    gx: np.ndarray  # g, (m, 1, 1) each
    gy: np.ndarray
    gz: np.ndarray
    dx: np.ndarray  # from the iris's centre, R, (m, H, W)
    dy: np.ndarray
    rho: np.ndarray  # the in-plane distance from the iris's centre, R


def _frame(c: dict[str, np.ndarray]) -> Frame:
    """The pixel grid in the eyeball's frame and in the (turned, rolled, tilted) lids' frame."""
    r_px = c["radius"]
    x = (_U - c["cx"]) / r_px  # camera frame, eyeball radii, y up
    y = (c["cy"] - _V) / r_px

    # The eye region (corners, lids, skin) lies on a surface corner_depth in front of the eyeball's
    # centre; turned by head_yaw it is seen foreshortened and shifted against the eyeball. (With no
    # turn and no ball_offset this is x itself, exactly, so uniform's scenes render as they always have;
    # likewise yh with no ball_rise.)
    xh = (x + _ball_shift(c)) / np.cos(c["head_yaw"])
    yh = y + c["ball_rise"]  # the corners' line lies ball_rise below the eyeball's centre
    # Lid frame: rotated by roll and canthal tilt; xi runs from the inner corner (-) to the outer (+).
    ang = c["roll"] + c["mirror"] * c["tilt"]
    ca, sa = np.cos(ang), np.sin(ang)
    xi = c["mirror"] * (ca * xh + sa * yh)
    yf = ca * yh - sa * xh
    t = xi / c["half_width"]
    span = np.clip(1.0 - t * t, 0.0, 1.0)
    return Frame(x, y, xi, yf, t, span, r_px)


def _lids(c: dict[str, np.ndarray], f: Frame) -> Lids:
    """The lid margins, which follow the gaze, and the open eye between them."""
    # Lids follow the eye: the upper lid drops almost with the iris when looking down, the lower one less.
    sin_p, sin_y = np.sin(c["pitch"]), np.sin(c["yaw"] + c["head_yaw"])  # yaw relative to the head
    up_h = np.maximum(c["open"] * (c["upper_rest"] + c["upper_follow"] * sin_p), 0.04)
    lo_h = np.maximum(c["open"] * (c["lower_rest"] - c["lower_follow"] * sin_p), 0.12)
    # Clipped so that a steep follow at an extreme pitch keeps the lid a curve, not a box or a spike.
    lower_pow = np.clip(c["lower_pow"] - c["lower_pow_follow"] * sin_p, 0.1, 2.0)
    look_side = c["mirror"] * sin_y  # lids bulge toward where the cornea points
    t, span = f.t, f.span
    y_up = (
        up_h * span ** c["upper_pow"] * (1.0 + c["upper_skew"] + c["upper_bulge"] * look_side * t)
    )
    y_lo = -lo_h * span**lower_pow * (1.0 + c["lower_skew"] + c["lower_bulge"] * look_side * t)
    above = (f.yf - y_up) * f.r_px  # px above the upper lid margin
    below = (y_lo - f.yf) * f.r_px  # px below the lower lid margin
    # The last factor closes the slit past the corners, where both lids meet on one line.
    tips = np.clip((1.0 - np.abs(t)) * c["half_width"] * f.r_px, 0.0, 1.0)
    return Lids(above, below, _ramp(-above) * _ramp(-below) * tips)


def _iris_disc(c: dict[str, np.ndarray], f: Frame) -> IrisDisc:
    """The iris: a disc on the plane normal to the gaze g, d = sqrt(1 - r^2) from the centre; rho is
    the in-plane distance of the point that projects to each pixel, so the ellipse is exact."""
    gx = np.cos(c["pitch"]) * np.sin(c["yaw"])
    gy = np.sin(c["pitch"])
    gz = -np.cos(c["pitch"]) * np.cos(c["yaw"])
    depth = np.sqrt(1.0 - c["iris"] ** 2)
    dx = f.x - depth * gx
    dy = f.y - depth * gy
    dz = -(gx * dx + gy * dy) / gz
    rho = np.sqrt(dx * dx + dy * dy + dz * dz)
    return IrisDisc(gx, gy, gz, dx, dy, rho)
