"""The built-in simulator: exact labels, determinism, the domain gap, files and the CLI."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from simgan_tf import eyestats, simulator
from simgan_tf.data import load_eyes, load_groups, to_model_range
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


# The uniform profile's scenes and images as they were before profiles existed: caches and tests made
# then must still hold. Scene parameters are exact (random draws and float64 arithmetic); image means are
# compared to a tolerance far below any change in geometry or shading but above the odd pixel that a
# CPU's vectorised float32 sin or exp may round the other way.
_UNIFORM_SCENES_SHA256 = "04892d96aaf8d72f"
_UNIFORM_MEANS = {"synthetic": 148.25636363636363, "target": 128.35946115702478}
_PRE_PROFILE_KEYS = (
    "ambient bag_dark brow_dark caruncle caruncle_end crease_dark crease_gap cx cy glint half_width"
    " iris iris_shade lash lash_width lid_shadow lower_lash lower_pow lower_skew lx ly lz mirror open"
    " pitch pupil pupil_shade radius roll sclera skin skin_slope socket tilt upper_pow upper_skew yaw"
).split()


def test_uniform_profile_is_unchanged_and_the_default():
    import hashlib

    scenes = simulator.scene_parameters(1100, seed=3)
    digest = hashlib.sha256()
    for key in _PRE_PROFILE_KEYS:
        digest.update(scenes[key].tobytes())
    assert digest.hexdigest()[:16] == _UNIFORM_SCENES_SHA256
    assert np.all(scenes["head_yaw"] == 0)
    for domain, mean in _UNIFORM_MEANS.items():
        images, look = simulator.render(1100, domain, 3)
        assert abs(images.mean() - mean) < 2e-3, (domain, images.mean())
        explicit = simulator.render(1100, domain, 3, "uniform")
        np.testing.assert_array_equal(explicit[0], images)
        np.testing.assert_array_equal(explicit[1], look)


@pytest.mark.parametrize("profile", ["columbia", "mpiigaze", "columbia_follow"])
def test_profiles_are_deterministic_and_differ_from_uniform(profile):
    a, la = simulator.render(1100, "synthetic", 3, profile)
    np.testing.assert_array_equal(a, simulator.render(1100, "synthetic", 3, profile)[0])
    np.testing.assert_array_equal(simulator.render(5, "synthetic", 3, profile)[0], a[:5])
    t, lt = simulator.render(1100, "target", 3, profile)
    np.testing.assert_array_equal(lt, la)  # the target images the same scenes
    np.testing.assert_array_equal(simulator.render(7, "target", 3, profile)[0], t[:7])
    assert not np.allclose(la, simulator.render(1100, "synthetic", 3)[1])


def test_profiles_draw_their_gaze_and_head_pose():
    def degrees(profile: str) -> dict[str, np.ndarray]:
        s = simulator.scene_parameters(3000, seed=1, profile=profile)
        return {k: np.degrees(s[k]) for k in ("pitch", "yaw", "head_yaw")}

    def spans(values: np.ndarray, lo: float, hi: float) -> bool:
        # Inside the range and reaching both ends of it: the range is the one drawn.
        return (
            values.min() >= lo - 1e-3
            and values.max() <= hi + 1e-3
            and np.ptp(values) > 0.95 * (hi - lo)
        )

    col = degrees("columbia")
    head_relative = col["yaw"] + col["head_yaw"]  # camera yaw = yaw relative to the head - head yaw
    assert spans(col["pitch"], -10, 10) and spans(col["head_yaw"], -30, 30)
    assert spans(head_relative, -15, 15)
    assert np.abs(col["yaw"]).max() > 40  # the camera sees up to 45 deg, as in Columbia Gaze
    mpii = degrees("mpiigaze")
    assert spans(mpii["pitch"], -25, 5) and spans(mpii["head_yaw"], -10, 10)
    assert np.mean(mpii["pitch"] < 0) > 0.8  # mostly looking down
    uni = degrees("uniform")
    assert spans(uni["pitch"], -30, 30) and spans(uni["yaw"], -30, 30)
    # look_vec is the camera-frame gaze the eyeball was drawn with, whatever the head does.
    s = simulator.scene_parameters(50, seed=1, profile="columbia")
    _, look = simulator.render(50, "synthetic", 1, "columbia")
    expected = simulator.pitch_yaw_to_look_vec(np.stack([s["pitch"], s["yaw"]], axis=1))
    np.testing.assert_array_equal(look, expected)


def _fissure_columns(s: dict[str, np.ndarray]) -> np.ndarray:
    """(m, 2): the first and last column where the lids are open (the eye's corners), in pixels."""
    _, skin, _ = simulator._draw(s, np.random.default_rng(0))
    open_cols = (skin < 0.5).any(axis=1)
    cols = np.arange(open_cols.shape[1])
    return np.stack(
        [np.where(open_cols, cols, 99).min(axis=1), np.where(open_cols, cols, -1).max(axis=1)],
        axis=1,
    ).astype(float)


def test_head_yaw_foreshortens_the_eye_region_and_moves_the_eyeball_between_the_corners():
    base = simulator.scene_parameters(200, seed=2)  # frontal scenes
    for key in ("roll", "tilt"):  # level lids, so the corners' columns measure width
        base[key] = np.zeros_like(base[key])
    base["half_width"] = np.full_like(base["half_width"], 1.1)  # corners well inside the patch
    turned = dict(base, head_yaw=np.full_like(base["head_yaw"], np.radians(40.0)))
    front, side = _fissure_columns(base), _fissure_columns(turned)
    ratio = np.median((side[:, 1] - side[:, 0]) / (front[:, 1] - front[:, 0]))
    assert abs(ratio - np.cos(np.radians(40.0))) < 0.04, ratio
    # The corners' midpoint moves left of the eyeball's centre by corner_depth * sin(head_yaw).
    shift = side.mean(axis=1) - front.mean(axis=1)
    expected = -base["corner_depth"] * np.sin(np.radians(40.0)) * base["radius"]
    assert np.median(np.abs(shift - expected)) < 1.0, np.median(shift - expected)
    # The eyeball is drawn where it was, with the same gaze: the pupil stays put while the lids move.
    assert _pupil_shift(base, turned) < 0.3


def test_ball_rise_lowers_the_corners_under_an_eyeball_that_stays_put():
    base = simulator.scene_parameters(200, seed=3)  # uniform: no rise
    for key in ("roll", "tilt"):  # level lids: the corners' row is the lid frame's axis
        base[key] = np.zeros_like(base[key])
    raised = dict(base, ball_rise=np.full_like(base["ball_rise"], 0.25))

    def corner_rows(s: dict[str, np.ndarray]) -> np.ndarray:
        # The mean row of the open eye in its first and last two columns, where the lids meet.
        opened = simulator._draw(s, np.random.default_rng(0))[1] < 0.5
        cols = opened.any(axis=1)
        rows = np.arange(opened.shape[1], dtype=float)[:, None]
        out = []
        for img, c in zip(opened, cols, strict=True):
            ends = np.flatnonzero(c)[[0, 1, -2, -1]]
            out.append((img[:, ends] * rows).sum() / img[:, ends].sum())
        return np.array(out)

    drop = corner_rows(raised) - corner_rows(base)  # rows grow downward
    assert np.median(np.abs(drop - 0.25 * base["radius"])) < 0.5, np.median(drop)
    assert _pupil_shift(base, raised) < 0.3


def test_lower_lid_sides_follow_the_pitch_and_its_middle_stays():
    for name in simulator.PROFILES:  # off in every profile
        assert not simulator.scene_parameters(50, seed=5, profile=name)["lower_pow_follow"].any()
    s = simulator.scene_parameters(200, seed=5, profile="columbia")
    fixed = np.zeros_like(s["lower_pow_follow"])
    for key in ("roll", "tilt", "head_yaw", "yaw"):  # level lids, a straight gaze
        s[key] = np.zeros_like(s[key])
    s["lower_pow_follow"] = np.full_like(fixed, 5.0)

    def open_rows(s: dict[str, np.ndarray]) -> np.ndarray:
        return (simulator._draw(s, np.random.default_rng(0))[1] < 0.5).sum(axis=1).astype(float)

    for deg, sign in ((10.0, 1.0), (-10.0, -1.0)):
        at = dict(s, pitch=np.full_like(s["pitch"], np.radians(deg)))
        following, still = open_rows(at), open_rows(dict(at, lower_pow_follow=fixed))
        # Looking up the lid's sides sink (more of the eye open), looking down they rise...
        assert np.mean(sign * (following - still).sum(axis=1) > 5) > 0.9, deg
        # ...while its lowest point, under the middle of the eye, does not move.
        assert np.abs(following.max(axis=1) - still.max(axis=1)).max() <= 1.0, deg


def test_corner_crop_keeps_the_eye_width_and_zooms_the_eyeball():
    s = simulator.scene_parameters(2000, seed=4, profile="columbia")
    cos = np.cos(s["head_yaw"])
    # radius is the eyeball as the crop shows it: 1 / cos(head_yaw) of the frontal one.
    turned, frontal = np.abs(s["head_yaw"]) > np.radians(25), np.abs(s["head_yaw"]) < np.radians(5)
    width = (s["half_width"] * s["radius"] * cos)[turned]
    assert abs(np.median(width) - np.median((s["half_width"] * s["radius"])[frontal])) < 1.0
    assert np.median(s["radius"][turned]) > 1.1 * np.median(s["radius"][frontal])


def test_columbia_follow_crop_follows_the_gaze_and_the_eyeball_keeps_its_label(monkeypatch):
    for name, prof in simulator.PROFILES.items():  # a Columbia-style crop only
        assert prof.crop_follow == (0.11 if name == "columbia_follow" else 0.0), name
    s = simulator.scene_parameters(300, seed=6, profile="columbia_follow")
    images, look = simulator.render(300, "synthetic", 6, "columbia_follow")
    level = dataclasses.replace(simulator.PROFILES["columbia_follow"], crop_follow=0.0)
    monkeypatch.setitem(simulator.PROFILES, "columbia_follow", level)
    still = simulator.scene_parameters(300, seed=6, profile="columbia_follow")
    still_images, still_look = simulator.render(300, "synthetic", 6, "columbia_follow")
    # Only where the eye region sits changes: lower in the patch the more the gaze looks up.
    np.testing.assert_allclose(s["cy"] - still["cy"], 0.11 * np.degrees(s["pitch"]), atol=1e-4)
    assert all(np.array_equal(s[k], still[k]) for k in s if k != "cy")
    np.testing.assert_array_equal(look, still_look)  # the labels do not move
    # Rendered, the pupil moves down with the region, 0.11 px per degree of upward pitch (so the
    # eyeball moves with it: test_pupil_position_follows_look_vec measures from the moved centre).
    drop = (
        _pupil_positions(images, s["cx"], s["cy"])[:, 1]
        - _pupil_positions(still_images, still["cx"], still["cy"])[:, 1]
    )
    slope = np.polyfit(np.degrees(s["pitch"]), drop, 1)[0]
    assert abs(slope - 0.11) < 0.03, slope


def test_columbia_follow_lids_open_looking_up_and_differ_from_columbia_only_there():
    s = simulator.scene_parameters(200, seed=7, profile="columbia_follow")
    for key in ("roll", "tilt", "head_yaw", "yaw"):  # level lids, a straight gaze
        s[key] = np.zeros_like(s[key])

    def opening(deg: float) -> np.ndarray:
        at = dict(s, pitch=np.full_like(s["pitch"], np.radians(deg)))
        # The open eye's height at its widest column, in eyeball radii.
        skin = simulator._draw(at, np.random.default_rng(0))[1]
        return (skin < 0.5).sum(axis=1).max(axis=1) / s["radius"]

    # Upper lid up 0.8, lower lid down 0.4 R per unit sin(pitch), times `open`: from -10 to +10 deg
    # the opening grows by 1.2 * 2 * sin(10 deg) * open R.
    grown = opening(10.0) - opening(-10.0)
    expected = 1.2 * 2 * np.sin(np.radians(10.0)) * s["open"]
    assert np.median(np.abs(grown - expected)) < 0.1, np.median(grown - expected)
    # Everything else is columbia's: the same scenes but for the lids' follow and the crop's place.
    base = simulator.PROFILES["columbia"]
    assert simulator.PROFILES["columbia_follow"] == dataclasses.replace(
        base,
        description=simulator.PROFILES["columbia_follow"].description,
        ranges={**base.ranges, "upper_follow": (0.8, 0.8), "lower_follow": (-0.4, -0.4)},
        crop_follow=0.11,
    )


# --- geometry: labels are exact, and the eye sits where the real ones do ------------------------


def _pupil_shift(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """The median distance, px per axis, between the pupils drawn for scenes a and b."""
    pupils = [
        _pupil_positions(
            np.round(simulator._draw(s, np.random.default_rng(0))[0] * 255), s["cx"], s["cy"]
        )
        for s in (a, b)
    ]
    return float(np.median(np.abs(pupils[1] - pupils[0])))


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


@pytest.mark.parametrize("profile", list(simulator.PROFILES))
def test_pupil_position_follows_look_vec(profile):
    n = 1500
    images, look = simulator.render(n, "synthetic", seed=11, profile=profile)
    s = simulator.scene_parameters(n, seed=11, profile=profile)
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


# --- eyestats: image measures that compare simulated and real eyes --------------------------------

COLUMBIA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_gaze_columbia_dev.h5"
)


def _drawn_eyes(centres: np.ndarray) -> np.ndarray:
    """Bright patches, each with a dark disc (radius 6) at a given (x, y) and black lid lines 3 px
    above and below it, columns 10..45: an eye whose measures are known."""
    v, u = np.mgrid[0:35, 0:55]
    out = np.full((len(centres), 35, 55), 200, np.uint8)
    for img, (x, y) in zip(out, centres, strict=True):
        img[(u - x) ** 2 + (v - y) ** 2 <= 36] = 30
        top, bottom = int(round(y)) - 10, int(round(y)) + 9
        img[top : top + 2, 10:46] = 0
        img[bottom : bottom + 2, 10:46] = 0
    return out


def test_eyestats_measures_a_drawn_eye():
    centres = np.array([[27.0, 17.0], [22.0, 15.0], [33.0, 18.0]])
    m = eyestats.measure(_drawn_eyes(centres))
    np.testing.assert_allclose(m["blob_x"], centres[:, 0], atol=0.05)
    np.testing.assert_allclose(m["blob_y"], centres[:, 1], atol=0.05)
    # Its size, less the rim that the 3 x 3 smoothing lifts above the threshold (113 pixels drawn).
    assert np.all((m["blob_area"] > 80) & (m["blob_area"] <= 113)), m["blob_area"]
    assert np.all((m["blob_width"] >= 11) & (m["blob_width"] <= 13)), m["blob_width"]
    # The edges: above, bright to black at the top lid line; below, black to bright under the lower.
    np.testing.assert_allclose(m["top_edge"], np.round(centres[:, 1]) - 10.5, atol=1.0)
    np.testing.assert_allclose(m["bottom_edge"], np.round(centres[:, 1]) + 10.5, atol=1.0)
    np.testing.assert_allclose(m["eye_left"], 10, atol=1)
    np.testing.assert_allclose(m["eye_right"], 45, atol=1)
    # Brightness and contrast do not move the measures (thresholds are each image's own).
    dim = eyestats.measure((_drawn_eyes(centres) * 0.5 + 40).astype(np.uint8))
    for key in ("blob_x", "blob_y", "top_edge", "bottom_edge", "eye_left", "eye_right"):
        np.testing.assert_allclose(dim[key], m[key], atol=0.05)
    with pytest.raises(SimGANError, match="shape"):
        eyestats.measure(np.zeros((35, 55), np.uint8))


def test_eyestats_white_lift_is_the_sclera_above_the_skin_in_contrast_units():
    centres = np.array([[27.0, 17.0], [22.0, 15.0]])
    plain = _drawn_eyes(centres)  # the brightest parts are the skin itself
    lifted = plain.copy()
    lifted[:, 12:22, 14:42][plain[:, 12:22, 14:42] == 200] = 250  # a sclera 50 above the skin
    m_plain, m_lifted = eyestats.measure(plain), eyestats.measure(lifted)
    np.testing.assert_allclose(m_plain["white_lift"], 0.0, atol=1e-6)
    expected = 50.0 / lifted.reshape(2, -1).astype(np.float64).std(axis=1)
    np.testing.assert_allclose(m_lifted["white_lift"], expected, rtol=1e-4)
    dim = eyestats.measure((lifted * 0.5 + 40).astype(np.uint8))
    np.testing.assert_allclose(dim["white_lift"], m_lifted["white_lift"], rtol=1e-4)


def test_eyestats_corner_drop_is_the_corners_line_below_the_blob():
    # A dark disc (the blob, centred on row 15) and a 2 px line from column 10 to 45 (the lids
    # meeting at the corners) whose top row lies 9 below the centre, or 9 above it.
    v, u = np.mgrid[0:35, 0:55]
    eyes = np.full((2, 35, 55), 200, np.uint8)
    for img, row in zip(eyes, (24, 6), strict=True):
        img[(u - 27) ** 2 + (v - 15) ** 2 <= 36] = 30
        img[row : row + 2, 10:46] = 60
    m = eyestats.measure(eyes)
    np.testing.assert_allclose(m["blob_y"], 15.0, atol=0.05)
    np.testing.assert_allclose(m["corner_drop"], [9.0, -9.0], atol=0.05)
    dim = eyestats.measure((eyes * 0.5 + 40).astype(np.uint8))
    np.testing.assert_allclose(dim["corner_drop"], m["corner_drop"], atol=0.05)


def test_eyestats_blob_aligned_centres_the_iris_whatever_its_place_and_brightness():
    centres = np.array([[27.0, 17.0], [22.0, 15.0], [33.0, 18.0]])
    eyes = _drawn_eyes(centres)
    cut = eyestats.blob_aligned(eyes)
    assert cut.shape == (3, 25, 33) and cut.dtype == np.float32
    # The disc (gray 30) lands in the middle, wherever it was in the patch.
    flat = eyes.reshape(3, -1).astype(np.float64)
    disc = (30 - flat.mean(axis=1)) / flat.std(axis=1)
    for dr, dc in ((0, 0), (-5, 0), (5, 0), (0, -5), (0, 5)):
        np.testing.assert_allclose(cut[:, 12 + dr, 16 + dc], disc, rtol=1e-5)
    assert np.all(cut[:, 12 - 7, 16] > disc) and np.all(cut[:, 12, 16 + 7] > disc)
    # The same eye at three places: the same cut where the lid lines reach (columns 10..45).
    for other in cut[1:]:
        np.testing.assert_allclose(other[:, 8:25], cut[0, :, 8:25], atol=1e-5)
    # Each image standardised: its brightness and contrast do not show.
    dim = eyestats.blob_aligned((eyes * 0.5 + 40).astype(np.uint8))
    np.testing.assert_allclose(dim, cut, atol=1e-5)
    # The black lid lines, 10 rows above and 9 below the disc's centre, land in the same rows.
    line = -flat.mean(axis=1) / flat.std(axis=1)
    for row in (2, 3, 21, 22):
        np.testing.assert_allclose(cut[:, row, 8:25], np.repeat(line[:, None], 17, 1), rtol=1e-5)
    assert eyestats.blob_aligned(eyes, 3, 5).shape == (3, 7, 11)


def test_mean_maps_tell_sets_apart_and_cli_writes_them(tmp_path, capsys):
    from simgan_tf.data import save_eyes
    from simgan_tf.simulate import mean_maps

    images, look = simulator.render(400, "synthetic", 0, "columbia")
    same, rms_same = mean_maps(images[:200], images[200:])
    assert set(same) == {"renders mean", "renders sd", "real mean", "real sd"}
    assert same["renders mean"].shape == (25, 33)
    _, rms_other = mean_maps(simulator.render(200, "synthetic", 0, "uniform")[0], images[200:])
    # Two halves of one set look alike; two profiles' eyes do not.
    assert rms_same["rms_mean"] < 0.1 < rms_other["rms_mean"]
    assert rms_other["rms_mean"] > 3 * rms_same["rms_mean"]

    real = tmp_path / "real.h5"
    save_eyes(real, images[:50], look[:50])
    out, png = tmp_path / "gaze.h5", tmp_path / "map.png"
    args = ["--n", "60", "--out", str(out), "--scene-profile", "columbia", "--real", str(real)]
    assert simulate_main([*args, "--mean-map", str(png)]) == 0
    assert png.stat().st_size > 5000 and "wrote mean map" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaze.h5", "map.png", "real.h5"]
    # --real alone, --mean-map alone, a missing real set: one clear error, nothing written.
    for bad, message in (
        (args, "--montage or --mean-map"),
        (args[:6] + ["--mean-map", str(png)], "give --real"),
        (args[:7] + [str(tmp_path / "none.h5"), "--mean-map", str(png)], "none.h5"),
    ):
        bad = [a if a != str(out) else str(tmp_path / "new.h5") for a in bad]
        with pytest.raises(SystemExit) as e:
            simulate_main(bad)
        assert e.value.code == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "new.h5").exists()


