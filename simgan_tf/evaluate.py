"""Measure what a run's refiner is worth: `python -m simgan_tf.evaluate --run RUN [--target T.h5] [--real R.h5]`.

Three gaze estimators (the paper's network, one recipe) are trained on raw synthetic images, on the
same images refined, and on labelled target images (the oracle), and tested on held-out target images.
Then: how far refinement moved the labels (label drift), and how real the refined images look to a
fresh classifier (two-sample tests). Writes report.json, report.md and figures to RUN/eval.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from simgan_tf.data import load_eyes
from simgan_tf.errors import SimGANError, cli
from simgan_tf.files import read_json, write_text
from simgan_tf.gaze import (
    ESTIMATOR_PRESETS,
    angular_error_deg,
    evaluate_estimator,
    predict_gaze,
    summarise_errors,
    train_estimator,
)
from simgan_tf.realism import c2st
from simgan_tf.refine import check_image_size, load_refiner, refine_array
from simgan_tf.stats import fixed_pattern


@dataclass(frozen=True)
class EvalSizes:
    n_train: int  # synthetic images each estimator trains on (and oracle target images)
    n_heldout: int  # further synthetic images, for label drift and the two-sample tests
    n_test: int  # labelled target images every estimator is tested on
    c2st_per_class: int
    c2st_steps: int
    estimator: str  # a gaze.ESTIMATOR_PRESETS key


EVAL_PRESETS: dict[str, EvalSizes] = {
    "smoke": EvalSizes(256, 128, 128, 128, 40, "smoke"),
    # Sized so that 2,500 held-out refined images meet the 2,500 shared MPIIGaze patches one to one.
    "quick": EvalSizes(10_000, 2_500, 2_000, 2_500, 600, "quick"),
    "paper": EvalSizes(100_000, 10_000, 10_000, 10_000, 3_000, "paper"),
}

# Built-in data is rendered with seeds that training never uses (it renders synthetic images with
# `seed` and target-domain "real" images with `seed + 1`), so no test image was seen in training.
SYNTHETIC_SEED_OFFSET = 1_000
TARGET_SEED_OFFSET = 2_000

GOAL_GAIN = 0.30  # the paper's relative gain on MPIIGaze: 11.2 -> 7.8 degrees
GOAL_DRIFT_DEG = 2.0
GOAL_C2ST_REFINED = 0.65
GOAL_C2ST_SYNTHETIC = 0.95

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


def _render(n: int, domain: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from simgan_tf.simulator import render
    except ImportError as e:
        raise SimGANError(
            f"the built-in simulator is not available ({e}); pass --synthetic and --target files"
        ) from None
    images, look_vec = render(n, domain=domain, seed=seed)
    return np.asarray(images, dtype=np.uint8), np.asarray(look_vec, dtype=np.float32)


def _load_labelled(
    path: str, n: int, seed: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Up to n images and their gaze vectors, a seeded random subset when the file holds more."""
    eyes = load_eyes(path, require_labels=True, expected_shape=shape)
    if eyes.look_vec.shape[1] != 3:
        raise SimGANError(f"{path}: look_vec has {eyes.look_vec.shape[1]} columns, expected 3")
    # Shuffled: neighbouring keys of a real set tend to be one person, and the split below is by order.
    keep = np.random.default_rng(seed).permutation(len(eyes))[:n]
    return eyes.images[keep], eyes.look_vec[keep]


def _synthetic_set(path: str | None, n: int, seed: int, shape: tuple[int, int]):
    """(images, look_vec, where they came from): the file's, else the simulator's synthetic domain."""
    if path:
        return (*_load_labelled(path, n, seed, shape), path)
    render_seed = seed + SYNTHETIC_SEED_OFFSET
    return (
        *_render(n, "synthetic", render_seed),
        f"built-in simulator, synthetic domain, seed {render_seed}",
    )


def _target_set(path: str | None, n: int, seed: int, shape: tuple[int, int]):
    """(images, look_vec, where they came from): the file's, else the simulator's target domain."""
    if path:
        return (*_load_labelled(path, n, seed, shape), path)
    render_seed = seed + TARGET_SEED_OFFSET
    return (
        *_render(n, "target", render_seed),
        f"built-in simulator, target domain, seed {render_seed}",
    )


