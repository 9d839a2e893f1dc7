"""`mirror`: an eye file with some (or all) images flipped left to right and their labels with them,
so that eyes seen from the other side face the way the rest do (or the other way, to test which
way a refiner or an estimator needs them)."""

from __future__ import annotations

import os

import numpy as np

from simgan_tf.data.checks import _check_input_file, _check_output
from simgan_tf.data.load import load_eyes
from simgan_tf.data.rows import _row_columns, _write_rows, match_all
from simgan_tf.errors import SimGANError
from simgan_tf.files import atomic_write

# The per-image dataset that says which images are flipped (1) against the source's view (0), so
# that `evaluate --by mirrored` and `subset --where mirrored 0` can tell a flipped copy from its
# original, which keeps its `path`.
MIRRORED = "mirrored"


def _parse_negate(spec: str) -> tuple[str, int | None]:
    key, _, index = spec.partition(":")
    if not key or (index and not index.isdigit()):
        raise SimGANError(f"--negate {spec!r}: expected KEY or KEY:COLUMN (gaze_target_deg:1)")
    return key, int(index) if index else None


def _targets(path: str, columns: dict, negate: list[str]) -> list[tuple[str, int | None]]:
    """The labels a flip negates: look_vec's x, and each `--negate KEY[:COLUMN]`, checked."""
    targets = [("look_vec", 0)] if "look_vec" in columns else []
    for spec in negate:
        key, index = _parse_negate(spec)
        if key in ("look_vec", MIRRORED):
            raise SimGANError(f"--negate {key}: mirror sets it itself; name other labels")
        if key not in columns:
            raise SimGANError(
                f"{path}: no per-image '{key}' dataset to negate (found {sorted(columns)})"
            )
        values = columns[key][0]
        if values.dtype.kind not in "if":
            raise SimGANError(f"{path}: '{key}' holds {values.dtype}, not numbers to negate")
        if index is not None and (values.ndim != 2 or index >= values.shape[1]):
            raise SimGANError(f"{path}: '{key}' of shape {values.shape} has no column {index}")
        if (key, index) not in targets:
            targets.append((key, index))
    return targets


def mirror(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: list[tuple[str, str]] = (),
    negate: list[str] = (),
    append: bool = False,
    overwrite: bool = False,
) -> tuple[int, int, list[str]]:
    """Write an eye file with the rows every `(key, pattern)` of `where` keeps (all if none)
    flipped left to right: in their place, or with `append` after every original row, as extra
    rows (a flip augmentation). Returns the rows flipped, the rows written and the top-level
    datasets left out because they are not one row per image.

    A flipped eye's `look_vec` has its x negated (x is the image's horizontal axis). Other labels
    that change sign with the view, a head pose or a target's horizontal angle, are named in
    `negate` as `KEY` (the whole value) or `KEY:COLUMN` (one column of a 2-D dataset, from 0).
    Every other per-image dataset (path, subject) is copied as it is, and `mirrored` (uint8) is
    set to 1 on a flipped row (0 on the others; a flipped row of an already mirrored file goes back
    to 0). Written under a temporary name and renamed when complete.
    """
    path, out = os.fspath(path), os.fspath(out)
    _check_input_file(path)
    _check_output(out, [path], overwrite)
    eyes = load_eyes(path, expected_shape=None)
    flip = match_all(path, where, len(eyes))
    columns, left_out = _row_columns(path, len(eyes))
    targets = _targets(path, columns, negate)
    was = columns[MIRRORED][0] if MIRRORED in columns else np.zeros(len(eyes))
    columns[MIRRORED] = (np.asarray(was != 0, dtype=np.uint8), np.dtype(np.uint8))
    flipped = {name: values[flip].copy() for name, (values, _) in columns.items()}
    flipped[MIRRORED] ^= 1
    for key, index in targets:
        values = flipped[key]
        if index is None:
            values *= -1
        else:
            values[:, index] *= -1
    images = eyes.images[flip][:, :, ::-1]
    if append:
        images = np.concatenate([eyes.images, images])
        columns = {
            name: (np.concatenate([values, flipped[name]]), dtype)
            for name, (values, dtype) in columns.items()
        }
    else:
        images, mirrored = eyes.images.copy(), images
        images[flip] = mirrored
        for name, (values, _) in columns.items():
            values[flip] = flipped[name]
    with atomic_write(out) as tmp:
        _write_rows(tmp, images, columns, np.arange(len(images)))
    return int(flip.sum()), len(images), left_out
