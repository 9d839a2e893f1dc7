"""Measurable statistics of a set of eye patches, for comparing simulated eyes with real ones.

A refiner changes local appearance only; the geometry (where the eye sits, how big the iris is, where
the lids lie, how far the pupil moves per degree of gaze) must come from the simulator. These measures
say how the simulator's geometry differs from a real set's, on images alone, so that the scene profiles
of simgan_tf.simulator can be calibrated against real sets and the comparison checked later.

Every measure is defined on the image, not on scene parameters, so it applies to simulated and real
sets alike. It does not change with an image's brightness and contrast (thresholds sit between each
image's own dark and light levels), but a non-linear tone curve moves what counts as dark: compare sets
after the same normalisation (simgan_tf.photometry: `match` for Columbia Gaze, `equalize` for MPIIGaze). The measures:

- `blob_x`, `blob_y`: centroid of the dark blob (the visible iris and pupil), pixels from the left / top;
- `blob_area`, `blob_width`, `blob_height`: its size in pixels;
- `top_edge`, `bottom_edge`: rows of the strongest downward bright-to-dark and dark-to-bright edges in the
  blob's columns, above and below its centroid: the upper lid (or the iris' top where the lid does not
  cover it) and the lower lid; `opening` = bottom_edge - top_edge;
- `eye_left`, `eye_right`: the first and last of the dark columns (lids, lashes, iris) around the
  darkest one, roughly the eye corners; `eye_width` between them;
- `mean`, `contrast` (standard deviation) of the gray levels;
- `corner_drop`: how far below the blob's centroid the darkest (3 x 3 smoothed) row lies three
  columns inside each end of the eye (`eye_left`, `eye_right`), the mean of both ends, in px: where the
  corners' line lies against the eyeball (a median 2.2 on Columbia's eyes: the corners lie lower);
- `white_lift`: how far the eye's brightest parts (the 95th percentile of the search window: sclera,
  glints) lie above the skin under the eye (the median of the rows below the window), in units of
  `contrast`: a median 0.3 to 0.4 on Columbia's eyes, whose sclera is hardly brighter than the skin.

`blob_aligned(images)` cuts each standardised image around its dark blob: averaged over a set, it is
a picture of where that set's eyes are dark and light around the iris, to hold beside another set's
(`python -m simgan_tf.simulate --mean-map`).

`stats(images, look_vec)` summarises them (mean, standard deviation and quartiles per measure) and, given
labels, the pupil's travel: px per degree of yaw and of pitch, by least squares. `straight_gaze_x` gives,
with head poses, where the blob sits at a straight gaze at each pose.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from simgan_tf.errors import SimGANError
from simgan_tf.simulator import look_vec_to_pitch_yaw

# The dark blob is searched for away from the patch border: glasses frames, hair and shadows darken
# real patches' edges, and every set this project uses centres the eye.
_SEARCH_ROWS = (5, 30)
_SEARCH_COLS = (9, 46)
# The blob is what lies below this share of the way from its darkest point to the median: tight
# enough that lashes and lid shadows rarely join it.
_BLOB_LEVEL = 0.3
_SMOOTH = 3  # half-size of the box that finds the blob: about the pupil's radius
_EDGE_REACH = 13  # rows searched above and below the blob's centroid for lid edges

MEASURES = (
    "blob_x",
    "blob_y",
    "blob_area",
    "blob_width",
    "blob_height",
    "top_edge",
    "bottom_edge",
    "opening",
    "eye_left",
    "eye_right",
    "eye_width",
    "mean",
    "contrast",
    "corner_drop",
    "white_lift",
)
_CORNER_INSET = 3  # columns inside the eye's ends where corner_drop looks for the darkest row


def _check(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or len(images) == 0:
        raise SimGANError(
            f"eye statistics need images of shape (N, H, W), N >= 1; got {images.shape}"
        )
    return images.astype(np.float32)


def _blobs(x: np.ndarray, light: np.ndarray) -> dict[str, np.ndarray]:
    """The dark blob of each image: centroid and extent of the region darker than _BLOB_LEVEL of the
    way from its darkest smoothed point to the image's median, connected to that point."""
    m, h, w = x.shape
    size = 2 * _SMOOTH + 1
    smooth = ndimage.uniform_filter(x, size=(1, size, size), mode="nearest")
    r0, r1 = _SEARCH_ROWS
    c0, c1 = _SEARCH_COLS
    window = smooth[:, r0:r1, c0:c1].reshape(m, -1)
    k = window.argmin(axis=1)
    seed_r, seed_c = k // (c1 - c0) + r0, k % (c1 - c0) + c0
    darkest = window[np.arange(m), k]
    level = np.median(x.reshape(m, -1), axis=1)
    thr = (darkest + _BLOB_LEVEL * (level - darkest))[:, None, None]
    dark = light < thr
    # Label each image apart: no connections along the batch axis.
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    labels, _ = ndimage.label(dark, structure=structure)
    own = labels[np.arange(m), seed_r, seed_c]
    blob = (labels == own[:, None, None]) & (own[:, None, None] > 0)
    # A seed that fell on a pixel just above threshold still names a blob: its own pixel.
    blob[np.arange(m), seed_r, seed_c] = True
    rows = np.arange(h, dtype=np.float32)[None, :, None]
    cols = np.arange(w, dtype=np.float32)[None, None, :]
    area = blob.sum(axis=(1, 2)).astype(np.float32)
    any_col, any_row = blob.any(axis=1), blob.any(axis=2)
    return {
        "blob_x": (blob * cols).sum(axis=(1, 2)) / area,
        "blob_y": (blob * rows).sum(axis=(1, 2)) / area,
        "blob_area": area,
        "blob_width": any_col.sum(axis=1).astype(np.float32),
        "blob_height": any_row.sum(axis=1).astype(np.float32),
    }


