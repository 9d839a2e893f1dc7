"""The training CLI end to end: every output, repeatability, clear errors, failure warnings."""

import csv
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from simgan_tf import photometry
from simgan_tf.callbacks import FailureMonitor
from simgan_tf.config import make_config
from simgan_tf.data import load_eyes, save_eyes
from simgan_tf.distribute import default_cpu_threads, speed_defaults
from simgan_tf.errors import SimGANError
from simgan_tf.losses import gaze_consistency_loss
from simgan_tf.refine import load_refiner
from simgan_tf.train import Run, main, phase_dataset, resume_config


def _run(pair, out, *extra):
    args = [
        "--preset",
        "smoke",
        "--synthetic",
        str(pair[0]),
        "--real",
        str(pair[1]),
        "--out",
        str(out),
    ]
    return main([*args, "--verbose", "0", *extra])


def _rows(out):
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_cli_smoke_run_writes_every_output(pair, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simgan_tf.train", "--preset", "smoke", "--synthetic", str(pair[0]),
         "--real", str(pair[1]), "--out", str(out), "--verbose", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in (
        "config.json",
        "metrics.csv",
        "losses.png",
        "summary.json",
        "refiner.keras",
        "discriminator.keras",
    ):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "samples").glob("step_*.png"))) >= 3
    assert list((out / "checkpoints").glob("step_*.weights.h5"))
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "smoke" and config["synthetic"] == str(pair[0])
    # The pair's real images are not equalised: auto resolved to a histogram-matching table.
    assert config["input_norm"] == "match" and len(config["input_lut"]) == 256
    # The half type this machine chose is recorded (a resumed run keeps it), and printed.
    chosen = speed_defaults()
    half = chosen["mixed_precision_dtype"]
    assert (config["mixed_precision"], config["mixed_precision_dtype"]) == (
        chosen["mixed_precision"],
        half,
    )
    assert f"mixed precision {half if chosen['mixed_precision'] else 'off'}" in proc.stdout
    # So is the thread count: one per core this process may use, unless told.
    assert config["cpu_threads"] == default_cpu_threads()
    assert f"; {default_cpu_threads()} CPU thread(s) per op" in proc.stdout
    rows = _rows(out)
    assert [r["phase"] for r in rows] == [
        "pretrain_refiner",
        "pretrain_discriminator",
        "adversarial",
        "adversarial",
    ]
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 12]
    assert all(float(r["d_loss_real"]) > 0 for r in rows[2:])
    assert all(0 <= float(r["d_acc_history"]) <= 1 for r in rows[1:])
    refiner = load_refiner(out / "refiner.keras")
    assert refiner.output_shape == (None, 35, 55, 1)
    keras.models.load_model(out / "discriminator.keras")
    assert "synthetic -> refined" in proc.stdout


def test_same_seed_gives_the_same_run(pair, tmp_path):
    _run(pair, tmp_path / "a", "--seed", "3")
    _run(pair, tmp_path / "b", "--seed", "3")
    _run(pair, tmp_path / "c", "--seed", "4")

    def metrics(run):
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in _rows(tmp_path / run)]

    assert metrics("a") == metrics("b")
    assert metrics("a") != metrics("c")


def test_a_run_at_a_given_thread_count_repeats_and_resumes_only_at_it(pair, tmp_path):
    # Each in a process of its own: TensorFlow's thread count is fixed once it has started.
    def train(out):
        argv = ["--preset", "smoke", "--synthetic", str(pair[0]), "--real", str(pair[1]),
                "--out", str(out), "--verbose", "0", "--seed", "5", "--cpu-threads", "1"]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "simgan_tf.train", *argv],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "; 1 CPU thread(s) per op" in proc.stdout
        return load_refiner(out / "refiner.keras").get_weights()

    a, b = train(tmp_path / "a"), train(tmp_path / "b")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert json.loads((tmp_path / "a" / "config.json").read_text())["cpu_threads"] == 1
    devices = json.loads((tmp_path / "a" / "summary.json").read_text())["devices"]
    assert devices["cpu_threads"] == 1
    with pytest.raises(SimGANError, match="drop --cpu-threads"):
        resume_config(str(tmp_path / "a"), None, {"cpu_threads": 2})


