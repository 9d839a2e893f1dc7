"""TensorBoard event files of a run: metrics at the logged steps, sample grids, config; resume."""

import csv
import json
import os
import sys
import textwrap
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from simgan_tf.tensorboard import event_files, png_summary_tensor, prune_events, summaries
from simgan_tf.train import main


def _train(pair, out, *extra):
    main([
        "--preset", "smoke", "--synthetic", str(pair[0]), "--real", str(pair[1]), "--out", str(out),
        "--verbose", "0", *extra,
    ])  # fmt: skip


def _logged(out):
    """{(metric, step): value} of metrics.csv: what the event files must hold as scalars."""
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    skip = {"step", "phase", "elapsed_s"}
    return {
        (k, int(r["step"])): float(v) for r in rows for k, v in r.items() if k not in skip and v
    }


def test_run_writes_metrics_grids_and_config(pair, tmp_path):
    out = tmp_path / "run"
    _train(pair, out)
    found = summaries(str(out / "tensorboard"))
    scalars = {(s.tag, s.step): float(s.value) for s in found if s.plugin == "scalars"}
    logged = _logged(out)
    assert {tag for tag, _ in logged} >= {"r_l1", "d_loss_real"}
    assert {k: v for k, v in scalars.items() if k in logged} == pytest.approx(logged, rel=1e-4)
    assert {step for _, step in scalars} == {step for _, step in logged} == {3, 6, 9, 12}

    images = [s for s in found if s.plugin == "images"]
    # smoke: a grid every 3 steps, at each interval's end (3, 6, 9, 12).
    assert [s.step for s in images] == [3, 6, 9, 12]
    width, height, png = images[-1].value
    decoded = tf.image.decode_png(png).numpy()
    assert decoded.shape[:2] == (int(height), int(width))
    assert png == (out / "samples" / "step_000012.png").read_bytes()

    (config,) = [s for s in found if s.plugin == "text"]
    assert (config.tag, config.step) == ("config", 0)
    saved = json.loads(textwrap.dedent(config.value.item().decode()))
    assert saved == json.loads((out / "config.json").read_text())


def test_the_final_grid_is_logged_once_when_the_run_ends_between_sample_steps(pair, tmp_path):
    out = tmp_path / "run"
    _train(pair, out, "--sample-every", "100")
    steps = [s.step for s in summaries(str(out / "tensorboard")) if s.plugin == "images"]
    # The first interval's grid, then the final one (12 steps in all), each once.
    assert steps == [3, 12]
    assert sorted(os.listdir(out / "samples")) == ["step_000003.png", "step_000012.png"]


def test_no_tensorboard_writes_no_events(pair, tmp_path):
    out = tmp_path / "run"
    _train(pair, out, "--no-tensorboard")
    assert json.loads((out / "config.json").read_text())["tensorboard"] is False
    assert not event_files(str(out / "tensorboard"))


def test_overwrite_starts_a_fresh_stream(pair, tmp_path):
    out = tmp_path / "run"
    _train(pair, out)
    _train(pair, out, "--overwrite")
    counts = Counter((s.tag, s.step) for s in summaries(str(out / "tensorboard")))
    assert counts and set(counts.values()) == {1}


def test_overwrite_without_tensorboard_leaves_no_old_events(pair, tmp_path):
    # The old run's events would be read as this run's by `tensorboard --logdir runs`.
    out = tmp_path / "run"
    _train(pair, out)
    _train(pair, out, "--overwrite", "--no-tensorboard")
    assert not event_files(str(out / "tensorboard"))


def test_resume_logs_every_step_once(pair, tmp_path):
    out = tmp_path / "run"
    args = ["--steps", "12", "--checkpoint-every", "6"]
    _train(pair, out, *args)
    before = {(s.tag, s.step) for s in summaries(str(out / "tensorboard"))}
    # As if killed after step 18's checkpoint: events up to step 24 were logged past it.
    os.remove(sorted((out / "checkpoints").glob("*.weights.h5"))[-1])
    os.remove(out / "refiner.keras")
    _train(pair, out, *args, "--resume")
    found = summaries(str(out / "tensorboard"))
    counts = Counter((s.tag, s.step) for s in found)
    assert [k for k, n in counts.items() if n > 1] == []
    assert set(counts) == before
    assert {(s.tag, s.step) for s in found if s.plugin == "scalars"} >= set(_logged(out))
    assert len(event_files(str(out / "tensorboard"))) == 2  # the first run's, cut, and the resumed
    _train(pair, out, *args, "--resume")  # finished: nothing to log, no new file
    assert len(event_files(str(out / "tensorboard"))) == 2


def test_prune_keeps_early_steps_and_drops_a_damaged_record(tmp_path):
    logdir = str(tmp_path)
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for step in (3, 6, 9):
            tf.summary.write("r_l1", tf.constant(float(step)), step=step)
    writer.close()
    (path,) = event_files(logdir)
    with open(path, "ab") as f:
        f.write(b"\x10" + bytes(7) + b"junk" + bytes(16) + b"junk")  # a record with bad checksums
    assert [s.step for s in summaries(logdir)] == [3, 6, 9]
    prune_events(logdir, 9)  # nothing after step 9, but the damaged record goes
    with open(path, "rb") as f:
        assert b"junk" not in f.read()
    prune_events(logdir, 6)
    assert [(s.tag, s.step) for s in summaries(logdir)] == [("r_l1", 3), ("r_l1", 6)]
    prune_events(logdir, 0)
    assert event_files(logdir) == []


def test_writing_needs_no_tensorboard_package(tmp_path, monkeypatch):
    from simgan_tf.tensorboard import TensorBoardLog

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # TensorFlow 2.21 does not install it
    TensorBoardLog(str(tmp_path), '{"seed": 0}', str(tmp_path / "samples"))
    (config,) = summaries(str(tmp_path / "tensorboard"))
    assert config.plugin == "text" and json.loads(config.value.item()) == {"seed": 0}


def test_png_summary_tensor_reads_the_size_from_the_png():
    png = tf.io.encode_png(np.zeros((5, 7, 3), np.uint8)).numpy()
    width, height, data = png_summary_tensor(png).numpy()
    assert (width, height, data) == (b"7", b"5", png)
    with pytest.raises(ValueError, match="not a PNG"):
        png_summary_tensor(b"GIF89a" + bytes(30))