def test_eyestats_gaze_slopes_recover_pixels_per_degree(rng):
    py = rng.uniform(-20, 20, (300, 2))
    centres = np.stack([27 + 0.25 * py[:, 1], 17 - 0.2 * py[:, 0]], axis=1)  # rows grow downward
    look = simulator.pitch_yaw_to_look_vec(np.radians(py))
    out = eyestats.stats(_drawn_eyes(centres), look)
    assert abs(out["px_per_deg_yaw"] - 0.25) < 0.01 and abs(out["px_per_deg_pitch"] - 0.2) < 0.01
    assert abs(out["blob_x_at_0"] - 27) < 0.2 and abs(out["blob_y_at_0"] - 17) < 0.2
    assert out["corr_yaw"] > 0.99 and out["corr_pitch"] > 0.99
    assert out["blob_x_median"] == pytest.approx(np.median(centres[:, 0]), abs=0.3)


def test_eyestats_straight_gaze_x_takes_the_straight_gazes_at_each_pose(rng):
    pose = rng.choice([-30.0, 0.0, 30.0], 400)
    rel = rng.uniform(-15, 15, 400)  # gaze yaw relative to the head; the camera sees rel - pose
    look = simulator.pitch_yaw_to_look_vec(np.radians(np.stack([np.zeros(400), rel - pose], 1)))
    # The blob sits at 28 - 0.15 * pose for a straight gaze, far off otherwise.
    blob_x = np.where(np.abs(rel) <= 5, 28 - 0.15 * pose, 99.0)
    out = eyestats.straight_gaze_x({"blob_x": blob_x}, look, pose)
    assert out == pytest.approx({-30.0: 32.5, 0.0: 28.0, 30.0: 23.5})
    assert np.isnan(eyestats.straight_gaze_x({"blob_x": blob_x}, look, pose, (15.0,))[15.0])
    with pytest.raises(SimGANError, match="head poses"):
        eyestats.straight_gaze_x({"blob_x": blob_x}, look, pose[:10])
    with pytest.raises(SimGANError, match="12 gaze labels"):
        eyestats.straight_gaze_x({"blob_x": blob_x}, look[:12], pose)


