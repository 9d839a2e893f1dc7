"""evaluate, gaze and realism: the angular error by hand, the two-sample test's two ends, the target's
split by person, smoke runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from simgan_tf.data import load_groups, save_eyes
from simgan_tf.distribute import cpu_threads_in_effect
from simgan_tf.errors import SimGANError
from simgan_tf.gaze import angular_error_deg, evaluate_estimator, predict_gaze, train_estimator
from simgan_tf.realism import c2st, split_balanced


def toy_eyes(n: int, seed: int, domain: str = "synthetic") -> tuple[np.ndarray, np.ndarray]:
    """Labelled stand-in eyes: a dark pupil placed by the gaze angles inside a bright almond.

    "target" images the same kind of scene darker, lower in contrast and noisy.
    """
    rng = np.random.default_rng(seed)
    yaw, pitch = rng.uniform(-0.5, 0.5, n), rng.uniform(-0.35, 0.35, n)
    look = np.stack(
        [np.sin(yaw) * np.cos(pitch), np.sin(pitch), -np.cos(yaw) * np.cos(pitch)], axis=1
    ).astype(np.float32)
    yy, xx = np.mgrid[:35, :55]
    cx, cy = 27 + 30 * yaw[:, None, None], 17 - 25 * pitch[:, None, None]
    sclera = np.exp(-((((xx - 27) / 22.0) ** 2 + ((yy - 17) / 11.0) ** 2) ** 2))
    img = 60 + 150 * sclera - 140 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 18.0) * sclera
    if domain == "target":
        img = 0.7 * img + 40 + rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), look


def _blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:35, :55]
    out = np.full((n, 35, 55), 100.0)
    for _ in range(3):
        cx, cy = rng.uniform(0, 55, (n, 1, 1)), rng.uniform(0, 35, (n, 1, 1))
        s = rng.uniform(3, 8, (n, 1, 1))
        out += rng.uniform(-80, 80, (n, 1, 1)) * np.exp(
            -((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2)
        )
    return np.clip(out + rng.normal(0, 4, out.shape), 0, 255).astype(np.uint8)


def _stripes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xx = np.arange(55)[None, None, :]
    period, phase = rng.uniform(5, 12, (n, 1, 1)), rng.uniform(0, 2 * np.pi, (n, 1, 1))
    out = 100 + 30 * np.sin(2 * np.pi * xx / period + phase) + np.zeros((n, 35, 55))
    return np.clip(out + rng.normal(0, 4, out.shape), 0, 255).astype(np.uint8)


# --- angular error ----------------------------------------------------------------------------


def test_angular_error_hand_computed():
    s, c = math.sin(math.radians(10)), math.cos(math.radians(10))
    pred = np.array(
        [
            [0, 0, -1],  # the same direction
            [0, 0, -5],  # the same direction, another length
            [1, 0, 0],  # perpendicular
            [0, 0, 1],  # opposite
            [1, 1, 0],  # 45 degrees
            [0, s, -c],  # 10 degrees up
            [1, 1, 1],  # arccos(1 / sqrt(3))
            [0, 1e-4, -1],  # a tiny angle, where arccos(cos) would lose it
        ],
        dtype=np.float32,
    )
    true = np.array(
        [
            [0, 0, -1],
            [0, 0, -1],
            [0, 0, -1],
            [0, 0, -1],
            [1, 0, 0],
            [0, 0, -1],
            [1, 0, 0],
            [0, 0, -1],
        ],
        dtype=np.float32,
    )
    expected = [
        0,
        0,
        90,
        180,
        45,
        10,
        math.degrees(math.acos(1 / math.sqrt(3))),
        math.degrees(1e-4),
    ]
    np.testing.assert_allclose(angular_error_deg(pred, true), expected, atol=1e-6)
    # Symmetric, and its mean is what the report's mean_deg means.
    np.testing.assert_allclose(angular_error_deg(true, pred), expected, atol=1e-6)


def test_angular_error_rejects_bad_shapes():
    with pytest.raises(ValueError):
        angular_error_deg(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        angular_error_deg(np.zeros((3, 3)), np.zeros((4, 3)))


# --- gaze estimator ---------------------------------------------------------------------------


def test_estimator_learns():
    images, look = toy_eyes(512, seed=0)
    test_images, test_look = toy_eyes(256, seed=1)
    recipe = dict(steps=80, batch_size=32, seed=1, width=0.125, dense=32, learning_rate=3e-3)
    result = evaluate_estimator(train_estimator(images, look, **recipe), test_images, test_look)
    # Predicting the mean gaze for every image: what an estimator that learned nothing scores.
    mean_gaze = np.broadcast_to(look.mean(axis=0), test_look.shape)
    baseline = float(np.mean(angular_error_deg(mean_gaze, test_look)))
    assert result["mean_deg"] < 0.65 * baseline, (result["mean_deg"], baseline)
    assert 0.0 <= result["within_7deg"] <= 1.0 and result["errors"].shape == (256,)


def test_estimator_training_is_reproducible():
    """Every arm of an evaluation relies on it: same seed, same start and batch order."""
    images, look = toy_eyes(64, seed=0)
    recipe = dict(steps=5, batch_size=16, width=0.125, dense=16, learning_rate=1e-3)
    a, b = (train_estimator(images, look, seed=0, **recipe) for _ in range(2))
    np.testing.assert_allclose(predict_gaze(a, images), predict_gaze(b, images), atol=1e-5)


# --- two-sample test --------------------------------------------------------------------------


def test_split_is_balanced_and_disjoint():
    (a_tr, a_te), (b_tr, b_te) = split_balanced(100, 37, seed=0, test_fraction=0.5)
    assert len(a_tr) == len(b_tr) and len(a_te) == len(b_te) and len(a_tr) + len(a_te) == 37
    assert not set(a_tr) & set(a_te) and not set(b_tr) & set(b_te)
    assert max(b_tr.max(), b_te.max()) < 37 and len(set(b_tr) | set(b_te)) == 37


def test_fixed_pattern_finds_a_blotch_painted_into_every_image():
    from simgan_tf.stats import fixed_pattern

    rng = np.random.default_rng(0)
    synthetic = rng.integers(40, 200, (300, 35, 55)).astype(np.uint8)
    # A content-following change (noise of its own on every image) averages out...
    honest = np.clip(synthetic + rng.normal(0, 20, synthetic.shape), 0, 255).astype(np.uint8)
    clean = fixed_pattern(synthetic, honest)
    assert max(clean.values()) < 2.0, clean
    # ... the same bright 3 x 3 spot in every image's bottom-right corner does not.
    blotched = honest.copy()
    blotched[:, -4:-1, -4:-1] = 255
    found = fixed_pattern(synthetic, blotched)
    others = [found[k] for k in ("top_left", "top_right", "bottom_left", "interior")]
    assert found["bottom_right"] > 5 * max(others), found


def test_c2st_is_chance_on_two_halves_of_one_set():
    images = _blobs(1200, seed=0)
    score = c2st(images[:600], images[600:], seed=0, steps=60, batch_size=32)
    assert 0.38 <= score <= 0.62, score


def test_c2st_tells_obviously_different_sets_apart():
    score = c2st(_blobs(300, seed=1), _stripes(300, seed=2), seed=0, steps=60, batch_size=32)
    assert score > 0.9, score


# --- evaluate ---------------------------------------------------------------------------------


@pytest.fixture
def fake_run(tmp_path):
    """What `simgan_tf.train --out RUN` leaves: config.json, refiner.keras, metrics.csv."""
    import keras

    from simgan_tf.models import build_refiner

    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(0)
    build_refiner(filters=4, blocks=1).save(run / "refiner.keras")
    config = {
        "preset": "smoke",
        "seed": 0,
        "synthetic": None,
        "real": None,
        "batch_size": 8,
        "image_shape": [35, 55, 1],
    }
    (run / "config.json").write_text(json.dumps(config))
    rows = ["step,phase,r_adv,r_l1,d_loss_real,d_loss_refined,d_acc_real,d_acc_refined"]
    rows += [f"{s},adversarial,{1 / s:.3f},{0.1 * s:.3f},0.6,0.7,0.5,0.6" for s in range(1, 7)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run


@pytest.mark.parametrize("data", ["built-in", "files"])
def test_evaluate_smoke_writes_every_key(data, fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main

    out = tmp_path / "eval"
    argv = ["--run", str(fake_run), "--out", str(out), "--preset", "smoke", "--steps", "10"]
    if data == "files":
        # Data the simulator did not make, through every file option.
        paths = {name: tmp_path / f"{name}.h5" for name in ("synthetic", "target", "real")}
        save_eyes(paths["synthetic"], *toy_eyes(400, seed=0))
        save_eyes(paths["target"], *toy_eyes(400, seed=1, domain="target"))
        save_eyes(paths["real"], toy_eyes(100, seed=2, domain="target")[0])
        argv += [arg for name, path in paths.items() for arg in (f"--{name}", str(path))]
        argv += ["--repeats", "2"]
    assert main([*argv, "--quiet"]) == 0

    report = json.loads((out / "report.json").read_text())
    for arm in ("synthetic", "refined", "oracle"):
        g = report["gaze"][arm]
        assert 0 <= g["mean_deg"] <= 180 and 0 <= g["within_7deg"] <= 1, (arm, g)
    assert report["gaze"]["synthetic"]["n_train"] == report["gaze"]["refined"]["n_train"] == 256
    repeats = 1 if data == "built-in" else 2
    assert len(report["gaze"]["oracle"]["runs"]) == len(report["gain_runs"]) == repeats
    assert 0 <= report["label_drift_deg"] <= 180
    drift = report["label_drift"]
    assert drift["synthetic_heldout_error_deg"] >= 0 and drift["refined_heldout_error_deg"] >= 0
    shift = drift["systematic"]
    assert set(shift) == {"drift_estimator", "raw_arm_estimator", "blob"}
    assert 0 <= drift["after_turn_deg"] <= 180
    assert abs(shift["raw_arm_estimator"]["yaw_deg"]) <= 180
    assert set(shift["blob"]) == {"x_px", "y_px"}
    # The floor needs the simulator's paired target renders; files have none.
    assert (drift["appearance_floor_deg"] is not None) == (data == "built-in")
    # One drift estimator per seed; the drift is their consensus's, each one's kept beside it.
    assert drift["estimators"] == len(drift["per_estimator_deg"]) == repeats
    assert all(0 <= d <= 180 for d in drift["per_estimator_deg"])
    # The readers' scale beside their distances: a reader reading every gaze smaller drifts less.
    assert set(drift["reading_slope"]) == {"pitch", "yaw", "pitch_r", "yaw_r"}
    if data == "built-in":
        assert len(drift["per_estimator_floor_deg"]) == 1
        assert drift["per_estimator_floor_deg"][0] == pytest.approx(drift["appearance_floor_deg"])
        assert drift["per_estimator_deg"][0] == pytest.approx(drift["mean_deg"])
    for key in ("c2st_real_vs_synthetic", "c2st_real_vs_refined"):
        assert 0 <= report["realism"][key] <= 1
    assert report["realism"]["n_per_class"] == (128 if data == "built-in" else 100)
    assert report["data"]["n_test"] == 128 and report["estimator"]["steps"] == 10
    # The oracle reads refined images only where labels mean the same in both domains.
    assert (drift["oracle_refined_heldout_error_deg"] is not None) == (data == "built-in")
    assert report["wall_seconds"]["total"] > 0 and len(report["goals"]) == 6
    for key in ("probe_real_vs_synthetic", "probe_real_vs_refined"):
        assert 0 <= report["realism"][key]["image_accuracy"] <= 1
        assert np.asarray(report["realism"][key]["patch_accuracy_map"]).shape == (9, 14)
    # No person column: split by image, and said so.
    assert report["data"]["split"]["by"] == "image" and report["data"]["input_norm"] == "none"
    assert "by_pose" not in report["gaze"]["refined"]
    assert set(report["fixed_pattern"]) == {
        "top_left", "top_right", "bottom_left", "bottom_right", "interior"
    }  # fmt: skip
    md = (out / "report.md").read_text()
    assert "| refined | 256 |" in md and "Label drift" in md and "Goals" in md
    assert "Where the probe tells them apart" in md
    # Renders or files without people: no unseen people to probe against.
    assert "probe_unseen_vs_refined" not in report["realism"] and "nobody trained on" not in md
    assert "Fixed patterns" in md and "split by image" in md and "By head pose" not in md
    # No head poses: each axis's reading slope over all test images.
    assert "How much of the gaze each arm reads (the slope of the predicted angle on the" in md
    assert set(report["gaze"]["refined"]["reading_slope"]) == {"pitch", "yaw", "pitch_r", "yaw_r"}
    assert "What moves every image the same way" in md
    assert "of each degree of pitch" in md and "every drift and floor smaller" in md
    assert ("people may be on both sides" in md) == (data == "files")
    assert ("The consensus (mean reading) of 2 estimators" in md) == (data == "files")
    for name in ("montage.png", "error_hist.png", "probe_map.png", "losses.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "`probe_map.png`" in md
    assert "label drift" in capsys.readouterr().out


def test_the_consensus_of_drift_estimators_averages_their_own_errors_away(rng):
    """Each estimator misreads appearance in its own way; refinement that keeps the gaze moves no
    reading on average. So the consensus's drift is smaller than any one estimator's."""
    from simgan_tf.evaluation.drift import consensus
    from simgan_tf.gaze import angular_error_deg
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    true = rng.uniform(-0.4, 0.4, (500, 2))

    def read(noise):
        return pitch_yaw_to_look_vec(true + rng.normal(0, noise, true.shape))

    before, after = [read(0.05) for _ in range(4)], [read(0.05) for _ in range(4)]
    each = [angular_error_deg(b, a).mean() for b, a in zip(before, after, strict=True)]
    together = angular_error_deg(consensus(before), consensus(after)).mean()
    assert together < 0.7 * min(each)
    np.testing.assert_allclose(np.linalg.norm(consensus(before), axis=1), 1.0, rtol=1e-6)
    # One estimator is its own consensus.
    np.testing.assert_allclose(consensus(before[:1]), before[0], atol=1e-6)


def test_evaluate_realism_alone_skips_the_gaze_arms(fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main

    out = tmp_path / "eval"
    out.mkdir()
    # An earlier evaluation's predictions belong to its report, which this one replaces.
    np.savez(out / "predictions.npz", refined=np.zeros((1, 2, 3)))
    argv = ["--run", str(fake_run), "--out", str(out), "--preset", "smoke", "--quiet"]
    assert main([*argv, "--measures", "realism"]) == 0
    assert not (out / "predictions.npz").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["measures"] == ["realism"] and report["pending"] == []
    assert all(g is None for g in report["gaze"].values())
    assert report["gain"] is None and report["label_drift"] is None
    assert "gaze_synthetic" not in report["wall_seconds"]
    assert 0 <= report["realism"]["probe_real_vs_refined"]["image_accuracy"] <= 1
    # Every goal is listed; those of the measures left out cannot be judged.
    assert len(report["goals"]) == 6
    assert report["goals"]["label_drift_at_most_3deg"] is None
    assert report["goals"]["refined_error_cut_25pct"] is None
    assert report["goals"]["probe_image_accuracy_at_most_0.80"] is not None
    md = (out / "report.md").read_text()
    assert "Not measured (`--measures`): gaze, drift." in md and "## Realism" in md
    assert "## Gaze estimation" not in md and "## Label drift" not in md
    assert "| not measured |" in md
    assert not (out / "error_hist.png").exists() and (out / "montage.png").exists()
    assert (out / "probe_map.png").exists()
    printed = capsys.readouterr().out
    assert "C2ST" in printed and "label drift" not in printed


def test_an_evaluation_stopped_part_way_leaves_the_report_of_what_it_measured(
    fake_run, tmp_path, monkeypatch
):
    import simgan_tf.evaluate as ev

    class Stopped(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stopped  # a time limit or a crash in the measure after gaze

    monkeypatch.setattr(ev, "label_drift", stop)
    out = tmp_path / "eval"
    with pytest.raises(Stopped):
        ev.evaluate(str(fake_run), out=str(out), preset="smoke", steps=10, verbose=False)
    report = json.loads((out / "report.json").read_text())
    assert report["pending"] == ["drift", "realism", "figures"]
    assert report["label_drift"] is None and report["realism"] is None
    saved = np.load(out / "predictions.npz")
    for arm in ("synthetic", "refined", "oracle"):
        errors = angular_error_deg(saved[arm][0], saved["look_vec"])
        assert np.isclose(errors.mean(), report["gaze"][arm]["mean_deg"], atol=1e-3), arm
    md = (out / "report.md").read_text()
    assert "still to run when this was written: drift, realism, figures" in md
    assert "## Gaze estimation" in md and "## Figures" not in md
    assert not (out / "montage.png").exists()


@pytest.mark.parametrize(
    "measures, message",
    [(["drift"], "drift needs gaze"), (["gaze", "speed"], "one or more of gaze, drift, realism")],
)
def test_evaluate_measures_are_checked_first(fake_run, tmp_path, capsys, measures, message):
    from simgan_tf.evaluate import main

    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as e:
        main(["--run", str(fake_run), "--out", str(out), "--quiet", "--measures", *measures])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not out.exists()  # refused before any work


def test_evaluate_errors_are_one_line(fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main

    unlabelled = tmp_path / "unlabelled.h5"
    save_eyes(unlabelled, toy_eyes(20, seed=0)[0])
    cases = [
        (["--run", str(tmp_path / "nowhere")], "no such run directory"),
        (
            ["--run", str(fake_run), "--target", str(unlabelled), "--synthetic", str(unlabelled)],
            "look_vec",
        ),
    ]
    moved = tmp_path / "moved_run"
    moved.mkdir()
    (moved / "refiner.keras").write_bytes((fake_run / "refiner.keras").read_bytes())
    config = json.loads((fake_run / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "synthetic": "gone/gaze.h5"}))
    # A run that trained on a file no longer there must not quietly switch to built-in data.
    cases.append((["--run", str(moved)], "pass --synthetic"))
    for argv, message in cases:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--quiet"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    (fake_run / "refiner.keras").unlink()
    with pytest.raises(SimGANError, match="no such refiner"):
        main.__wrapped__(["--run", str(fake_run)])


def _fake_report(path: Path, seed: int, raw: float, refined: float, people: list[int], **extra):
    """A report.json as evaluate writes it, holding only what --compare reads."""
    path.mkdir(parents=True)
    report = {
        "seed": seed,
        "data": {"target": "b.h5", "split": {"test_people": people}},
        "estimator": {"steps": 1500},
        "gaze": {"synthetic": {"mean_deg": raw}, "refined": {"mean_deg": refined}},
        "gain": (raw - refined) / raw,
        **extra,
    }
    (path / "report.json").write_text(json.dumps(report))
    return path


def test_evaluate_compare_sets_reports_side_by_side(tmp_path, capsys):
    from simgan_tf.evaluate import main

    drift = {"estimators": 3, "appearance_floor_deg": 2.5, "after_turn_deg": 2.75}
    drift["reading_slope"] = {"pitch": 0.93, "yaw": 0.96, "pitch_r": 0.99, "yaw_r": 0.99}
    drift.update(synthetic_heldout_error_deg=2.0, refined_heldout_error_deg=2.2)
    realism = {"c2st_real_vs_refined": 0.99, "probe_real_vs_refined": {"image_accuracy": 0.9}}
    realism["probe_unseen_vs_refined"] = {"image_accuracy": 0.97}
    a = _fake_report(
        tmp_path / "a" / "eval",
        0,
        15.0,
        13.5,
        [1, 2],
        label_drift_deg=3.0,
        label_drift=drift,
        realism=realism,
    )
    report = json.loads((a / "report.json").read_text())
    report["gaze"]["synthetic"]["mean_deg_less_pose_bias"] = 13.0
    report["gaze"]["refined"]["mean_deg_less_pose_bias"] = 12.25
    report["gaze"]["synthetic"]["reading_slope"] = {"pitch": 0.21, "yaw": 0.87, "pitch_r": 0.36}
    report["gaze"]["refined"]["reading_slope"] = {"pitch": 0.27, "yaw": None}
    (a / "report.json").write_text(json.dumps(report))
    b = _fake_report(tmp_path / "b", 1, 15.0, 14.1, [1, 2])  # gaze only
    main(["--compare", str(tmp_path / "a"), str(b)])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert rows[2].startswith(
        f"| {a} | 0 | 15.00 | 13.50 | - | 13.00 | 12.25 | 0.21 | 0.27 | +10.0% | 3.00 | 2.75 "
        "| 2.50 | 0.93 | 0.96 | 1.10 x |"
    )
    # The probe against the own real set, then against the unseen people's eyes, then the C2ST.
    assert rows[2].endswith("| 1.10 x | 0.900 | 0.970 | 0.990 |")
    assert rows[3].startswith(
        f"| {b} | 1 | 15.00 | 14.10 | - | - | - | - | - | +6.0% | - | - | - | - | - | - |"
    )
    # Mean and spread over the reports that measured each figure: (10 + 6) / 2, sd 2 points.
    assert (
        "| mean ± sd over 2 reports | | 15.00 ± 0.00 | 13.80 ± 0.30 | - | 13.00 | 12.25 "
        "| 0.21 | 0.27 | +8.0% ± 2.0 pt | 3.00 |" in out
    )
    assert "Note" not in out  # same people, same recipe

    # Other people, and a drift counted by one estimator beside a consensus of three.
    c = _fake_report(
        tmp_path / "c",
        2,
        15.2,
        14.0,
        [3, 4],
        label_drift_deg=4.0,
        label_drift={"appearance_floor_deg": 3.0},
    )
    main(["--compare", str(a), str(b), str(c)])
    out = capsys.readouterr().out
    assert "tested different people" in out and "different numbers of estimators (1, 3)" in out
    assert "thread counts" not in out  # none recorded

    # Estimators trained at two thread counts; a report from before the count was kept says none.
    d = _fake_report(tmp_path / "d", 0, 15.0, 13.0, [1, 2], cpu_threads=1)
    e = _fake_report(tmp_path / "e", 0, 15.0, 13.2, [1, 2], cpu_threads=2)
    main(["--compare", str(d), str(e), str(b)])
    out = capsys.readouterr().out
    assert f"different CPU thread counts ({d} 1; {e} 2; {b} -)" in out

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.json").write_text("{not json")
    cases = [
        ([str(a)], "at least two"),
        ([str(a), str(tmp_path / "nowhere")], "no report.json"),
        ([str(a), str(tmp_path / "bad")], "bad/report.json: cannot be read"),
        ([str(a), str(b), "--target", "b.h5"], "nothing else: drop --target"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as e:
            main(["--compare", *argv])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err


# --- the target's split by person --------------------------------------------------------------

COLUMBIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_gaze_columbia_dev.h5"


def people_file(path: Path, people: list[int], per_person: int, seed: int) -> Path:
    """Labelled target-like eyes of `people`, `per_person` each, with subject and head_pose_deg."""
    n = len(people) * per_person
    save_eyes(path, *toy_eyes(n, seed=seed, domain="target"))
    with h5py.File(path, "a") as f:
        f["subject"] = np.repeat(people, per_person).astype(np.int16)
        f["head_pose_deg"] = np.resize(np.float32([-30, -15, 0, 15, 30]), n)
    return path


def test_a_shift_common_to_every_image_is_kept_and_a_spread_cancels(rng):
    """The drift is a distance; the systematic part keeps only what moves every image one way."""
    from simgan_tf.evaluation.drift import mean_turn
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    angles = rng.uniform(-20, 20, (400, 2))
    before = pitch_yaw_to_look_vec(np.radians(angles))
    common = pitch_yaw_to_look_vec(np.radians(angles + [1.0, -2.0]))
    turn = mean_turn(before, common)
    assert turn["pitch_deg"] == pytest.approx(1.0, abs=1e-3)
    assert turn["yaw_deg"] == pytest.approx(-2.0, abs=1e-3)
    alternate = np.where(np.arange(400) % 2, 5.0, -5.0)[:, None]
    spread = pitch_yaw_to_look_vec(np.radians(angles + alternate))
    assert angular_error_deg(before, spread).mean() > 5
    assert all(abs(v) < 1e-3 for v in mean_turn(before, spread).values())


def test_the_drift_after_the_turn_keeps_what_moves_each_image_its_own_way(rng):
    from simgan_tf.evaluation.drift import drift_after_turn
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    angles = rng.uniform(-20, 20, (400, 2))
    before = pitch_yaw_to_look_vec(np.radians(angles))
    common = pitch_yaw_to_look_vec(np.radians(angles + [1.0, -2.0]))
    assert angular_error_deg(before, common).mean() > 2
    assert drift_after_turn(before, common) < 0.01
    alternate = np.where(np.arange(400) % 2, 3.0, -3.0)[:, None] * [0.0, 1.0]
    both = pitch_yaw_to_look_vec(np.radians(angles + [2.0, -4.0] + alternate))
    own_way = angular_error_deg(before, pitch_yaw_to_look_vec(np.radians(angles + alternate)))
    assert drift_after_turn(before, both) == pytest.approx(own_way.mean(), abs=0.01)
    assert angular_error_deg(before, both).mean() > own_way.mean() + 1


def test_blob_shift_follows_the_iris():
    from simgan_tf.evaluation.drift import blob_shift
    from simgan_tf.simulator import render

    images = render(200, "synthetic", 0, "columbia")[0]
    right = blob_shift(images, np.roll(images, 1, axis=2))
    assert right == pytest.approx({"x_px": 1.0, "y_px": 0.0}, abs=1e-6)
    up = blob_shift(images, np.roll(images, -1, axis=1))
    assert up == pytest.approx({"x_px": 0.0, "y_px": 1.0}, abs=1e-6)
    assert blob_shift(images, images) == {"x_px": 0.0, "y_px": 0.0}
    assert blob_shift(images[:, :30], images[:, :30]) is None  # not the simulator's size


def test_split_target_keeps_people_apart():
    from simgan_tf.evaluate import split_target

    groups = np.repeat(np.arange(10) * 2 + 1, [30, 10, 50, 20, 40, 5, 60, 25, 15, 45])

    def people(rows):
        return set(groups[rows].tolist())

    s = split_target(len(groups), n_test=60, n_oracle=100, seed=0, groups=groups)
    assert s.by == "subject" and not people(s.test) & people(s.oracle)
    assert len(s.test) <= 60 and len(s.oracle) == 100 and 1 <= len(people(s.test)) <= 5
    assert people(s.test) == set(s.test_people) and people(s.oracle) == set(s.oracle_people)
    # Asked for more test images than there are: half of the people test, the rest train.
    s = split_target(len(groups), n_test=10_000, n_oracle=10_000, seed=0, groups=groups)
    assert len(s.test_people) == len(s.oracle_people) == 5
    assert sorted([*s.test, *s.oracle]) == list(range(len(groups)))
    # One image wanted: one person.
    assert (
        len(split_target(len(groups), n_test=1, n_oracle=9, seed=0, groups=groups).test_people) == 1
    )
    s = split_target(len(groups), n_test=60, n_oracle=100, seed=0, groups=groups, exclude=[1, 3])
    assert not (people(s.test) | people(s.oracle)) & {1, 3}
    seen = {
        tuple(split_target(len(groups), n_test=60, n_oracle=100, seed=k, groups=groups).test_people)
        for k in range(5)
    }
    assert len(seen) > 1
    with pytest.raises(SimGANError, match="no 'subject' group is left"):
        split_target(len(groups), n_test=1, n_oracle=1, seed=0, groups=groups, exclude=groups)
    s = split_target(len(groups), n_test=60, n_oracle=100, seed=0)
    assert s.by == "image" and len(s.test) == 60 and not set(s.test) & set(s.oracle)


def test_split_target_on_columbia_gaze():
    from simgan_tf.evaluate import EVAL_PRESETS, split_target

    if not COLUMBIA.exists():
        pytest.skip(f"{COLUMBIA} not present")
    groups = load_groups(COLUMBIA)
    assert set(load_groups(COLUMBIA, "head_pose_deg").tolist()) == {-30, -15, 0, 15, 30}
    quick = EVAL_PRESETS["quick"]
    s = split_target(
        len(groups), n_test=quick.n_test, n_oracle=quick.n_train, seed=0, groups=groups
    )
    assert len(np.unique(groups)) == 24 and len(s.test_people) <= 12
    assert not set(groups[s.test].tolist()) & set(groups[s.oracle].tolist())
    assert set(s.test_people) | set(s.oracle_people) == set(groups.tolist())
    # The other half of the people trained the refiner: the 12 left give 6 to the test.
    trained = np.unique(groups)[::2]
    s = split_target(
        len(groups),
        n_test=quick.n_test,
        n_oracle=quick.n_train,
        seed=0,
        groups=groups,
        exclude=trained,
    )
    assert len(s.test_people) == len(s.oracle_people) == 6
    assert not set(groups[np.concatenate([s.test, s.oracle])].tolist()) & set(trained.tolist())


def test_errors_by_pose_by_hand():
    from simgan_tf.evaluate import errors_by_pose

    # Two seeds of four test images each.
    errors = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    table = errors_by_pose(errors, np.float32([-30, 0, 0, 15]))
    assert list(table) == ["-30", "0", "15", "abs_le_15"]
    assert table["-30"] == {"n": 1, "mean_deg": 3.0, "within_7deg": 1.0}
    assert table["0"] == {"n": 2, "mean_deg": 4.5, "within_7deg": 1.0}
    assert table["15"] == {"n": 1, "mean_deg": 6.0, "within_7deg": 0.5}
    assert table["abs_le_15"] == {"n": 3, "mean_deg": 5.0, "within_7deg": 5 / 6}
    # With signed errors (pitch, yaw) per image and seed: each pose's mean, over both seeds.
    signed = np.array([[1.0, -4], [0, 2], [0, 4], [2, 8], [3, -2], [0, 0], [0, 0], [4, 0]])
    table = errors_by_pose(errors, np.float32([-30, 0, 0, 15]), signed)
    assert (table["-30"]["pitch_bias_deg"], table["-30"]["yaw_bias_deg"]) == (2.0, -3.0)
    assert (table["0"]["pitch_bias_deg"], table["0"]["yaw_bias_deg"]) == (0.0, 1.5)
    assert (table["15"]["pitch_bias_deg"], table["15"]["yaw_bias_deg"]) == (3.0, 4.0)


def test_pose_blindness_by_hand():
    from simgan_tf.evaluation.arms import pose_blindness

    pose = np.float32([-30, -15, 0, 15, 30])
    head_gaze = np.float32([5, -5, 10, 0, -10])  # yaw relative to the head
    true_yaw = head_gaze - pose

    def blindness(pred_yaw):
        return pose_blindness(np.stack([np.zeros(5), pred_yaw - true_yaw], axis=1), pose)

    # Sees the turn: no slope. Reads the gaze relative to the head only: slope 1. Half of it: 0.5.
    assert abs(blindness(true_yaw)) < 1e-9
    assert abs(blindness(head_gaze) - 1.0) < 1e-9
    assert abs(blindness(head_gaze - 0.5 * pose) - 0.5) < 1e-9
    assert pose_blindness(np.zeros((5, 2)), np.zeros(5)) is None


def test_the_error_less_each_poses_bias_keeps_only_the_scatter_within_a_pose(rng):
    from simgan_tf.evaluation.arms import error_less_pose_bias
    from simgan_tf.gaze import angular_error_deg
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    pose = np.repeat(np.float32([-30, 0, 30]), 200)
    true = np.radians(np.stack([rng.uniform(-10, 10, 600), rng.uniform(-40, 40, 600)], axis=1))
    scatter = np.radians(rng.normal(0, 2.0, (2, 600, 2)))
    # Seed by seed: a yaw bias that follows the head's turn (a blind estimator), and a pitch bias.
    bias = np.radians(np.stack([np.full(600, 3.0), -0.5 * pose], axis=1))
    blind = np.stack([pitch_yaw_to_look_vec(true + bias + s) for s in scatter])
    sharp = np.stack([pitch_yaw_to_look_vec(true + s) for s in scatter])
    look_vec = pitch_yaw_to_look_vec(true)
    left = error_less_pose_bias(blind, look_vec, pose)
    scatter_alone = np.mean([angular_error_deg(p, look_vec) for p in sharp])
    assert np.mean([angular_error_deg(p, look_vec) for p in blind]) > 3 * left
    # Only the biases go: what is left is the scatter's own error (within its sampling noise).
    assert left == pytest.approx(scatter_alone, rel=0.03)
    # An estimator with no bias keeps its error (up to each pose's sample mean of the scatter).
    assert error_less_pose_bias(sharp, look_vec, pose) == pytest.approx(scatter_alone, rel=0.03)
    assert error_less_pose_bias(blind, look_vec, np.zeros(600)) is None


def test_reading_slopes_tell_how_much_of_each_axis_is_read_within_a_pose(rng):
    from simgan_tf.evaluation.arms import reading_slopes
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    pose = np.repeat(np.float32([-30, 0, 30]), 300)
    head_yaw = rng.uniform(-15, 15, 900)  # the gaze relative to the head; the camera sees it - pose
    true = np.stack([rng.uniform(-10, 10, 900), head_yaw - pose], axis=1)
    # Seed by seed: a pitch bias and a third of the pitch read, 0.9 of the eye's turn in the head
    # read but only half the head's turn, and noise.
    pred = [
        np.stack([4.0 + 0.3 * true[:, 0], 0.9 * head_yaw - 0.5 * pose], axis=1)
        + rng.normal(0, 2.0, (900, 2))
        for _ in range(2)
    ]
    look_vec = pitch_yaw_to_look_vec(np.radians(true))
    pred = np.stack([pitch_yaw_to_look_vec(np.radians(p)) for p in pred])
    slopes = reading_slopes(pred, look_vec, pose)
    # Within a pose neither the pitch bias nor the unseen share of the turn counts.
    assert slopes["pitch"] == pytest.approx(0.3, abs=0.04)
    assert slopes["yaw"] == pytest.approx(0.9, abs=0.04)
    # The correlation: pitch 0.3 * 5.77 of spread against noise of 2 deg, r = 1.73 / sqrt(1.73^2 + 4).
    assert slopes["pitch_r"] == pytest.approx(0.65, abs=0.05) and slopes["yaw_r"] > 0.95
    # Pooled over poses, the unseen turn drags the yaw slope down: (0.9 * 75 + 0.5 * 600) / 675.
    assert reading_slopes(pred, look_vec)["yaw"] == pytest.approx(0.54, abs=0.05)
    level = pitch_yaw_to_look_vec(np.radians(np.stack([np.zeros(900), true[:, 1]], axis=1)))
    flat = reading_slopes(level[None], level, pose)
    assert flat["pitch"] is None and flat["pitch_r"] is None and flat["yaw_r"] == pytest.approx(1)


def test_signed_pitch_and_yaw_errors():
    from simgan_tf.gaze import pitch_yaw_errors_deg
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    true = pitch_yaw_to_look_vec(np.radians([[0.0, 179.0], [10.0, 0.0]]))
    pred = pitch_yaw_to_look_vec(np.radians([[2.0, -179.0], [5.0, 20.0]]))
    # Predicted minus true, and across the +-180 seam the short way round (+2, not -358).
    np.testing.assert_allclose(pitch_yaw_errors_deg(pred, true), [[2, 2], [-5, 20]], atol=1e-4)


def test_evaluate_splits_the_target_by_person(fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main
    from simgan_tf.evaluation.arms import reading_slopes

    target = people_file(tmp_path / "target.h5", list(range(8)), 50, seed=1)
    with h5py.File(target, "a") as f:
        f["path"] = [f"{i:04d}_{'LR'[i % 3 > 0]}.jpg" for i in range(400)]
    # The refiner's real set holds people 0 and 1: they may be neither tested nor oracle-trained.
    real = people_file(tmp_path / "real.h5", [0, 1], 50, seed=2)
    synthetic = tmp_path / "synthetic.h5"
    save_eyes(synthetic, *toy_eyes(400, seed=0))
    out = tmp_path / "eval"
    argv = ["--run", fake_run, "--out", out, "--preset", "smoke", "--steps", "5", "--quiet"]
    argv += ["--target", target, "--real", real, "--synthetic", synthetic]
    assert main([str(a) for a in [*argv, "--by", "subject", "--by", "path=*_R.jpg"]]) == 0
    printed = capsys.readouterr().out

    report = json.loads((out / "report.json").read_text())
    sp = report["data"]["split"]
    assert sp["by"] == "subject" and sp["excluded_people"] == [0, 1]
    assert str(real) in sp["excluded_because"]
    assert not set(sp["test_people"]) & set(sp["oracle_people"])
    assert set(sp["test_people"]) | set(sp["oracle_people"]) == set(range(2, 8))
    # 128 test images wanted, 50 a person: three people test, the other three train the oracle.
    assert sp["n_test_people"] == sp["n_oracle_people"] == 3
    assert report["data"]["n_test"] == 128 and report["data"]["n_oracle_train"] == 150
    for arm in ("synthetic", "refined", "oracle"):
        by_pose = report["gaze"][arm]["by_pose"]
        assert list(by_pose) == ["-30", "-15", "0", "15", "30", "abs_le_15"]
        assert sum(by_pose[p]["n"] for p in ("-30", "-15", "0", "15", "30")) == 128
        assert by_pose["abs_le_15"]["n"] == sum(by_pose[p]["n"] for p in ("-15", "0", "15"))
        assert all(np.isfinite(row["yaw_bias_deg"]) for row in by_pose.values())
        assert np.isfinite(report["gaze"][arm]["pose_blindness"])
        assert np.isfinite(report["gaze"][arm]["mean_deg_less_pose_bias"])
        assert all(np.isfinite(v) for v in report["gaze"][arm]["reading_slope"].values())
    md = (out / "report.md").read_text()
    assert "### By head pose" in md and "| -15 to 15 | " in md
    assert "Pose blindness" in md and "yaw bias" in md and "per-pose biases cost" in md
    assert "How much of the gaze each arm reads within a head pose" in md
    assert "pitch: raw synthetic " in md and " (r " in md
    assert "How much of the gaze each arm reads" in printed
    assert "split by person ('subject')" in md and "Left out of both: subject 0, 1" in md
    # The test people are in no real set: the probe also runs against their real eyes.
    realism = report["realism"]
    assert realism["n_unseen"] == report["data"]["n_test"]
    for key in ("probe_unseen_vs_refined", "probe_unseen_vs_real"):
        assert 0 <= realism[key]["image_accuracy"] <= 1
    assert "| unseen people's real vs refined | - |" in md
    assert f"Against real eyes nobody trained on ({report['data']['n_test']} images" in md
    # Every arm's predictions are kept with the test images' rows in the target file, so any column
    # of that file joins them: its labels there are the test labels, and the figures come back.
    kept = np.load(out / "predictions.npz")
    with h5py.File(target) as f:
        labels, subject = f["look_vec"][:], f["subject"][:]
    rows = kept["rows"]
    np.testing.assert_array_equal(kept["look_vec"], labels[rows])
    assert set(subject[rows]) == set(sp["test_people"]) and list(kept["seeds"]) == [0]
    np.testing.assert_array_equal(kept["head_pose_deg"], load_groups(target, "head_pose_deg")[rows])
    for arm in ("synthetic", "refined", "oracle"):
        assert kept[arm].shape == (1, 128, 3)
        error = angular_error_deg(kept[arm][0], labels[rows]).mean()
        assert error == pytest.approx(report["gaze"][arm]["mean_deg"], abs=0.01)
        # The reading slopes are the saved predictions' within each saved head pose, not a
        # figure of other rows or another grouping.
        slopes = reading_slopes(kept[arm], labels[rows], kept["head_pose_deg"])
        assert report["gaze"][arm]["reading_slope"] == pytest.approx(slopes)
        assert report["gaze"][arm]["reading_slope"] != pytest.approx(
            reading_slopes(kept[arm], labels[rows])
        )

    # --by: each arm's error per group of test images, as the target file's columns group them.
    assert report["data"]["by"] == ["subject", "path=*_R.jpg"]
    right = rows % 3 > 0
    for arm in ("synthetic", "refined", "oracle"):
        error = angular_error_deg(kept[arm][0], labels[rows])
        people = report["gaze"][arm]["by"]["subject"]
        assert list(people) == [str(p) for p in sp["test_people"]]
        for person, row in people.items():
            assert row["n"] == np.sum(subject[rows] == int(person))
            assert row["mean_deg"] == pytest.approx(error[subject[rows] == int(person)].mean())
        sides = report["gaze"][arm]["by"]["path=*_R.jpg"]
        assert sides["*_R.jpg"]["n"] == right.sum() and sides["not *_R.jpg"]["n"] == (~right).sum()
        assert sides["*_R.jpg"]["mean_deg"] == pytest.approx(error[right].mean())
        assert sides["not *_R.jpg"]["mean_deg"] == pytest.approx(error[~right].mean())
    assert "### By `subject`" in md and "### By `path=*_R.jpg`" in md
    assert "| `not *_R.jpg` | " in md and "| refined vs raw |" in md
    # The console shows the same tables.
    assert "--by subject:\n| subject | test images |" in printed
    assert "--by path=*_R.jpg:\n| path |" in printed and "| `not *_R.jpg` | " in printed
    for person in sp["test_people"]:
        assert f"\n| `{person}` | " in printed


@pytest.mark.parametrize(
    "by, message",
    [
        (["person"], "no 'person' dataset to break the errors down by"),
        (["path"], "holds 400 distinct values, more than 50 groups; give a pattern"),
        (["path="], "--by takes KEY or KEY=PATTERN"),
        (["subject=one"], "'subject' holds numbers"),
        (["subject", "--target", ""], "the built-in target has none"),
    ],
)
def test_evaluate_by_errors(fake_run, tmp_path, capsys, by, message):
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", list(range(8)), 50, seed=1)
    with h5py.File(target, "a") as f:
        f["path"] = [f"{i:04d}.jpg" for i in range(400)]
    argv = ["--run", fake_run, "--out", tmp_path / "eval", "--preset", "smoke", "--quiet"]
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in [*argv, "--target", target, "--by", *by]])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err


def test_the_oracle_reads_refined_images_only_on_the_built_in_target(fake_run, tmp_path):
    # Built-in synthetic images against a real-like labelled file: the appearance floor exists (the
    # simulator renders the same scenes in its target domain), but an oracle trained on the file's
    # eyes says nothing about whether refinement kept the labels.
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", list(range(4)), 60, seed=1)
    out = tmp_path / "eval"
    argv = ["--run", fake_run, "--out", out, "--preset", "smoke", "--steps", "5", "--quiet"]
    assert main([str(a) for a in [*argv, "--target", target, "--measures", "gaze", "drift"]]) == 0
    drift = json.loads((out / "report.json").read_text())["label_drift"]
    assert drift["appearance_floor_deg"] is not None
    assert (
        drift["oracle_refined_heldout_error_deg"] is None and drift["oracle_test_error_deg"] is None
    )
    assert not (out / "probe_map.png").exists()  # no realism measure, no probe to map


def test_evaluate_refuses_a_target_whose_people_all_trained_the_refiner(fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", [3, 5], 20, seed=1)
    with pytest.raises(SystemExit) as e:
        main(["--run", str(fake_run), "--target", str(target), "--real", str(target), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "none is left to test on" in err and "python -m simgan_tf.data split" in err
    assert "\n" not in err


def test_realism_alone_may_compare_with_the_targets_own_people(fake_run, tmp_path):
    # No gaze arm is tested on the target, so its people need not be kept out of the real images:
    # the refined eyes can be compared with eyes of people the refiner never saw.
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", [3, 5], 20, seed=1)
    out = tmp_path / "eval"
    argv = ["--run", fake_run, "--target", target, "--real", target, "--out", out, "--quiet"]
    argv += ["--preset", "smoke", "--steps", "5", "--measures", "realism"]
    assert main([str(a) for a in argv]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["real"] == str(target) and report["data"]["n_real"] == 40
    split = report["data"]["split"]
    assert split["excluded_people"] == [] and "people were not left out" in split["notes"][0]
    assert np.isfinite(report["realism"]["c2st_real_vs_refined"])
    assert report["gaze"]["refined"] is None
    # The real images are the test people's own: they are not unseen, so no probe against them.
    assert "probe_unseen_vs_refined" not in report["realism"]
    assert "nobody trained on" not in (out / "report.md").read_text()


def test_test_people_are_unseen_only_where_every_real_set_names_its_people_and_none_is_shared(
    tmp_path,
):
    from simgan_tf.evaluation.people import unseen_by_real_sets

    a = people_file(tmp_path / "a.h5", [0, 1], 4, seed=1)
    b = people_file(tmp_path / "b.h5", [2, 3], 4, seed=2)
    anonymous = tmp_path / "anonymous.h5"
    save_eyes(anonymous, toy_eyes(8, seed=3)[0])
    assert unseen_by_real_sets([4, 5], "subject", [(str(a), "trained"), (str(b), "--real")])
    assert not unseen_by_real_sets([1, 5], "subject", [(str(a), "trained")])
    assert unseen_by_real_sets([5], "subject", [(str(b), "x"), (str(a), "y")])
    # A real set that does not name its people may hold anyone.
    assert not unseen_by_real_sets([4, 5], "subject", [(str(a), "x"), (str(anonymous), "y")])
    # No real set: the evaluation's real images are the target's own.
    assert not unseen_by_real_sets([4, 5], "subject", [])
    assert not unseen_by_real_sets([], "subject", [(str(a), "x")])


# --- the simulator alone (evaluate --scene-profile) ---------------------------------------------


def test_the_simulator_alone_tests_the_people_a_run_would(fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", list(range(8)), 50, seed=1)
    real = people_file(tmp_path / "real.h5", [0, 1], 50, seed=2)
    common = ["--target", target, "--real", real, "--preset", "smoke", "--steps", "5", "--quiet"]
    alone = tmp_path / "alone"
    assert main([str(a) for a in ["--scene-profile", "columbia", "--out", alone, *common]]) == 0
    printed = capsys.readouterr().out
    assert "raw synthetic" in printed and "refined" not in printed and "Pose blindness" in printed
    report = json.loads((alone / "report.json").read_text())
    # The run's evaluation at the same seed: the same test and oracle people, the real set's left out.
    # So the same oracle, which it takes from the simulator's arms; its raw arm (other scenes, no
    # input normalisation) is not the simulator's, and is trained.
    with_run = tmp_path / "with_run"
    argv = ["--run", fake_run, "--out", with_run, "--measures", "gaze", *common]
    assert main([str(a) for a in [*argv, "--reuse-arms", alone]]) == 0
    run_report = json.loads((with_run / "report.json").read_text())
    split = run_report["data"]["split"]
    assert report["data"]["split"] == split and split["excluded_people"] == [0, 1]
    assert run_report["gaze"]["oracle"]["reused_from"] == str(alone / "arms" / "oracle.npz")
    assert "reused_from" not in run_report["gaze"]["synthetic"]
    assert report["scene_profile"] == "columbia" and report["gaze"]["refined"] is None
    assert {"synthetic", "oracle", "rows"} <= set(np.load(alone / "predictions.npz").files)
    assert "refined" not in np.load(alone / "predictions.npz").files
    # auto resolves as training does, from the real set.
    from simgan_tf.data import load_eyes
    from simgan_tf.photometry import is_equalized

    expected = "equalize" if is_equalized(load_eyes(real).images) else "match"
    assert report["data"]["input_norm"] == expected and report["data"]["n_real"] == 100
    for arm in ("synthetic", "oracle"):
        g = report["gaze"][arm]
        assert np.isfinite(g["mean_deg"]) and np.isfinite(g["pose_blindness"])
        assert sum(g["by_pose"][p]["n"] for p in ("-30", "-15", "0", "15", "30")) == 128
    md = (alone / "report.md").read_text()
    assert md.startswith("# The simulator alone: columbia scenes") and "| -15 to 15 |" in md
    assert "How much of the gaze each arm reads within a head pose" in md
    # The other way round: the oracle on the renders it was not trained on, per head pose.
    reverse = report["oracle_on_renders"]
    assert reverse["n"] == report["data"]["n_train"] and np.isfinite(reverse["mean_deg"])
    assert set(reverse["by_pose"]) <= {"-30", "-15", "0", "15", "30", "abs_le_15"}
    assert (
        sum(reverse["by_pose"][p]["n"] for p in reverse["by_pose"] if p != "abs_le_15")
        == reverse["n"]
    )
    assert "The other way round" in md and "| head pose of the renders (deg) |" in md


def test_oracle_on_renders_sees_a_blind_estimator(rng):
    """An estimator that always answers 'straight at the camera', on eyes that look straight ahead
    of a turned head (camera yaw = -pose), misses the turn entirely: yaw bias = pose, blindness 1."""
    import keras

    from simgan_tf.evaluation.simulator_alone import oracle_on_renders
    from simgan_tf.simulator import pitch_yaw_to_look_vec

    blind = keras.Sequential(
        [keras.Input((35, 55, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    blind.layers[-1].set_weights([np.zeros((35 * 55, 3)), np.array([0.0, 0.0, -1.0])])
    # The frontal poses all just below zero: they round to -0.0, which must be reported as "0".
    pose = np.tile([-30.0, -16.0, -3.0, -2.0, 14.0, 29.0], 50) + rng.uniform(-0.5, 0.5, 300)
    labels = pitch_yaw_to_look_vec(np.radians(np.stack([np.zeros(300), -pose], axis=1)))
    images = rng.integers(0, 256, (300, 35, 55), dtype=np.uint8)
    out = oracle_on_renders(blind, images, labels, pose)
    assert set(out["by_pose"]) == {"-30", "-15", "0", "15", "30", "abs_le_15"}  # no "-0"
    assert out["pose_blindness"] == pytest.approx(1.0, abs=1e-3)
    for key in ("-30", "0", "30"):
        row = out["by_pose"][key]
        bins = np.round(pose / 15) * 15 == float(key)
        assert row["yaw_bias_deg"] == pytest.approx(pose[bins].mean(), abs=1e-3)
        assert row["pitch_bias_deg"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--input-norm", "match"],
            "--input-norm match matches the renders to a real set: give --real",
        ),
        (["--synthetic", "x.h5"], "--synthetic only apply with --run, not with --scene-profile"),
        (["--measures", "gaze"], "--measures only apply with --run"),
        (["--checkpoint", "6", "--no-average"], "--checkpoint, --no-average only apply with --run"),
        (
            ["--input-norm", "none", "--reuse-arms", "earlier/eval"],
            "earlier/eval: no arms/ folder of gaze arms to reuse",
        ),
    ],
)
def test_the_simulator_alone_refuses_what_it_cannot_do(tmp_path, capsys, extra, message):
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", [1, 2], 10, seed=1)
    argv = ["--scene-profile", "uniform", "--target", str(target), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--preset", "smoke", "--quiet", *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_the_simulator_alone_reuses_the_oracle_after_a_simulator_change(tmp_path, capsys):
    from simgan_tf.evaluate import main

    target = people_file(tmp_path / "target.h5", list(range(8)), 50, seed=1)
    real = people_file(tmp_path / "real.h5", [0, 1], 50, seed=2)
    common = ["--target", target, "--real", real, "--preset", "smoke", "--steps", "5"]
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    assert main([str(a) for a in ["--scene-profile", "columbia", "--out", first, *common]]) == 0
    assert {p.name for p in (first / "arms").iterdir()} == {
        f"{arm}.{ext}" for arm in ("synthetic", "oracle") for ext in ("npz", "keras")
    }
    capsys.readouterr()
    # Nothing changed: both arms reused, nothing trained, the same figures.
    argv = ["--scene-profile", "columbia", "--out", second, *common, "--reuse-arms", first]
    assert main([str(a) for a in [*argv, "--by", "subject"]]) == 0
    shown = capsys.readouterr()
    printed = shown.err
    assert "--by subject:\n| subject | test images |" in shown.out
    assert "training the gaze estimator" not in printed
    a, b = (json.loads((d / "report.json").read_text()) for d in (first, second))
    for arm in ("synthetic", "oracle"):
        assert f"{arm} arm: reused" in printed and b["gaze"][arm]["seconds"] is None
        assert b["gaze"][arm]["reused_from"] == str(first / "arms" / f"{arm}.npz")
        assert b["gaze"][arm]["runs"] == a["gaze"][arm]["runs"]
    # The reused oracle is the model it saved: it reads the renders as when it was trained.
    assert b["oracle_on_renders"] == a["oracle_on_renders"]
    assert "Reused from an earlier evaluation" in (second / "report.md").read_text()
    # Time as evaluate reports it: per arm trained here, and the total.
    assert set(a["wall_seconds"]) == {"gaze_synthetic", "gaze_oracle", "total"}
    assert set(b["wall_seconds"]) == {"total"} and b["wall_seconds"]["total"] > 0

    # Another scene profile, the same people: only the raw arm is trained again, and says why.
    argv = ["--scene-profile", "uniform", "--out", third, *common, "--reuse-arms", first]
    assert main([str(a) for a in argv]) == 0
    printed = capsys.readouterr().err
    assert "synthetic arm: " in printed and "other training images; training it" in printed
    assert "training the gaze estimator on raw synthetic images" in printed
    assert "training the gaze estimator on target itself" not in printed
    c = json.loads((third / "report.json").read_text())
    assert "reused_from" not in c["gaze"]["synthetic"] and c["gaze"]["synthetic"]["seconds"] > 0
    assert c["gaze"]["oracle"]["reused_from"] == str(first / "arms" / "oracle.npz")
    assert c["gaze"]["oracle"]["runs"] == a["gaze"]["oracle"]["runs"]
    # The reused oracle reads the new renders.
    reverse = c["oracle_on_renders"]
    assert reverse["n"] == c["data"]["n_train"] and np.isfinite(reverse["mean_deg"])
    assert reverse != a["oracle_on_renders"]
    md = (third / "report.md").read_text()
    assert "target itself (oracle): `" in md and "raw synthetic: `" not in md
    assert "The other way round" in md


def test_input_norm_is_for_the_simulator_alone_and_run_excludes_scene_profile(fake_run, capsys):
    from simgan_tf.evaluate import main

    with pytest.raises(SystemExit) as e:
        main(["--run", str(fake_run), "--input-norm", "none", "--quiet"])
    assert e.value.code == 2
    assert "--input-norm applies with --scene-profile" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--run", str(fake_run), "--scene-profile", "uniform"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_split_text_counts_people_in_words():
    from simgan_tf.evaluation.report import split_text

    def split(test: list[int], oracle: list[int]) -> dict:
        sp = {"by": "subject", "test_people": test, "oracle_people": oracle, "notes": []}
        sp.update(n_test_people=len(test), n_oracle_people=len(oracle), excluded_people=[])
        return {"split": sp}

    one = split_text(split([11], [3]))
    assert "1 person (11) gives the test images, 1 other (3) the oracle's" in one
    many = split_text(split([11, 19], [3, 5]))
    assert "2 people (11, 19) give the test images, 2 others (3, 5) the oracle's" in many


# --- a checkpoint's refiner ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def averaged_run(pair, tmp_path_factory) -> Path:
    """A smoke run that keeps a moving average of its refiner: checkpoints at steps 6, 9, 12."""
    from simgan_tf.train import main

    out = tmp_path_factory.mktemp("averaged") / "run"
    argv = ["--preset", "smoke", "--synthetic", str(pair[0]), "--real", str(pair[1])]
    main([*argv, "--out", str(out), "--refiner-ema", "0.5", "--verbose", "0"])
    return out


@pytest.mark.parametrize(
    "extra, source",
    [
        (["--checkpoint", "6"], "step_000000006.weights.h5 (moving average)"),
        (["--checkpoint", "6", "--no-average"], "step_000000006.weights.h5 (weights at that step)"),
        (["--no-average"], "step_000000012.weights.h5 (weights at that step)"),
        ([], "refiner.keras (moving average)"),
    ],
)
def test_evaluate_takes_a_checkpoints_refiner_and_says_which(averaged_run, tmp_path, extra, source):
    from simgan_tf.evaluate import main

    out = tmp_path / "eval"
    argv = ["--run", str(averaged_run), "--out", str(out), "--preset", "smoke", "--quiet"]
    assert main([*argv, "--measures", "realism", *extra]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["refiner"].endswith(source)
    assert f"Refiner: `{report['refiner']}`." in (out / "report.md").read_text()


def test_a_checkpoint_that_is_not_there_is_one_clear_line(averaged_run, fake_run, tmp_path, capsys):
    from simgan_tf.evaluate import main

    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(b"not a weights file")
    cases = [
        (["--run", str(averaged_run), "--checkpoint", "7"], "no checkpoint at step 7; it has steps 6, 9, 12"),
        (["--run", str(averaged_run), "--checkpoint", str(tmp_path / "gone.h5")], "no such checkpoint file"),
        (["--run", str(averaged_run), "--checkpoint", str(broken)], "cannot be loaded into"),
        (["--run", str(fake_run), "--no-average"], "no checkpoints"),
    ]  # fmt: skip
    for argv, message in cases:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--out", str(tmp_path / "o"), "--quiet"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
        assert not (tmp_path / "o").exists()  # refused before any work


def test_evaluate_reuses_the_raw_and_oracle_arms_only_where_nothing_changed(
    fake_run, tmp_path, capsys
):
    import keras

    from simgan_tf.evaluate import main
    from simgan_tf.models import build_refiner

    target, synthetic = tmp_path / "target.h5", tmp_path / "synthetic.h5"
    save_eyes(target, *toy_eyes(300, seed=1, domain="target"))
    save_eyes(synthetic, *toy_eyes(400, seed=0))
    argv = ["--preset", "smoke", "--steps", "10", "--measures", "gaze", "drift"]
    argv += ["--target", str(target)]
    first = tmp_path / "first"
    assert main(["--run", str(fake_run), "--out", str(first), *argv, "--quiet"]) == 0
    assert {p.name for p in (first / "arms").iterdir()} == {
        f"{arm}.{ext}" for arm in ("synthetic", "oracle") for ext in ("npz", "keras")
    }  # the refined arm is what each evaluation measures: never reused, not kept
    # Another refiner: only its own arm has to be trained again.
    keras.utils.set_random_seed(1)
    build_refiner(filters=4, blocks=1).save(fake_run / "refiner.keras")
    second = tmp_path / "second"
    capsys.readouterr()
    main(["--run", str(fake_run), "--out", str(second), *argv, "--reuse-arms", str(first)])
    printed = capsys.readouterr().err
    a, b = (json.loads((d / "report.json").read_text()) for d in (first, second))
    for arm in ("synthetic", "oracle"):
        assert b["gaze"][arm]["reused_from"] == str(first / "arms" / f"{arm}.npz")
        assert b["gaze"][arm]["runs"] == a["gaze"][arm]["runs"]
        assert f"gaze_{arm}" not in b["wall_seconds"] and f"{arm} arm: reused" in printed
        assert b["gaze"][arm]["seconds"] is None
    assert "estimator on raw synthetic" not in printed and "on target itself" not in printed
    assert "reused_from" not in b["gaze"]["refined"] and "gaze_refined" in b["wall_seconds"]
    assert b["gaze"]["refined"]["runs"] != a["gaze"]["refined"]["runs"]
    # Drift reads the reused raw arm's estimator: saved and loaded, it reads as when trained.
    held = "synthetic_heldout_error_deg"
    assert b["label_drift"][held] == a["label_drift"][held]
    assert "Reused from an earlier evaluation" in (second / "report.md").read_text()

    # Other synthetic images: the raw arm is trained again and says why; the oracle is reused.
    third = tmp_path / "third"
    main(["--run", str(fake_run), "--out", str(third), *argv, "--synthetic", str(synthetic),
          "--reuse-arms", str(second)])  # fmt: skip
    printed = capsys.readouterr().err
    c = json.loads((third / "report.json").read_text())
    assert "reused_from" not in c["gaze"]["synthetic"]
    assert "other training images; training it" in printed
    assert c["gaze"]["oracle"]["runs"] == a["gaze"]["oracle"]["runs"]
    assert c["gaze"]["oracle"]["reused_from"] == str(second / "arms" / "oracle.npz")

    # Another recipe: nothing is reused. An estimator file that does not give its arm's
    # predictions (a pair from two evaluations) is not taken either.
    main(["--run", str(fake_run), "--out", str(tmp_path / "fourth"), *argv, "--steps", "11",
          "--reuse-arms", str(second)])  # fmt: skip
    printed = capsys.readouterr().err
    assert printed.count("other estimator recipe; training it") == 2
    (second / "arms" / "oracle.keras").write_bytes(
        (third / "arms" / "synthetic.keras").read_bytes()
    )
    main(["--run", str(fake_run), "--out", str(tmp_path / "fifth"), *argv,
          "--reuse-arms", str(second)])  # fmt: skip
    printed = capsys.readouterr().err
    assert "oracle.keras does not give" in printed and "synthetic arm: reused" in printed


def test_evaluate_estimator_width_and_dense(fake_run, tmp_path, capsys):
    """--estimator-width/--estimator-dense build every arm's estimator at that size, a reused arm
    of another size is trained again, and --compare names each report's recipe."""
    import keras

    from simgan_tf.evaluate import main

    target = tmp_path / "target.h5"
    save_eyes(target, *toy_eyes(300, seed=1, domain="target"))
    argv = ["--run", str(fake_run), "--target", str(target), "--preset", "smoke", "--steps", "5"]
    argv += ["--measures", "gaze"]
    small, wide = tmp_path / "small", tmp_path / "wide"
    assert main([*argv, "--out", str(small), "--quiet"]) == 0
    capsys.readouterr()
    main([*argv, "--out", str(wide), "--estimator-width", "0.5", "--estimator-dense", "48",
          "--reuse-arms", str(small)])  # fmt: skip
    printed = capsys.readouterr().err
    assert printed.count("other estimator recipe; training it") == 2
    report = json.loads((wide / "report.json").read_text())
    assert report["estimator"]["width"] == 0.5 and report["estimator"]["dense"] == 48
    assert report["estimator"]["steps"] == 5  # the rest of the smoke recipe is kept
    for arm in ("synthetic", "oracle"):
        model = keras.models.load_model(wide / "arms" / f"{arm}.keras")
        assert model.get_layer("conv1").filters == 16 and model.get_layer("fc").units == 48
        smoke = keras.models.load_model(small / "arms" / f"{arm}.keras")
        assert smoke.get_layer("conv1").filters == 4 and smoke.get_layer("fc").units == 32
    assert "(width 0.5, FC 48)" in (wide / "report.md").read_text()

    main(["--compare", str(small), str(wide)])
    out = capsys.readouterr().out
    assert f"{small} width 0.125, FC 32, 5 steps; {wide} width 0.5, FC 48, 5 steps" in out


