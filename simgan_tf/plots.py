"""Pictures a person looks at: sample grids (synthetic | refined | difference | real) and loss curves."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simgan_tf.files import atomic_write  # noqa: E402


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a PNG under a temporary name and rename it, so a reader never sees half a file."""
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def amplified_difference(refined: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """|refined - synthetic| x 4 in gray levels: small changes show, black means unchanged."""
    return np.clip(4 * np.abs(refined.astype(np.int16) - synthetic.astype(np.int16)), 0, 255)


def show_eye(ax, image: np.ndarray) -> None:
    """One uint8 eye image on `ax`, gray levels as they are (no rescaling), no ticks."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_sample_grid(
    path: str | os.PathLike,
    synthetic: np.ndarray,
    refined: np.ndarray,
    real: np.ndarray,
    title: str = "",
) -> None:
    """One row per sample: synthetic | refined | |refined - synthetic| (x4) | an unpaired real image.

    Inputs are uint8 gray levels (N, H, W). The difference column is amplified so that small changes
    show; a black difference column means the refiner changed nothing (the "no-op" failure).
    """
    diff = amplified_difference(refined, synthetic)
    columns = [
        ("synthetic", synthetic),
        ("refined", refined),
        ("|difference| x4", diff),
        ("real", real),
    ]
    n = min(len(synthetic), len(real))
    fig, axes = plt.subplots(n, 4, figsize=(4 * 1.6, n * 1.05), squeeze=False)
    for c, (label, images) in enumerate(columns):
        for r in range(n):
            show_eye(axes[r, c], images[r])
            if r == 0:
                axes[r, c].set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    save_figure(fig, path)


PANELS = (
    ("refiner losses", ("r_adv", "r_l1", "r_gaze")),
    ("discriminator losses", ("d_loss_real", "d_loss_refined")),
    ("discriminator patch accuracy", ("d_acc_real", "d_acc_refined", "d_acc_history")),
    ("refined spread / synthetic spread", ("r_spread",)),
)


def save_loss_curves(path: str | os.PathLike, rows: list[dict]) -> None:
    """Plot metrics.csv rows (dicts with 'step', 'phase' and metric values; blanks are skipped)."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.2))
    boundaries = [
        float(b["step"]) for a, b in zip(rows, rows[1:], strict=False) if a["phase"] != b["phase"]
    ]
    for ax, (label, keys) in zip(axes, PANELS, strict=True):
        for key in keys:
            points = [
                (float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker=".", markersize=3, label=key)
        for b in boundaries:
            ax.axvline(b, color="gray", linestyle=":", linewidth=1)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
