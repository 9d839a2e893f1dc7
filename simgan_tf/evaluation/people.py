"""Splitting a labelled target set by person: test and oracle rows, and who is left out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simgan_tf.data import load_groups
from simgan_tf.errors import SimGANError


def split_sizes(n_total: int, first: int, second: int) -> tuple[int, int]:
    """Shares of n_total for two parts wanted at sizes (first, second): as asked, else in proportion."""
    if n_total >= first + second:
        return first, second
    a = n_total * first // (first + second)
    return a, n_total - a


@dataclass
class TargetSplit:
    """Rows of a labelled target set: test images, the oracle's training images, and whose they are.

    `by` is the person column the split followed, or "image" for a split that ignores people.
    """

    test: np.ndarray
    oracle: np.ndarray
    by: str = "image"
    test_people: list = field(default_factory=list)
    oracle_people: list = field(default_factory=list)


def _subsample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


def split_target(
    n_images: int,
    *,
    n_test: int,
    n_oracle: int,
    seed: int,
    groups: np.ndarray | None = None,
    key: str = "subject",
    exclude: Sequence = (),
) -> TargetSplit:
    """Test and oracle-training rows of a target set of `n_images`: at most n_test and n_oracle.

    With `groups` (a person id per image) nobody is on both sides. The people, less `exclude`, are
    shuffled with `seed` and taken for the test until their images reach n_test or half of the
    people are taken, whichever comes first (at least one person); the rest train the oracle. Each
    side is then subsampled to its size. So a 12-person file at the quick preset's 2,000 test images
    gives 6 people to the test and 6 to the oracle; the smoke preset's 128, one person to the test.
    Without groups, images are split at random.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n_images)[: n_test + n_oracle]
        n_te, _ = split_sizes(len(order), n_test, n_oracle)
        return TargetSplit(order[:n_te], order[n_te:])
    ids, counts = np.unique(groups, return_counts=True)
    kept = ~np.isin(ids, list(exclude))
    if not kept.any():
        raise SimGANError(f"no '{key}' group is left to test on")
    shuffled = rng.permutation(len(ids[kept]))
    people, sizes = ids[kept][shuffled], counts[kept][shuffled]
    enough = int(np.searchsorted(np.cumsum(sizes), n_test)) + 1
    taken = min(enough, max(1, len(people) // 2))
    test = _subsample(np.flatnonzero(np.isin(groups, people[:taken])), n_test, rng)
    oracle = _subsample(np.flatnonzero(np.isin(groups, people[taken:])), n_oracle, rng)
    return TargetSplit(
        test, oracle, key, np.unique(groups[test]).tolist(), np.unique(groups[oracle]).tolist()
    )


def real_sets(config: dict, real: str | None) -> list[tuple[str, str]]:
    """(file, what it is) for each real set whose people must stay out of the target."""
    sets = []
    trained = config.get("real")
    if isinstance(trained, str) and os.path.isfile(trained):
        sets.append((trained, "the real set the run trained against"))
    if real and not any(os.path.abspath(real) == os.path.abspath(p) for p, _ in sets):
        sets.append((real, "the real images given as --real"))
    return sets


def shared_people(
    groups: np.ndarray | None, key: str, real_sets: list[tuple[str, str]], notes: list[str]
) -> tuple[list, str | None]:
    """The target's people whose eyes are also in a real set, and why they are excluded."""
    if groups is None:
        return [], None
    shared, where = set(), []
    for path, role in real_sets:
        theirs = load_groups(path, key)
        if theirs is None:
            notes.append(
                f"{path} ({role}) has no '{key}' column: whether its people are in the target "
                "cannot be checked."
            )
            continue
        common = np.intersect1d(np.unique(groups), theirs)
        if len(common):
            shared.update(common.tolist())
            where.append(f"{path} ({role})")
    if not shared:
        return [], None
    return sorted(shared), "their eyes are also in " + " and ".join(where)


def unseen_by_real_sets(test_people: Sequence, key: str, real_sets: list[tuple[str, str]]) -> bool:
    """Whether every real set names its people ('key') and holds none of `test_people`: only then
    are the test people's eyes real eyes that neither the refiner nor its discriminator saw. No
    real set at all: the evaluation's real images are then the target's own (sets.real_data)."""
    if not len(test_people) or not real_sets:
        return False
    for path, _ in real_sets:
        theirs = load_groups(path, key)
        if theirs is None or np.isin(test_people, theirs).any():
            return False
    return True


def check_people_left(path: str, groups: np.ndarray | None, key: str, excluded: list) -> None:
    if groups is None or np.isin(np.unique(groups), excluded, invert=True).any():
        return
    raise SimGANError(
        f"{path}: all its {len(np.unique(groups))} people ('{key}') are also in the real set, so "
        f"none is left to test on; split it by person (python -m simgan_tf.data split {path} "
        f"--by {key} --out A.h5 B.h5), train with --real A.h5 and evaluate with --target B.h5"
    )


def split_record(
    split: TargetSplit, path: str | None, key: str, excluded: list, why: str | None, notes: list
) -> dict:
    """report.json's data.split: how the target was split, and who is on which side."""
    if split.by != "image":
        note = f"split by person ('{key}'): nobody is both in the test set and in the oracle's"
    elif path:
        note = f"split by image: people may be on both sides ({path} has no '{key}' column)"
    else:
        note = "split by image (the simulator's renders have no people)"
    return {
        "by": split.by,
        "note": note,
        "test_people": split.test_people,
        "oracle_people": split.oracle_people,
        "n_test_people": len(split.test_people),
        "n_oracle_people": len(split.oracle_people),
        "excluded_people": excluded,
        "excluded_because": why,
        "notes": notes,
    }
