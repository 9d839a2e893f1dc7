"""Command line for the built-in eye simulator: write a Kaggle-layout gaze.h5 of labelled eye images.

    python -m simgan_tf.simulate --n 50000 --out gaze.h5 [--domain synthetic|target] [--seed 0]
        [--scene-profile uniform|columbia|mpiigaze|columbia_follow] [--overwrite]
        [--montage montage.png] [--real real_gaze.h5 [--mean-map map.png]]

look_vec follows the UnityEyes convention documented in simgan_tf/simulator/look_vec.py: x right, y up, z into
the scene, (0, 0, -1) = looking into the camera.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from simgan_tf import simulator
from simgan_tf.errors import SimGANError, cli
from simgan_tf.files import atomic_write


def save_montage(
    path: str | os.PathLike, columns: dict[str, np.ndarray], rows: int = 8, zoom: int = 3
) -> None:
    """Save columns of uint8 (N, H, W) images side by side, `rows` per column, titled, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gap = 2
    tiles = []
    for name, images in columns.items():
        if len(images) < rows:
            raise SimGANError(f"montage: column {name!r} has {len(images)} images, need {rows}")
        h, w = images.shape[1:3]
        strip = np.full((rows * (h + gap) - gap, w), 255, np.uint8)
        for i in range(rows):
            strip[i * (h + gap) : i * (h + gap) + h] = images[i]
        tiles.append(np.kron(strip, np.ones((zoom, zoom), np.uint8)))
    dpi = 100
    height, width = tiles[0].shape
    fig, axes = plt.subplots(
        1,
        len(tiles),
        figsize=(len(tiles) * (width + 20) / dpi, (height + 40) / dpi),
        squeeze=False,
    )
    for ax, name, tile in zip(axes[0], columns, tiles, strict=True):
        ax.imshow(tile, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.005, top=1 - 30 / (height + 40), wspace=0.05
    )
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)


def comparison_montage(
    path: str | os.PathLike,
    real_path: str | os.PathLike | None = None,
    rows: int = 8,
    seed: int = 0,
    profile: str = simulator.DEFAULT_PROFILE,
) -> None:
    """Synthetic | target (the same scenes) | real (a random draw from real_path, if given)."""
    columns = {
        "synthetic": simulator.render(rows, "synthetic", seed, profile)[0],
        "target (same scenes)": simulator.render(rows, "target", seed, profile)[0],
    }
    if real_path is not None:
        columns["real"] = _real_sample(real_path, rows, seed)
    save_montage(path, columns, rows=rows)


def _real_sample(real_path: str | os.PathLike, rows: int, seed: int) -> np.ndarray:
    """A seeded random draw of `rows` images from a real set, in file order."""
    from simgan_tf.data import load_eyes

    real = load_eyes(real_path).images
    pick = np.random.default_rng(seed).choice(len(real), size=min(rows, len(real)), replace=False)
    return real[np.sort(pick)]


def profiles_montage(
    path: str | os.PathLike,
    real_paths: dict[str, str | os.PathLike],
    rows: int = 8,
    seed: int = 0,
) -> None:
    """One column per scene profile (synthetic renders), then one per real set (a random draw each)."""
    columns = {
        name: simulator.render(rows, "synthetic", seed, name)[0] for name in simulator.PROFILES
    }
    for name, real_path in real_paths.items():
        columns[name] = _real_sample(real_path, rows, seed)
    save_montage(path, columns, rows=rows)


