"""Refine a whole data set: `python -m simgan_tf.refine --refiner RUN/refiner.keras --input gaze.h5 --output refined.h5`.

`--run RUN` instead of `--refiner` loads the run's refiner.keras, or with `--checkpoint STEP` and
`--no-average` the refiner one of its checkpoints holds (`load_run`, which evaluate shares).

The output keeps the input's layout (`--layout` picks the Kaggle `image` group of zero-padded keys, or
one plain (N, H, W) uint8 array, which is far faster for large sets) with every other key of the input
(`look_vec`, `path`, ...) copied unchanged, in the input's image order. The input is read and the
output written one batch at a time (the next batch is read while the refiner runs), so memory stays
flat however large the set; the output appears under its name only when complete.

Each batch is first normalised the way training normalised the refiner's inputs (photometry.py): the
CLI reads RUN/config.json beside RUN/refiner.keras (`--input-norm run`, the default).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from simgan_tf import photometry
from simgan_tf.errors import SimGANError, cli
from simgan_tf.files import atomic_write, read_json

if TYPE_CHECKING:  # both are slow to import, and refine imports them only once it has work to do
    import h5py
    import keras

# --input-norm: what the run's config.json says, or one of photometry's modes that need no table.
INPUT_NORMS = ("run", "equalize", "none")
Prepare = Callable[[np.ndarray], np.ndarray]


def load_refiner(path: str | os.PathLike):
    """keras.models.load_model with every failure turned into one line naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SimGANError(f"{path}: no such refiner file (expected RUN/refiner.keras)")
    import keras

    import simgan_tf.models  # noqa: F401 - registers the refiner's ReflectPad layer with Keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for a bad file; all mean the same
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SimGANError(f"{path}: cannot be loaded as a Keras model ({first})") from None


def load_run(run: str, checkpoint: str | None = None, average: bool = True) -> tuple[dict, object]:
    """The run's config.json and refiner, with one-line errors for a missing or broken run directory.

    The refiner is RUN/refiner.keras, or with `checkpoint` (a path or a step number) or without
    `average` the refiner of that checkpoint (default the newest): `checkpoint_refiner`.
    """
    if not os.path.isdir(run):
        raise SimGANError(
            f"{run}: no such run directory (expected what `simgan_tf.train --out` wrote)"
        )
    config_path = os.path.join(run, "config.json")
    if not os.path.isfile(config_path):
        raise SimGANError(f"{run}: no config.json; is this a training run directory?")
    config = read_json(config_path)
    if checkpoint is None and average:
        return config, load_refiner(os.path.join(run, "refiner.keras"))
    return config, checkpoint_refiner(run, config, checkpoint, average)


def find_checkpoint(run: str, checkpoint: str | None) -> str:
    """The checkpoint file `checkpoint` names: a path, a step number (as in its file name, pretraining
    steps included) or None for the newest."""
    from simgan_tf.callbacks import checkpoint_path, checkpoint_step, list_checkpoints

    found = list_checkpoints(run)
    if checkpoint is not None and not checkpoint.isdigit():
        if not os.path.isfile(checkpoint):
            raise SimGANError(f"{checkpoint}: no such checkpoint file")
        return checkpoint
    if not found:
        raise SimGANError(f"{run}: no checkpoints (expected {run}/checkpoints/step_*.weights.h5)")
    if checkpoint is None:
        return found[-1]
    path = checkpoint_path(run, int(checkpoint))
    if path not in found:
        steps = ", ".join(str(checkpoint_step(f)) for f in found)
        raise SimGANError(f"{run}: no checkpoint at step {checkpoint}; it has steps {steps}")
    return path