def _appearance_floor(
    model, before: np.ndarray, labels: np.ndarray, render_seed: int
) -> float | None:
    """How far the drift estimator's predictions move between the held-out scenes and the very same
    scenes (same labels) rendered in the target domain: what appearance alone does to it."""
    images, look = _render(len(labels), "target", render_seed)
    if not np.allclose(look, labels, atol=1e-6):
        return None  # a simulator whose target domain does not keep the scenes: no floor
    return float(np.mean(angular_error_deg(before, predict_gaze(model, images))))


def _split(n_total: int, first: int, second: int) -> tuple[int, int]:
    """Shares of n_total for two parts wanted at sizes (first, second): as asked, else in proportion."""
    if n_total >= first + second:
        return first, second
    a = n_total * first // (first + second)
    return a, n_total - a


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


def realism_table(report: dict) -> str:
    r = report["realism"]
    return "\n".join(
        [
            "| pair | C2ST accuracy (0.5 = indistinguishable) |",
            "| --- | ---: |",
            f"| real vs raw synthetic | {r['c2st_real_vs_synthetic']:.3f} |",
            f"| real vs refined | {r['c2st_real_vs_refined']:.3f} |",
        ]
    )


def _goals(report: dict) -> list[tuple[str, str, str, bool]]:
    """(key, goal, measured, met) for each of issue 5's goals."""
    g, r, drift, gain = report["gaze"], report["realism"], report["label_drift_deg"], report["gain"]
    return [
        (
            "refined_error_cut_30pct",
            f"refined training cuts the target error by >= {GOAL_GAIN:.0%} against raw synthetic",
            f"{gain:+.1%} ({g['synthetic']['mean_deg']:.2f} -> {g['refined']['mean_deg']:.2f} deg)",
            gain >= GOAL_GAIN,
        ),
        (
            "label_drift_under_2deg",
            f"label drift under {GOAL_DRIFT_DEG:g} deg",
            f"{drift:.2f} deg",
            drift < GOAL_DRIFT_DEG,
        ),
        (
            "c2st_real_vs_refined_at_most_0.65",
            f"C2ST real vs refined at most {GOAL_C2ST_REFINED}",
            f"{r['c2st_real_vs_refined']:.3f}",
            r["c2st_real_vs_refined"] <= GOAL_C2ST_REFINED,
        ),
        (
            "c2st_real_vs_synthetic_above_0.95",
            f"C2ST real vs synthetic above {GOAL_C2ST_SYNTHETIC}",
            f"{r['c2st_real_vs_synthetic']:.3f}",
            r["c2st_real_vs_synthetic"] > GOAL_C2ST_SYNTHETIC,
        ),
    ]


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
        f"the same images and labels in the same order. All are tested on {d['n_test']} labelled "
        f"target images: {d['target']}.",
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
        "## Label drift",
        f"The estimator trained on raw synthetic images, applied to {d['n_heldout']} held-out "
        f"synthetic images and to their refined versions, predicts gazes {drift['mean_deg']:.2f} "
        f"degrees apart on average (median {drift['median_deg']:.2f}). Refinement should change "
        "appearance, not gaze; a large drift means the refined images may no longer match their labels.",
        (
            "The drift also counts this estimator's sensitivity to appearance: on the same scenes "
            "rendered in the target domain (identical labels, another camera) its predictions move by "
            f"{drift['appearance_floor_deg']:.2f} degrees."
            if drift.get("appearance_floor_deg") is not None
            else "Part of any drift is the estimator's sensitivity to appearance, not moved labels."
        ),
        "Label consistency: each estimator on held-out images of its own kind, with the synthetic "
        f"labels, errs by {drift['synthetic_heldout_error_deg']:.2f} degrees (raw synthetic) and "
        f"{drift['refined_heldout_error_deg']:.2f} degrees (refined). A clear rise on refined images "
        "means refinement destroyed some of the gaze information the labels describe.",
        "## Realism: classifier two-sample tests",
        f"A fresh small CNN is trained on half of each pair ({r['n_per_class']} images per side, "
        f"{r['steps']} steps) and tested on the other half. Real images: {d['real']}.",
        realism_table(report),
        "## Fixed patterns",
        "The mean change (refined minus synthetic) over the held-out images, high-passed, in each "
        "8 x 8 corner and inside (gray levels): "
        + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in report["fixed_pattern"].items())
        + ". Changes that follow each image's content average out; a corner well above the others "
        "is a pattern painted into every image.",
        "## Goals (issue 5)",
        "\n".join(
            ["| goal | measured | met |", "| --- | --- | --- |"]
            + [
                f"| {goal} | {measured} | {'yes' if met else 'no'} |"
                for _, goal, measured, met in _goals(report)
            ]
        ),
        "The gain and drift goals are set for the built-in benchmark (simulator synthetic -> "
        "simulator target); the two-sample goals for the 2,500 real MPIIGaze patches given as `--real`.",
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
    verbose: bool = True,
) -> dict:
    """Run every measurement and write report.json, report.md and figures; returns the report."""
    started = time.time()
    wall: dict[str, float] = {}
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
    seed = int(config.get("seed", 0)) if seed is None else seed
    shape = tuple(config.get("image_shape", (35, 55, 1)))[:2]
    check_image_size(refiner, shape, f"{run}/config.json image_shape")
    out = out or os.path.join(run, "eval")
    os.makedirs(out, exist_ok=True)
    log = _log if verbose else (lambda message: None)

    # --- Data ---------------------------------------------------------------------------------
    t = time.time()
    syn_images, syn_labels, syn_source = _synthetic_set(
        synthetic or _run_file(config, "synthetic"), sizes.n_train + sizes.n_heldout, seed, shape
    )
    n_tr, n_ho = _split(len(syn_images), sizes.n_train, sizes.n_heldout)
    if n_tr < 2 or n_ho < 2:
        raise SimGANError(f"{syn_source}: {len(syn_images)} images are too few to evaluate")
    # Held-out images first: the simulator's output is prefix-stable, so the same scenes can be
    # rendered again in the target domain (see _appearance_floor).
    syn_heldout, lab_heldout = syn_images[:n_ho], syn_labels[:n_ho]
    syn_train, lab_train = syn_images[n_ho:], syn_labels[n_ho:]

    tgt_images, tgt_labels, tgt_source = _target_set(
        target, sizes.n_test + sizes.n_train, seed, shape
    )
    n_te, _ = _split(len(tgt_images), sizes.n_test, sizes.n_train)
    if n_te < 1:
        raise SimGANError(f"{tgt_source}: too few labelled images to test on")
    test_images, test_labels = tgt_images[:n_te], tgt_labels[:n_te]
    oracle_images, oracle_labels = tgt_images[n_te:], tgt_labels[n_te:]

    real = real or _run_file(config, "real")
    if real:
        real_images, real_source = load_eyes(real, expected_shape=shape).images, real
    else:
        real_images, real_source = tgt_images, f"the target images ({tgt_source})"
    wall["data"] = time.time() - t
    log(f"synthetic: {n_tr} train + {n_ho} held out from {syn_source}")
    log(f"target:    {n_te} test + {len(oracle_images)} oracle-train from {tgt_source}")
    log(f"real:      {len(real_images)} images from {real_source}")

    # --- Refine -------------------------------------------------------------------------------
    t = time.time()
    ref_train = refine_array(refiner, syn_train, batch_size, progress=verbose)
    ref_heldout = refine_array(refiner, syn_heldout, batch_size, progress=verbose)
    wall["refine"] = time.time() - t

    # --- Gaze arms ----------------------------------------------------------------------------
    arms = {"synthetic": (syn_train, lab_train), "refined": (ref_train, lab_train)}
    if len(oracle_images) >= 2:
        arms["oracle"] = (oracle_images, oracle_labels)
    gaze: dict[str, dict | None] = {name: None for name in ARM_LABELS}
    errors: dict[str, np.ndarray] = {}
    models = {}
    for name, (images, labels) in arms.items():
        t = time.time()
        results = []
        for r in range(repeats):
            log(f"training the gaze estimator on {ARM_LABELS[name]} images, seed {seed + r}")
            model = train_estimator(
                images, labels, seed=seed + r, verbose=_keras_verbosity(verbose), **spec.to_dict()
            )
            results.append(evaluate_estimator(model, test_images, test_labels))
            models.setdefault(name, model)  # the first seed's, for label drift
            log(
                f"  mean {results[-1]['mean_deg']:.2f} deg, within 7 deg {_pct(results[-1]['within_7deg'])}"
            )
        errors[name] = np.concatenate([res.pop("errors") for res in results])
        gaze[name] = _average_runs(results, seed)
        gaze[name].update(n_train=len(images), seconds=round(time.time() - t, 1))
        wall[f"gaze_{name}"] = time.time() - t

    # --- Label drift --------------------------------------------------------------------------
    before = predict_gaze(models["synthetic"], syn_heldout)
    after = predict_gaze(models["synthetic"], ref_heldout)
    drift = summarise_errors(angular_error_deg(before, after))
    drift.pop("errors")
    drift["synthetic_heldout_error_deg"] = float(np.mean(angular_error_deg(before, lab_heldout)))
    refined_self = predict_gaze(models["refined"], ref_heldout)
    drift["refined_heldout_error_deg"] = float(
        np.mean(angular_error_deg(refined_self, lab_heldout))
    )
    drift["appearance_floor_deg"] = None
    if syn_source.startswith("built-in"):
        drift["appearance_floor_deg"] = _appearance_floor(
            models["synthetic"], before, lab_heldout, seed + SYNTHETIC_SEED_OFFSET
        )

    # --- Realism ------------------------------------------------------------------------------
    t = time.time()
    log("two-sample tests: real vs raw synthetic, real vs refined")
    # One seed for both tests: the same real images and the same split positions on the other side,
    # where synthetic and refined images show the same scenes, so the two scores compare pairwise.
    c2st_args = dict(seed=seed, steps=sizes.c2st_steps, max_per_class=sizes.c2st_per_class)
    realism = {
        "c2st_real_vs_synthetic": c2st(real_images, syn_heldout, **c2st_args),
        "c2st_real_vs_refined": c2st(real_images, ref_heldout, **c2st_args),
        "n_per_class": int(min(len(real_images), len(syn_heldout), sizes.c2st_per_class)),
        "steps": sizes.c2st_steps,
    }
    wall["realism"] = time.time() - t

    # --- Figures and reports ------------------------------------------------------------------
    show = np.random.default_rng(seed).permutation(len(real_images))[:10]
    figures = {"montage": "montage.png", "error_hist": "error_hist.png", "losses": None}
    save_montage(os.path.join(out, "montage.png"), syn_heldout, ref_heldout, real_images[show])
    save_error_histogram(os.path.join(out, "error_hist.png"), errors)
    if _copy_loss_curves(run, out):
        figures["losses"] = "losses.png"
    wall["total"] = time.time() - started

    gain = (gaze["synthetic"]["mean_deg"] - gaze["refined"]["mean_deg"]) / max(
        gaze["synthetic"]["mean_deg"], 1e-9
    )
    gain_runs = [
        (a["mean_deg"] - b["mean_deg"]) / max(a["mean_deg"], 1e-9)
        for a, b in zip(gaze["synthetic"]["runs"], gaze["refined"]["runs"], strict=True)
    ]
    report = {
        "run": run,
        "run_preset": config.get("preset"),
        "preset": preset,
        "seed": seed,
        "data": {
            "synthetic": syn_source,
            "target": tgt_source,
            "real": real_source,
            "n_train": n_tr,
            "n_heldout": n_ho,
            "n_test": n_te,
            "n_oracle_train": len(oracle_images) if gaze["oracle"] else 0,
            "n_real": len(real_images),
        },
        "estimator": spec.to_dict(),
        "gaze": gaze,
        "gain": gain,
        "gain_runs": gain_runs,
        "repeats": repeats,
        "label_drift_deg": drift["mean_deg"],
        "label_drift": drift,
        "realism": realism,
        "fixed_pattern": fixed_pattern(syn_heldout, ref_heldout),
        "figures": figures,
        "wall_seconds": {k: round(v, 1) for k, v in wall.items()},
    }
    report["goals"] = {key: met for key, _, _, met in _goals(report)}
    write_text(os.path.join(out, "report.json"), json.dumps(report, indent=2) + "\n")
    write_text(os.path.join(out, "report.md"), render_markdown(report))
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.evaluate",
        description="Gaze error with and without refinement, label drift and two-sample realism tests "
        "for a training run; writes report.json, report.md and figures.",
    )
    p.add_argument(
        "--run", required=True, help="a training run directory (config.json, refiner.keras)"
    )
    p.add_argument(
        "--target",
        help="labelled test set (look_vec), e.g. convert-mpiigaze --with-labels "
        "output; default: the simulator's target domain",
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
        verbose=not args.quiet,
    )
    out = args.out or os.path.join(args.run, "eval")
    print(gaze_table(report))
    print(f"\nlabel drift: {report['label_drift_deg']:.2f} deg\n")
    print(realism_table(report))
    print(f"\nreport: {os.path.join(out, 'report.md')}")
    return 0


if __name__ == "__main__":
    main()