def mean_maps(
    synthetic: np.ndarray, real: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Blob-aligned mean and spread maps (eyestats.blob_aligned) of renders and real eyes, the renders
    first given the photometric normalisation training would apply against that real set
    (photometry "auto": equalised if the real set is, else histogram-matched to it).

    Returns the maps ('<renders|real> mean|sd') and the root mean square of each difference, in units
    of an image's standard deviation ('rms_mean', 'rms_sd'): 0 where the two sets look alike on average.
    """
    from simgan_tf import eyestats, photometry

    mode, lut = photometry.resolve("auto", synthetic, real)
    maps = {}
    for name, images in (("renders", photometry.apply(synthetic, mode, lut)), ("real", real)):
        cut = eyestats.blob_aligned(images)
        maps[f"{name} mean"], maps[f"{name} sd"] = cut.mean(axis=0), cut.std(axis=0)
    rms = {
        f"rms_{k}": float(np.sqrt(np.mean((maps[f"renders {k}"] - maps[f"real {k}"]) ** 2)))
        for k in ("mean", "sd")
    }
    return maps, rms


def save_mean_maps(path: str | os.PathLike, maps: dict[str, np.ndarray], title: str = "") -> None:
    """Save mean_maps' maps as a 2 x 3 PNG: renders | real | renders - real, mean above, spread below."""
    from simgan_tf.plots import plt, save_figure

    fig, axes = plt.subplots(2, 3, figsize=(10, 4.6))
    for row, (k, limits, diverging) in enumerate(
        (("mean", (-2.2, 1.2), 0.8), ("sd", (0.0, 1.3), 0.5))
    ):
        a, b = maps[f"renders {k}"], maps[f"real {k}"]
        for ax, img, name in ((axes[row, 0], a, "renders"), (axes[row, 1], b, "real")):
            shown = ax.imshow(
                img, cmap="gray" if k == "mean" else "magma", vmin=limits[0], vmax=limits[1]
            )
            ax.set_title(f"{name}: {k}", fontsize=9)
        fig.colorbar(shown, ax=axes[row, :2].tolist(), shrink=0.8)
        diff = axes[row, 2].imshow(a - b, cmap="bwr", vmin=-diverging, vmax=diverging)
        axes[row, 2].set_title(f"renders - real: {k} (red: renders higher)", fontsize=9)
        fig.colorbar(diff, ax=axes[row, 2], shrink=0.8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "standardised eyes cut around the dark blob (iris)", fontsize=10)
    save_figure(fig, path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.simulate",
        description="Render labelled 35 x 55 eye images (Kaggle gaze.h5 layout, UnityEyes look_vec).",
    )
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument(
        "--out", help="output .h5 file (default: data/<domain>_n<N>_seed<S>.h5, the training cache)"
    )
    p.add_argument(
        "--domain",
        choices=simulator.DOMAINS,
        default="synthetic",
        help="synthetic: clean renders; target: the same scenes through another camera",
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    p.add_argument(
        "--scene-profile",
        choices=tuple(simulator.PROFILES),
        default=simulator.DEFAULT_PROFILE,
        help="scene distribution: gaze, head pose, eye size and placement (default uniform)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--montage",
        metavar="OUT.png",
        help="also save synthetic | target montage of the first 8 scenes",
    )
    p.add_argument(
        "--real", metavar="REAL.h5", help="real eyes for --montage (a column) and --mean-map"
    )
    p.add_argument(
        "--mean-map",
        metavar="OUT.png",
        help="also save the rendered and --real eyes' mean and spread around the iris, and their"
        " difference (eyestats.blob_aligned)",
    )
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    from simgan_tf.data import save_eyes

    args = _parser().parse_args(argv)
    if args.n < 1:
        raise SimGANError(f"--n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise SimGANError(f"--seed must be a non-negative integer, got {args.seed}")
    profile = args.scene_profile
    out = args.out or simulator.default_path(args.domain, args.n, args.seed, profile=profile)
    # Refuse before spending minutes on rendering; save_eyes checks again when it writes.
    if os.path.exists(out) and not args.overwrite:
        raise SimGANError(f"{out}: already exists (pass --overwrite to replace it)")
    if args.real and not (args.montage or args.mean_map):
        raise SimGANError("--real is for --montage or --mean-map; give one of them too")
    if args.mean_map and not args.real:
        raise SimGANError("--mean-map compares the renders with real eyes; give --real REAL.h5")
    if args.real:
        from simgan_tf.data import load_eyes

        real = load_eyes(args.real).images  # read before rendering: a bad file fails at once

    start = time.perf_counter()
    images, look = simulator.render(args.n, args.domain, args.seed, profile, progress=True)
    seconds = time.perf_counter() - start
    names = simulator.source_names(args.domain, args.n, args.seed, profile)
    save_eyes(out, images, look, names, overwrite=args.overwrite)
    print(f"wrote {args.n} {args.domain} images to {out} ({args.n / seconds:.0f} images/s)")
    if args.montage:
        comparison_montage(args.montage, args.real, seed=args.seed, profile=profile)
        print(f"wrote montage {args.montage}")
    if args.mean_map:
        maps, rms = mean_maps(images, real)
        title = f"{args.n} {profile} {args.domain} renders against {os.path.basename(args.real)}"
        save_mean_maps(args.mean_map, maps, title)
        print(
            f"wrote mean map {args.mean_map}: renders differ from real by {rms['rms_mean']:.3f}"
            f" (mean) and {rms['rms_sd']:.3f} (spread), rms in units of an image's deviation"
        )
    return 0


if __name__ == "__main__":
    main()
