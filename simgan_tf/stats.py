"""Numbers that say whether refinement moved images toward the real ones, not only pictures.

Distances between distributions of pixel statistics (1-D Wasserstein, in gray levels): of intensity,
and of local gradient magnitude (sharpness, noise, texture). The refiner only changes local appearance,
so these are what it can move; a run reports them for synthetic vs real and for refined vs real.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance


def _gradient_magnitude(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    gy = np.diff(x, axis=1)[:, :, :-1]
    gx = np.diff(x, axis=2)[:, :-1, :]
    return np.sqrt(gx**2 + gy**2)


def appearance_distance(
    a: np.ndarray, b: np.ndarray, max_pixels: int = 200_000, seed: int = 0
) -> dict:
    """Wasserstein distances between two uint8 image sets' intensity and gradient distributions."""
    rng = np.random.default_rng(seed)

    def sample(values: np.ndarray) -> np.ndarray:
        flat = values.reshape(-1)
        if len(flat) > max_pixels:
            flat = flat[rng.choice(len(flat), max_pixels, replace=False)]
        return flat

    return {
        "intensity": float(
            wasserstein_distance(sample(a.astype(np.float32)), sample(b.astype(np.float32)))
        ),
        "gradient": float(
            wasserstein_distance(sample(_gradient_magnitude(a)), sample(_gradient_magnitude(b)))
        ),
    }


def toward_real(
    synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray, seed: int = 0
) -> dict:
    """How far synthetic and refined images lie from the real ones, and how much refinement changed."""
    before = appearance_distance(synthetic, real, seed=seed)
    after = appearance_distance(refined, real, seed=seed)
    return {
        "synthetic_to_real": before,
        "refined_to_real": after,
        "mean_abs_change": float(
            np.mean(np.abs(refined.astype(np.float32) - synthetic.astype(np.float32)))
        ),
    }


def fixed_pattern(synthetic: np.ndarray, refined: np.ndarray, corner: int = 8) -> dict:
    """Where the refiner paints the same thing into every image: the mean change (refined minus
    synthetic) over the set, high-passed (minus its 7 x 7 box blur), mean |value| in each corner.

    Changes that follow the content average out over many images; a fixed pattern does not. A corner
    far above the others is an artefact (the zero-padded refiner's bottom-right blotch measured 8.5
    gray levels against 2.8 to 4.9; docs/RESULTS.md).
    """
    from scipy.ndimage import uniform_filter

    mean_change = (refined.astype(np.float32) - synthetic.astype(np.float32)).mean(axis=0)
    if mean_change.ndim == 3:
        mean_change = mean_change[..., 0]
    high = np.abs(mean_change - uniform_filter(mean_change, 7, mode="nearest"))
    c = corner
    regions = {
        "top_left": high[:c, :c],
        "top_right": high[:c, -c:],
        "bottom_left": high[-c:, :c],
        "bottom_right": high[-c:, -c:],
        "interior": high[c:-c, c:-c],
    }
    return {name: float(region.mean()) for name, region in regions.items()}