def checkpoint_refiner(run: str, config: dict, checkpoint: str | None, average: bool):
    """The refiner of a checkpoint: its moving average of the weights where the run kept one
    (--refiner-ema) and `average`, else its weights as they were at that step."""
    from simgan_tf.config import Config
    from simgan_tf.train import build_model

    path = find_checkpoint(run, checkpoint)
    model = build_model(Config.from_dict(config))
    try:
        model.load_weights(path)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for a bad file; all mean the same
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SimGANError(f"{path}: cannot be loaded into {run}'s networks ({first})") from None
    if average:
        model.use_refiner_average()
    return model.refiner


def refiner_source(run: str, config: dict, checkpoint: str | None, average: bool) -> str:
    """Which weights the evaluated refiner has, in words, for the report."""
    averaged = average and config.get("refiner_ema", 0) > 0
    if checkpoint is None and average:
        kind = "moving average" if averaged else "last weights"
        return f"{run}/refiner.keras ({kind})"
    path = find_checkpoint(run, checkpoint)
    return f"{path} ({'moving average' if averaged else 'weights at that step'})"


def check_image_size(refiner, size: tuple[int, int], source: str) -> None:
    """Raise if the refiner has a fixed input size other than `size` (H, W)."""
    expected = tuple(refiner.input_shape[1:3])
    if None not in expected and expected != tuple(size):
        raise SimGANError(
            f"{source}: images are {size[0]} x {size[1]}, but the refiner takes "
            f"{expected[0]} x {expected[1]} (H x W)"
        )


def make_refine_fn(
    refiner, batch_size: int, size: tuple[int, int], jit_compile: bool | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """A function refining uint8 (n <= batch_size, H, W) images into uint8 (n, H, W).

    One compiled call per batch: the scaling to [-1, 1] and back to gray levels runs inside it (a
    quarter of the host-device traffic of float32), and a short batch is padded to `batch_size`, so
    it is traced once. `jit_compile` (XLA) defaults to on with a GPU, off on a CPU, as in training.
    """
    import tensorflow as tf

    from simgan_tf.distribute import speed_defaults

    if jit_compile is None:
        jit_compile = speed_defaults()["jit_compile"]
    h, w = size

    @tf.function(jit_compile=jit_compile)
    def run(images):
        x = tf.cast(images, tf.float32)[..., None] / 127.5 - 1.0
        y = tf.cast(refiner(x, training=False), tf.float32)[..., 0]
        return tf.cast(tf.clip_by_value(tf.round((y + 1.0) * 127.5), 0.0, 255.0), tf.uint8)

    def refine(images: np.ndarray) -> np.ndarray:
        n = len(images)
        if n < batch_size:
            images = np.concatenate([images, np.zeros((batch_size - n, h, w), np.uint8)])
        return run(images).numpy()[:n]

    return refine


def run_preparation(source: str, input_norm: str = "run") -> tuple[Prepare | None, str | None]:
    """(how to prepare uint8 images for this refiner, None for as they are; a line saying so or None).

    `source` is a refiner file or a run directory. "run": what the run's config.json (beside the
    refiner file) recorded (a run trained with "equalize" equalises every image); a refiner without
    one (or from before input normalisation) gets raw images.
    """
    if input_norm not in INPUT_NORMS:
        raise SimGANError(
            f"--input-norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}"
        )
    if input_norm == "equalize":
        return photometry.equalize, None
    # A missing refiner is refine_file's one error line; a note about its config.json would be noise.
    if input_norm == "none" or not os.path.exists(source):
        return None, None
    folder = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    config_path = os.path.join(folder, "config.json")
    if not os.path.exists(config_path):
        return None, (
            f"note: no config.json beside {source}: images go to the refiner as they are "
            "(--input-norm none)"
        )
    config = read_json(config_path)
    try:
        prepare = photometry.from_config(config)
    except SimGANError as e:
        raise SimGANError(f"{config_path}: {e}") from None
    mode = config.get("input_norm") or "none"
    note = f"input normalisation: {mode} (from {config_path})"
    return (None if mode == "none" else prepare), note


def _batches(read: Callable[[int, int], np.ndarray], n: int, batch_size: int):
    """(start, images) for consecutive batches; the next one is read while the caller refines."""
    spans = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(read, *spans[0]) if spans else None
        for i, (start, _) in enumerate(spans):
            images = ahead.result()
            ahead = pool.submit(read, *spans[i + 1]) if i + 1 < len(spans) else None
            yield start, images


def refine_array(
    refiner,
    images: np.ndarray,
    batch_size: int = 256,
    *,
    progress: bool = True,
    prepare: Prepare | None = None,
) -> np.ndarray:
    """Refine uint8 (N, H, W) images in batches; returns uint8 (N, H, W) in the same order.

    `prepare` (uint8 batch -> uint8 batch, e.g. from `run_preparation`) runs on each batch first.
    """
    from tqdm import tqdm

    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SimGANError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    check_image_size(refiner, images.shape[1:], "input")
    out = np.empty_like(images)
    if len(images) == 0:
        return out
    refine = make_refine_fn(refiner, min(batch_size, len(images)), images.shape[1:])
    with tqdm(
        total=len(images), unit="img", desc="refine", disable=not progress, file=sys.stderr
    ) as bar:
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            batch = images[start:stop]
            out[start:stop] = refine(batch if prepare is None else prepare(batch))
            bar.update(stop - start)
    return out


def _numeric_order(keys) -> list[str]:
    # Unpadded keys ("2" before "10") must keep look_vec's row order.
    return sorted(keys, key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k))


