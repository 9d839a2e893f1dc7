"""Photometric augmentation and the label-drift estimator trained on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from simgan_tf import gaze
from simgan_tf.augment import photometric_augment
from simgan_tf.errors import SimGANError
from simgan_tf.photometry import EQUALIZED_RAMP_DEV, equalize, ramp_deviation
from simgan_tf.simulator import render

TINY = dataclasses.replace(gaze.ESTIMATOR_PRESETS["smoke"], steps=4, batch_size=8)


@pytest.fixture(scope="module")
def eyes() -> tuple[np.ndarray, np.ndarray]:
    return render(48, "synthetic", seed=7)


def test_dtype_shape_and_determinism(eyes):
    images = eyes[0]
    a = photometric_augment(images, np.random.default_rng(3))
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.array_equal(a, photometric_augment(images, np.random.default_rng(3)))
    assert not np.array_equal(a, photometric_augment(images, np.random.default_rng(4)))


def test_every_image_changed(eyes):
    images = eyes[0]
    a = photometric_augment(images, np.random.default_rng(0))
    changed = np.abs(a.astype(int) - images).mean(axis=(1, 2))
    assert np.all(changed >= 1.0), changed.min()


def test_each_draw_has_its_own_brightness_and_contrast(eyes):
    one = np.repeat(eyes[0][:1], 64, axis=0)
    a = photometric_augment(one, np.random.default_rng(0)).astype(np.float64)
    means, stds = a.mean(axis=(1, 2)), a.std(axis=(1, 2))
    assert means.std() > 5.0 and stds.std() > 3.0, (means.std(), stds.std())
    # About half the draws are histogram-equalised; the others keep a non-flat histogram.
    flat = ramp_deviation(a.astype(np.uint8)) < EQUALIZED_RAMP_DEV
    assert 0.2 < flat.mean() < 0.8, flat.mean()


def test_geometry_kept():
    # A dark disc at a sub-pixel place: its k darkest pixels (k = its area) must stay on it. Every step
    # is per-pixel or a symmetric blur, so the centroid moves only by noise.
    yy, xx = np.mgrid[:35, :55]
    centre = np.array([15.3, 31.6])
    disc = np.hypot(yy - centre[0], xx - centre[1]) <= 4.0
    img = np.where(disc, 10, 190).astype(np.uint8)
    n, k = 200, int(disc.sum())
    a = photometric_augment(np.repeat(img[None], n, axis=0), np.random.default_rng(1))
    y0, x0 = 7, 23  # a window around the disc: light falloff elsewhere may be as dark
    window = a[:, y0:24, x0:41].reshape(n, -1)
    rows, cols = np.divmod(np.argsort(window, axis=1, kind="stable")[:, :k], 41 - x0)
    found = np.stack([rows.mean(axis=1) + y0, cols.mean(axis=1) + x0], axis=1)
    off = np.linalg.norm(found - centre, axis=1)
    assert np.mean(off < 1.0) >= 0.95, np.sort(off)[-10:]
    assert np.linalg.norm(found.mean(axis=0) - centre) < 0.3


def test_rejects_bad_input():
    with pytest.raises(SimGANError, match="uint8"):
        photometric_augment(np.zeros((2, 35, 55), np.float32), np.random.default_rng(0))
    with pytest.raises(SimGANError, match="too small"):
        photometric_augment(np.zeros((2, 1, 55), np.uint8), np.random.default_rng(0))


def test_batch_augmenter_changes_a_share_of_each_batch_by_step(eyes):
    import tensorflow as tf

    augment = gaze._batch_augmenter(seed=5, share=2 / 3)
    batch = eyes[0]
    out = [augment(tf.constant(step, tf.int64), tf.constant(batch)).numpy() for step in (0, 0, 1)]
    changed = np.any(out[0] != batch, axis=(1, 2))
    assert 0.4 < changed.mean() < 0.9  # 2/3 of 48 expected
    assert np.array_equal(out[0][~changed], batch[~changed])  # the rest stays raw
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


def test_drift_estimator_rejects_negative_copies(eyes):
    with pytest.raises(SimGANError, match="copies"):
        gaze.train_drift_estimator(*eyes, seed=0, spec=TINY, copies=-1)


def test_equalization_layer_is_photometry_equalize_and_ignores_tone(eyes):
    images = eyes[0][:8]
    layer = gaze.HistogramEqualization()
    x = images.astype(np.float32)[..., None] / 127.5 - 1.0
    out = np.asarray(layer(x))[..., 0]
    assert np.abs((out + 1.0) * 127.5 - equalize(images)).max() <= 1.0  # rounding only
    # Only ranks count: an increasing tone curve on distinct values changes nothing.
    values = np.random.default_rng(0).permutation(35 * 55).reshape(1, 35, 55, 1) / (35 * 55)
    curved = np.asarray(layer((values**2.5).astype(np.float32)))
    assert np.allclose(curved, layer(values.astype(np.float32)), atol=1e-6)
    assert not np.allclose(curved, values**2.5, atol=0.1)  # and the layer did map the values


def test_drift_estimator_runs_and_is_deterministic(eyes):
    images, look = eyes

    def predictions(**kwargs) -> np.ndarray:
        model = gaze.train_drift_estimator(images, look, seed=2, spec=TINY, **kwargs)
        return gaze.predict_gaze(model, images[:8])

    a = predictions()
    assert a.shape == (8, 3) and np.all(np.isfinite(a))
    assert np.array_equal(a, predictions())
    assert not np.array_equal(a, predictions(copies=0))  # the augmented share changes the model


def test_only_the_unequalised_drift_estimator_passes_a_gradient_to_its_input(eyes):
    # The refiner's gaze term (--gaze-reg) trains the refiner through its reader: the ranking
    # equalisation layer passes none, so that reader is trained without it.
    images, look = eyes
    x = tf.constant(images[:4].astype(np.float32)[..., None] / 127.5 - 1.0)

    def input_gradient(equalize_input: bool):
        model = gaze.train_drift_estimator(
            images, look, seed=0, spec=TINY, equalize_input=equalize_input
        )
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.reduce_sum(model(x, training=False))
        return tape.gradient(out, x)

    plain = input_gradient(False)
    assert plain is not None and float(tf.reduce_max(tf.abs(plain))) > 0
    ranked = input_gradient(True)
    assert ranked is None or float(tf.reduce_max(tf.abs(ranked))) == 0
