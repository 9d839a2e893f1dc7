"""refine: labels and order survive, bad inputs and outputs are refused with one line, nothing half-written."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from simgan_tf import photometry
from simgan_tf.data import load_eyes, save_eyes
from simgan_tf.errors import SimGANError
from simgan_tf.refine import main, refine_array, refine_file


@pytest.fixture(scope="module")
def refiner_path(tmp_path_factory) -> str:
    import keras

    from simgan_tf.models import build_refiner

    keras.utils.set_random_seed(1)
    path = str(tmp_path_factory.mktemp("run") / "refiner.keras")
    build_refiner(filters=4, blocks=1).save(path)
    return path


@pytest.fixture(scope="module")
def refiner(refiner_path):
    import keras

    return keras.models.load_model(refiner_path, compile=False)


def _images(n: int, seed: int = 0) -> np.ndarray:
    # Distinct, structured images: a bright disc whose place and size depend on the index.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:35, :55]
    cx = rng.uniform(10, 45, n)[:, None, None]
    cy = rng.uniform(8, 27, n)[:, None, None]
    r = rng.uniform(3, 9, n)[:, None, None]
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2) * 150.0
    return np.clip(50 + disc + rng.normal(0, 5, disc.shape), 0, 255).astype(np.uint8)


def _write_unpadded(path, images, look_vec, paths) -> None:
    """The Kaggle layout with keys "0", "1", ..., "10" created in shuffled order: only a numeric
    sort of the keys gives look_vec's row order back."""
    with h5py.File(path, "w") as f:
        group = f.create_group("image")
        for i in np.random.default_rng(3).permutation(len(images)):
            group.create_dataset(str(i), data=images[i])
        f.create_dataset("look_vec", data=look_vec)
        f.create_dataset("path", data=np.asarray(paths, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("extra", data=np.arange(5))


def test_refine_keeps_labels_names_and_order(tmp_path, refiner_path, refiner):
    n = 37  # not a multiple of the batch size
    images = _images(n)
    look_vec = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    paths = [f"eye_{i}.jpg" for i in range(n)]
    src, dst = tmp_path / "gaze.h5", tmp_path / "out" / "refined.h5"
    _write_unpadded(src, images, look_vec, paths)

    argv = ["--refiner", refiner_path, "--input", str(src), "--output", str(dst)]
    assert main([*argv, "--batch-size", "8"]) == 0

    out = load_eyes(dst, require_labels=True)
    expected = refine_array(refiner, images, batch_size=64, progress=False)
    assert out.images.shape == images.shape and out.images.dtype == np.uint8
    np.testing.assert_allclose(out.images, expected, atol=1)  # batch size may move a rounding
    assert np.mean(np.abs(out.images.astype(int) - images.astype(int))) > 5  # it did refine
    np.testing.assert_array_equal(out.look_vec, look_vec)
    assert [p.decode() if isinstance(p, bytes) else p for p in out.paths] == paths
    with h5py.File(dst) as f:
        np.testing.assert_array_equal(f["extra"][()], np.arange(5))
        assert sorted(f["image"].keys())[:2] == ["000000", "000001"]
    assert os.listdir(dst.parent) == ["refined.h5"]  # no temporary file left behind


def test_plain_layout_holds_the_same_refined_images(tmp_path, refiner_path):
    n = 21
    images = _images(n, seed=5)
    look_vec = np.random.default_rng(2).normal(size=(n, 3)).astype(np.float32)
    src = tmp_path / "gaze.h5"
    _write_unpadded(src, images, look_vec, [f"{i}.jpg" for i in range(n)])
    grouped, plain = tmp_path / "grouped.h5", tmp_path / "plain.h5"
    refine_file(refiner_path, str(src), str(grouped), batch_size=8, progress=False)
    refine_file(refiner_path, str(src), str(plain), batch_size=8, layout="plain", progress=False)
    with h5py.File(plain) as f:
        assert isinstance(f["image"], h5py.Dataset) and f["image"].shape == (n, 35, 55)
    a, b = load_eyes(grouped, cache=False), load_eyes(plain, require_labels=True, cache=False)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(b.look_vec, look_vec)
    # "same" keeps a plain input plain.
    again = tmp_path / "again.h5"
    refine_file(refiner_path, str(plain), str(again), batch_size=8, progress=False)
    with h5py.File(again) as f:
        assert isinstance(f["image"], h5py.Dataset)


def test_refine_file_streams_one_batch_at_a_time(tmp_path, refiner_path, monkeypatch):
    from simgan_tf import refine

    reads = []
    real_read = refine._ImageReader.read

    def spy(self, start, stop):
        reads.append((start, stop))
        return real_read(self, start, stop)

    monkeypatch.setattr(refine._ImageReader, "read", spy)
    src, dst = tmp_path / "gaze.h5", tmp_path / "refined.h5"
    save_eyes(src, _images(50, seed=6))
    refine_file(refiner_path, str(src), str(dst), batch_size=16, progress=False)
    # Never more than one batch asked of the file at once, and every image exactly once, in order.
    assert max(stop - start for start, stop in reads) <= 16
    assert [i for start, stop in reads for i in range(start, stop)] == list(range(50))
    assert len(load_eyes(dst, cache=False).images) == 50


def test_refine_reads_a_plain_float_array(tmp_path, refiner_path, refiner):
    images = _images(10, seed=2)
    src, dst = tmp_path / "plain.h5", tmp_path / "refined.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("image", data=images[..., None].astype(np.float32))
    refine_file(refiner_path, str(src), str(dst), batch_size=4, progress=False)
    out = load_eyes(dst)
    np.testing.assert_allclose(out.images, refine_array(refiner, images, progress=False), atol=1)
    assert out.look_vec is None


def test_refine_array_does_not_depend_on_batch_size(refiner):
    images = _images(23, seed=4)
    a = refine_array(refiner, images, batch_size=1, progress=False)
    b = refine_array(refiner, images, batch_size=10, progress=False)
    np.testing.assert_allclose(a, b, atol=1)
    assert not np.array_equal(a[0], a[1])


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_refuses_to_overwrite_its_input(tmp_path, refiner_path, capsys):
    src = tmp_path / "gaze.h5"
    save_eyes(src, _images(4), np.ones((4, 3), np.float32))
    before = src.read_bytes()
    os.symlink(src, tmp_path / "link.h5")
    for output in (str(src), str(tmp_path / "sub" / ".." / "gaze.h5"), str(tmp_path / "link.h5")):
        os.makedirs(tmp_path / "sub", exist_ok=True)
        argv = ["--refiner", refiner_path, "--input", str(src), "--output", output]
        err = _fails([*argv, "--overwrite"], capsys)
        assert "input" in err
    assert src.read_bytes() == before


def test_refuses_an_existing_output_unless_told(tmp_path, refiner_path, capsys):
    src, dst = tmp_path / "gaze.h5", tmp_path / "refined.h5"
    save_eyes(src, _images(4), np.ones((4, 3), np.float32))
    dst.write_bytes(b"keep me")
    args = ["--refiner", refiner_path, "--input", str(src), "--output", str(dst)]
    assert "already exists" in _fails(args, capsys)
    assert dst.read_bytes() == b"keep me"
    assert main([*args, "--overwrite"]) == 0
    assert len(load_eyes(dst)) == 4


def test_bad_refiner_or_input_gives_one_line(tmp_path, refiner_path, capsys):
    import keras

    from simgan_tf.models import build_refiner

    src, dst = tmp_path / "gaze.h5", tmp_path / "refined.h5"
    save_eyes(src, _images(4))
    not_keras = tmp_path / "refiner.keras"
    not_keras.write_text("not a model")
    keras.utils.set_random_seed(0)
    small = tmp_path / "small.keras"
    build_refiner(input_shape=(32, 32, 1), filters=4, blocks=1).save(small)
    cases = [
        (str(tmp_path / "missing.keras"), str(src), "no such refiner"),
        (str(not_keras), str(src), "cannot be loaded"),
        (str(small), str(src), "32 x 32"),
        (refiner_path, str(tmp_path / "missing.h5"), "no such file"),
        (str(not_keras), str(not_keras), "input"),
    ]
    for refiner, source, message in cases:
        err = _fails(["--refiner", refiner, "--input", source, "--output", str(dst)], capsys)
        assert message in err, err
    assert not dst.exists()
    assert sorted(os.listdir(tmp_path)) == ["gaze.h5", "refiner.keras", "small.keras"]


def test_mismatched_labels_are_refused(tmp_path, refiner_path):
    src, dst = tmp_path / "gaze.h5", tmp_path / "refined.h5"
    save_eyes(src, _images(5))
    with h5py.File(src, "a") as f:
        f.create_dataset("look_vec", data=np.zeros((4, 3), np.float32))
    with pytest.raises(SimGANError, match="4 rows"):
        refine_file(refiner_path, str(src), str(dst), progress=False)
    assert not dst.exists()


@pytest.fixture
def identity_run(tmp_path):
    """A run folder whose "refiner" returns its input: the output shows what the refiner was fed."""
    import keras

    x = keras.Input((35, 55, 1))
    run = tmp_path / "run"
    keras.Model(x, keras.layers.Identity()(x)).save(run.mkdir() or run / "refiner.keras")
    return run


def test_refine_prepares_images_as_the_run_did(tmp_path, identity_run, capsys):
    # Smooth gray-level spread (unlike _images' two-level discs), so equalised images are flat.
    noise = np.random.default_rng(0).normal(110, 25, (20, 35, 55))
    images = np.clip(noise, 0, 255).astype(np.uint8)
    src = tmp_path / "gaze.h5"
    save_eyes(src, images)

    def refined(*extra):
        dst = tmp_path / "refined.h5"
        refiner = str(identity_run / "refiner.keras")
        main(
            ["--refiner", refiner, "--input", str(src), "--output", str(dst), "--overwrite", *extra]
        )
        return load_eyes(dst, cache=False).images

    np.testing.assert_array_equal(refined(), images)
    assert "note: no config.json beside" in capsys.readouterr().out
    (identity_run / "config.json").write_text(json.dumps({"input_norm": "equalize"}))
    equalised = refined()
    np.testing.assert_array_equal(equalised, photometry.equalize(images))
    assert photometry.is_equalized(equalised) and not photometry.is_equalized(images)
    assert "input normalisation: equalize" in capsys.readouterr().out
    np.testing.assert_array_equal(refined("--input-norm", "none"), images)
    reversed_lut = list(range(255, -1, -1))
    (identity_run / "config.json").write_text(
        json.dumps({"input_norm": "match", "input_lut": reversed_lut})
    )
    np.testing.assert_array_equal(refined(), 255 - images)
    (identity_run / "config.json").unlink()
    np.testing.assert_array_equal(refined("--input-norm", "equalize"), photometry.equalize(images))


def test_refine_array_and_file_prepare_each_batch_when_asked(tmp_path, identity_run):
    from simgan_tf.refine import load_refiner

    images = _images(23, seed=3)
    refiner_path = str(identity_run / "refiner.keras")
    refiner = load_refiner(refiner_path)
    np.testing.assert_array_equal(refine_array(refiner, images, 7, progress=False), images)
    out = refine_array(refiner, images, 7, progress=False, prepare=photometry.equalize)
    np.testing.assert_array_equal(out, photometry.equalize(images))
    src, dst = tmp_path / "gaze.h5", tmp_path / "refined.h5"
    save_eyes(src, images)
    refine_file(refiner_path, str(src), str(dst), batch_size=7, progress=False,
                prepare=photometry.equalize)  # fmt: skip
    np.testing.assert_array_equal(load_eyes(dst, cache=False).images, out)


def test_an_unresolved_run_config_is_one_line(tmp_path, identity_run, capsys):
    src = tmp_path / "gaze.h5"
    save_eyes(src, _images(4))
    (identity_run / "config.json").write_text(json.dumps({"input_norm": "auto"}))
    refiner = str(identity_run / "refiner.keras")
    err = _fails(
        ["--refiner", refiner, "--input", str(src), "--output", str(tmp_path / "o.h5")], capsys
    )
    assert str(identity_run / "config.json") in err and "auto" in err


# --- a run's refiners: --run, --checkpoint, --no-average -----------------------------------------


@pytest.fixture(scope="module")
def averaged_run(pair, tmp_path_factory):
    """A smoke run that keeps a moving average of its refiner: checkpoints at steps 6, 9, 12."""
    from simgan_tf.train import main as train

    out = tmp_path_factory.mktemp("averaged") / "run"
    argv = ["--preset", "smoke", "--synthetic", str(pair[0]), "--real", str(pair[1])]
    train([*argv, "--out", str(out), "--refiner-ema", "0.5", "--verbose", "0"])
    return out


def test_refine_takes_a_runs_refiners_and_says_which(tmp_path, averaged_run, capsys):
    src = tmp_path / "gaze.h5"
    save_eyes(src, _images(20), np.ones((20, 3), np.float32))

    def refined(*source):
        dst = tmp_path / "refined.h5"
        main([*source, "--input", str(src), "--output", str(dst), "--overwrite"])
        return load_eyes(dst, cache=False).images, capsys.readouterr().out

    saved, _ = refined("--refiner", str(averaged_run / "refiner.keras"))
    run = ["--run", str(averaged_run)]
    same, out = refined(*run)
    np.testing.assert_array_equal(same, saved)
    assert "refiner.keras (moving average)" in out
    assert f"(from {averaged_run / 'config.json'})" in out  # prepared as the run was
    # The final checkpoint's average is what the run saved; its own last weights are not.
    final, out = refined(*run, "--checkpoint", "12")
    np.testing.assert_array_equal(final, saved)
    assert "step_000000012.weights.h5 (moving average)" in out
    last, out = refined(*run, "--no-average")
    assert "step_000000012.weights.h5 (weights at that step)" in out
    assert np.abs(last.astype(int) - saved.astype(int)).max() > 0
    early, _ = refined(*run, "--checkpoint", "6")
    assert np.abs(early.astype(int) - saved.astype(int)).max() > 0


def test_a_runs_refiner_that_is_not_there_is_one_line(tmp_path, averaged_run, refiner_path, capsys):
    src, dst = tmp_path / "gaze.h5", tmp_path / "refined.h5"
    save_eyes(src, _images(4))
    io = ["--input", str(src), "--output", str(dst)]
    cases = [
        (["--refiner", refiner_path, "--checkpoint", "6"], "add --run RUN"),
        (["--run", str(averaged_run), "--checkpoint", "7"], "no checkpoint at step 7; it has steps 6, 9, 12"),
        (["--run", str(tmp_path / "gone")], "no such run directory"),
        (["--run", str(averaged_run), "--input", str(tmp_path / "missing.h5")], "no such file"),
    ]  # fmt: skip
    for argv, message in cases:
        assert message in _fails([*io, *argv], capsys)
    assert not dst.exists()