def test_the_thread_count_reaches_tensorflow_and_is_then_fixed():
    # The records above are only true if TensorFlow runs with the count: asked in a fresh process.
    code = (
        "import tensorflow as tf; from simgan_tf.distribute import set_cpu_threads\n"
        "set_cpu_threads(3); tf.constant(1.0) + 1\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
        "set_cpu_threads(4)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["3"]
    assert "--cpu-threads 4: TensorFlow already runs with 3 threads" in proc.stderr


def test_existing_run_is_not_overwritten(pair, tmp_path, capsys):
    out = tmp_path / "run"
    _run(pair, out)
    before = (out / "metrics.csv").read_text()
    with pytest.raises(SystemExit) as e:
        _run(pair, out)
    assert e.value.code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "metrics.csv").read_text() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--synthetic", "/nonexistent/gaze.h5"], "no such file"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--buffer-size", "2", "--batch-size", "16"], "must hold at least half a batch"),
        (["--batch-size", "128", "--buffer-size", "512"], "fewer than one batch"),
        (["--gaze-reg", "-1"], "--gaze-reg must be >= 0"),
        (["--refiner-ema", "1"], "--refiner-ema must be in [0, 1)"),
        (["--refiner-ema", "-0.1"], "--refiner-ema must be in [0, 1)"),
        (["--cpu-threads", "0"], "--cpu-threads must be >= 1"),
    ],
)
def test_bad_input_gives_one_clear_line(pair, tmp_path, capsys, args, message):
    base = [
        "--preset",
        "smoke",
        "--synthetic",
        str(pair[0]),
        "--real",
        str(pair[1]),
        "--out",
        str(tmp_path / "r"),
    ]
    with pytest.raises(SystemExit) as e:
        main([*base, *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (
        tmp_path / "r" / "config.json"
    ).exists()  # a fresh folder is not left "holding a run"


def test_failure_monitor_names_each_failure():
    monitor = FailureMonitor("unused")
    assert "collapse" in monitor.check("adversarial", {"r_spread": 0.05, "r_l1": 0.2})
    assert "no-op" in monitor.check("adversarial", {"r_spread": 1.0, "r_l1": 0.001})
    assert monitor.check("pretrain_refiner", {"r_spread": 0.05, "r_l1": 0.001}) == {}
    wins = {"r_spread": 1.0, "r_l1": 0.1, "d_acc_real": 0.999, "d_acc_refined": 0.998}
    assert set(monitor.check("adversarial", wins)) == {"discriminator-wins"}
    # Old buffer images told apart are no sign that the current refiner lost.
    history_only = {**wins, "d_acc_refined": 0.6, "d_acc_history": 0.999}
    assert monitor.check("adversarial", history_only) == {}
    healthy = {"r_spread": 0.9, "r_l1": 0.05, "d_acc_real": 0.7, "d_acc_refined": 0.6}
    assert monitor.check("adversarial", healthy) == {}


def test_collapse_is_reported_with_its_step(pair, tmp_path, capsys):
    # A huge learning rate with no L1 anchor drives this tiny refiner to a constant image.
    _run(pair, tmp_path / "run", "--lambda-reg", "0", "--learning-rate", "0.5", "--steps", "30",
         "--log-every", "10")  # fmt: skip
    warnings = (tmp_path / "run" / "warnings.txt").read_text()
    assert "warning: step " in warnings
    assert "collapse" in warnings or "discriminator wins" in warnings


def test_pretraining_streams_gather_only_the_batches_they_use(pair, tmp_path, monkeypatch):
    import simgan_tf.train as train

    groups = []
    real_fn = train.training_dataset

    def spy(*args, **kwargs):
        ds = real_fn(*args, **kwargs)
        groups.append(tuple(spec.shape[0] for spec in ds.element_spec))
        return ds

    monkeypatch.setattr(train, "training_dataset", spy)
    _run(pair, tmp_path / "run", "--kg", "2", "--kd", "1")
    # One fit (one stream) per phase: 3 + 3 + 6 steps, logged every 3.
    assert groups == [(1, 1), (1, 1), (3, 1)]


def test_a_phase_stream_starts_where_its_step_finds_it():
    # Image i holds gray level 4 i, so a batch's pixels name the images in it.
    images = (4 * np.arange(60, dtype=np.uint8))[:, None, None].repeat(35, 1).repeat(55, 2)
    cfg = make_config("smoke", batch_size=4)
    begin = cfg.pretrain_refiner_steps + cfg.pretrain_discriminator_steps

    def ids(step, n):
        ds = phase_dataset(cfg, "adversarial", images, images, step)
        return [s.numpy()[:, :, 0, 0, 0] for s, _ in ds.take(n)]

    np.testing.assert_array_equal(ids(begin, 5)[3:], ids(begin + 3, 2))
    pretrain = phase_dataset(cfg, "pretrain_refiner", images, images, 0)
    first = next(iter(pretrain))[0].numpy()[:, :, 0, 0, 0]
    assert not np.array_equal(first, ids(begin, 1)[0][:1]), "each phase has its own stream"


def _raw(pair):
    return load_eyes(pair[0]).images, load_eyes(pair[1]).images


def test_input_norm_is_resolved_applied_and_saved(pair, tmp_path, capsys):
    synthetic, real = _raw(pair)
    cfg = make_config("smoke", synthetic=str(pair[0]), real=str(pair[1]), out=str(tmp_path / "m"))
    run = Run(cfg, verbose=0)
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    lut = photometry.histogram_lut(synthetic, real)
    assert saved["input_norm"] == "match" and saved["input_lut"] == lut.tolist()
    np.testing.assert_array_equal(run.synthetic, lut[synthetic])  # what the refiner is fed
    assert "input normalisation: match (the real set is not equalised" in capsys.readouterr().out

    equalised = tmp_path / "real_equalised.h5"
    save_eyes(equalised, photometry.equalize(real))
    cfg = make_config("smoke", synthetic=str(pair[0]), real=str(equalised), out=str(tmp_path / "e"))
    run = Run(cfg, verbose=0)
    saved = json.loads((tmp_path / "e" / "config.json").read_text())
    assert (saved["input_norm"], saved["input_lut"]) == ("equalize", None)
    np.testing.assert_array_equal(run.synthetic, photometry.equalize(synthetic))
    assert "input normalisation: equalize (the real set is histogram-equalised per image)" in (
        capsys.readouterr().out
    )


def test_a_resumed_run_keeps_its_saved_normalisation(pair, tmp_path):
    synthetic, _ = _raw(pair)
    out = tmp_path / "run"
    _run(pair, out, "--steps", "3")
    config = json.loads((out / "config.json").read_text())
    reversed_lut = list(range(255, -1, -1))  # not what the data would resolve to
    (out / "config.json").write_text(json.dumps({**config, "input_lut": reversed_lut}))
    before = (out / "config.json").read_text()
    run = Run(resume_config(str(out), None, {}), resume=True, verbose=0)
    assert run.cfg.input_lut == tuple(reversed_lut)
    np.testing.assert_array_equal(run.synthetic, 255 - synthetic)
    assert (out / "config.json").read_text() == before
    # A run from before input normalisation trained on raw images, and resumes on them.
    old = {k: v for k, v in config.items() if k not in ("input_norm", "input_lut")}
    (out / "config.json").write_text(json.dumps(old))
    run = Run(resume_config(str(out), None, {}), resume=True, verbose=0)
    assert run.cfg.input_norm == "none"
    np.testing.assert_array_equal(run.synthetic, synthetic)
    # Nor did its config.json record the precision: a CPU run of then was float32, and stays so.
    (out / "config.json").write_text(json.dumps({**old, "mixed_precision": None}))
    if not tf.config.list_physical_devices("GPU"):
        assert resume_config(str(out), None, {}).mixed_precision is False


@pytest.mark.parametrize(
    "values, message",
    [
        ({"input_norm": "flat"}, "unknown --input-norm"),
        ({"input_norm": "match", "input_lut": (0,) * 255}, "256 gray levels"),
        ({"input_norm": "match", "input_lut": (256,) * 256}, "256 gray levels"),
        ({"input_norm": "equalize", "input_lut": (0,) * 256}, "goes with input_norm 'match'"),
    ],
)
def test_bad_input_norm_settings_are_refused(values, message):
    from simgan_tf.errors import SimGANError

    with pytest.raises(SimGANError, match=message):
        make_config("smoke", **values)


def test_scene_profile_reaches_the_built_in_data(tmp_path):
    from simgan_tf import simulator
    from simgan_tf.config import SCENE_PROFILES
    from simgan_tf.errors import SimGANError
    from simgan_tf.train import load_training_data

    assert SCENE_PROFILES == tuple(simulator.PROFILES)
    with pytest.raises(SimGANError, match="scene-profile"):
        make_config("smoke", scene_profile="cartoon")
    data = str(tmp_path / "data")
    uniform = load_training_data(make_config("smoke", data_dir=data, n_synthetic=64, n_real=64))
    columbia = load_training_data(
        make_config("smoke", data_dir=data, n_synthetic=64, n_real=64, scene_profile="columbia")
    )
    expected = simulator.render(64, "synthetic", seed=0, profile="columbia")[0]
    np.testing.assert_array_equal(columbia[0], expected)
    assert not np.array_equal(uniform[0], columbia[0])
    assert "columbia" in columbia[2]["synthetic"]


def test_a_gaze_term_trains_its_reader_once_and_logs_its_loss(pair, tmp_path, capsys):
    out = tmp_path / "run"
    _run(pair, out, "--gaze-reg", "2")
    reader = out / "gaze_reader.keras"
    assert json.loads((out / "config.json").read_text())["gaze_reg"] == 2
    assert keras.models.load_model(reader).output_shape == (None, 3)
    adversarial = [r for r in _rows(out) if r["phase"] == "adversarial"]
    assert adversarial and all(float(r["r_gaze"]) >= 0 for r in adversarial)
    assert all(r["r_gaze"] == "" for r in _rows(out) if r["phase"] != "adversarial")
    # A resumed run reads with the estimator it began with: not trained again.
    stamp = reader.stat().st_mtime_ns
    capsys.readouterr()
    Run(resume_config(str(out), None, {}), resume=True, verbose=0)
    assert "reading with" in capsys.readouterr().out
    assert reader.stat().st_mtime_ns == stamp
    # And without one, no gaze term: its column stays empty.
    plain = tmp_path / "plain"
    _run(pair, plain)
    assert not (plain / "gaze_reader.keras").exists()
    assert all(r["r_gaze"] == "" for r in _rows(plain))


def test_a_gaze_term_needs_labelled_synthetic_images(pair, tmp_path, capsys):
    unlabelled = tmp_path / "unlabelled.h5"
    save_eyes(unlabelled, load_eyes(pair[0]).images)
    args = ["--preset", "smoke", "--synthetic", str(unlabelled), "--real", str(pair[1])]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "run"), "--gaze-reg", "1", "--verbose", "0"])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert f"{unlabelled}: no gaze labels" in err and "--gaze-reg" in err
    # Nothing trained, nothing left: the corrected command needs no --overwrite.
    assert not (tmp_path / "run").exists()
    _run(pair, tmp_path / "run", "--gaze-reg", "1")
    assert (tmp_path / "run" / "gaze_reader.keras").exists()