def _lid_edges(x: np.ndarray, bx: np.ndarray, by: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the strongest downward darkening above the blob and brightening below it, in a band of
    five columns through its centroid (a vertical profile, lightly smoothed)."""
    m, h, w = x.shape
    c = np.clip(np.round(bx).astype(int), 2, w - 3)
    band = np.stack([x[np.arange(m), :, c + d] for d in range(-2, 3)], axis=0).mean(axis=0)
    band = ndimage.uniform_filter1d(band, 3, axis=1, mode="nearest")
    grad = np.diff(band, axis=1)  # grad[:, i] = row i+1 minus row i: the edge lies at i + 0.5
    at = np.arange(h - 1, dtype=np.float32)[None, :] + 0.5
    centre = by[:, None]
    above = (at < centre) & (at > centre - _EDGE_REACH)
    below = (at > centre) & (at < centre + _EDGE_REACH)
    top = np.where(above, grad, np.inf).argmin(axis=1) + 0.5
    bottom = np.where(below, grad, -np.inf).argmax(axis=1) + 0.5
    return top.astype(np.float32), bottom.astype(np.float32)


def _eye_extent(x: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last column of the run of dark columns around the darkest one: a column's darkness is
    how far its darkest (3 x 3 smoothed) pixel in the middle rows lies below the image's median, and the
    run is where it exceeds 0.3 of the image's darkest column. Lids, lashes and the iris make it."""
    m, h, w = x.shape
    level = np.median(x.reshape(m, -1), axis=1)[:, None]
    r0, r1 = _SEARCH_ROWS
    dark = ndimage.uniform_filter1d(level - light[:, r0:r1].min(axis=1), 3, axis=1, mode="nearest")
    strong = dark > 0.3 * dark.max(axis=1, keepdims=True)
    # Runs are labelled image by image: the structure joins neighbouring columns only.
    runs, _ = ndimage.label(strong, structure=np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]]))
    own = runs[np.arange(m), dark.argmax(axis=1)]
    inside = runs == own[:, None]
    cols = np.arange(w)
    left = np.where(inside, cols, w).min(axis=1)
    right = np.where(inside, cols, -1).max(axis=1)
    return left.astype(np.float32), right.astype(np.float32)


