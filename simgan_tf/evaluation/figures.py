"""The evaluation's figures: the montage, the error histogram, the probe's map and the run's loss curves."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np

from simgan_tf.evaluation.arms import ARM_LABELS
from simgan_tf.evaluation.probes import PAIRS
from simgan_tf.evaluation.run import Setup


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


def save_probe_map(path: str, realism: dict, real: np.ndarray) -> None:
    """The probe's patch accuracy at each output position over the mean real image, one panel per
    pair: where in the eye a fresh discriminator still tells the set from real (0.5: nowhere)."""
    import matplotlib.pyplot as plt

    from simgan_tf.plots import save_figure, show_eye

    h, w = real.shape[1:3]
    mean_real = real.mean(axis=0).astype(np.uint8)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 2.9), squeeze=False)
    for ax, (name, label) in zip(axes[0], PAIRS, strict=True):
        probe = realism[f"probe_real_vs_{name}"]
        show_eye(ax, mean_real)
        # Each output position covers the same share of the image: stretch the grid over it.
        shown = ax.imshow(
            np.asarray(probe["patch_accuracy_map"]),
            cmap="magma",
            vmin=0.5,
            vmax=1.0,
            alpha=0.55,
            extent=(-0.5, w - 0.5, h - 0.5, -0.5),
            interpolation="nearest",
        )
        ax.set_title(f"real vs {label}: patch {probe['patch_accuracy']:.2f}", fontsize=9)
    fig.colorbar(shown, ax=axes[0].tolist(), label="probe patch accuracy", shrink=0.8)
    save_figure(fig, path)


def copy_loss_curves(run: str, out: str) -> str | None:
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


def save_figures(
    s: Setup,
    synthetic: np.ndarray,
    refined: np.ndarray,
    real: np.ndarray,
    errors: dict[str, np.ndarray] | None,
    realism: dict | None = None,
) -> dict[str, str | None]:
    """The figures, by name (None where not drawn: no errors without the gaze measure, no probe
    map without the realism measure)."""
    show = np.random.default_rng(s.seed).permutation(len(real))[:10]
    save_montage(os.path.join(s.out, "montage.png"), synthetic, refined, real[show])
    hist = None
    if errors:
        hist = "error_hist.png"
        save_error_histogram(os.path.join(s.out, hist), errors)
    probe_map = None
    if realism:
        probe_map = "probe_map.png"
        save_probe_map(os.path.join(s.out, probe_map), realism, real)
    losses = "losses.png" if copy_loss_curves(s.run, s.out) else None
    return {"montage": "montage.png", "error_hist": hist, "probe_map": probe_map, "losses": losses}
