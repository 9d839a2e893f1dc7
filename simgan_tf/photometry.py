"""Whole-image photometry that a local refiner cannot learn, matched before it sees the images.

A refiner with a 19-pixel receptive field cannot equalise an image's histogram or move its overall
brightness and contrast, yet a whole-image classifier tells sets apart on exactly those (REFERENCE.md,
"Photometric mismatch"). So the synthetic images are normalised the way the real set is, once, before
training and before every later refinement:

- `equalize`: per-image histogram equalisation, for real sets that are equalised image by image
  (MPIIGaze publishes its patches so: their sorted pixels lie about 1.5 gray levels from a flat ramp);
- `match`: one 256-entry lookup table mapping the synthetic set's pooled histogram onto the real
  set's (its mean brightness and contrast), for real sets that are not equalised (Columbia Gaze);
- `none`.

`auto` picks `equalize` when the real set is equalised, else `match`. The choice (and the table) is
saved in the run's config.json, so `refine` and `evaluate` prepare images exactly as training did.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simgan_tf.errors import SimGANError

MODES = ("auto", "equalize", "match", "none")
# A set counts as equalised when its median image's sorted pixels lie within this many gray levels of
# a flat 0..255 ramp (MPIIGaze 1.5; raw simulator renders about 31; Columbia Gaze about 41).
EQUALIZED_RAMP_DEV = 6.0


def equalize(images: np.ndarray) -> np.ndarray:
    """Per-image histogram equalisation of uint8 (m, H, W), the cdf mapping of OpenCV's equalizeHist."""
    images = np.asarray(images)
    m = len(images)
    if m == 0:
        return images.copy()
    flat = images.reshape(m, -1).astype(np.int64)
    counts = np.bincount((flat + 256 * np.arange(m)[:, None]).ravel(), minlength=256 * m)
    cdf = np.cumsum(counts.reshape(m, 256), axis=1)
    cdf_min = cdf[np.arange(m), flat.min(axis=1)][:, None]
    denom = np.maximum(flat.shape[1] - cdf_min, 1)
    lut = np.clip(np.round((cdf - cdf_min) * 255.0 / denom), 0, 255).astype(np.uint8)
    return np.take_along_axis(lut, flat, axis=1).reshape(images.shape)


def ramp_deviation(images: np.ndarray) -> np.ndarray:
    """Per image: mean |sorted pixels - a flat 0..255 ramp|, in gray levels (0 = perfectly equalised)."""
    images = np.asarray(images)
    s = np.sort(images.reshape(len(images), -1).astype(np.float32), axis=1)
    ramp = np.linspace(0.0, 255.0, s.shape[1], dtype=np.float32)
    return np.abs(s - ramp).mean(axis=1)


def is_equalized(images: np.ndarray, max_images: int = 2000) -> bool:
    """Whether a set looks histogram-equalised image by image (its median ramp deviation is small)."""
    images = np.asarray(images)
    if len(images) == 0:
        raise SimGANError("cannot tell whether an empty image set is equalised")
    step = max(1, len(images) // max_images)
    return bool(np.median(ramp_deviation(images[::step])) < EQUALIZED_RAMP_DEV)


def histogram_lut(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """A (256,) uint8 table sending the pooled gray-level distribution of `source` onto `reference`'s."""

    def cdf(images: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.asarray(images, dtype=np.uint8).ravel(), minlength=256)
        return np.cumsum(counts) / max(counts.sum(), 1)

    src, ref = cdf(source), cdf(reference)
    if src[-1] == 0 or ref[-1] == 0:
        raise SimGANError("cannot match histograms of an empty image set")
    # Each source level goes to the reference level of the same quantile (the middle of its step).
    mid = (src + np.concatenate([[0.0], src[:-1]])) / 2.0
    lut = np.interp(mid, ref, np.arange(256, dtype=np.float64))
    return np.clip(np.round(lut), 0, 255).astype(np.uint8)


def resolve(mode: str, synthetic: np.ndarray, real: np.ndarray) -> tuple[str, list[int] | None]:
    """(the mode to apply, its lookup table or None) for a requested mode and the two training sets."""
    if mode not in MODES:
        raise SimGANError(f"unknown input normalisation {mode!r}; expected one of {MODES}")
    if mode == "auto":
        mode = "equalize" if is_equalized(real) else "match"
    if mode == "match":
        return mode, histogram_lut(synthetic, real).tolist()
    return mode, None


def apply(
    images: np.ndarray, mode: str, lut: list[int] | tuple[int, ...] | None = None
) -> np.ndarray:
    """Normalise uint8 (N, H, W) images with a resolved mode ("equalize", "match" or "none")."""
    images = np.asarray(images)
    if mode == "none":
        return images
    if mode == "equalize":
        return equalize(images)
    if mode == "match":
        if lut is None or len(lut) != 256:
            raise SimGANError("input normalisation 'match' needs its 256-entry lookup table")
        return np.asarray(lut, dtype=np.uint8)[images]
    raise SimGANError(
        f"input normalisation {mode!r} is not resolved; expected equalize, match or none"
    )


def from_config(config: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The normalisation a run's config.json recorded, as a function of uint8 images.

    Runs made before this existed recorded nothing: their refiner took raw images, so: none.
    """
    mode = config.get("input_norm") or "none"
    if mode == "auto":
        raise SimGANError(
            "config.json says input_norm 'auto': training resolves it before saving; "
            "is this config.json from an unfinished run?"
        )
    lut = config.get("input_lut")
    apply(np.zeros((1, 1, 1), np.uint8), mode, lut)  # fail now, not on the first batch
    return lambda images: apply(images, mode, lut)