def test_columbia_profile_matches_columbia_eyes():
    """The calibration the columbia profile came from, kept: its images measured like the real ones."""
    if not COLUMBIA.exists():
        pytest.skip(f"{COLUMBIA} not present")
    from simgan_tf import photometry

    real = load_eyes(COLUMBIA, require_labels=True)
    per_image = {"real": eyestats.measure(real.images)}
    look = {"real": real.look_vec}
    pose = {
        "real": load_groups(COLUMBIA, "head_pose_deg"),
        "columbia": np.degrees(simulator.scene_parameters(3000, 0, "columbia")["head_yaw"]),
    }
    for profile in ("columbia", "uniform"):
        images, look[profile] = simulator.render(3000, "synthetic", 0, profile)
        mode, lut = photometry.resolve("match", images, real.images)  # as training prepares them
        per_image[profile] = eyestats.measure(photometry.apply(images, mode, lut))
    measured = {
        k: {**eyestats.summarise(m), **eyestats.gaze_slopes(m, look[k])}
        for k, m in per_image.items()
    }
    real, sim, uniform = measured["real"], measured["columbia"], measured["uniform"]
    for key in ("blob_x", "blob_y", "blob_width", "blob_height", "top_edge", "bottom_edge"):
        assert abs(sim[f"{key}_median"] - real[f"{key}_median"]) <= 2.0, key
    # The pupil's travel per degree: the lids hide the iris, so the visible blob rises little with
    # pitch on real eyes; uniform's rises three times as fast.
    for key in ("px_per_deg_yaw", "px_per_deg_pitch"):
        assert abs(sim[key] - real[key]) < abs(uniform[key] - real[key]), key
    # Columbia's sclera is hardly brighter than the skin under the eye (a sclera of 0.75..1: 1.65).
    assert abs(sim["white_lift_median"] - real["white_lift_median"]) <= 0.3
    # Columbia's corners lie below the eyeball (corner_drop 2.2 px); with the corners level with it
    # (no ball_rise) these scenes measured -1.8.
    assert abs(sim["corner_drop_median"] - real["corner_drop_median"]) <= 2.0
    # How far the eyeball moves between the corners as the head turns, at a straight gaze: 8.7 px
    # from P = -30 to +30 on real eyes (with the eyeball 0.43..0.63 R behind the corners: 6.1).
    sim_x, real_x = (
        eyestats.straight_gaze_x(per_image[k], look[k], pose[k]) for k in ("columbia", "real")
    )
    assert abs((sim_x[-30.0] - sim_x[30.0]) - (real_x[-30.0] - real_x[30.0])) <= 1.5, (
        sim_x,
        real_x,
    )


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


