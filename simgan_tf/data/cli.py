"""The data command line, `python -m simgan_tf.data` (or simgan-data), and its argument parser.

Subcommands: inspect, convert-unityeyes, convert-mpiigaze, split, subset, mirror, download.
"""

from __future__ import annotations

import argparse
import sys

from simgan_tf.data.convert import convert_mpiigaze, convert_unityeyes
from simgan_tf.data.inspection import _check_montage_path, describe, write_montage
from simgan_tf.data.kaggle import KAGGLE_DATASET, download
from simgan_tf.data.load import load_eyes
from simgan_tf.data.mirror import mirror
from simgan_tf.data.rows import split_by_group, subset
from simgan_tf.errors import SimGANError, cli


def _add_where(s: argparse.ArgumentParser, help: str) -> None:
    s.add_argument(
        "--where", nargs=2, action="append", default=[], metavar=("KEY", "PATTERN"), help=help
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.data",
        description="Inspect, convert and download eye-image data sets (README: Data).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="what an HDF5 eye-image file holds; optionally a montage")
    s.add_argument("file")
    s.add_argument("--montage", metavar="OUT.png", help="save a grid of sample images")
    s.add_argument("--count", type=int, default=64, help="images in the montage (default 64)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing montage")
    s.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")

    s = sub.add_parser(
        "convert-unityeyes", help="UnityEyes N.jpg + N.json folder -> gaze.h5 layout"
    )
    s.add_argument("folder", metavar="DIR")
    s.add_argument("out", metavar="OUT.h5")
    s.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    s.add_argument(
        "--crop-scale", type=float, default=1.4, help="crop width / eye width (default 1.4)"
    )
    s.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes (default: 1 below 2000 pairs, else up to 8)",
    )

    s = sub.add_parser(
        "convert-mpiigaze", help="MPIIGaze Normalized .mat files -> real_gaze.h5 layout"
    )
    s.add_argument(
        "source", metavar="DIR", help="Data/Normalized (searched recursively) or one .mat"
    )
    s.add_argument("out", metavar="OUT.h5")
    s.add_argument("--with-labels", action="store_true", help="also store look_vec from the gaze")
    s.add_argument("--no-flip", action="store_true", help="keep right eyes as they are")
    s.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")

    s = sub.add_parser(
        "split", help="split a file into two with no person in both (README: Data, split)"
    )
    s.add_argument("file")
    s.add_argument(
        "--by", default="subject", help="the per-image dataset to split by (default subject)"
    )
    s.add_argument("--out", nargs=2, required=True, metavar=("A.h5", "B.h5"))
    s.add_argument(
        "--fraction", type=float, default=0.5, help="share of the people in A (default 0.5)"
    )
    s.add_argument("--seed", type=int, default=0, help="shuffles the people (default 0)")
    s.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    s = sub.add_parser(
        "subset", help="the images a column matches and/or N at random (README: Data, subset)"
    )
    s.add_argument("file")
    s.add_argument("out", metavar="OUT.h5")
    _add_where(
        s,
        "keep rows whose per-image KEY matches: a shell pattern for text (path '*_R.jpg'), "
        "equality for numbers (head_pose_deg 0); repeat to require several",
    )
    s.add_argument("--count", type=int, help="then keep N of them at random (default all)")
    s.add_argument("--seed", type=int, default=0, help="draws the --count rows (default 0)")
    s.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")

    s = sub.add_parser(
        "mirror", help="flip images left to right with their labels (README: Data, mirror)"
    )
    s.add_argument("file")
    s.add_argument("out", metavar="OUT.h5")
    _add_where(s, "flip only the rows whose KEY matches, as for subset (default: every row)")
    s.add_argument(
        "--negate",
        action="append",
        default=[],
        metavar="KEY[:COLUMN]",
        help="also negate this label of a flipped row (head_pose_deg, gaze_target_deg:1); "
        "look_vec's x always is",
    )
    s.add_argument(
        "--append",
        action="store_true",
        help="keep every image as it is and add the flipped ones after them (flip augmentation)",
    )
    s.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")

    s = sub.add_parser("download", help=f"fetch {KAGGLE_DATASET} with kagglehub")
    s.add_argument("--dest", default="data", help="where to put gaze.h5 and real_gaze.h5 (data/)")
    s.add_argument("--overwrite", action="store_true", help="replace files already in DEST")
    return p


def _print_skipped(skipped: list[tuple[str, str]], total: int) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} of {total}:")
    for name, reason in skipped[:20]:
        print(f"  {name}: {reason}")
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more")


def _selection(args: argparse.Namespace) -> dict:
    """subset's and mirror's shared options: the rows --where keeps, and --overwrite."""
    return {"where": [tuple(w) for w in args.where], "overwrite": args.overwrite}


def _print_left_out(left_out: list[str]) -> None:
    if left_out:
        print(f"left out (not one row per image): {', '.join(left_out)}")


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        if args.montage:
            _check_montage_path(args.montage, args.file, args.overwrite)
        if args.count < 1:
            raise SimGANError(f"--count must be >= 1, got {args.count}")
        eyes = load_eyes(args.file, cache=not args.no_cache)
        print("\n".join(describe(args.file, eyes)))
        if args.montage:
            shown = write_montage(args.montage, eyes, count=args.count, overwrite=args.overwrite)
            print(f"montage: {args.montage} ({shown} images)")
    elif args.command == "convert-unityeyes":
        report = convert_unityeyes(
            args.folder,
            args.out,
            overwrite=args.overwrite,
            crop_scale=args.crop_scale,
            workers=args.workers,
        )
        print(f"wrote {report.out}: {report.count} images with look_vec")
        _print_skipped(report.skipped, report.count + len(report.skipped))
    elif args.command == "convert-mpiigaze":
        report = convert_mpiigaze(
            args.source,
            args.out,
            with_labels=args.with_labels,
            flip_right=not args.no_flip,
            overwrite=args.overwrite,
        )
        labels = "with look_vec" if args.with_labels else "without labels"
        print(f"wrote {report.out}: {report.count} images {labels}")
    elif args.command == "split":
        parts, left_out = split_by_group(
            args.file,
            args.out,
            key=args.by,
            fraction=args.fraction,
            seed=args.seed,
            overwrite=args.overwrite,
        )
        for part in parts:
            ids = ", ".join(str(i) for i in part.ids)
            print(
                f"wrote {part.out}: {len(part.ids)} people, {part.count} images ({args.by} {ids})"
            )
        _print_left_out(left_out)
    elif args.command == "subset":
        written, total, left_out = subset(
            args.file, args.out, count=args.count, seed=args.seed, **_selection(args)
        )
        print(f"wrote {args.out}: {written} of {total} images")
        _print_left_out(left_out)
    elif args.command == "mirror":
        done = mirror(
            args.file, args.out, negate=args.negate, append=args.append, **_selection(args)
        )
        kind = "added" if args.append else "of them"
        print(f"wrote {args.out}: {done[1]} images, {done[0]} {kind} mirrored")
        _print_left_out(done[2])
    elif args.command == "download":
        for line in download(args.dest, overwrite=args.overwrite):
            print(line)
    sys.stdout.flush()
