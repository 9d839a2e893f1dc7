"""Measure what a run's refiner is worth: `python -m simgan_tf.evaluate --run RUN [--target T.h5] [--real R.h5]`.

Three gaze estimators (the paper's network, one recipe) are trained on raw synthetic images, on the
same images refined, and on labelled target images (the oracle), and tested on held-out target images.
A target file with a person column (`--groups`, default `subject`) is split by person: nobody is both
in the test set and in the oracle's training set, and people whose eyes are in the real set are left
out of both. Then: how far refinement moved the labels (label drift), and how real the refined images
look to fresh classifiers (two-sample tests, a probe discriminator). Writes report.json, report.md
and figures to RUN/eval.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from simgan_tf import photometry
from simgan_tf.config import PRESETS, Config
from simgan_tf.data import load_eyes, load_groups
from simgan_tf.errors import SimGANError, cli
from simgan_tf.files import read_json, write_text
from simgan_tf.gaze import (
    ESTIMATOR_PRESETS,
    EstimatorSpec,
    angular_error_deg,
    evaluate_estimator,
    predict_gaze,
    summarise_errors,
    train_drift_estimator,
    train_estimator,
)
from simgan_tf.realism import c2st, probe_discriminator
from simgan_tf.refine import check_image_size, load_refiner, refine_array
from simgan_tf.stats import fixed_pattern


@dataclass(frozen=True)
class EvalSizes:
    n_train: int  # synthetic images each estimator trains on (and oracle target images)
    n_heldout: int  # further synthetic images, for label drift and the two-sample tests
    n_test: int  # labelled target images every estimator is tested on
    c2st_per_class: int  # also the probe discriminator's
    c2st_steps: int
    probe_steps: int
    estimator: str  # a gaze.ESTIMATOR_PRESETS key


EVAL_PRESETS: dict[str, EvalSizes] = {
    "smoke": EvalSizes(256, 128, 128, 128, 40, 40, "smoke"),
    # Sized so that 2,500 held-out refined images meet the 2,500 shared MPIIGaze patches one to one.
    "quick": EvalSizes(10_000, 2_500, 2_000, 2_500, 600, 600, "quick"),
    "paper": EvalSizes(100_000, 10_000, 10_000, 10_000, 3_000, 3_000, "paper"),
}

# Built-in data is rendered with seeds that training never uses (it renders synthetic images with
# `seed` and target-domain "real" images with `seed + 1`), so no test image was seen in training.
SYNTHETIC_SEED_OFFSET = 1_000
TARGET_SEED_OFFSET = 2_000

GOAL_GAIN = 0.25  # refined training cuts the real-eye error by at least this share
GOAL_C2ST_REFINED = 0.85
GOAL_C2ST_SYNTHETIC = (
    0.95  # the test must tell raw synthetic from real, or its refined score is moot
)
GOAL_PROBE_IMAGE = 0.80
GOAL_DRIFT_DEG = 3.0
GOAL_HELDOUT_RATIO = 1.2  # refined held-out error at most this times raw synthetic's

# Head poses up to this (degrees) keep camera-frame yaw within the simulator's +-30 (data README).
POSE_NEAR_DEG = 15.0
NEAR_POSE_KEY = f"abs_le_{POSE_NEAR_DEG:g}"  # by_pose's entry for them

ARM_LABELS = {
    "synthetic": "raw synthetic",
    "refined": "refined",
    "oracle": "target itself (oracle)",
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _keras_verbosity(verbose: bool) -> int:
    # A live progress bar on a terminal; one summary line in a log file.
    return 0 if not verbose else (1 if sys.stdout.isatty() else 2)


@contextmanager
def _timed(wall: dict[str, float], key: str) -> Iterator[None]:
    started = time.time()
    yield
    wall[key] = time.time() - started


def _render(
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


def _profile(config: dict) -> str:
    """The scene profile the run's built-in data was drawn from (runs before profiles: uniform)."""
    return config.get("scene_profile") or "uniform"