class _ImageReader:
    """Batches of uint8 (n, H, W) images from an `image` group (one dataset each) or one array."""

    def __init__(self, path: str, node):
        import h5py

        self.path = path
        self.node = node
        if isinstance(node, h5py.Group):
            self.keys = _numeric_order(list(node.keys()))
            if not self.keys:
                raise SimGANError(f"{path}: the 'image' group is empty")
            first = node[self.keys[0]]
            if not isinstance(first, h5py.Dataset):
                raise SimGANError(f"{path}: 'image/{self.keys[0]}' is not a dataset")
            shape, self.dtype = first.shape, first.dtype
        else:
            self.keys = None
            if node.ndim < 1 or len(node) == 0:
                raise SimGANError(f"{path}: the 'image' dataset is empty")
            shape, self.dtype = node.shape[1:], node.dtype
        if len(shape) == 3 and shape[-1] == 1:
            shape = shape[:2]
        if len(shape) != 2:
            raise SimGANError(f"{path}: images have shape {shape}, expected (H, W)")
        if not (self.dtype == np.uint8 or np.issubdtype(self.dtype, np.floating)):
            raise SimGANError(f"{path}: images have dtype {self.dtype}, expected uint8 or float")
        self.shape = tuple(shape)

    def __len__(self) -> int:
        return len(self.keys) if self.keys is not None else len(self.node)

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.keys is None:
            batch = self.node[start:stop]
        else:
            items = [self.node[k] for k in self.keys[start:stop]]
            for k, item in zip(self.keys[start:stop], items, strict=True):
                if getattr(item, "shape", None) not in (self.shape, (*self.shape, 1)):
                    raise SimGANError(
                        f"{self.path}: image '{k}' has shape {getattr(item, 'shape', None)}, "
                        f"expected {self.shape} like the first"
                    )
            batch = np.stack([item[()] for item in items])
        batch = batch.reshape(len(batch), *self.shape)
        return batch if batch.dtype == np.uint8 else self._float_to_uint8(batch, start)

    def _float_to_uint8(self, batch: np.ndarray, start: int) -> np.ndarray:
        # Checked per batch (the whole set is never in memory); the rule is data.load_eyes's.
        if not np.isfinite(batch).all():
            raise SimGANError(f"{self.path}: images from {start} on hold NaN or infinite values")
        lo, hi = float(batch.min()), float(batch.max())
        if lo < 0 or hi > 255 or hi <= 1.0:
            raise SimGANError(
                f"{self.path}: float images lie in [{lo:.3g}, {hi:.3g}], expected gray levels in [0, 255]"
            )
        return np.round(batch).astype(np.uint8)


