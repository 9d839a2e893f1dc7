"""The built-in simulator: exact labels, determinism, the domain gap, files and the CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import ndimage

from simgan_tf import simulator
from simgan_tf.data import load_eyes, to_model_range
from simgan_tf.errors import SimGANError
from simgan_tf.simulate import main as simulate_main


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0)))


def _estimator():
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((35, 55, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(2),
        ]
    )


def _train(images: np.ndarray, look_vec: np.ndarray, epochs: int, seed: int = 0):
    """A small CNN regressing (pitch, yaw); returns a predictor images -> look_vec."""
    import keras

    keras.utils.set_random_seed(seed)
    model = _estimator()
    batch = 64
    steps = epochs * (len(images) // batch)
    # A decaying rate lets a few epochs converge, so errors measure the data, not the schedule.
    rate = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    # x2: pitch and yaw span +-0.52 rad; a unit-ish target range trains faster.
    target = simulator.look_vec_to_pitch_yaw(look_vec)[: steps // epochs * batch] * 2.0
    x = to_model_range(images[: len(target)])
    model.fit(x, target, batch_size=batch, epochs=epochs, verbose=0)

    def predict(x: np.ndarray) -> np.ndarray:
        py = model.predict(to_model_range(x), batch_size=500, verbose=0) / 2.0
        return simulator.pitch_yaw_to_look_vec(py)

    return predict


# --- conventions and determinism ---------------------------------------------------------------


def test_look_vec_convention_round_trip(rng):
    py = rng.uniform(-1.2, 1.2, (500, 2)).astype(np.float32)
    v = simulator.pitch_yaw_to_look_vec(py)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(simulator.look_vec_to_pitch_yaw(v), py, atol=1e-5)
    # Straight into the camera is (0, 0, -1); up is +y; toward the image's right is +x.
    straight, up, right = simulator.pitch_yaw_to_look_vec(np.array([[0, 0], [0.3, 0], [0, 0.3]]))
    np.testing.assert_allclose(straight, [0, 0, -1], atol=1e-7)
    assert up[1] > 0 and right[0] > 0 and up[2] < 0 and right[2] < 0


def test_same_seed_same_images_and_target_shares_scenes():
    a, la = simulator.render(1100, "synthetic", seed=3)
    b, lb = simulator.render(1100, "synthetic", seed=3)
    assert a.dtype == np.uint8 and a.shape == (1100, 35, 55)
    assert la.dtype == np.float32 and la.shape == (1100, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_allclose(np.linalg.norm(la, axis=1), 1.0, atol=1e-5)
    # A prefix is the same whatever n (so chunked writing equals one call), across a block edge too.
    first, lfirst = simulator.render(5, "synthetic", seed=3)
    np.testing.assert_array_equal(first, a[:5])
    np.testing.assert_array_equal(lfirst, la[:5])
    t, lt = simulator.render(1100, "target", seed=3)
    np.testing.assert_array_equal(lt, la)
    np.testing.assert_array_equal(t, simulator.render(1100, "target", seed=3)[0])
    np.testing.assert_array_equal(simulator.render(7, "target", seed=3)[0], t[:7])
    assert np.abs(t.astype(int) - a).mean() > 10  # imaged differently
    other, lo = simulator.render(50, "synthetic", seed=4)
    assert not np.array_equal(other, a[:50]) and not np.allclose(lo, la[:50])
    # Images differ from one another (parameters really vary per image).
    assert np.std(a.reshape(len(a), -1).mean(axis=1)) > 3


def test_bad_arguments_raise_simgan_error():
    with pytest.raises(SimGANError, match="domain"):
        simulator.render(3, "real")
    with pytest.raises(SimGANError):
        simulator.render(3, seed=-1)
    assert simulator.render(0)[0].shape == (0, 35, 55)


# --- geometry: labels are exact, and the eye sits where the real ones do ------------------------


def _pupil_positions(images: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Centre of the darkest 7-px disc near each eye's centre, to a fraction of a pixel."""
    r = 3
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = (xx**2 + yy**2 <= r * r).astype(np.float32)
    score = ndimage.correlate(images.astype(np.float32), disc[None] / disc.sum(), mode="nearest")
    v, u = np.mgrid[0:35, 0:55]
    near = (np.abs(u[None] - cx[:, None, None]) < 15) & (np.abs(v[None] - cy[:, None, None]) < 12)
    score = np.where(near, score, np.inf)
    out = np.empty((len(images), 2))
    for i, s in enumerate(score):
        j, k = np.unravel_index(np.argmin(s), s.shape)
        # Weighted centroid of the dark pixels around the minimum: sub-pixel position.
        lo_j, lo_k = max(j - 4, 0), max(k - 4, 0)
        patch = images[i, lo_j : j + 5, lo_k : k + 5].astype(np.float32)
        w = np.clip(patch.min() + 25.0 - patch, 0.0, None)
        pj, pk = np.mgrid[lo_j : lo_j + patch.shape[0], lo_k : lo_k + patch.shape[1]]
        out[i] = (np.sum(w * pk) / w.sum(), np.sum(w * pj) / w.sum())
    return out


