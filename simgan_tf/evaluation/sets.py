"""The three image sets of an evaluation: synthetic (train + held out), target (test + oracle), real."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simgan_tf.data import load_eyes, load_groups
from simgan_tf.errors import SimGANError
from simgan_tf.evaluation.breakdowns import read_breakdowns
from simgan_tf.evaluation.people import (
    check_people_left,
    shared_people,
    split_record,
    split_sizes,
    split_target,
    unseen_by_real_sets,
)
from simgan_tf.evaluation.run import Setup, scene_profile

# Built-in data is rendered with seeds that training never uses (it renders synthetic images with
# `seed` and target-domain "real" images with `seed + 1`), so no test image was seen in training.
SYNTHETIC_SEED_OFFSET = 1_000


TARGET_SEED_OFFSET = 2_000


def render_builtin(
    n: int, domain: str, seed: int, profile: str = "uniform"
) -> tuple[np.ndarray, np.ndarray]:
    try:
        from simgan_tf.simulator import render
    except ImportError as e:
        raise SimGANError(
            f"the built-in simulator is not available ({e}); pass --synthetic and --target files"
        ) from None
    images, look_vec = render(n, domain=domain, seed=seed, profile=profile)
    return np.asarray(images, dtype=np.uint8), np.asarray(look_vec, dtype=np.float32)


def labelled_file(path: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    eyes = load_eyes(path, require_labels=True, expected_shape=shape)
    if eyes.look_vec.shape[1] != 3:
        raise SimGANError(f"{path}: look_vec has {eyes.look_vec.shape[1]} columns, expected 3")
    return eyes.images, eyes.look_vec


def synthetic_set(
    path: str | None, n: int, seed: int, shape: tuple[int, int], profile: str = "uniform"
):
    """(images, look_vec, where they came from): up to n of the file's (a seeded random subset),
    else the simulator's synthetic domain."""
    if path:
        images, look_vec = labelled_file(path, shape)
        keep = np.random.default_rng(seed).permutation(len(images))[:n]
        return images[keep], look_vec[keep], path
    render_seed = seed + SYNTHETIC_SEED_OFFSET
    return (
        *render_builtin(n, "synthetic", render_seed, profile),
        f"built-in simulator, synthetic domain, {profile} scenes, seed {render_seed}",
    )


@dataclass
class Synthetic:
    train: np.ndarray
    train_labels: np.ndarray
    heldout: np.ndarray
    heldout_labels: np.ndarray
    source: str
    builtin: bool


@dataclass
class Target:
    test_images: np.ndarray
    test_labels: np.ndarray
    test_pose: np.ndarray | None
    oracle_images: np.ndarray
    oracle_labels: np.ndarray
    source: str
    split: dict  # report.json's data.split
    test_rows: np.ndarray  # the test images' rows in the target file (or renders)
    builtin: bool = False  # the simulator's target domain (its labels mean what synthetic ones do)
    # evaluate --by: each breakdown's groups, label -> which test images belong
    test_groups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # The test people are in no real set (people.unseen_by_real_sets): realism's unseen probe
    test_people_unseen: bool = False


def synthetic_data(s: Setup, path: str | None) -> Synthetic:
    images, labels, source = synthetic_set(
        path, s.sizes.n_train + s.sizes.n_heldout, s.seed, s.shape, scene_profile(s.config)
    )
    # The refiner learnt on normalised synthetic images: every use of them below sees them so.
    images = s.prepare(images)
    n_tr, n_ho = split_sizes(len(images), s.sizes.n_train, s.sizes.n_heldout)
    if n_tr < 2 or n_ho < 2:
        raise SimGANError(f"{source}: {len(images)} images are too few to evaluate")
    # Held-out images first: the simulator's output is prefix-stable, so the same scenes can be
    # rendered again in the target domain (see appearance_floor).
    return Synthetic(
        images[n_ho:], labels[n_ho:], images[:n_ho], labels[:n_ho], source, builtin=not path
    )


def target_data(
    s: Setup,
    path: str | None,
    key: str,
    pose_key: str,
    real_sets: list[tuple[str, str]] | None,
    by: Sequence[str] = (),
    known_real_sets: Sequence[tuple[str, str]] = (),
) -> Target:
    """The test and oracle-training sets: by person where the file names people (see split_target),
    leaving out those also in `real_sets` (None: nobody, as no arm is tested); with `by`, the
    groups of test images each arm's error is also broken down by (breakdowns). The test people
    are marked unseen where the split is by person and none of them is in `known_real_sets`, every
    real set the run and the evaluation use (`real_sets` is those or None)."""
    breakdowns = read_breakdowns(path, by)
    if path:
        images, labels = labelled_file(path, s.shape)
        groups, pose, source = load_groups(path, key), load_groups(path, pose_key), path
        if pose is not None and pose.dtype.kind not in "iuf":
            raise SimGANError(f"{path}: '{pose_key}' holds {pose.dtype}, expected degrees")
    else:
        render_seed = s.seed + TARGET_SEED_OFFSET
        images, labels = render_builtin(
            s.sizes.n_test + s.sizes.n_train, "target", render_seed, scene_profile(s.config)
        )
        groups = pose = None
        source = f"built-in simulator, target domain, seed {render_seed}"
    notes: list[str] = []
    if real_sets is None:
        excluded, why = [], None
        if groups is not None:
            notes.append("No gaze arm was tested, so the real set's people were not left out.")
    else:
        excluded, why = shared_people(groups, key, real_sets, notes)
        check_people_left(path, groups, key, excluded)
    split = split_target(
        len(images),
        n_test=s.sizes.n_test,
        n_oracle=s.sizes.n_train,
        seed=s.seed,
        groups=groups,
        key=key,
        exclude=excluded,
    )
    if len(split.test) < 1:
        raise SimGANError(f"{source}: too few labelled images to test on")
    return Target(
        images[split.test],
        labels[split.test],
        None if pose is None else pose[split.test],
        images[split.oracle],
        labels[split.oracle],
        source,
        split_record(split, path, key, excluded, why, notes),
        builtin=not path,
        test_rows=split.test,
        test_groups={
            name: {label: mask[split.test] for label, mask in groups.items()}
            for name, groups in breakdowns.items()
        },
        test_people_unseen=split.by != "image"
        and unseen_by_real_sets(split.test_people, key, list(known_real_sets)),
    )


def real_data(s: Setup, real: str | None, target: Target) -> tuple[np.ndarray, str]:
    if real:
        return load_eyes(real, expected_shape=s.shape).images, real
    images = np.concatenate([target.test_images, target.oracle_images])
    return images, f"the target images ({target.source})"