def refine_file(
    refiner: str | keras.Model,
    input_path: str,
    output_path: str,
    *,
    batch_size: int = 256,
    layout: str = "same",
    overwrite: bool = False,
    progress: bool = True,
    prepare: Prepare | None = None,
) -> int:
    """Refine every image of `input_path` into `output_path`; returns the number of images.

    `refiner`: a saved refiner's path (e.g. RUN/refiner.keras) or a loaded one (`load_run`).

    `layout`: "group" writes the Kaggle layout (one dataset per image under `image`), "plain" one
    (N, H, W) uint8 `image` array (far faster to write and read for large sets), "same" the input's.
    `prepare` (uint8 batch -> uint8 batch, e.g. from `run_preparation`) runs on each batch first;
    the output keeps the refined images only.
    """
    import h5py

    _check_paths(input_path, output_path, batch_size=batch_size, layout=layout, overwrite=overwrite)
    if isinstance(refiner, str | os.PathLike):
        refiner = load_refiner(refiner)
    # atomic_write makes the folder, and turns a failure to write into one line.
    with atomic_write(output_path) as tmp:
        with h5py.File(input_path, "r") as src:
            reader = _open_images(src, input_path, refiner)
            n = len(reader)
            with h5py.File(tmp, "w") as dst:
                _copy_all_but_images(src, dst)
                b = min(batch_size, n)
                write = _image_writer(dst, reader, layout, b)
                refine = make_refine_fn(refiner, b, reader.shape)
                _refine_batches(reader, refine, write, b, prepare=prepare, progress=progress)
    return n


def _check_paths(
    input_path: str, output_path: str, *, batch_size: int, layout: str, overwrite: bool
) -> None:
    """Refuse bad arguments and paths before the (slow) refiner is loaded."""
    import h5py

    if batch_size < 1:
        raise SimGANError(f"--batch-size must be >= 1, got {batch_size}")
    if layout not in LAYOUTS:
        raise SimGANError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not os.path.isfile(input_path):
        raise SimGANError(f"{input_path}: no such file")
    if os.path.realpath(output_path) == os.path.realpath(input_path) or (
        os.path.exists(output_path) and os.path.samefile(output_path, input_path)
    ):
        raise SimGANError(
            f"{output_path}: is the input; refusing to overwrite it, choose another --output"
        )
    if os.path.isdir(output_path):
        raise SimGANError(f"{output_path}: is a directory, expected a file name")
    if os.path.exists(output_path) and not overwrite:
        raise SimGANError(f"{output_path}: already exists (pass --overwrite to replace it)")
    if not h5py.is_hdf5(input_path):
        raise SimGANError(f"{input_path}: not an HDF5 file")


def _open_images(src: h5py.File, input_path: str, refiner: keras.Model) -> _ImageReader:
    """A reader of the input's images, checked against the refiner and the rows of the labels."""
    if "image" not in src:
        raise SimGANError(f"{input_path}: no 'image' key (found {sorted(src.keys())})")
    reader = _ImageReader(input_path, src["image"])
    n = len(reader)
    check_image_size(refiner, reader.shape, input_path)
    for key in ("look_vec", "path"):
        if key in src and len(src[key]) != n:
            raise SimGANError(
                f"{input_path}: '{key}' has {len(src[key])} rows but there are {n} images"
            )
    return reader


def _copy_all_but_images(src: h5py.File, dst: h5py.File) -> None:
    """Copy every key but `image`: labels and names are not the refiner's business."""
    for key in src:
        if key != "image":
            src.copy(src[key], dst, name=key)