def _corner_rows(light: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The mean over both ends of the eye of the darkest (3 x 3 smoothed) row in the search rows,
    _CORNER_INSET columns inside each end: the lids meet there, so it follows the corners' line."""
    m, _, w = light.shape
    r0, r1 = _SEARCH_ROWS
    rows = []
    for col in (left + _CORNER_INSET, right - _CORNER_INSET):
        c = np.clip(col.astype(int), 0, w - 1)
        rows.append(r0 + light[np.arange(m), r0:r1, c].argmin(axis=1))
    return np.mean(rows, axis=0).astype(np.float32)


def measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image measures (see the module docstring) of uint8 or float (N, H, W) gray images."""
    x = _check(images)
    light = ndimage.uniform_filter(x, size=(1, 3, 3), mode="nearest")  # shared 3 x 3 smoothing
    out = _blobs(x, light)
    out["top_edge"], out["bottom_edge"] = _lid_edges(x, out["blob_x"], out["blob_y"])
    out["opening"] = out["bottom_edge"] - out["top_edge"]
    out["eye_left"], out["eye_right"] = _eye_extent(x, light)
    out["eye_width"] = out["eye_right"] - out["eye_left"]
    out["corner_drop"] = _corner_rows(light, out["eye_left"], out["eye_right"]) - out["blob_y"]
    flat = x.reshape(len(x), -1)
    out["mean"] = flat.mean(axis=1)
    out["contrast"] = flat.std(axis=1)
    r0, r1 = _SEARCH_ROWS
    c0, c1 = _SEARCH_COLS
    whites = np.percentile(x[:, r0:r1, c0:c1].reshape(len(x), -1), 95, axis=1)
    skin = np.median(x[:, r1:].reshape(len(x), -1), axis=1)
    out["white_lift"] = (whites - skin) / np.maximum(out["contrast"], 1e-6)
    return {k: out[k].astype(np.float32) for k in MEASURES}


def blob_aligned(images: np.ndarray, half_rows: int = 12, half_cols: int = 16) -> np.ndarray:
    """(N, 2 half_rows + 1, 2 half_cols + 1) float32: each image standardised (zero mean, unit
    standard deviation over the patch) and cut around its dark blob's centroid, rounded to a pixel.

    Standardising takes each image's brightness and contrast out and centring takes the eye's place
    in the patch out, so a set's mean shows its eyes' shape around the iris (lids, lashes, sclera,
    skin) and its standard deviation how much that varies. Pixels past the border repeat the edge.
    """
    x = _check(images)
    m = _blobs(x, ndimage.uniform_filter(x, size=(1, 3, 3), mode="nearest"))
    bx = np.round(m["blob_x"]).astype(int)
    by = np.round(m["blob_y"]).astype(int)
    flat = x.reshape(len(x), -1)
    z = (x - flat.mean(axis=1)[:, None, None]) / np.maximum(flat.std(axis=1), 1e-6)[:, None, None]
    pad = np.pad(z, ((0, 0), (half_rows, half_rows), (half_cols, half_cols)), mode="edge")
    rows = by[:, None] + np.arange(2 * half_rows + 1)[None, :]
    cols = bx[:, None] + np.arange(2 * half_cols + 1)[None, :]
    return pad[np.arange(len(x))[:, None, None], rows[:, :, None], cols[:, None, :]]


def gaze_slopes(per_image: dict[str, np.ndarray], look_vec: np.ndarray) -> dict[str, float]:
    """The blob's travel per degree of gaze by least squares: x against yaw, y (up) against pitch.

    px_per_deg_yaw > 0: the blob moves right as the eye turns right. px_per_deg_pitch > 0: up as it
    looks up. blob_x_at_0 / blob_y_at_0: where it sits for a level, straight gaze (the intercepts).
    """
    look_vec = np.asarray(look_vec)
    if len(look_vec) != len(per_image["blob_x"]):
        raise SimGANError(f"{len(per_image['blob_x'])} images but {len(look_vec)} gaze labels")
    pitch, yaw = np.degrees(look_vec_to_pitch_yaw(look_vec)).T
    out = {}
    for axis, angle, key, sign in (
        ("yaw", yaw, "blob_x", 1.0),
        ("pitch", pitch, "blob_y", -1.0),  # rows grow downward
    ):
        values = per_image[key]
        if np.ptp(angle) == 0:
            raise SimGANError(f"gaze slopes need labels whose {axis} varies")
        slope, at0 = np.polyfit(angle, values, 1)
        out[f"px_per_deg_{axis}"] = float(sign * slope)
        out[f"{key}_at_0"] = float(at0)
        out[f"corr_{axis}"] = float(sign * np.corrcoef(angle, values)[0, 1])
    return out


def straight_gaze_x(
    per_image: dict[str, np.ndarray],
    look_vec: np.ndarray,
    head_pose_deg: np.ndarray,
    poses: tuple[float, ...] = (-30.0, 0.0, 30.0),
) -> dict[float, float]:
    """The blob's median x at each head pose in `poses` (within 4 deg) for a straight gaze (relative
    to the head, |yaw + pose| <= 5 deg): how far the eyeball moves between the corners as the head
    turns, which says how deep behind them it lies. NaN where no image qualifies."""
    head_pose_deg = np.asarray(head_pose_deg, dtype=np.float64)
    look_vec = np.asarray(look_vec)
    n = len(per_image["blob_x"])
    if len(head_pose_deg) != n or len(look_vec) != n:
        raise SimGANError(
            f"{n} images but {len(look_vec)} gaze labels and {len(head_pose_deg)} head poses"
        )
    yaw = np.degrees(look_vec_to_pitch_yaw(look_vec))[:, 1]
    straight = np.abs(yaw + head_pose_deg) <= 5.0 + 1e-3
    out = {}
    for pose in poses:
        rows = straight & (np.abs(head_pose_deg - pose) < 4.0)
        out[pose] = float(np.median(per_image["blob_x"][rows])) if rows.any() else float("nan")
    return out


def summarise(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean, standard deviation and quartiles of each measure: keys '<measure>_mean' and so on."""
    out = {}
    for k in MEASURES:
        v = per_image[k]
        q1, q2, q3 = np.percentile(v, [25, 50, 75])
        out.update(
            {
                f"{k}_mean": float(v.mean()),
                f"{k}_std": float(v.std()),
                f"{k}_q1": float(q1),
                f"{k}_median": float(q2),
                f"{k}_q3": float(q3),
            }
        )
    return out


def stats(images: np.ndarray, look_vec: np.ndarray | None = None) -> dict[str, float]:
    """Summary statistics of an image set (see `summarise`), with the gaze slopes when labelled."""
    per_image = measure(images)
    out = summarise(per_image)
    if look_vec is not None:
        out.update(gaze_slopes(per_image, look_vec))
    return out
