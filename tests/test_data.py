"""Data layer: reading and checking files, the cache, converters, download, the tf.data pipeline.

Every file is made at test time; the CLI runs in-process through `main([...])`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from simgan_tf import bench, data

H, W = data.IMAGE_SHAPE


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Keep caches out of the checkout and the read-only shared folder.
    monkeypatch.setenv("SIMGAN_CACHE_DIR", str(tmp_path / "cache"))


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        data.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_group_file(path: Path, images, *, keys=None, look_vec=None) -> Path:
    with h5py.File(path, "w") as f:
        group = f.create_group("image")
        for i, img in enumerate(images):
            group.create_dataset(keys[i] if keys else f"{i:06d}", data=img)
        if look_vec is not None:
            f.create_dataset("look_vec", data=look_vec)
    return path


def eyes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------
# Reading


def test_round_trip_with_labels_and_paths(tmp_path):
    images, look = eyes(5), np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    data.save_eyes(tmp_path / "g.h5", images, look, [f"{i}.jpg" for i in range(5)])
    got = data.load_eyes(tmp_path / "g.h5", require_labels=True)
    assert got.images.dtype == np.uint8 and np.array_equal(got.images, images)
    assert np.allclose(got.look_vec, look)
    assert list(got.paths) == [f"{i}.jpg" for i in range(5)]
    assert got.layout == "group" and len(got) == 5
    assert not list(tmp_path.glob("*.tmp-*"))


def test_group_keys_follow_numeric_order(tmp_path):
    # Unpadded keys: lexical order would put "10" before "2" and misalign look_vec.
    n = 12
    images = np.stack([np.full((H, W), i, np.uint8) for i in range(n)])
    look = np.stack([[i, 0, -1] for i in range(n)]).astype(np.float32)
    order = np.random.default_rng(0).permutation(n)
    with h5py.File(tmp_path / "u.h5", "w") as f:
        group = f.create_group("image")
        for i in order:
            group.create_dataset(str(i), data=images[i])
        f.create_dataset("look_vec", data=look)
    got = data.load_eyes(tmp_path / "u.h5")
    assert np.array_equal(got.images[:, 0, 0], np.arange(n))
    assert np.array_equal(got.look_vec[:, 0], np.arange(n))


@pytest.mark.parametrize(
    "stored",
    [
        lambda x: x,
        lambda x: x[..., None],
        lambda x: x.astype(np.float32),
        lambda x: x[..., None].astype(np.float64),
    ],
    ids=["uint8", "uint8-channel", "float32", "float64-channel"],
)
def test_plain_dataset_layouts(tmp_path, stored):
    images = eyes(4)
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("image", data=stored(images))
        f.create_dataset("extra", data=[1, 2])
    got = data.load_eyes(tmp_path / "p.h5")
    assert got.layout == "dataset" and got.images.dtype == np.uint8
    assert np.array_equal(got.images, images)


def test_look_vec_with_zero_fourth_column_is_accepted(tmp_path):
    look = np.array([[0.1, 0.2, -0.9, 0.0]] * 3, np.float32)
    write_group_file(tmp_path / "g.h5", eyes(3), look_vec=look)
    assert data.load_eyes(tmp_path / "g.h5").look_vec.shape == (3, 3)


def test_require_labels(tmp_path):
    write_group_file(tmp_path / "g.h5", eyes(3))
    with pytest.raises(data.SimGANError, match="no 'look_vec'"):
        data.load_eyes(tmp_path / "g.h5", require_labels=True)


# ----------------------------------------------------------------------------------------------
# The cache


def test_cache_is_written_used_and_invalidated(tmp_path, monkeypatch):
    monkeypatch.setattr(data.cache, "CACHE_MIN_IMAGES", 0)
    src = tmp_path / "g.h5"
    data.save_eyes(src, eyes(6), np.zeros((6, 3)) + [0, 0, -1], [str(i) for i in range(6)])
    first = data.load_eyes(src)
    assert "cache written" in first.cache_status
    where = data.cache_path(src)
    assert where.exists() and where.parent == tmp_path / "cache"
    second = data.load_eyes(src)
    assert "read from cache" in second.cache_status
    assert np.array_equal(second.images, first.images)
    assert np.array_equal(second.look_vec, first.look_vec)
    assert list(second.paths) == list(first.paths)
    # The cache is checked like the file: a shape the caller does not accept is still refused.
    with pytest.raises(data.SimGANError, match="expected 36 x 60"):
        data.load_eyes(src, expected_shape=(36, 60))

    # A changed source (same name) must not be served from the old cache.
    data.save_eyes(src, eyes(6, seed=9), overwrite=True)
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = data.load_eyes(src)
    assert "cache written" in third.cache_status
    assert np.array_equal(third.images, eyes(6, seed=9)) and third.look_vec is None

    # A damaged cache is only a slower start.
    where.write_bytes(b"garbage")
    assert np.array_equal(data.load_eyes(src).images, eyes(6, seed=9))
    assert "read from cache" in data.load_eyes(src).cache_status
    assert "cache" not in data.load_eyes(src, cache=False).cache_status


def test_cache_location(tmp_path, monkeypatch):
    src = tmp_path / "in" / "gaze.h5"
    src.parent.mkdir()
    data.save_eyes(src, eyes(3))
    monkeypatch.delenv("SIMGAN_CACHE_DIR")
    monkeypatch.setattr(data.cache, "CACHE_MIN_IMAGES", 0)
    assert data.cache_path(src) == tmp_path / "in" / "gaze.h5.cache.npz"
    # A read-only source folder (by its mode bits, which root's os.access ignores) sends the cache
    # to the project's data/ folder, tagged by the source's path.
    project_data = tmp_path / "data"
    project_data.mkdir()
    monkeypatch.setattr(data.cache, "_project_data_dir", lambda: project_data)
    src.parent.chmod(0o555)
    try:
        where = data.cache_path(src)
        assert where.parent == project_data and where.name.startswith("gaze.h5-")
        assert where.name.endswith(".cache.npz")
        assert "cache written" in data.load_eyes(src).cache_status
        assert sorted(p.name for p in src.parent.iterdir()) == ["gaze.h5"]
        assert "read from cache" in data.load_eyes(src).cache_status
    finally:
        src.parent.chmod(0o755)


def test_small_group_files_are_not_cached(tmp_path):
    write_group_file(tmp_path / "g.h5", eyes(3))
    assert data.load_eyes(tmp_path / "g.h5").cache_status == ""
    assert not (tmp_path / "cache").exists()


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming the file, exit code 2, before any training


def _text(p):
    p.write_text("not hdf5 at all\n")


def _empty(p):
    p.write_bytes(b"")


def _truncated(p):
    data.save_eyes(p, eyes(20))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])


def _no_image_key(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=eyes(2))


def _wrong_shape(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.zeros((3, 36, 60), np.uint8))


def _wrong_rank(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.zeros((3, 35), np.uint8))


def _three_channels(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.zeros((3, 35, 55, 3), np.uint8))


def _mixed_shapes(p):
    write_group_file(p, [np.zeros((35, 55), np.uint8), np.zeros((36, 60), np.uint8)])


def _group_in_group(p):
    write_group_file(p, eyes(2))
    with h5py.File(p, "a") as f:
        f["image"].create_group("000002")


def _string_images(p):
    with h5py.File(p, "w") as f:
        f.create_group("image").create_dataset("0", data="hello", dtype=h5py.string_dtype())


def _empty_group(p):
    with h5py.File(p, "w") as f:
        f.create_group("image")


def _empty_dataset(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.zeros((0, 35, 55), np.uint8))


def _nan(p):
    x = eyes(4).astype(np.float32)
    x[2, 3, 4] = np.nan
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=x)


def _inf(p):
    x = eyes(4).astype(np.float32)
    x[1, 0, 0] = np.inf
    write_group_file(p, x)


def _unit_range(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.random.default_rng(0).random((4, 35, 55)))


def _over_range(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.full((4, 35, 55), 300.0))


def _look_vec_short(p):
    write_group_file(p, eyes(4), look_vec=np.zeros((3, 3)))


def _look_vec_narrow(p):
    write_group_file(p, eyes(4), look_vec=np.zeros((4, 2)))


def _look_vec_flat(p):
    write_group_file(p, eyes(4), look_vec=np.zeros(12))


def _look_vec_nan(p):
    look = np.zeros((4, 3))
    look[1, 1] = np.nan
    write_group_file(p, eyes(4), look_vec=look)


BAD_FILES = [
    (_text, "not an HDF5 file"),
    (_empty, "is empty"),
    (_truncated, "truncated HDF5 file"),
    (_no_image_key, "no 'image' key"),
    (_wrong_shape, "images are 36 x 60, expected 35 x 55"),
    (_wrong_rank, "expected (N, H, W)"),
    (_three_channels, "expected (N, H, W)"),
    (_mixed_shapes, "expected (35, 55) like the first"),
    (_group_in_group, "'image/000002' is not a dataset"),
    (_string_images, "expected uint8 or float"),
    (_empty_group, "'image' group is empty"),
    (_empty_dataset, "holds no images"),
    (_nan, "image 2 holds NaN or infinite"),
    (_inf, "image 1 holds NaN or infinite"),
    (_unit_range, "expected gray levels in [0, 255]"),
    (_over_range, "expected [0, 255]"),
    (_look_vec_short, "look_vec has 3 rows but there are 4 images"),
    (_look_vec_narrow, "look_vec has shape (4, 2), expected (4, 3)"),
    (_look_vec_flat, "look_vec has shape (12,)"),
    (_look_vec_nan, "look_vec row 1 holds NaN"),
]


@pytest.mark.parametrize("make, message", BAD_FILES, ids=[m.__name__[1:] for m, _ in BAD_FILES])
def test_bad_file_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    path = tmp_path / "bad.h5"
    make(path)
    code, out, err = run_cli(["inspect", path], capsys)
    assert_one_line_error(code, err, str(path), message)
    assert out == ""


def test_missing_path_and_directory(tmp_path, capsys):
    code, _, err = run_cli(["inspect", tmp_path / "nope.h5"], capsys)
    assert_one_line_error(code, err, "nope.h5: no such file")
    code, _, err = run_cli(["inspect", tmp_path], capsys)
    assert_one_line_error(code, err, "is a directory")


# ----------------------------------------------------------------------------------------------
# inspect


def test_inspect_reports_and_writes_montage(tmp_path, capsys):
    look = np.array([[0.0, np.sin(0.2), -np.cos(0.2)]] * 10, np.float32)
    data.save_eyes(tmp_path / "g.h5", eyes(10), look, [f"{i}.jpg" for i in range(10)])
    code, out, err = run_cli(
        ["inspect", tmp_path / "g.h5", "--montage", tmp_path / "m.png"], capsys
    )
    assert code == 0, err
    assert "images: 10 x 35 x 55, stored uint8" in out
    assert "look_vec: 10 x 3" in out
    assert "pitch: 11.5..11.5 deg" in out and "yaw: 0.0..0.0 deg" in out
    assert "path: 10 names, first '0.jpg'" in out
    assert Image.open(tmp_path / "m.png").size[0] > 100

    code, _, err = run_cli(["inspect", tmp_path / "g.h5", "--montage", tmp_path / "m.png"], capsys)
    assert_one_line_error(code, err, "m.png: already exists", "--overwrite")
    code, _, err = run_cli(
        ["inspect", tmp_path / "g.h5", "--montage", tmp_path / "m.png", "--overwrite"], capsys
    )
    assert code == 0, err
    code, _, err = run_cli(["inspect", tmp_path / "g.h5", "--montage", tmp_path / "m.xyz"], capsys)
    assert_one_line_error(code, err, "unknown image type '.xyz'")


def test_inspect_montage_equal_to_input_is_refused(tmp_path, capsys):
    data.save_eyes(tmp_path / "g.png", eyes(3))
    code, _, err = run_cli(
        ["inspect", tmp_path / "g.png", "--montage", tmp_path / "g.png", "--overwrite"], capsys
    )
    assert_one_line_error(code, err, "is the input")


def test_shared_real_set_loads_and_inspects(shared_real, capsys, tmp_path):
    eyes_ = data.load_eyes(shared_real)
    assert eyes_.images.shape[1:] == (35, 55) and len(eyes_) >= 1000
    assert eyes_.look_vec is None
    code, out, err = run_cli(["inspect", shared_real, "--montage", tmp_path / "real.png"], capsys)
    assert code == 0, err
    assert f"images: {len(eyes_)} x 35 x 55" in out and "look_vec: none" in out


# ----------------------------------------------------------------------------------------------
# UnityEyes


def _vec(*xs: float) -> str:
    return "(" + ", ".join(f"{x:.4f}" for x in xs) + ")"


def write_unityeyes_pair(
    folder: Path,
    stem: str,
    *,
    centre=(160.0, 70.0),
    size=(320, 240),
    look=(0.1, 0.2, -0.97),
) -> None:
    """A render with a bright eye and a dark iris at `centre` (column, row from the top)."""
    w, h = size
    cx, cy = centre
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 90, np.uint8)
    eye = ((xx - cx) / 50) ** 2 + ((yy - cy) / 18) ** 2 <= 1
    img[eye] = 230
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 12**2] = 10
    Image.fromarray(img).save(folder / f"{stem}.jpg", quality=95)
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    # UnityEyes counts landmark y from the bottom of the image.
    margin = [_vec(cx + 50 * np.cos(a), h - (cy + 18 * np.sin(a)), 0.5) for a in t]
    caruncle = [_vec(cx - 52 + d, h - cy, 0.5) for d in (0, 2, 4)]
    iris = [_vec(cx + 12 * np.cos(a), h - (cy + 12 * np.sin(a)), 0.5) for a in t]
    meta = {
        "interior_margin_2d": margin,
        "caruncle_2d": caruncle,
        "iris_2d": iris,
        "eye_details": {"look_vec": _vec(*look, 0.0), "pupil_size": "0.05", "iris_size": "1.0"},
        "head_pose": "(351.0, 0.0, 0.0)",
    }
    (folder / f"{stem}.json").write_text(json.dumps(meta))


def test_convert_unityeyes(tmp_path, capsys):
    src = tmp_path / "imgs"
    src.mkdir()
    looks = {"1": (0.1, 0.2, -0.97), "2": (-0.3, -0.1, -0.95), "10": (0.0, 0.0, -1.0)}
    for stem, look in looks.items():
        write_unityeyes_pair(src, stem, look=look)
    write_unityeyes_pair(src, "3")
    (src / "3.json").write_text("{not json")
    write_unityeyes_pair(src, "4")
    (src / "4.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    write_unityeyes_pair(src, "5")
    meta = json.loads((src / "5.json").read_text())
    del meta["interior_margin_2d"]
    (src / "5.json").write_text(json.dumps(meta))
    write_unityeyes_pair(src, "6")
    (src / "6.json").unlink()

    out_h5 = tmp_path / "gaze.h5"
    code, out, err = run_cli(["convert-unityeyes", src, out_h5, "--workers", "1"], capsys)
    assert code == 0, err
    assert "wrote" in out and "3 images" in out
    for name in ("3.jpg: bad JSON", "4.jpg: unreadable image", "5.jpg: bad landmarks (no", "6.jpg"):
        assert name in out, out
    got = data.load_eyes(out_h5, require_labels=True)
    assert list(got.paths) == ["1.jpg", "2.jpg", "10.jpg"]
    assert np.allclose(got.look_vec, [looks["1"], looks["2"], looks["10"]], atol=1e-4)
    # The crop is centred on the eye: dark iris in the middle, brighter surroundings.
    img = got.images[0].astype(float)
    assert img[H // 2 - 2 : H // 2 + 3, W // 2 - 2 : W // 2 + 3].mean() < 60
    assert img[:, :4].mean() > 80 and img[:, -4:].mean() > 80

    code, _, err = run_cli(["convert-unityeyes", src, out_h5], capsys)
    assert_one_line_error(code, err, "gaze.h5: already exists", "--overwrite")
    code, _, err = run_cli(["convert-unityeyes", src, out_h5, "--overwrite"], capsys)
    assert code == 0, err


def test_unityeyes_landmark_y_counts_from_the_bottom(tmp_path):
    # Eye high in the render: reading y from the top would crop plain background.
    src = tmp_path / "imgs"
    src.mkdir()
    write_unityeyes_pair(src, "0", centre=(100.0, 40.0))
    data.convert_unityeyes(src, tmp_path / "o.h5", workers=1)
    img = data.load_eyes(tmp_path / "o.h5").images[0]
    assert img.min() < 40 and img.max() > 180


def test_unityeyes_crop_near_the_border_is_padded(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    write_unityeyes_pair(src, "0", centre=(40.0, 20.0))
    report = data.convert_unityeyes(src, tmp_path / "o.h5", workers=1)
    assert report.count == 1 and not report.skipped


def test_unityeyes_with_worker_processes(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(4):
        write_unityeyes_pair(src, str(i), look=(0.1 * i, 0.0, -1.0))
    data.convert_unityeyes(src, tmp_path / "a.h5", workers=1)
    data.convert_unityeyes(src, tmp_path / "b.h5", workers=2)
    a, b = data.load_eyes(tmp_path / "a.h5"), data.load_eyes(tmp_path / "b.h5")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.look_vec, b.look_vec)


def test_unityeyes_bad_inputs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "1.jpg").write_bytes(b"x")
    code, _, err = run_cli(["convert-unityeyes", empty, tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, str(empty), "no UnityEyes pairs", "1 .jpg and 0 .json")

    code, _, err = run_cli(["convert-unityeyes", tmp_path / "missing", tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "missing: no such folder")

    bad = tmp_path / "bad"
    bad.mkdir()
    write_unityeyes_pair(bad, "1")
    (bad / "1.json").write_text("[]")
    code, _, err = run_cli(["convert-unityeyes", bad, tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "none of the 1 UnityEyes pairs", "1.jpg")
    assert not (tmp_path / "o.h5").exists()

    code, _, err = run_cli(["convert-unityeyes", bad, bad], capsys)
    assert_one_line_error(code, err, "is the input")


# ----------------------------------------------------------------------------------------------
# MPIIGaze


def test_mpiigaze_gaze_conversion_by_hand():
    up = np.radians(20)
    right = np.radians(30)
    gaze = np.array(
        [
            [0.0, 0.0, -1.0],  # into the camera
            [0.0, -np.sin(up), -np.cos(up)],  # up: OpenCV y points down
            [np.sin(right), 0.0, -np.cos(right)],  # toward the image's right
        ]
    )
    look = data.mpiigaze_to_look_vec(gaze)
    assert np.allclose(look[0], [0, 0, -1])
    assert look[1, 1] > 0 and np.allclose(look[1], [0, np.sin(up), -np.cos(up)])
    assert look[2, 0] > 0 and np.allclose(look[2], gaze[2])
    pitch, yaw = data.gaze_angles(look)
    # MPIIGaze's published angles: pitch = asin(-gy), yaw = atan2(-gx, -gz).
    assert np.allclose(pitch, np.arcsin(-gaze[:, 1]))
    assert np.allclose(yaw, np.arctan2(-gaze[:, 0], -gaze[:, 2]))
    assert np.isclose(pitch[1], up) and np.isclose(yaw[2], -right)


def write_mat(path: Path, n_left: int, n_right: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def eye(n):
        # A bright left half makes a mirror image easy to spot.
        images = rng.integers(0, 60, (n, 36, 60), dtype=np.uint8)
        images[:, :, :30] += 150
        gaze = rng.normal(size=(n, 3))
        gaze[:, 2] = -np.abs(gaze[:, 2]) - 1
        gaze /= np.linalg.norm(gaze, axis=1, keepdims=True)
        return {"image": images, "gaze": gaze, "pose": rng.normal(size=(n, 3))}

    content = {"left": eye(n_left), "right": eye(n_right)}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"data": content, "filenames": np.array(["a"], dtype=object)})
    return content


def test_convert_mpiigaze_with_labels(tmp_path, capsys):
    root = tmp_path / "Normalized"
    a = write_mat(root / "p00" / "day01.mat", 3, 2, seed=1)
    b = write_mat(root / "p01" / "day02.mat", 1, 1, seed=2)  # one image per eye: squeezed axes
    out_h5 = tmp_path / "real.h5"
    code, out, err = run_cli(["convert-mpiigaze", root, out_h5, "--with-labels"], capsys)
    assert code == 0, err
    assert "7 images with look_vec" in out
    got = data.load_eyes(out_h5, require_labels=True)
    assert got.images.shape == (7, 35, 55)
    assert list(got.paths[:5]) == [
        "p00/day01.mat:left:0",
        "p00/day01.mat:left:1",
        "p00/day01.mat:left:2",
        "p00/day01.mat:right:0",
        "p00/day01.mat:right:1",
    ]
    # Left eyes as they are; right eyes mirrored, with look_vec x negated to match.
    assert np.allclose(got.look_vec[:3], data.mpiigaze_to_look_vec(a["left"]["gaze"]), atol=1e-6)
    expected_right = data.mpiigaze_to_look_vec(a["right"]["gaze"]) * [-1, 1, 1]
    assert np.allclose(got.look_vec[3:5], expected_right, atol=1e-6)
    assert np.allclose(got.look_vec[6], data.mpiigaze_to_look_vec(b["right"]["gaze"]) * [-1, 1, 1])
    left_half, right_half = (
        got.images[:, :, :20].mean(axis=(1, 2)),
        got.images[:, :, -20:].mean(axis=(1, 2)),
    )
    assert (left_half[[0, 1, 2, 5]] > right_half[[0, 1, 2, 5]] + 100).all()
    assert (right_half[[3, 4, 6]] > left_half[[3, 4, 6]] + 100).all()


def test_convert_mpiigaze_unlabelled_no_flip_single_file(tmp_path, capsys):
    mat = tmp_path / "day01.mat"
    write_mat(mat, 2, 2)
    out_h5 = tmp_path / "real.h5"
    code, out, err = run_cli(["convert-mpiigaze", mat, out_h5, "--no-flip"], capsys)
    assert code == 0, err
    assert "4 images without labels" in out
    with h5py.File(out_h5) as f:
        assert set(f) == {"image", "path"}
    got = data.load_eyes(out_h5)
    assert (
        got.images[:, :, :20].mean(axis=(1, 2)) > got.images[:, :, -20:].mean(axis=(1, 2))
    ).all()


def test_resizing_the_stack_equals_resizing_each_image():
    from skimage.transform import resize

    stack = np.random.default_rng(0).integers(0, 256, (3, 36, 60), dtype=np.uint8)
    one = [
        np.clip(np.round(resize(x.astype(np.float32), (35, 55), anti_aliasing=True,
                                preserve_range=True)), 0, 255).astype(np.uint8)
        for x in stack
    ]  # fmt: skip
    assert np.array_equal(data._resize_stack(stack), np.stack(one))


def _mat_no_data(p):
    scipy.io.savemat(p, {"other": np.zeros(3)})


def _mat_no_right(p):
    left = {"image": np.zeros((1, 36, 60), np.uint8), "gaze": np.ones(3)}
    scipy.io.savemat(p, {"data": {"left": left}})


def _mat_no_gaze(p):
    content = {"image": np.zeros((2, 36, 60), np.uint8)}
    scipy.io.savemat(p, {"data": {"left": content, "right": content}})


def _mat_wrong_shape(p):
    content = {"image": np.zeros((2, 35, 55), np.uint8), "gaze": np.ones((2, 3))}
    scipy.io.savemat(p, {"data": {"left": content, "right": content}})


def _mat_gaze_rows(p):
    content = {"image": np.zeros((2, 36, 60), np.uint8), "gaze": np.ones((3, 3))}
    scipy.io.savemat(p, {"data": {"left": content, "right": content}})


def _mat_unit_floats(p):
    content = {"image": np.full((2, 36, 60), 0.5), "gaze": np.ones((2, 3))}
    scipy.io.savemat(p, {"data": {"left": content, "right": content}})


def _mat_text_gaze(p):
    content = {"image": np.zeros((2, 36, 60), np.uint8), "gaze": "up"}
    scipy.io.savemat(p, {"data": {"left": content, "right": content}})


def _mat_not_mat(p):
    p.write_text("hello")


def _mat_v73(p):
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=[1])
    raw = p.read_bytes()
    # MATLAB v7.3 files are HDF5 with a 512-byte MATLAB header in front.
    header = b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\x00\x02IM"
    p.write_bytes(header.ljust(512, b"\0") + raw)


BAD_MATS = [
    (_mat_no_data, "no 'data' struct"),
    (_mat_no_right, "no 'data.right'"),
    (_mat_no_gaze, "no 'data.left.gaze'"),
    (_mat_wrong_shape, "data.left.image has shape (2, 35, 55), expected (N, 36, 60)"),
    (_mat_gaze_rows, "data.left.gaze has shape (3, 3), expected (2, 3)"),
    (_mat_unit_floats, "data.left.image values are not gray levels in [0, 255]"),
    (_mat_text_gaze, "data.left.gaze is not numeric"),
    (_mat_not_mat, "not a readable MATLAB .mat file"),
    (_mat_v73, ".mat"),
]


@pytest.mark.parametrize("make, message", BAD_MATS, ids=[m.__name__[1:] for m, _ in BAD_MATS])
def test_bad_mat_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    mat = tmp_path / "p00" / "day01.mat"
    mat.parent.mkdir()
    make(mat)
    code, _, err = run_cli(["convert-mpiigaze", tmp_path, tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, str(mat), message)
    assert not (tmp_path / "o.h5").exists()


def test_mpiigaze_output_rules(tmp_path, capsys):
    mat = tmp_path / "day01.mat"
    write_mat(mat, 1, 1)
    code, _, err = run_cli(["convert-mpiigaze", mat, mat, "--overwrite"], capsys)
    assert_one_line_error(code, err, "is the input")
    (tmp_path / "o.h5").write_text("mine")
    code, _, err = run_cli(["convert-mpiigaze", mat, tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "o.h5: already exists")
    assert (tmp_path / "o.h5").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["convert-mpiigaze", empty, tmp_path / "p.h5"], capsys)
    assert_one_line_error(code, err, "no .mat files")


# ----------------------------------------------------------------------------------------------
# split by person


def write_people_file(path: Path, subject, **columns) -> Path:
    """Images whose first pixel is their row number, with look_vec, path, subject and `columns`."""
    n = len(subject)
    images = eyes(n)
    images[:, 0, 0] = np.arange(n) % 256
    look = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    data.save_eyes(path, images, look, [f"row{i}.jpg" for i in range(n)])
    with h5py.File(path, "a") as f:
        f["subject"] = np.asarray(subject, dtype=np.int16)
        for name, values in columns.items():
            f[name] = values
    return path


def test_load_groups_reads_a_per_image_column(tmp_path):
    path = write_people_file(tmp_path / "p.h5", [3, 3, 5], head_pose_deg=np.float32([-15, 0, 15]))
    np.testing.assert_array_equal(data.load_groups(path), [3, 3, 5])
    np.testing.assert_array_equal(data.load_groups(path, "head_pose_deg"), [-15, 0, 15])
    assert data.load_groups(path, "missing") is None
    np.testing.assert_array_equal(
        data.load_groups(path, "path"), ["row0.jpg", "row1.jpg", "row2.jpg"]
    )
    with h5py.File(path, "a") as f:
        f["short"] = np.arange(2)
        f["wide"] = np.zeros((3, 2))
        f["nan"] = np.float32([0, np.nan, 1])
    for key, message in (
        ("short", r"expected \(3,\)"),
        ("wide", r"expected \(3,\)"),
        ("nan", "row 1"),
    ):
        with pytest.raises(data.SimGANError, match=message) as e:
            data.load_groups(path, key)
        assert str(path) in str(e.value) and f"'{key}'" in str(e.value)


def test_split_keeps_people_apart_and_rows_aligned(tmp_path, capsys):
    subject = np.repeat([1, 3, 5, 7, 9, 11], [4, 2, 5, 3, 1, 6])
    pose = np.float32(np.arange(len(subject)) * 15.0 - 60)
    src = write_people_file(
        tmp_path / "people.h5", subject, head_pose_deg=pose, gaze_target_deg=np.zeros((21, 2))
    )
    with h5py.File(src, "a") as f:
        f["note"] = "not one row per image"
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    code, out, err = run_cli(["split", src, "--by", "subject", "--out", a, b], capsys)
    assert code == 0, err
    assert "3 people" in out and "left out (not one row per image): note" in out
    source = data.load_eyes(src)
    seen = []
    for part in (a, b):
        with h5py.File(part, "r") as f:
            assert set(f) == {
                "image",
                "look_vec",
                "path",
                "subject",
                "head_pose_deg",
                "gaze_target_deg",
            }
            n_rows = len(f["subject"])
        got = data.load_eyes(part)
        # Each image keeps its own row of every column, in file order.
        idx = got.images[:, 0, 0].astype(int)
        assert list(idx) == sorted(idx) and len(idx) == n_rows
        np.testing.assert_array_equal(got.images, source.images[idx])
        np.testing.assert_array_equal(got.look_vec, source.look_vec[idx])
        np.testing.assert_array_equal(got.paths, source.paths[idx])
        np.testing.assert_array_equal(data.load_groups(part), subject[idx])
        np.testing.assert_array_equal(data.load_groups(part, "head_pose_deg"), pose[idx])
        seen.append(set(subject[idx].tolist()))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(subject.tolist())
    assert len(seen[0]) == 3

    splits = set()
    for seed in range(6):
        parts, _ = data.split_by_group(
            src, (tmp_path / "c.h5", tmp_path / "d.h5"), seed=seed, fraction=0.2, overwrite=True
        )
        assert len(parts[0].ids) == 1 and len(parts[1].ids) == 5  # round(0.2 * 6) = 1
        splits.add(tuple(parts[0].ids))
    assert len(splits) > 1  # the seed picks the people


def test_split_errors(tmp_path, capsys):
    src = write_people_file(tmp_path / "people.h5", [1, 1, 2, 2])
    one = write_people_file(tmp_path / "one.h5", [4, 4])
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    cases = [
        (["split", src, "--by", "person", "--out", a, b], "no 'person' dataset"),
        (["split", one, "--out", a, b], "1 distinct value, need at least 2"),
        (["split", src, "--fraction", "1", "--out", a, b], "--fraction must lie"),
        (["split", src, "--fraction", "0", "--out", a, b], "--fraction must lie"),
        (["split", src, "--out", src, b, "--overwrite"], "is the input"),
        (["split", src, "--out", a, a], "given as both outputs"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, message)
        assert not a.exists() and not b.exists()
    b.write_text("mine")
    code, _, err = run_cli(["split", src, "--out", a, b], capsys)
    # Refused before any work: the first output is not written either.
    assert_one_line_error(code, err, "b.h5: already exists")
    assert not a.exists() and b.read_text() == "mine"


def test_subset_keeps_the_matching_rows_and_draws_a_count(tmp_path, capsys):
    subject = np.repeat([1, 2, 3], [4, 4, 4])
    pose = np.float32(np.tile([-15, 0, 15, 0], 3))
    src = write_people_file(tmp_path / "people.h5", subject, head_pose_deg=pose)
    with h5py.File(src, "a") as f:
        del f["path"]
        f["path"] = [f"{i:04d}_{'R' if i % 3 else 'L'}.jpg" for i in range(12)]
        f["note"] = "not one row per image"
    source = data.load_eyes(src)
    out = tmp_path / "r.h5"
    argv = ["subset", src, out, "--where", "path", "*_R.jpg", "--where", "head_pose_deg", "0"]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    want = [i for i in range(12) if i % 3 and pose[i] == 0]
    assert f"wrote {out}: {len(want)} of 12 images" in stdout and "left out" in stdout
    got = data.load_eyes(out)
    np.testing.assert_array_equal(got.images[:, 0, 0], want)
    np.testing.assert_array_equal(got.look_vec, source.look_vec[want])
    np.testing.assert_array_equal(data.load_groups(out), subject[want])
    np.testing.assert_array_equal(data.load_groups(out, "head_pose_deg"), pose[want])

    drawn = []
    for seed in range(4):
        data.subset(src, out, count=5, seed=seed, overwrite=True)
        rows = data.load_eyes(out).images[:, 0, 0].tolist()
        assert len(set(rows)) == 5 and rows == sorted(rows)  # no repeats, file order kept
        assert data.load_groups(out).tolist() == subject[rows].tolist()
        drawn.append(tuple(rows))
    assert len(set(drawn)) > 1  # the seed draws the rows
    data.subset(src, out, count=5, seed=0, overwrite=True)
    assert tuple(data.load_eyes(out).images[:, 0, 0]) == drawn[0]  # and repeats them
    data.subset(src, out, where=[("path", "*_L.jpg")], count=2, overwrite=True)
    assert {int(i) % 3 for i in data.load_eyes(out).images[:, 0, 0]} == {0}


def test_subset_errors(tmp_path, capsys):
    src = write_people_file(tmp_path / "people.h5", [1, 1, 2, 2])
    out = tmp_path / "out.h5"
    cases = [
        (["subset", src, out], "nothing to select by"),
        (["subset", src, out, "--where", "person", "1"], "no 'person' dataset"),
        (["subset", src, out, "--where", "subject", "one"], "'subject' holds numbers"),
        (["subset", src, out, "--where", "path", "*_R.jpg"], "no image has path '*_R.jpg'"),
        (["subset", src, out, "--count", "0"], "--count must be >= 1"),
        (["subset", src, out, "--where", "subject", "2", "--count", "3"], "(2 images have"),
        (["subset", src, src, "--count", "1", "--overwrite"], "is the input"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, message)
        assert not out.exists()
    out.write_text("mine")
    code, _, err = run_cli(["subset", src, out, "--count", "1"], capsys)
    assert_one_line_error(code, err, "out.h5: already exists")
    assert out.read_text() == "mine"


def test_mirror_flips_the_matching_rows_and_their_labels(tmp_path, capsys):
    subject = np.repeat([1, 2], 3)
    pose = np.float32([-15, 0, 15, -30, 0, 30])
    target = np.float32([[10, -5], [0, 5], [-10, 15], [0, 0], [10, 10], [0, -15]])
    src = write_people_file(
        tmp_path / "people.h5", subject, head_pose_deg=pose, gaze_target_deg=target
    )
    with h5py.File(src, "a") as f:
        del f["path"]
        f["path"] = [f"{i:04d}_{'L' if i % 2 else 'R'}.jpg" for i in range(6)]
    source = data.load_eyes(src)
    source.images[:, 3, 1] = 200  # a pixel off the row-number pixel, so a flip moves both
    data.save_eyes(tmp_path / "img.h5", source.images)
    with h5py.File(tmp_path / "img.h5") as g, h5py.File(src, "a") as f:
        del f["image"]
        g.copy("image", f)
    out = tmp_path / "m.h5"
    argv = ["mirror", src, out, "--where", "path", "*_L.jpg", "--negate", "head_pose_deg"]
    code, stdout, err = run_cli([*argv, "--negate", "gaze_target_deg:1"], capsys)
    assert code == 0, err
    assert f"wrote {out}: 6 images, 3 of them mirrored" in stdout
    got, left = data.load_eyes(out), np.arange(6) % 2 == 1
    np.testing.assert_array_equal(got.images[left], source.images[left][:, :, ::-1])
    np.testing.assert_array_equal(got.images[~left], source.images[~left])
    want_look = source.look_vec.copy()
    want_look[left, 0] *= -1
    np.testing.assert_array_equal(got.look_vec, want_look)
    np.testing.assert_array_equal(
        data.load_groups(out, "head_pose_deg"), np.where(left, -pose, pose)
    )
    want_target = target.copy()
    want_target[left, 1] *= -1
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["gaze_target_deg"][:], want_target)
    np.testing.assert_array_equal(data.load_groups(out), subject)
    np.testing.assert_array_equal(data.load_groups(out, "path"), data.load_groups(src, "path"))
    np.testing.assert_array_equal(data.load_groups(out, "mirrored"), left)

    # Without --where every row flips, and mirroring twice gives the file back.
    twice = tmp_path / "twice.h5"
    assert data.mirror(src, out, negate=["head_pose_deg"], overwrite=True)[:2] == (6, 6)
    data.mirror(out, twice, negate=["head_pose_deg"])
    np.testing.assert_array_equal(data.load_eyes(twice).images, source.images)
    np.testing.assert_array_equal(data.load_eyes(twice).look_vec, source.look_vec)
    np.testing.assert_array_equal(data.load_groups(twice, "head_pose_deg"), pose)
    np.testing.assert_array_equal(data.load_groups(twice, "mirrored"), np.zeros(6))

    # --append keeps every row as it was and adds the flipped ones after them, labels and all.
    aug = tmp_path / "aug.h5"
    argv[2] = aug
    code, stdout, err = run_cli([*argv, "--append"], capsys)
    assert code == 0, err
    assert f"wrote {aug}: 9 images, 3 added mirrored" in stdout
    got = data.load_eyes(aug)
    np.testing.assert_array_equal(got.images[:6], source.images)
    np.testing.assert_array_equal(got.images[6:], source.images[left][:, :, ::-1])
    np.testing.assert_array_equal(got.look_vec[:6], source.look_vec)
    np.testing.assert_array_equal(got.look_vec[6:], want_look[left])
    np.testing.assert_array_equal(data.load_groups(aug, "head_pose_deg"), np.r_[pose, -pose[left]])
    np.testing.assert_array_equal(data.load_groups(aug), np.r_[subject, subject[left]])
    # The copies keep their originals' path; `mirrored` tells them apart.
    np.testing.assert_array_equal(data.load_groups(aug, "mirrored"), np.r_[np.zeros(6), np.ones(3)])


def test_mirror_errors(tmp_path, capsys):
    src = write_people_file(tmp_path / "people.h5", [1, 1, 2, 2], pose=np.float32([0, 1, 2, 3]))
    out = tmp_path / "out.h5"
    cases = [
        (["mirror", src, out, "--where", "path", "*_R.jpg"], "no image has path '*_R.jpg'"),
        (["mirror", src, out, "--negate", "head_pose_deg"], "no per-image 'head_pose_deg'"),
        (["mirror", src, out, "--negate", "path"], "'path' holds"),
        (["mirror", src, out, "--negate", "pose:1"], "has no column 1"),
        (["mirror", src, out, "--negate", "pose:x"], "expected KEY or KEY:COLUMN"),
        (["mirror", src, out, "--negate", "look_vec"], "mirror sets it itself"),
        (["mirror", src, out, "--negate", "mirrored"], "mirror sets it itself"),
        (["mirror", src, src, "--overwrite"], "is the input"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, message)
        assert not out.exists()
    out.write_text("mine")
    code, _, err = run_cli(["mirror", src, out], capsys)
    assert_one_line_error(code, err, "out.h5: already exists")
    assert out.read_text() == "mine"


# ----------------------------------------------------------------------------------------------
# download


def _fake_kagglehub(monkeypatch, download):
    module = types.ModuleType("kagglehub")
    module.dataset_download = download
    monkeypatch.setitem(sys.modules, "kagglehub", module)


def test_download_links_files_and_checks_them(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "kaggle" / "versions" / "1"
    cache.mkdir(parents=True)
    data.save_eyes(cache / "gaze.h5", eyes(4), np.zeros((4, 3)) + [0, 0, -1])
    data.save_eyes(cache / "real_gaze.h5", eyes(3))
    asked = []
    _fake_kagglehub(monkeypatch, lambda handle: asked.append(handle) or str(cache))
    dest = tmp_path / "data"
    code, out, err = run_cli(["download", "--dest", dest], capsys)
    assert code == 0, err
    assert asked == ["4quant/eye-gaze"]
    assert "4 images, with look_vec" in out and "3 images" in out
    assert np.array_equal(data.load_eyes(dest / "gaze.h5").images, eyes(4))
    code, out, err = run_cli(["download", "--dest", dest], capsys)
    assert code == 0 and out.count("already in place") == 2, err

    (dest / "real_gaze.h5").unlink()
    (dest / "real_gaze.h5").write_text("mine")
    code, _, err = run_cli(["download", "--dest", dest], capsys)
    assert_one_line_error(code, err, "real_gaze.h5: already exists")


def test_download_offline_or_without_kagglehub(tmp_path, monkeypatch, capsys):
    def offline(handle):
        raise ConnectionError("Max retries exceeded\nwith url: https://www.kaggle.com/api")

    _fake_kagglehub(monkeypatch, offline)
    code, _, err = run_cli(["download", "--dest", tmp_path / "d"], capsys)
    assert_one_line_error(code, err, "cannot reach Kaggle", "offline")

    monkeypatch.setitem(sys.modules, "kagglehub", None)
    code, _, err = run_cli(["download", "--dest", tmp_path / "d"], capsys)
    assert_one_line_error(code, err, "pip install kagglehub")


# ----------------------------------------------------------------------------------------------
# Pipeline


def test_training_dataset_batches():
    n = 64
    synthetic = np.stack([np.full((H, W), 4 * i, np.uint8) for i in range(n)])
    real = eyes(40)
    ds = data.training_dataset(
        synthetic, real, batch_size=8, synthetic_groups=2, real_groups=1, seed=0
    )
    it = iter(ds)
    seen = []
    for _ in range(n // 16):
        s, r = next(it)
        assert s.shape == (2, 8, H, W, 1) and r.shape == (1, 8, H, W, 1)
        assert s.dtype.name == "float32" and -1 <= float(np.min(s)) and float(np.max(s)) <= 1
        seen += list(data.to_gray_levels(s.numpy().reshape(-1, H, W, 1))[:, 0, 0])
    # One pass over the synthetic set shows every image exactly once.
    assert sorted(seen) == [4 * i for i in range(n)]


def test_stream_needs_one_batch():
    with pytest.raises(data.SimGANError, match="fewer than one batch"):
        data.image_stream(eyes(3), batch_size=4, groups=1, seed=0)


def test_model_range_round_trip():
    x = eyes(3)
    y = data.to_model_range(x)
    assert y.shape == (3, H, W, 1) and y.min() >= -1 and y.max() <= 1
    assert np.array_equal(data.to_gray_levels(y), x)


# ----------------------------------------------------------------------------------------------
# Benchmarks and the real command line


def test_bench_load_and_pipeline_run(capsys):
    bench.main(["--only", "load", "pipeline", "--load-images", "300", "--pipeline-images", "600",
                "--batch-size", "16", "--seconds", "0.2", "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    figures = {r["name"]: r["value"] for r in report["results"]}
    assert figures["load_images"] == 300
    assert figures["load_cached_s"] > 0 and figures["pipeline_images_per_s"] > 0


def test_command_line_end_to_end(tmp_path):
    # Importing the data module must not pull in TensorFlow (the CLI starts fast).
    script = (
        "import sys, simgan_tf.data as d; assert 'tensorflow' not in sys.modules; "
        f"d.main(['inspect', {str(tmp_path / 'missing.h5')!r}])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing.h5'}: no such file"
