"""Row subsets of an eye file: `split_by_group` (two files, no person in both) and `subset` (the
rows a filter and a count keep). Both carry every per-image dataset along with the images.
`match_rows` is the filter, also used by `evaluate --by`."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

import h5py
import numpy as np

from simgan_tf.data.checks import _check_input_file, _check_output
from simgan_tf.data.hdf5 import _read_dataset, save_eyes
from simgan_tf.data.load import load_eyes, require_column
from simgan_tf.errors import SimGANError
from simgan_tf.files import atomic_write


@dataclass
class SplitPart:
    """One output of `split_by_group`: its path, the group ids it holds and its image count."""

    out: str
    ids: list
    count: int


def _row_columns(path: str, n: int) -> tuple[dict[str, tuple[np.ndarray, np.dtype]], list[str]]:
    """Every top-level dataset but `image` with one row per image, with its stored dtype; and the
    names of the others, which a row subset cannot carry."""
    columns, left_out = {}, []
    with h5py.File(path, "r") as f:
        for name, node in f.items():
            if name == "image":
                continue
            if isinstance(node, h5py.Dataset) and node.shape and node.shape[0] == n:
                columns[name] = (_read_dataset(path, f"'{name}'", node), node.dtype)
            else:
                left_out.append(name)
    return columns, left_out


def _write_rows(tmp: str, images: np.ndarray, columns: dict, rows: np.ndarray) -> None:
    save_eyes(tmp, images[rows], overwrite=True)
    with h5py.File(tmp, "a") as f:
        for name, (values, dtype) in columns.items():
            f.create_dataset(name, data=values[rows], dtype=dtype)


def _pick_groups(ids: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(ids)
    k = min(max(int(round(fraction * len(ids))), 1), len(ids) - 1)
    return np.sort(order[:k]), np.sort(order[k:])


def split_by_group(
    path: str | os.PathLike,
    outs: tuple[str | os.PathLike, str | os.PathLike],
    *,
    key: str = "subject",
    fraction: float = 0.5,
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[list[SplitPart], list[str]]:
    """Split an eye file into two with no group (person) in both; returns the parts and the names of
    top-level datasets left out because they are not one row per image.

    The group ids are shuffled with `seed` and the first round(fraction * ids), at least one and at
    most all but one, go to the first output. Each output keeps the input's file order and every
    per-image dataset (look_vec, path, subject, ...) subset by row. Both are written under temporary
    names and renamed only once both are complete.
    """
    path, outs = os.fspath(path), tuple(os.fspath(o) for o in outs)
    _check_input_file(path)
    for out in outs:
        _check_output(out, [path], overwrite)
    if os.path.abspath(outs[0]) == os.path.abspath(outs[1]):
        raise SimGANError(f"{outs[0]}: given as both outputs; name two different files")
    if not 0.0 < fraction < 1.0:
        raise SimGANError(f"--fraction must lie strictly between 0 and 1, got {fraction}")
    groups = require_column(path, key, " to split by")
    ids = np.unique(groups)
    if len(ids) < 2:
        raise SimGANError(f"{path}: '{key}' holds {len(ids)} distinct value, need at least 2")
    eyes = load_eyes(path, expected_shape=None)
    columns, left_out = _row_columns(path, len(eyes))
    parts = []
    with atomic_write(outs[0]) as tmp_a, atomic_write(outs[1]) as tmp_b:
        for out, tmp, part_ids in zip(
            outs, (tmp_a, tmp_b), _pick_groups(ids, fraction, seed), strict=True
        ):
            rows = np.flatnonzero(np.isin(groups, part_ids))
            _write_rows(tmp, eyes.images, columns, rows)
            parts.append(SplitPart(out, part_ids.tolist(), len(rows)))
    return parts, left_out


def match_rows(path: str | os.PathLike, key: str, pattern: str) -> np.ndarray:
    """Which rows' per-image column `key` matches: a shell pattern (`*_R.jpg`) for text, equality
    for numbers; a one-line error where the column is missing or the pattern is not a number."""
    path = os.fspath(path)
    values = require_column(path, key)
    if values.dtype.kind == "U":
        return np.array([fnmatch.fnmatchcase(v, pattern) for v in values], dtype=bool)
    try:
        number = float(pattern)
    except ValueError:
        raise SimGANError(f"{path}: '{key}' holds numbers, and {pattern!r} is not one") from None
    return values == number


def match_all(path: str, where: list[tuple[str, str]], n: int) -> np.ndarray:
    """The rows every `(key, pattern)` of `where` matches (all `n` if none); no match is an error."""
    keep = np.ones(n, dtype=bool)
    for key, pattern in where:
        keep &= match_rows(path, key, pattern)
    if not keep.any():
        shown = " and ".join(f"{key} {pattern!r}" for key, pattern in where)
        raise SimGANError(f"{path}: no image has {shown}")
    return keep


def subset(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    where: list[tuple[str, str]] = (),
    count: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[int, int, list[str]]:
    """Write the rows of an eye file that every `(key, pattern)` of `where` keeps and, of those,
    `count` drawn at random with `seed` (all if None); returns the rows written, the input's rows,
    and the top-level datasets left out because they are not one row per image.

    A text column keeps the rows its shell pattern matches (`path`, `*_R.jpg`); a numeric one the
    rows equal to the number (`head_pose_deg`, `0`). The output keeps the input's order and every
    per-image dataset subset by row, written under a temporary name and renamed when complete.
    """
    path, out = os.fspath(path), os.fspath(out)
    _check_input_file(path)
    _check_output(out, [path], overwrite)
    if not where and count is None:
        raise SimGANError("nothing to select by: give --where KEY PATTERN and/or --count N")
    if count is not None and count < 1:
        raise SimGANError(f"--count must be >= 1, got {count}")
    eyes = load_eyes(path, expected_shape=None)
    rows = np.flatnonzero(match_all(path, where, len(eyes)))
    if count is not None:
        shown = " and ".join(f"{key} {pattern!r}" for key, pattern in where)
        if count > len(rows):
            kept = f"{len(rows)} images have {shown}" if where else f"it holds {len(rows)} images"
            raise SimGANError(f"{path}: --count {count} asks for more than there are ({kept})")
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))
    columns, left_out = _row_columns(path, len(eyes))
    with atomic_write(out) as tmp:
        _write_rows(tmp, eyes.images, columns, rows)
    return len(rows), len(eyes), left_out
