"""photometry (the fair start) and the probe discriminator: detection, matching, and both ends of the probe."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluate import _blobs, _stripes

from simgan_tf import photometry
from simgan_tf.errors import SimGANError
from simgan_tf.realism import probe_discriminator


def _renders(n: int = 300, seed: int = 0) -> np.ndarray:
    from simgan_tf.simulator import render

    return render(n, "synthetic", seed=seed)[0]


def test_equalised_sets_are_detected_and_raw_renders_are_not():
    raw = _renders()
    assert not photometry.is_equalized(raw)
    assert photometry.is_equalized(photometry.equalize(raw))
    assert np.median(photometry.ramp_deviation(photometry.equalize(raw))) < 3.0


def test_auto_equalises_against_an_equalised_real_set_and_matches_otherwise():
    raw = _renders()
    real_eq = photometry.equalize(_renders(seed=1))
    assert photometry.resolve("auto", raw, real_eq) == ("equalize", None)
    dark = (_renders(seed=2) // 2 + 10).astype(np.uint8)
    mode, lut = photometry.resolve("auto", raw, dark)
    assert mode == "match" and len(lut) == 256


def test_match_moves_mean_and_contrast_onto_the_reference():
    raw = _renders()
    dark = (_renders(seed=2) * 0.4 + 20).astype(np.uint8)
    _, lut = photometry.resolve("match", raw, dark)
    matched = photometry.apply(raw, "match", lut)
    assert abs(raw.mean() - dark.mean()) > 40
    assert abs(matched.mean() - dark.mean()) < 2.0
    assert abs(matched.std() - dark.std()) < 2.0
    # A monotone table: brighter stays brighter, so the eye's structure is kept.
    assert np.all(np.diff(np.asarray(lut, dtype=int)) >= 0)


def test_from_config_replays_what_training_recorded():
    raw = _renders(50)
    assert photometry.from_config({})(raw) is raw  # runs from before input_norm: raw images
    eq = photometry.from_config({"input_norm": "equalize"})(raw)
    np.testing.assert_array_equal(eq, photometry.equalize(raw))
    lut = list(range(255, -1, -1))
    inverted = photometry.from_config({"input_norm": "match", "input_lut": lut})(raw)
    np.testing.assert_array_equal(inverted, 255 - raw)


@pytest.mark.parametrize(
    "config",
    [{"input_norm": "auto"}, {"input_norm": "match"}, {"input_norm": "sharpen"}],
)
def test_unusable_recorded_normalisation_is_refused(config):
    with pytest.raises(SimGANError):
        photometry.from_config(config)


def test_probe_is_near_chance_on_two_shuffled_halves_of_one_set():
    images = _blobs(800, seed=0)
    probe = probe_discriminator(images[:400], images[400:], filters=(8, 8, 8, 8), steps=60)
    assert 0.35 <= probe["image_accuracy"] <= 0.65, probe
    assert 0.4 <= probe["patch_accuracy"] <= 0.6, probe


def test_probe_map_shows_where_in_the_image_two_sets_differ():
    # Blobs everywhere on both sides; the fakes carry stripes in their top 12 rows only.
    real, fake = _blobs(300, seed=3), _blobs(300, seed=4)
    fake[:, :12] = _stripes(300, seed=5)[:, :12]
    probe = probe_discriminator(real, fake, filters=(8, 8, 8, 8), steps=80)
    grid = np.asarray(probe["patch_accuracy_map"])
    assert grid.shape == (9, 14)  # the discriminator's output for 35 x 55 images
    assert grid.mean() == pytest.approx(probe["patch_accuracy"], abs=1e-3)
    assert grid[:3].mean() > 0.8, grid
    assert grid[:3].mean() > grid[-3:].mean() + 0.2, grid


def test_probe_tells_obviously_different_sets_apart_per_patch_and_per_image():
    probe = probe_discriminator(
        _blobs(300, seed=1), _stripes(300, seed=2), filters=(8, 8, 8, 8), steps=60
    )
    assert probe["image_accuracy"] > 0.9 and probe["patch_accuracy"] > 0.8, probe