def test_a_spectral_discriminator_trains_saves_and_loads(pair, tmp_path):
    out = tmp_path / "sn"
    _run(pair, out, "--discriminator-norm", "spectral")
    assert json.loads((out / "config.json").read_text())["discriminator_norm"] == "spectral"
    discriminator = keras.models.load_model(out / "discriminator.keras")
    wrapped = [layer for layer in discriminator.layers if hasattr(layer, "layer")]
    assert [layer.name for layer in wrapped][-1] == "patch_logits_sn"
    assert all(np.isfinite(float(r["d_loss_real"])) for r in _rows(out)[2:])


@pytest.mark.parametrize(
    ("kind", "weight"), [("augmented", 1.0), ("plain", 1.0), ("both", 1.0), ("both", 0.25)]
)
def test_the_gaze_terms_plain_reader_never_sees_a_changed_image(
    pair, tmp_path, monkeypatch, kind, weight
):
    import simgan_tf.augment
    from simgan_tf.train import train_gaze_reader

    changed = []
    real_augment = simgan_tf.augment.photometric_augment

    def counting(images, rng):
        changed.append(len(images))
        return real_augment(images, rng)

    monkeypatch.setattr(simgan_tf.augment, "photometric_augment", counting)
    cfg = make_config(
        "smoke",
        synthetic=str(pair[0]),
        out=str(tmp_path),
        gaze_reg=1.0,
        gaze_reader=kind,
        augmented_reader_weight=weight,
    )
    images = load_eyes(pair[0]).images
    reader = keras.models.load_model(train_gaze_reader(cfg, images, verbose=0), compile=False)
    assert (sum(changed) > 0) == (kind != "plain")
    readings = np.asarray(reader(images[:8, ..., None] / 127.5 - 1))
    assert readings.shape == (8, 6 if kind == "both" else 3)
    if kind == "both":
        # Two readers, the plain one's unit reading first, the augmented one's scaled by the root
        # of its weight; the term is the root of the weighted mean square of their distances.
        halves = readings[:, :3], readings[:, 3:] / weight**0.5
        assert all(np.allclose(np.linalg.norm(h, axis=1), 1, atol=1e-5) for h in halves)
        assert not np.allclose(*halves)
        moved = np.asarray(reader(images[8:16, ..., None] / 127.5 - 1))
        chords = [
            np.linalg.norm(moved[:, k : k + 3] - readings[:, k : k + 3], axis=1) for k in (0, 3)
        ]
        rms = np.mean(np.sqrt((chords[0] ** 2 + chords[1] ** 2) / (1 + weight)))
        assert float(gaze_consistency_loss(moved, readings)) == pytest.approx(rms, rel=1e-4)
    with pytest.raises(SimGANError, match="--gaze-reader"):
        make_config("smoke", gaze_reader="blind")
    with pytest.raises(SimGANError, match="--gaze-reader both needs a gaze term"):
        make_config("smoke", gaze_reader="both")
    with pytest.raises(SimGANError, match="needs --gaze-reader both"):
        make_config("smoke", gaze_reg=1.0, gaze_reader="plain", augmented_reader_weight=0.5)
    with pytest.raises(SimGANError, match="must be > 0"):
        make_config("smoke", gaze_reg=1.0, gaze_reader="both", augmented_reader_weight=0.0)