def _image_writer(
    dst: h5py.File, reader: _ImageReader, layout: str, batch_size: int
) -> Callable[[int, np.ndarray], None]:
    """Create the output's `image` in `layout`; returns write(start, refined images)."""
    n = len(reader)
    if layout == "same":
        layout = "plain" if reader.keys is None else "group"
    if layout == "plain":
        out = dst.create_dataset(
            "image", (n, *reader.shape), np.uint8, chunks=(batch_size, *reader.shape)
        )

        def write(start: int, refined: np.ndarray) -> None:
            out[start : start + len(refined)] = refined

    else:
        group = dst.create_group("image")
        width = max(6, len(str(n)))

        def write(start: int, refined: np.ndarray) -> None:
            for i, img in enumerate(refined, start):
                group.create_dataset(f"{i:0{width}d}", data=img)

    return write


def _refine_batches(
    reader: _ImageReader,
    refine: Callable[[np.ndarray], np.ndarray],
    write: Callable[[int, np.ndarray], None],
    batch_size: int,
    *,
    prepare: Prepare | None,
    progress: bool,
) -> None:
    """Refine the input batch by batch into `write`, reading and preparing the next meanwhile."""
    from tqdm import tqdm

    def read(start: int, stop: int) -> np.ndarray:
        # In the reading thread: preparing overlaps with refining the previous batch.
        images = reader.read(start, stop)
        return images if prepare is None else prepare(images)

    n = len(reader)
    with tqdm(total=n, unit="img", desc="refine", disable=not progress, file=sys.stderr) as bar:
        for start, images in _batches(read, n, batch_size):
            refined = refine(images)
            write(start, refined)
            bar.update(len(refined))


LAYOUTS = ("same", "group", "plain")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.refine",
        description="Refine every image of a data set with a trained refiner; labels and names are kept.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--refiner", help="a trained refiner, e.g. RUN/refiner.keras")
    source.add_argument(
        "--run",
        help="a training run directory: its refiner.keras, or with --checkpoint or --no-average "
        "the refiner of one of its checkpoints (an unfinished run's too)",
    )
    p.add_argument("--input", required=True, help="images to refine (Kaggle gaze.h5 layout)")
    p.add_argument("--output", required=True, help="where to write the refined set (same layout)")
    p.add_argument(
        "--batch-size", type=int, default=256, help="images per refiner call (default 256)"
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="same",
        help="output 'image' layout: the Kaggle group of one dataset per image, one plain "
        "(N, H, W) array (fast for large sets), or the input's (default)",
    )
    p.add_argument(
        "--input-norm",
        choices=INPUT_NORMS,
        default="run",
        help="normalise each image before refining: as the run's config.json beside --refiner says "
        "(default; none without one), per-image histogram equalisation, or none",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument(
        "--checkpoint",
        metavar="STEP|PATH",
        help="with --run: the refiner of this checkpoint (a step number as in "
        "RUN/checkpoints/step_N.weights.h5, or a path) instead of RUN/refiner.keras",
    )
    p.add_argument(
        "--no-average",
        action="store_true",
        help="with --run, for a run trained with --refiner-ema: the checkpoint's own weights, not "
        "their moving average (default checkpoint: the newest)",
    )
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    refiner = args.refiner
    if args.run is None and (args.checkpoint or args.no_average):
        raise SimGANError(
            "--checkpoint and --no-average choose among a run's refiners: add --run RUN"
        )
    prepare, note = run_preparation(args.refiner or args.run, args.input_norm)
    if args.run is not None:
        # Before loading the networks, which takes seconds: a wrong --output fails at once.
        _check_paths(
            args.input,
            args.output,
            batch_size=args.batch_size,
            layout=args.layout,
            overwrite=args.overwrite,
        )
        average = not args.no_average
        config, refiner = load_run(args.run, args.checkpoint, average)
        print(f"refiner: {refiner_source(args.run, config, args.checkpoint, average)}")
    if note:
        print(note)
    n = refine_file(
        refiner,
        args.input,
        args.output,
        batch_size=args.batch_size,
        layout=args.layout,
        overwrite=args.overwrite,
        prepare=prepare,
    )
    print(f"refined {n} images: {args.output}")
    return 0


if __name__ == "__main__":
    main()
