"""Surviving interruption: kill -9 and resume, finished runs, NaN guard, backups, unwritable outputs."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from simgan_tf.config import make_config
from simgan_tf.refine import load_refiner
from simgan_tf.train import build_model, main

STEPS = ["--pretrain-refiner-steps", "6", "--pretrain-discriminator-steps", "6", "--log-every", "3"]


def _args(pair, out, *extra):
    return [
        "--preset", "smoke", "--synthetic", str(pair[0]), "--real", str(pair[1]), "--out", str(out),
        "--verbose", "0", *STEPS, *extra,
    ]  # fmt: skip


def _rows(out):
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _state(out, **settings):
    """Final training state of a run: every weight, the buffer and its fill, from its last checkpoint."""
    cfg = make_config("smoke", **settings)
    model = build_model(cfg)
    last = sorted((out / "checkpoints").glob("step_*.weights.h5"))[-1]
    model.load_weights(last)
    return model


def test_kill_minus_nine_then_resume(pair, tmp_path):
    out = tmp_path / "run"
    run = [
        "--steps",
        "300",
        "--checkpoint-every",
        "30",
        "--log-every",
        "15",
        "--sample-every",
        "150",
    ]
    cmd = [sys.executable, "-m", "simgan_tf.train", *_args(pair, out, *run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not list((out / "checkpoints").glob("step_*.weights.h5")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    time.sleep(0.5)  # let it run past the checkpoint, so rows after it must be dropped on resume
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = sorted((out / "checkpoints").glob("step_*.weights.h5"))
    assert killed_at, "no checkpoint before the kill"
    assert not (out / "refiner.keras").exists(), "the run finished before it was killed"

    main([*_args(pair, out, *run), "--resume"])

    model = _state(out)
    assert int(model.step.numpy()) == 312
    rows = _rows(out)
    steps = [int(r["step"]) for r in rows]
    # One row per interval, none twice, none missing: each phase logs every 15 steps (6 + 6 + 300).
    assert steps == [6, 12, *range(27, 313, 15)]
    assert int(model.image_history.count.numpy()) == 32  # capacity: full after 300 steps
    assert np.isfinite(model.image_history.images.numpy()).all()
    assert np.abs(model.image_history.images.numpy()).max() > 0


@pytest.mark.parametrize("momentum", [None, 0.9])
def test_resumed_deterministic_run_matches_uninterrupted(pair, tmp_path, momentum):
    average = ["--refiner-ema", str(momentum)] if momentum else []
    common = ["--steps", "12", "--checkpoint-every", "6", "--deterministic", *average]
    main(_args(pair, tmp_path / "full", *common))
    # Interrupted: the same run cut after step 18 (6 + 6 pretraining, 6 adversarial), then resumed.
    main(_args(pair, tmp_path / "cut", *common))
    cut = tmp_path / "cut"
    for path in sorted((cut / "checkpoints").glob("*.weights.h5"))[-1:]:
        os.remove(path)  # drop step 24's: the newest left is step 18's, mid-way through adversarial
    os.remove(cut / "refiner.keras")
    main([*_args(pair, cut, *common), "--resume"])
    a, b = _state(tmp_path / "full", refiner_ema=momentum), _state(cut, refiner_ema=momentum)
    for va, vb in zip(a.variables, b.variables, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
    assert _rows(tmp_path / "full")[-1]["r_l1"] == _rows(cut)[-1]["r_l1"]
    # The saved refiner too: with an average, the checkpoint carried it across the interruption.
    saved = [load_refiner(run / "refiner.keras") for run in (tmp_path / "full", cut)]
    for wa, wb in zip(saved[0].get_weights(), saved[1].get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_resuming_a_finished_run_says_so(pair, tmp_path, capsys):
    main(_args(pair, tmp_path / "run", "--steps", "3"))
    before = _rows(tmp_path / "run")
    main([*_args(pair, tmp_path / "run", "--steps", "3"), "--resume"])
    assert "already finished" in capsys.readouterr().out
    assert _rows(tmp_path / "run") == before


def test_resume_refuses_changed_settings(pair, tmp_path, capsys):
    main(_args(pair, tmp_path / "run", "--steps", "3"))
    with pytest.raises(SystemExit) as e:
        main([*_args(pair, tmp_path / "run", "--steps", "3"), "--resume", "--lambda-reg", "5"])
    assert e.value.code == 2
    assert "drop --lambda-reg" in capsys.readouterr().err


def test_nan_stops_training_and_keeps_last_good_checkpoint(pair, tmp_path, capsys, monkeypatch):
    import simgan_tf.simgan as simgan

    real_loss = simgan.local_adversarial_loss
    # Inject the failure: the adversarial loss, first used once refiner pretraining is over, is NaN.
    monkeypatch.setattr(
        simgan, "local_adversarial_loss", lambda z, real: real_loss(z, real) * np.nan
    )
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(_args(pair, out, "--steps", "30", "--checkpoint-every", "3"))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "became NaN or infinite" in err[0] and "Last good checkpoint" in err[0]
    bad_step = int(err[0].split("step ")[1].split(":")[0])
    last = sorted((out / "checkpoints").glob("step_*.weights.h5"))[-1]
    assert last.name in err[0]
    assert int(last.name[5:14]) < bad_step
    model = build_model(make_config("smoke"))
    model.load_weights(last)
    assert all(np.isfinite(v.numpy()).all() for v in model.variables)
    assert not (out / "refiner.keras").exists()


def test_backup_dir_restores_a_lost_run(pair, tmp_path):
    out, backup = tmp_path / "run", tmp_path / "drive"
    main(_args(pair, out, "--steps", "6", "--backup-dir", str(backup)))
    assert (backup / "config.json").exists() and list((backup / "checkpoints").glob("*.weights.h5"))
    for path in out.rglob("*"):
        if path.is_file():
            path.unlink()
    main(["--out", str(out), "--backup-dir", str(backup), "--resume", "--verbose", "0"])
    assert int(_state(out).step.numpy()) == 18
    assert (out / "refiner.keras").exists()


def test_unwritable_output_fails_before_training(pair, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit) as e:
        main(_args(pair, blocker / "run"))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the run directory" in err[0]


def test_resume_with_nothing_to_resume(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "empty"), "--resume"])
    assert e.value.code == 2
    assert "no run to resume" in capsys.readouterr().err


def test_data_stream_resumes_at_any_step():
    # Image i holds gray level i, so a batch's pixels name the images in it.
    images = np.arange(50, dtype=np.uint8)[:, None, None].repeat(35, 1).repeat(55, 2)

    def ids(stream, n):
        return [np.rint((b.numpy()[..., 0, 0, 0] + 1) * 127.5).astype(int) for b in stream.take(n)]

    from simgan_tf.data import image_stream

    whole = ids(image_stream(images, 4, 3, seed=7), 12)
    resumed = ids(image_stream(images, 4, 3, seed=7, start_step=7), 5)
    np.testing.assert_array_equal(np.stack(whole[7:]), np.stack(resumed))
    first_pass = np.concatenate([w.ravel() for w in whole])[:50]
    assert sorted(first_pass) == list(range(50)), "each pass shows every image once"
    other_seed = ids(image_stream(images, 4, 3, seed=8), 1)
    assert not np.array_equal(whole[0], other_seed[0])