def _same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_a_refiner_average_is_what_the_run_saves_and_changes_no_update(pair, tmp_path):
    from simgan_tf.evaluation.run import load_run

    _run(pair, tmp_path / "last")
    _run(pair, tmp_path / "avg", "--refiner-ema", "0.5")

    def metrics(run):
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in _rows(tmp_path / run)]

    # Training itself is untouched: the same losses, the same weights in every checkpoint.
    assert metrics("last") == metrics("avg")
    _, trained = load_run(str(tmp_path / "avg"), None, average=False)  # the newest checkpoint's
    _, trained_without = load_run(str(tmp_path / "last"), None, average=False)
    assert _same_weights(trained, trained_without)
    # What each run saves: the last weights, or their average (which the checkpoint also holds).
    _, saved_without = load_run(str(tmp_path / "last"))
    _, saved = load_run(str(tmp_path / "avg"))
    _, averaged_from_checkpoint = load_run(str(tmp_path / "avg"), "12")
    assert _same_weights(saved_without, trained_without)
    assert not _same_weights(saved, trained)
    assert _same_weights(saved, averaged_from_checkpoint)
    summary = json.loads((tmp_path / "avg" / "summary.json").read_text())
    assert summary["refiner"] == "moving average of its weights (momentum 0.5)"
    assert json.loads((tmp_path / "last" / "summary.json").read_text())["refiner"] == "last weights"
