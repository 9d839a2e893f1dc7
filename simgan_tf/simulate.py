"""Command line for the built-in eye simulator: write a Kaggle-layout gaze.h5 of labelled eye images.

    python -m simgan_tf.simulate --n 50000 --out gaze.h5 [--domain synthetic|target] [--seed 0]
        [--scene-profile uniform|columbia|mpiigaze|columbia_follow] [--overwrite]
        [--montage montage.png [--real real_gaze.h5]]

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
    p.add_argument("--real", metavar="REAL.h5", help="add a column of real images to the montage")
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
    if args.real and not args.montage:
        raise SimGANError("--real only adds a column to --montage; give --montage too")

    start = time.perf_counter()
    images, look = simulator.render(args.n, args.domain, args.seed, profile, progress=True)
    seconds = time.perf_counter() - start
    names = simulator.source_names(args.domain, args.n, args.seed, profile)
    save_eyes(out, images, look, names, overwrite=args.overwrite)
    print(f"wrote {args.n} {args.domain} images to {out} ({args.n / seconds:.0f} images/s)")
    if args.montage:
        comparison_montage(args.montage, args.real, seed=args.seed, profile=profile)
        print(f"wrote montage {args.montage}")
    return 0


if __name__ == "__main__":
    main()