def test_pupil_position_follows_look_vec():
    n = 1500
    images, look = simulator.render(n, "synthetic", seed=11)
    s = simulator.scene_parameters(n, seed=11)
    pos = _pupil_positions(images, s["cx"], s["cy"])
    dx = (pos[:, 0] - s["cx"]) / s["radius"]  # in eyeball radii
    dy = -(pos[:, 1] - s["cy"]) / s["radius"]  # image rows grow downward; look_vec y is up
    cx_corr = np.corrcoef(dx, look[:, 0])[0, 1]
    cy_corr = np.corrcoef(dy, look[:, 1])[0, 1]
    print(f"pupil position vs look_vec: correlation x {cx_corr:.4f}, y {cy_corr:.4f}")
    assert cx_corr >= 0.95 and cy_corr >= 0.95, (cx_corr, cy_corr)
    # The pupil sits about 0.87 R in front of the eyeball's centre: the slope says so.
    slope_x = np.polyfit(look[:, 0], dx, 1)[0]
    slope_y = np.polyfit(look[:, 1], dy, 1)[0]
    assert 0.75 < slope_x < 1.0 and 0.7 < slope_y < 1.0, (slope_x, slope_y)


def test_target_is_histogram_equalised_per_image():
    images, _ = simulator.render(300, "target", seed=2)
    assert (images.min(axis=(1, 2)) == 0).all() and (images.max(axis=(1, 2)) == 255).all()
    means = images.mean(axis=(1, 2))
    assert np.all(np.abs(means - 127.5) < 12), (means.min(), means.max())
    eq = simulator.equalize(images)  # idempotent up to ties
    assert np.abs(eq.astype(int) - images).mean() < 2


def test_geometry_resembles_shared_real(shared_real):
    real = load_eyes(shared_real).images.astype(np.float32)
    for domain in simulator.DOMAINS:
        sim = simulator.render(2000, domain, seed=5)[0].astype(np.float32)
        a, b = sim.mean(axis=0), real.mean(axis=0)
        corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert corr > 0.8, (domain, corr)
        # The dark band (iris and lids) lies in the same rows and columns.
        assert abs(int(a.mean(axis=1).argmin()) - int(b.mean(axis=1).argmin())) <= 2
        assert abs(int(a.mean(axis=0).argmin()) - int(b.mean(axis=0).argmin())) <= 3


# --- learnability and the domain gap -------------------------------------------------------------


@pytest.mark.slow
def test_domain_gap_synthetic_to_target():
    n_train, epochs = 5000, 4
    syn, look = simulator.render(n_train, "synthetic", seed=20)
    tgt, _ = simulator.render(n_train, "target", seed=20)
    test, test_look = simulator.render(1000, "target", seed=21)
    from_syn = _angle_deg(_train(syn, look, epochs)(test), test_look).mean()
    from_tgt = _angle_deg(_train(tgt, look, epochs)(test), test_look).mean()
    print(
        f"target test error: trained on synthetic {from_syn:.2f} deg, on target {from_tgt:.2f} deg"
    )
    assert from_tgt < 8.0, from_tgt  # the target's labels are learnable
    assert from_syn >= 1.5 * from_tgt, (from_syn, from_tgt)


@pytest.mark.slow
def test_estimator_on_20k_synthetic_is_under_3_degrees():
    train, look = simulator.render(20_000, "synthetic", seed=30)
    test, test_look = simulator.render(1000, "synthetic", seed=31)
    err = _angle_deg(_train(train, look, epochs=2)(test), test_look).mean()
    print(f"held-out synthetic error: {err:.2f} deg")
    assert err < 3.0, err


# --- files and CLI -------------------------------------------------------------------------------


def test_ensure_simulated_writes_once_and_matches_render(tmp_path):
    path = simulator.ensure_simulated("target", 40, 7, data_dir=tmp_path, progress=False)
    assert path == simulator.default_path("target", 40, 7, tmp_path)
    assert path.name == "target_n40_seed7.h5"
    eyes = load_eyes(path, require_labels=True)
    images, look = simulator.render(40, "target", 7)
    np.testing.assert_array_equal(eyes.images, images)
    np.testing.assert_array_equal(eyes.look_vec, look)
    stamp = os.stat(path).st_mtime_ns
    assert simulator.ensure_simulated("target", 40, 7, data_dir=tmp_path) == path
    assert os.stat(path).st_mtime_ns == stamp  # the cached file is reused, not rewritten


def test_cli_writes_refuses_overwrite_and_montage(tmp_path, capsys):
    out, png = tmp_path / "gaze.h5", tmp_path / "m.png"
    assert (
        simulate_main(["--n", "12", "--out", str(out), "--seed", "1", "--montage", str(png)]) == 0
    )
    eyes = load_eyes(out, require_labels=True)
    np.testing.assert_array_equal(eyes.images, simulator.render(12, "synthetic", 1)[0])
    assert png.stat().st_size > 1000
    with pytest.raises(SystemExit) as e:
        simulate_main(["--n", "12", "--out", str(out)])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err
    assert simulate_main(["--n", "5", "--out", str(out), "--domain", "target", "--overwrite"]) == 0
    assert len(load_eyes(out)) == 5
    for bad in (["--n", "0", "--out", str(tmp_path / "x.h5")], ["--n", "3", "--domain", "real"]):
        with pytest.raises(SystemExit) as e:
            simulate_main(bad)
        assert e.value.code == 2