def _labelled_file(path: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    eyes = load_eyes(path, require_labels=True, expected_shape=shape)
    if eyes.look_vec.shape[1] != 3:
        raise SimGANError(f"{path}: look_vec has {eyes.look_vec.shape[1]} columns, expected 3")
    return eyes.images, eyes.look_vec


def _synthetic_set(
    path: str | None, n: int, seed: int, shape: tuple[int, int], profile: str = "uniform"
):
    """(images, look_vec, where they came from): up to n of the file's (a seeded random subset),
    else the simulator's synthetic domain."""
    if path:
        images, look_vec = _labelled_file(path, shape)
        keep = np.random.default_rng(seed).permutation(len(images))[:n]
        return images[keep], look_vec[keep], path
    render_seed = seed + SYNTHETIC_SEED_OFFSET
    return (
        *_render(n, "synthetic", render_seed, profile),
        f"built-in simulator, synthetic domain, {profile} scenes, seed {render_seed}",
    )


def _appearance_floor(
    model, before: np.ndarray, labels: np.ndarray, render_seed: int, profile: str = "uniform"
) -> float | None:
    """How far the drift estimator's predictions move between the held-out scenes and the very same
    scenes (same labels) rendered in the target domain: what appearance alone does to it."""
    images, look = _render(len(labels), "target", render_seed, profile)
    if not np.allclose(look, labels, atol=1e-6):
        return None  # a simulator whose target domain does not keep the scenes: no floor
    return float(np.mean(angular_error_deg(before, predict_gaze(model, images))))


def _split(n_total: int, first: int, second: int) -> tuple[int, int]:
    """Shares of n_total for two parts wanted at sizes (first, second): as asked, else in proportion."""
    if n_total >= first + second:
        return first, second
    a = n_total * first // (first + second)
    return a, n_total - a


# ----------------------------------------------------------------------------------------------
# Splitting the target set


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
        n_te, _ = _split(len(order), n_test, n_oracle)
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


def _real_sets(config: dict, real: str | None) -> list[tuple[str, str]]:
    """(file, what it is) for each real set whose people must stay out of the target."""
    sets = []
    trained = config.get("real")
    if isinstance(trained, str) and os.path.isfile(trained):
        sets.append((trained, "the real set the run trained against"))
    if real and not any(os.path.abspath(real) == os.path.abspath(p) for p, _ in sets):
        sets.append((real, "the real images given as --real"))
    return sets


def _shared_people(
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


def _check_people_left(path: str, groups: np.ndarray | None, key: str, excluded: list) -> None:
    if groups is None or np.isin(np.unique(groups), excluded, invert=True).any():
        return
    raise SimGANError(
        f"{path}: all its {len(np.unique(groups))} people ('{key}') are also in the real set, so "
        f"none is left to test on; split it by person (python -m simgan_tf.data split {path} "
        f"--by {key} --out A.h5 B.h5), train with --real A.h5 and evaluate with --target B.h5"
    )


def _split_record(
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


# ----------------------------------------------------------------------------------------------
# Run directories and figures


def _run_file(config: dict, key: str) -> str | None:
    """The data file the run trained on (config.json's `key`), None where it used built-in data."""
    value = config.get(key)
    if not isinstance(value, str) or not value:
        return None
    if not os.path.isfile(value):
        # Falling back to built-in data here would evaluate on another distribution than trained on.
        raise SimGANError(
            f"the run trained on {key} images from {value}, not found from here; pass --{key}"
        )
    return value


def _discriminator_filters(config: dict) -> tuple[int, ...]:
    # Runs older than the setting in config.json used their preset's widths.
    widths = config.get("discriminator_filters") or PRESETS.get(config.get("preset"), {}).get(
        "discriminator_filters", Config.discriminator_filters
    )
    return tuple(int(w) for w in widths)


def load_run(run: str) -> tuple[dict, object]:
    """The run's config.json and refiner, with one-line errors for a missing or broken run directory."""
    if not os.path.isdir(run):
        raise SimGANError(
            f"{run}: no such run directory (expected what `simgan_tf.train --out` wrote)"
        )
    config_path = os.path.join(run, "config.json")
    if not os.path.isfile(config_path):
        raise SimGANError(f"{run}: no config.json; is this a training run directory?")
    config = read_json(config_path)
    return config, load_refiner(os.path.join(run, "refiner.keras"))


def save_montage(
    path: str, synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray, n: int = 10
) -> None:
    """Rows: synthetic, the same images refined, |difference| x4, unpaired real images."""
    import matplotlib.pyplot as plt

    from simgan_tf.plots import amplified_difference, save_figure, show_eye

    n = min(n, len(synthetic), len(real))
    diff = amplified_difference(refined[:n], synthetic[:n])
    rows = [
        ("synthetic", synthetic[:n]),
        ("refined", refined[:n]),
        ("|diff| x4", diff),
        ("real", real[:n]),
    ]
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.1, len(rows) * 0.85), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            show_eye(axes[r, c], images[c])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.subplots_adjust(wspace=0.04, hspace=0.04)
    save_figure(fig, path)


def save_error_histogram(path: str, errors: dict[str, np.ndarray]) -> None:
    import matplotlib.pyplot as plt

    from simgan_tf.plots import save_figure

    top = min(90.0, max(float(np.percentile(e, 99)) for e in errors.values()) * 1.05 + 1.0)
    bins = np.linspace(0.0, top, 41)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, e in errors.items():
        ax.hist(
            np.clip(e, 0, top),
            bins=bins,
            histtype="step",
            linewidth=1.6,
            label=f"{ARM_LABELS[name]}: mean {np.mean(e):.1f} deg",
        )
    ax.axvline(7.0, color="gray", linestyle=":", label="7 deg")
    ax.set_xlabel("angular error on the target test set (degrees)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _copy_loss_curves(run: str, out: str) -> str | None:
    """The run's losses.png, or one drawn from its metrics.csv when the picture is missing."""
    src, dst = os.path.join(run, "losses.png"), os.path.join(out, "losses.png")
    if os.path.isfile(src):
        shutil.copyfile(src, dst)
        return dst
    metrics = os.path.join(run, "metrics.csv")
    if not os.path.isfile(metrics):
        return None
    from simgan_tf.plots import save_loss_curves

    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    save_loss_curves(dst, rows)
    return dst


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _deg(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _average_runs(results: list[dict], seed: int) -> dict:
    """One arm's figures averaged over its training seeds, with each seed's own kept beside them."""
    keys = ("mean_deg", "median_deg", "within_7deg")
    out = {k: float(np.mean([res[k] for res in results])) for k in keys}
    out["mean_deg_std"] = float(np.std([res["mean_deg"] for res in results]))
    out["runs"] = [{"seed": seed + i, **{k: res[k] for k in keys}} for i, res in enumerate(results)]
    return out


def gaze_table(report: dict) -> str:
    lines = [
        "| trained on | train images | mean error (deg) | median (deg) | within 7 deg |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def spread(g: dict) -> str:
        return f" ± {g['mean_deg_std']:.2f}" if len(g["runs"]) > 1 else ""

    for name, label in ARM_LABELS.items():
        g = report["gaze"][name]
        if g is None:
            lines.append(f"| {label} | - | not measured | | |")
        else:
            lines.append(
                f"| {label} | {g['n_train']} | {_deg(g['mean_deg'])}{spread(g)} | {_deg(g['median_deg'])} "
                f"| {_pct(g['within_7deg'])} |"
            )
    return "\n".join(lines)


def errors_by_pose(errors: np.ndarray, pose: np.ndarray) -> dict[str, dict]:
    """Mean error, share within 7 degrees and test images per head pose, and over |pose| <= 15.

    `errors` holds one error per test image for each seed, seed after seed (R * len(pose) values).
    """
    pose = np.asarray(pose, dtype=np.float64)
    per_seed = np.asarray(errors).reshape(-1, len(pose))
    masks = {f"{p:g}": pose == p for p in np.unique(pose)}
    masks[NEAR_POSE_KEY] = np.abs(pose) <= POSE_NEAR_DEG
    return {
        name: {
            "n": int(mask.sum()),
            "mean_deg": float(per_seed[:, mask].mean()),
            "within_7deg": float(np.mean(per_seed[:, mask] <= 7.0)),
        }
        for name, mask in masks.items()
        if mask.any()
    }


def pose_table(report: dict) -> str | None:
    """Each arm's error per head pose of the test images, None where the target has no poses."""
    arms = [n for n, g in report["gaze"].items() if g and "by_pose" in g]
    if not arms:
        return None
    lines = [
        "| head pose (deg) | test images | "
        + " | ".join(f"{ARM_LABELS[a]}: mean (within 7)" for a in arms)
        + " |",
        "| --- | ---: |" + " ---: |" * len(arms),
    ]
    for key, row in report["gaze"][arms[0]]["by_pose"].items():
        # No "|pose|" in a table cell: its bars would split the cell.
        label = f"-{POSE_NEAR_DEG:g} to {POSE_NEAR_DEG:g}" if key == NEAR_POSE_KEY else key
        cells = [report["gaze"][a]["by_pose"][key] for a in arms]
        lines.append(
            f"| {label} | {row['n']} | "
            + " | ".join(f"{_deg(c['mean_deg'])} ({_pct(c['within_7deg'])})" for c in cells)
            + " |"
        )
    return "\n".join(lines)


def realism_table(report: dict) -> str:
    r = report["realism"]
    lines = [
        "| pair | C2ST accuracy | probe discriminator: image accuracy | patch accuracy |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, label in (("synthetic", "raw synthetic"), ("refined", "refined")):
        probe = r[f"probe_real_vs_{name}"]
        lines.append(
            f"| real vs {label} | {r[f'c2st_real_vs_{name}']:.3f} | "
            f"{probe['image_accuracy']:.3f} | {probe['patch_accuracy']:.3f} |"
        )
    return "\n".join(lines)


def _goals(report: dict) -> list[tuple[str, str, str, bool | None]]:
    """(key, goal, measured, met) for each goal; met is None where it cannot be judged."""
    g, r, drift, gain = report["gaze"], report["realism"], report["label_drift"], report["gain"]
    spread = float(np.std(report["gain_runs"]))
    probe = r["probe_real_vs_refined"]["image_accuracy"]
    held_syn, held_ref = drift["synthetic_heldout_error_deg"], drift["refined_heldout_error_deg"]
    c2st_ref, c2st_syn = r["c2st_real_vs_refined"], r["c2st_real_vs_synthetic"]
    return [
        (
            "refined_error_cut_25pct",
            f"refined training cuts the target error by >= {GOAL_GAIN:.0%} against raw synthetic",
            f"{gain:+.1%} ({g['synthetic']['mean_deg']:.2f} -> {g['refined']['mean_deg']:.2f} deg)",
            gain >= GOAL_GAIN,
        ),
        (
            "gain_above_seed_spread",
            "that gain is larger than its spread over seeds",
            "n/a (one seed)"
            if report["repeats"] < 2
            else f"{gain:+.1%} against ± {spread:.1%} over {report['repeats']} seeds",
            None if report["repeats"] < 2 else gain > spread,
        ),
        (
            "c2st_refined_at_most_0.85_synthetic_above_0.95",
            f"C2ST real vs refined <= {GOAL_C2ST_REFINED} while real vs synthetic > "
            f"{GOAL_C2ST_SYNTHETIC}",
            f"{c2st_ref:.3f} (synthetic {c2st_syn:.3f})",
            c2st_ref <= GOAL_C2ST_REFINED and c2st_syn > GOAL_C2ST_SYNTHETIC,
        ),
        (
            "probe_image_accuracy_at_most_0.80",
            f"probe discriminator, real vs refined: image accuracy <= {GOAL_PROBE_IMAGE}",
            f"{probe:.3f}",
            probe <= GOAL_PROBE_IMAGE,
        ),
        (
            "label_drift_at_most_3deg",
            f"label drift <= {GOAL_DRIFT_DEG:g} deg",
            f"{drift['mean_deg']:.2f} deg",
            drift["mean_deg"] <= GOAL_DRIFT_DEG,
        ),
        (
            "refined_heldout_error_at_most_1.2x",
            f"refined held-out error <= {GOAL_HELDOUT_RATIO:g} x raw synthetic's",
            f"{held_ref:.2f} vs {held_syn:.2f} deg",
            held_ref <= GOAL_HELDOUT_RATIO * held_syn,
        ),
    ]


def _yes_no(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "no")


def _split_text(d: dict) -> str:
    sp = d["split"]
    if sp["by"] == "image":
        text = f"The target was {sp['note']}."
    else:
        text = (
            f"The target was split by person ('{sp['by']}'): {sp['n_test_people']} people "
            f"({', '.join(map(str, sp['test_people']))}) give the test images, "
            f"{sp['n_oracle_people']} others ({', '.join(map(str, sp['oracle_people']))}) "
            "the oracle's training images; nobody is on both sides."
        )
    if sp["excluded_people"]:
        text += (
            f" Left out of both: {sp['by']} {', '.join(map(str, sp['excluded_people']))}, "
            f"because {sp['excluded_because']}."
        )
    return " ".join([text, *sp["notes"]])


def _drift_text(drift: dict) -> str:
    parts = []
    if drift.get("appearance_floor_deg") is not None:
        parts.append(
            "The drift also counts the estimator's remaining sensitivity to appearance: on the "
            "same scenes rendered in the target domain (identical labels, another camera) its "
            f"predictions move by {drift['appearance_floor_deg']:.2f} degrees."
        )
    else:
        parts.append("Part of any drift is the estimator's sensitivity to appearance.")
    if drift.get("oracle_refined_heldout_error_deg") is not None:
        parts.append(
            "The oracle, trained on target renders, errs by "
            f"{drift['oracle_refined_heldout_error_deg']:.2f} degrees on the refined held-out "
            f"images (synthetic labels) against {drift['oracle_test_error_deg']:.2f} on the target "
            "test images: refined images that look like the target and keep their labels read alike."
        )
    return " ".join(parts)


def render_markdown(report: dict) -> str:
    """report.md: what was measured, the tables, the goals, and how to read the figures."""
    d, e, drift, r = report["data"], report["estimator"], report["label_drift"], report["realism"]
    n_seeds = report["repeats"]
    seeds = (
        f"seed {report['seed']}"
        if n_seeds == 1
        else f"seeds {report['seed']}..{report['seed'] + n_seeds - 1} (mean ± spread over seeds)"
    )
    gains = ", ".join(f"{g:+.1%}" for g in report["gain_runs"])
    parts = [
        "# SimGAN evaluation",
        f"Run `{report['run']}` (training preset {report['run_preset']}); evaluation preset "
        f"{report['preset']}, seed {report['seed']}, {report['wall_seconds']['total']:.0f} s.",
    ]
    if report["preset"] == "smoke":
        parts.append(
            "> Smoke-sized evaluation: it checks that the tools run; its numbers mean nothing."
        )
    parts += [
        "## Gaze estimation on the target set",
        "Does training on refined images beat training on raw synthetic ones (the paper, on MPIIGaze: "
        f"11.2 -> 7.8 degrees)? Every estimator is the paper's network (width {e['width']}, "
        f"FC {e['dense']}) trained the same way: {e['steps']} steps of batch {e['batch_size']}, "
        f"Adam {e['learning_rate']:g} with cosine decay, {seeds}. The synthetic and refined arms see "
        f"the same images and labels in the same order, normalised as in training (input_norm "
        f"{d['input_norm']}). All are tested on {d['n_test']} labelled target images: {d['target']}.",
        _split_text(d),
        gaze_table(report),
        f"Refined vs raw synthetic: mean error {report['gain']:+.1%} (positive = refinement helped"
        + (f"; per seed: {gains}" if n_seeds > 1 else "")
        + "). The oracle, trained on labelled target images, shows how low the error can go. "
        + (
            "One seed per arm: between seeds the gain can move by ten points or more; "
            "`--repeats 3` averages over seeds."
            if n_seeds == 1
            else ""
        ),
    ]
    by_pose = pose_table(report)
    if by_pose:
        parts += [
            "### By head pose",
            f"Mean error (deg) and share within 7 degrees per head pose of the test images "
            f"('{d['pose_key']}'); |pose| <= {POSE_NEAR_DEG:g} keeps the camera-frame gaze within "
            "the simulator's range.",
            by_pose,
        ]
    parts += [
        "## Label drift",
        f"An estimator trained on raw synthetic images with strong photometric augmentation "
        f"(gaze.train_drift_estimator), applied to {d['n_heldout']} held-out synthetic images and "
        f"to their refined versions, predicts gazes {drift['mean_deg']:.2f} degrees apart on "
        f"average (median {drift['median_deg']:.2f}). Refinement should change appearance, not "
        "gaze; a large drift means the refined images may no longer match their labels.",
        _drift_text(drift),
        "Label consistency: each gaze arm on held-out images of its own kind, with the synthetic "
        f"labels, errs by {drift['synthetic_heldout_error_deg']:.2f} degrees (raw synthetic) and "
        f"{drift['refined_heldout_error_deg']:.2f} degrees (refined). A clear rise on refined images "
        "means refinement destroyed some of the gaze information the labels describe.",
        "## Realism: two-sample tests and a probe discriminator",
        f"A fresh small CNN (C2ST, {r['steps']} steps) and a fresh discriminator of the run's "
        f"architecture (filters {r['probe_filters']}, {r['probe_steps']} steps) are each trained on "
        f"half of each pair ({r['n_per_class']} images per side) and tested on the other half; "
        f"0.5 = indistinguishable. Real images: {d['real']}.",
        realism_table(report),
        "## Fixed patterns",
        "The mean change (refined minus synthetic) over the held-out images, high-passed, in each "
        "8 x 8 corner and inside (gray levels): "
        + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in report["fixed_pattern"].items())
        + ". Changes that follow each image's content average out; a corner well above the others "
        "is a pattern painted into every image.",
        "## Goals",
        "\n".join(
            ["| goal | measured | met |", "| --- | --- | --- |"]
            + [
                f"| {goal} | {measured} | {_yes_no(met)} |"
                for _, goal, measured, met in _goals(report)
            ]
        ),
        "Reported, not enforced. The gain goals are meant for labelled real eyes as `--target`, "
        "split by person; the realism goals for the real set the refiner trained against.",
        "## Figures",
        "\n".join(
            [
                "- `montage.png`: rows of held-out synthetic images, the same images refined, their "
                "difference (x4; black = unchanged), and unpaired real images. Refined should look "
                "real and keep the eye's shape and gaze.",
                "- `error_hist.png`: each estimator's angular errors on the target test set (all seeds); "
                "the dotted line is 7 degrees.",
            ]
            + (
                [
                    "- `losses.png`: the run's training curves (refiner, discriminator, patch accuracy)."
                ]
                if report["figures"].get("losses")
                else []
            )
        ),
    ]
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------
# The steps of an evaluation


@dataclass
class _Setup:
    run: str
    config: dict
    refiner: object
    preset: str
    sizes: EvalSizes
    spec: EstimatorSpec
    seed: int
    shape: tuple[int, int]
    out: str
    repeats: int
    batch_size: int
    verbose: bool
    prepare: Callable[[np.ndarray], np.ndarray]  # the run's input normalisation

    def log(self, message: str) -> None:
        if self.verbose:
            _log(message)


@dataclass
class _Synthetic:
    train: np.ndarray
    train_labels: np.ndarray
    heldout: np.ndarray
    heldout_labels: np.ndarray
    source: str
    builtin: bool


@dataclass
class _Target:
    test_images: np.ndarray
    test_labels: np.ndarray
    test_pose: np.ndarray | None
    oracle_images: np.ndarray
    oracle_labels: np.ndarray
    source: str
    split: dict  # report.json's data.split


def _setup(
    run: str,
    *,
    out: str | None,
    preset: str | None,
    seed: int | None,
    steps: int | None,
    n_train: int | None,
    batch_size: int,
    repeats: int,
    verbose: bool,
) -> _Setup:
    """The run, the sizes and the recipe, every option checked before any work."""
    config, refiner = load_run(run)
    preset = preset or (config.get("preset") if config.get("preset") in EVAL_PRESETS else "quick")
    if preset not in EVAL_PRESETS:
        raise SimGANError(f"unknown preset {preset!r}; expected one of {sorted(EVAL_PRESETS)}")
    sizes = EVAL_PRESETS[preset]
    if n_train is not None:
        if n_train < 2:
            raise SimGANError(f"--n-train must be at least 2, got {n_train}")
        sizes = replace(sizes, n_train=n_train)
    spec = ESTIMATOR_PRESETS[sizes.estimator]
    if steps is not None:
        if steps < 1:
            raise SimGANError(f"--steps must be >= 1, got {steps}")
        spec = replace(spec, steps=steps)
    if repeats < 1:
        raise SimGANError(f"--repeats must be >= 1, got {repeats}")
    shape = tuple(config.get("image_shape", (35, 55, 1)))[:2]
    check_image_size(refiner, shape, f"{run}/config.json image_shape")
    out = out or os.path.join(run, "eval")
    os.makedirs(out, exist_ok=True)
    return _Setup(
        run=run,
        config=config,
        refiner=refiner,
        preset=preset,
        sizes=sizes,
        spec=spec,
        seed=int(config.get("seed", 0)) if seed is None else seed,
        shape=shape,
        out=out,
        repeats=repeats,
        batch_size=batch_size,
        verbose=verbose,
        prepare=photometry.from_config(config),
    )


def _synthetic_data(s: _Setup, path: str | None) -> _Synthetic:
    images, labels, source = _synthetic_set(
        path, s.sizes.n_train + s.sizes.n_heldout, s.seed, s.shape, _profile(s.config)
    )
    # The refiner learnt on normalised synthetic images: every use of them below sees them so.
    images = s.prepare(images)
    n_tr, n_ho = _split(len(images), s.sizes.n_train, s.sizes.n_heldout)
    if n_tr < 2 or n_ho < 2:
        raise SimGANError(f"{source}: {len(images)} images are too few to evaluate")
    # Held-out images first: the simulator's output is prefix-stable, so the same scenes can be
    # rendered again in the target domain (see _appearance_floor).
    return _Synthetic(
        images[n_ho:], labels[n_ho:], images[:n_ho], labels[:n_ho], source, builtin=not path
    )


def _target_data(
    s: _Setup, path: str | None, key: str, pose_key: str, real_sets: list[tuple[str, str]]
) -> _Target:
    """The test and oracle-training sets: by person where the file names people (see split_target)."""
    if path:
        images, labels = _labelled_file(path, s.shape)
        groups, pose, source = load_groups(path, key), load_groups(path, pose_key), path
        if pose is not None and pose.dtype.kind not in "iuf":
            raise SimGANError(f"{path}: '{pose_key}' holds {pose.dtype}, expected degrees")
    else:
        render_seed = s.seed + TARGET_SEED_OFFSET
        images, labels = _render(
            s.sizes.n_test + s.sizes.n_train, "target", render_seed, _profile(s.config)
        )
        groups = pose = None
        source = f"built-in simulator, target domain, seed {render_seed}"
    notes: list[str] = []
    excluded, why = _shared_people(groups, key, real_sets, notes)
    _check_people_left(path, groups, key, excluded)
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
    return _Target(
        images[split.test],
        labels[split.test],
        None if pose is None else pose[split.test],
        images[split.oracle],
        labels[split.oracle],
        source,
        _split_record(split, path, key, excluded, why, notes),
    )


def _real_data(s: _Setup, real: str | None, target: _Target) -> tuple[np.ndarray, str]:
    if real:
        return load_eyes(real, expected_shape=s.shape).images, real
    images = np.concatenate([target.test_images, target.oracle_images])
    return images, f"the target images ({target.source})"


def _gaze_arms(
    s: _Setup, arms: dict[str, tuple[np.ndarray, np.ndarray]], target: _Target
) -> tuple[dict, dict[str, np.ndarray], dict]:
    """Each arm's estimator, trained with every seed and tested on the target test set: the report's
    figures, the errors of all seeds, and the first seed's models."""
    gaze: dict[str, dict | None] = {name: None for name in ARM_LABELS}
    errors: dict[str, np.ndarray] = {}
    models = {}
    for name, (images, labels) in arms.items():
        started = time.time()
        results = []
        for r in range(s.repeats):
            s.log(f"training the gaze estimator on {ARM_LABELS[name]} images, seed {s.seed + r}")
            model = train_estimator(
                images,
                labels,
                seed=s.seed + r,
                verbose=_keras_verbosity(s.verbose),
                **s.spec.to_dict(),
            )
            results.append(evaluate_estimator(model, target.test_images, target.test_labels))
            models.setdefault(name, model)
            s.log(
                f"  mean {results[-1]['mean_deg']:.2f} deg, within 7 deg {_pct(results[-1]['within_7deg'])}"
            )
        errors[name] = np.concatenate([res.pop("errors") for res in results])
        gaze[name] = _average_runs(results, s.seed)
        gaze[name].update(n_train=len(images), seconds=round(time.time() - started, 1))
        if target.test_pose is not None:
            gaze[name]["by_pose"] = errors_by_pose(errors[name], target.test_pose)
    return gaze, errors, models


def _label_drift(
    s: _Setup, syn: _Synthetic, ref_heldout: np.ndarray, models: dict, gaze: dict
) -> dict:
    """How far refinement moves an appearance-blind estimator's predictions, and label consistency."""
    s.log("training the label-drift estimator (photometric augmentation)")
    model = train_drift_estimator(
        syn.train, syn.train_labels, seed=s.seed, spec=s.spec, verbose=_keras_verbosity(s.verbose)
    )
    before = predict_gaze(model, syn.heldout)
    drift = summarise_errors(angular_error_deg(before, predict_gaze(model, ref_heldout)))
    drift.pop("errors")
    labels = syn.heldout_labels
    drift["synthetic_heldout_error_deg"] = evaluate_estimator(
        models["synthetic"], syn.heldout, labels
    )["mean_deg"]
    drift["refined_heldout_error_deg"] = evaluate_estimator(models["refined"], ref_heldout, labels)[
        "mean_deg"
    ]
    drift.update(
        appearance_floor_deg=None, oracle_refined_heldout_error_deg=None, oracle_test_error_deg=None
    )
    if syn.builtin:
        drift["appearance_floor_deg"] = _appearance_floor(
            model, before, labels, s.seed + SYNTHETIC_SEED_OFFSET, _profile(s.config)
        )
        if "oracle" in models:
            # Built-in labels mean the same in both domains, so the oracle can read refined images.
            drift["oracle_refined_heldout_error_deg"] = evaluate_estimator(
                models["oracle"], ref_heldout, labels
            )["mean_deg"]
            drift["oracle_test_error_deg"] = gaze["oracle"]["runs"][0]["mean_deg"]
    return drift


def _realism(s: _Setup, real: np.ndarray, synthetic: np.ndarray, refined: np.ndarray) -> dict:
    s.log("two-sample tests and probe discriminators: real vs raw synthetic, real vs refined")
    # One seed for every test: the same real images and the same split positions on the other
    # side, where synthetic and refined images show the same scenes, so the scores compare pairwise.
    filters = _discriminator_filters(s.config)
    c2st_args = dict(seed=s.seed, steps=s.sizes.c2st_steps, max_per_class=s.sizes.c2st_per_class)
    probe_args = dict(
        filters=filters,
        seed=s.seed,
        steps=s.sizes.probe_steps,
        max_per_class=s.sizes.c2st_per_class,
    )
    return {
        "c2st_real_vs_synthetic": c2st(real, synthetic, **c2st_args),
        "c2st_real_vs_refined": c2st(real, refined, **c2st_args),
        "n_per_class": int(min(len(real), len(synthetic), s.sizes.c2st_per_class)),
        "steps": s.sizes.c2st_steps,
        "probe_real_vs_synthetic": probe_discriminator(real, synthetic, **probe_args),
        "probe_real_vs_refined": probe_discriminator(real, refined, **probe_args),
        "probe_filters": list(filters),
        "probe_steps": s.sizes.probe_steps,
    }


def _save_figures(
    s: _Setup,
    synthetic: np.ndarray,
    refined: np.ndarray,
    real: np.ndarray,
    errors: dict[str, np.ndarray],
) -> dict[str, str | None]:
    show = np.random.default_rng(s.seed).permutation(len(real))[:10]
    save_montage(os.path.join(s.out, "montage.png"), synthetic, refined, real[show])
    save_error_histogram(os.path.join(s.out, "error_hist.png"), errors)
    losses = "losses.png" if _copy_loss_curves(s.run, s.out) else None
    return {"montage": "montage.png", "error_hist": "error_hist.png", "losses": losses}


def _gains(gaze: dict) -> tuple[float, list[float]]:
    """Refined against raw synthetic: the relative cut in mean error, overall and per seed."""

    def cut(raw: float, refined: float) -> float:
        return (raw - refined) / max(raw, 1e-9)

    runs = zip(gaze["synthetic"]["runs"], gaze["refined"]["runs"], strict=True)
    return (
        cut(gaze["synthetic"]["mean_deg"], gaze["refined"]["mean_deg"]),
        [cut(a["mean_deg"], b["mean_deg"]) for a, b in runs],
    )


def evaluate(
    run: str,
    *,
    target: str | None = None,
    synthetic: str | None = None,
    real: str | None = None,
    out: str | None = None,
    preset: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    n_train: int | None = None,
    batch_size: int = 256,
    repeats: int = 1,
    groups: str = "subject",
    pose_key: str = "head_pose_deg",
    verbose: bool = True,
) -> dict:
    """Run every measurement and write report.json, report.md and figures; returns the report.

    `groups` names the target's per-image person column (split by person where it exists),
    `pose_key` its head-pose column (errors per pose where it exists).
    """
    started, wall = time.time(), {}
    s = _setup(
        run,
        out=out,
        preset=preset,
        seed=seed,
        steps=steps,
        n_train=n_train,
        batch_size=batch_size,
        repeats=repeats,
        verbose=verbose,
    )
    with _timed(wall, "data"):
        # The target first: a target left with nobody to test on stops before anything is rendered.
        real = real or _run_file(s.config, "real")
        tgt = _target_data(s, target, groups, pose_key, _real_sets(s.config, real))
        real_images, real_source = _real_data(s, real, tgt)
        syn = _synthetic_data(s, synthetic or _run_file(s.config, "synthetic"))
    s.log(f"synthetic: {len(syn.train)} train + {len(syn.heldout)} held out from {syn.source}")
    s.log(
        f"target:    {len(tgt.test_images)} test + {len(tgt.oracle_images)} oracle-train from "
        f"{tgt.source}; {tgt.split['note']}"
    )
    s.log(f"real:      {len(real_images)} images from {real_source}")

    with _timed(wall, "refine"):
        ref_train = refine_array(s.refiner, syn.train, batch_size, progress=verbose)
        ref_heldout = refine_array(s.refiner, syn.heldout, batch_size, progress=verbose)
    arms = {"synthetic": (syn.train, syn.train_labels), "refined": (ref_train, syn.train_labels)}
    if len(tgt.oracle_images) >= 2:
        arms["oracle"] = (tgt.oracle_images, tgt.oracle_labels)
    gaze, errors, models = _gaze_arms(s, arms, tgt)
    wall.update({f"gaze_{name}": g["seconds"] for name, g in gaze.items() if g})
    with _timed(wall, "label_drift"):
        drift = _label_drift(s, syn, ref_heldout, models, gaze)
    with _timed(wall, "realism"):
        realism = _realism(s, real_images, syn.heldout, ref_heldout)
    figures = _save_figures(s, syn.heldout, ref_heldout, real_images, errors)
    wall["total"] = time.time() - started

    gain, gain_runs = _gains(gaze)
    report = {
        "run": run,
        "run_preset": s.config.get("preset"),
        "preset": s.preset,
        "seed": s.seed,
        "data": {
            "synthetic": syn.source,
            "target": tgt.source,
            "real": real_source,
            "input_norm": s.config.get("input_norm") or "none",
            "n_train": len(syn.train),
            "n_heldout": len(syn.heldout),
            "n_test": len(tgt.test_images),
            "n_oracle_train": len(tgt.oracle_images) if gaze["oracle"] else 0,
            "n_real": len(real_images),
            "pose_key": pose_key if tgt.test_pose is not None else None,
            "split": tgt.split,
        },
        "estimator": s.spec.to_dict(),
        "gaze": gaze,
        "gain": gain,
        "gain_runs": gain_runs,
        "repeats": s.repeats,
        "label_drift_deg": drift["mean_deg"],
        "label_drift": drift,
        "realism": realism,
        "fixed_pattern": fixed_pattern(syn.heldout, ref_heldout),
        "figures": figures,
        "wall_seconds": {k: round(v, 1) for k, v in wall.items()},
    }
    report["goals"] = {key: met for key, _, _, met in _goals(report)}
    write_text(os.path.join(s.out, "report.json"), json.dumps(report, indent=2) + "\n")
    write_text(os.path.join(s.out, "report.md"), render_markdown(report))
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.evaluate",
        description="Gaze error with and without refinement, label drift, two-sample realism tests "
        "and probe discriminators for a training run; writes report.json, report.md and figures.",
    )
    p.add_argument(
        "--run", required=True, help="a training run directory (config.json, refiner.keras)"
    )
    p.add_argument(
        "--target",
        help="labelled test set (look_vec), e.g. one half of `python -m simgan_tf.data split` "
        "of real_gaze_columbia_dev.h5; default: the simulator's target domain",
    )
    p.add_argument(
        "--synthetic",
        help="labelled synthetic images to train on and refine; default: the "
        "run's synthetic file, else the simulator (a seed training never used)",
    )
    p.add_argument(
        "--real",
        help="real images for the two-sample tests; default: the run's real file, "
        "else the target images",
    )
    p.add_argument(
        "--groups",
        default="subject",
        metavar="KEY",
        help="the target's per-image person column: test and oracle sets share nobody, and "
        "people also in the real set are left out (default subject; without it, split by image)",
    )
    p.add_argument(
        "--pose-key",
        default="head_pose_deg",
        metavar="KEY",
        help="the target's per-image head pose column, for errors per pose (default head_pose_deg)",
    )
    p.add_argument("--out", help="output directory (default RUN/eval)")
    p.add_argument(
        "--preset", choices=sorted(EVAL_PRESETS), help="evaluation size (default: the run's preset)"
    )
    p.add_argument("--seed", type=int, help="default: the run's seed")
    p.add_argument(
        "--steps", type=int, help="gaze estimator training steps (default: the preset's)"
    )
    p.add_argument("--n-train", type=int, help="synthetic training images (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=256, help="refiner batch size (default 256)")
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="train every estimator with this many seeds and average (default 1); the spread "
        "between seeds is often larger than the differences measured",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = evaluate(
        args.run,
        target=args.target,
        synthetic=args.synthetic,
        real=args.real,
        out=args.out,
        preset=args.preset,
        seed=args.seed,
        steps=args.steps,
        n_train=args.n_train,
        batch_size=args.batch_size,
        repeats=args.repeats,
        groups=args.groups,
        pose_key=args.pose_key,
        verbose=not args.quiet,
    )
    out = args.out or os.path.join(args.run, "eval")
    print(gaze_table(report))
    by_pose = pose_table(report)
    if by_pose:
        print(f"\n{by_pose}")
    print(f"\nlabel drift: {report['label_drift_deg']:.2f} deg\n")
    print(realism_table(report))
    print(f"\nreport: {os.path.join(out, 'report.md')}")
    return 0


if __name__ == "__main__":
    main()
