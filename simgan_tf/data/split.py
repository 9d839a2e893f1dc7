"""split_by_group: split an eye file into two with no person (group) in both."""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from simgan_tf.data.checks import _check_input_file, _check_output
from simgan_tf.data.hdf5 import _read_dataset, save_eyes
from simgan_tf.data.load import load_eyes, load_groups
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
    groups = load_groups(path, key)
    if groups is None:
        with h5py.File(path, "r") as f:
            found = sorted(f.keys())
        raise SimGANError(f"{path}: no '{key}' dataset to split by (found {found})")
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
            save_eyes(tmp, eyes.images[rows], overwrite=True)
            with h5py.File(tmp, "a") as f:
                for name, (values, dtype) in columns.items():
                    f.create_dataset(name, data=values[rows], dtype=dtype)
            parts.append(SplitPart(out, part_ids.tolist(), len(rows)))
    return parts, left_out