def test_a_cache_from_another_simulator_is_simulated_again(tmp_path, capsys):
    import h5py

    path = simulator.ensure_simulated("synthetic", 20, 3, tmp_path, progress=False)
    # As if an earlier simulator had drawn the first image differently: same name, other pixels.
    with h5py.File(path, "r+") as f:
        first = f["image"][sorted(f["image"])[0]]
        first[...] = 255 - first[()]
    stale = load_eyes(path, cache=False).images
    assert not np.array_equal(stale, simulator.render(20, "synthetic", 3)[0])
    assert simulator.ensure_simulated("synthetic", 20, 3, tmp_path, progress=False) == path
    assert "another version of the simulator" in capsys.readouterr().err
    np.testing.assert_array_equal(
        load_eyes(path, cache=False).images, simulator.render(20, "synthetic", 3)[0]
    )
    # An unreadable file under the cache's name is replaced too.
    path.write_bytes(b"not hdf5")
    simulator.ensure_simulated("synthetic", 20, 3, tmp_path, progress=False)
    np.testing.assert_array_equal(
        load_eyes(path, cache=False).images, simulator.render(20, "synthetic", 3)[0]
    )


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


def test_scene_profile_in_cache_names_files_and_cli(tmp_path, capsys):
    path = simulator.ensure_simulated(
        "synthetic", 30, 2, tmp_path, progress=False, profile="columbia"
    )
    assert path.name == "synthetic_columbia_n30_seed2.h5"
    assert simulator.default_path("synthetic", 30, 2, tmp_path).name == "synthetic_n30_seed2.h5"
    eyes = load_eyes(path, require_labels=True)
    images, look = simulator.render(30, "synthetic", 2, "columbia")
    np.testing.assert_array_equal(eyes.images, images)
    np.testing.assert_array_equal(eyes.look_vec, look)
    out = tmp_path / "m.h5"
    assert simulate_main(["--n", "9", "--out", str(out), "--scene-profile", "mpiigaze"]) == 0
    np.testing.assert_array_equal(
        load_eyes(out).images, simulator.render(9, "synthetic", 0, "mpiigaze")[0]
    )
    with pytest.raises(SimGANError, match="unknown scene profile 'real'"):
        simulator.render(3, "synthetic", 0, "real")
    with pytest.raises(SystemExit) as e:
        simulate_main(["--n", "3", "--out", str(tmp_path / "x.h5"), "--scene-profile", "real"])
    assert e.value.code == 2 and "scene-profile" in capsys.readouterr().err