def test_the_drift_estimators_take_the_estimator_size(fake_run, tmp_path, monkeypatch):
    # Drift's estimators are not saved, so their size is caught where they are trained.
    import simgan_tf.evaluation.drift as drift
    from simgan_tf.evaluate import main

    built = []

    def train(*args, **kwargs):
        model = real_train(*args, **kwargs)
        net = model.get_layer("gaze_estimator")  # behind the drift estimator's own input steps
        built.append((net.get_layer("conv1").filters, net.get_layer("fc").units))
        return model

    real_train = drift.train_drift_estimator
    monkeypatch.setattr(drift, "train_drift_estimator", train)
    argv = ["--run", str(fake_run), "--preset", "smoke", "--steps", "3", "--repeats", "2"]
    argv += ["--measures", "gaze", "drift", "--estimator-width", "0.25", "--estimator-dense", "8"]
    assert main([*argv, "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    assert built == [(8, 8), (8, 8)]


def test_the_simulator_alone_takes_the_estimator_size(tmp_path):
    from simgan_tf.evaluate import main

    out = tmp_path / "alone"
    argv = ["--scene-profile", "uniform", "--input-norm", "none", "--preset", "smoke"]
    argv += ["--steps", "3", "--estimator-width", "0.25", "--estimator-dense", "8"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    spec = report["estimator"]
    assert (spec["width"], spec["dense"], spec["steps"]) == (0.25, 8, 3)
    # The thread count its estimators trained with (distribute.set_cpu_threads) is recorded.
    assert report["cpu_threads"] == cpu_threads_in_effect()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--estimator-width", "0"], "--estimator-width must be a number > 0, got 0.0"),
        (["--estimator-width", "nan"], "--estimator-width must be a number > 0, got nan"),
        (["--estimator-dense", "0"], "--estimator-dense must be >= 1, got 0"),
        (["--cpu-threads", "0"], "--cpu-threads must be >= 1, got 0"),
    ],
)
def test_evaluate_estimator_size_and_thread_errors(fake_run, tmp_path, capsys, extra, message):
    from simgan_tf.evaluate import main

    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as e:
        main(["--run", str(fake_run), "--out", str(out), "--preset", "smoke", "--quiet", *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reuse-arms", "NOWHERE"], "no arms/ folder of gaze arms to reuse"),
        (["--reuse-arms", "RUN", "--measures", "realism"], "needs the gaze measure"),
        (["--reuse-arms", "CORRUPT"], "synthetic.npz: not a saved gaze arm"),
        (["--reuse-arms", "TRUNCATED"], "oracle.keras: missing or not a saved Keras model"),
    ],
)
def test_evaluate_reuse_arms_errors(fake_run, tmp_path, capsys, extra, message):
    """One line, before any work, for each way --reuse-arms can be wrong."""
    from simgan_tf.evaluate import main

    out = tmp_path / "eval"
    corrupt = tmp_path / "corrupt"
    (corrupt / "arms").mkdir(parents=True)
    (corrupt / "arms" / "synthetic.npz").write_bytes(b"not an npz file")
    # A well-formed arm whose estimator file was cut short.
    truncated = tmp_path / "truncated" / "arms"
    truncated.mkdir(parents=True)
    np.savez(truncated / "oracle.npz", fingerprint=np.array("{}"), predictions=np.zeros((1, 4, 3)))
    (truncated / "oracle.keras").write_bytes(b"PK\x03\x04 cut")
    paths = {
        "NOWHERE": str(tmp_path / "nowhere"),
        "RUN": str(fake_run),
        "CORRUPT": str(corrupt),
        "TRUNCATED": str(truncated.parent),
    }
    extra = [paths.get(arg, arg) for arg in extra]
    with pytest.raises(SystemExit) as e:
        main(["--run", str(fake_run), "--out", str(out), "--quiet", *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not out.exists()
