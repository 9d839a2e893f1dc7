"""TensorBoard event files of a training run, in RUN/tensorboard/: `tensorboard --logdir runs`.

Each logging interval's metrics are scalars at the global step (`model.step`), each sample grid is an
image at its step, and the run's config is text at step 0. The summaries are written with
`tf.summary.write` and the plugin metadata TensorBoard's own summary functions attach: TensorFlow
2.21 no longer installs the `tensorboard` package, which `tf.summary.scalar` needs, and writing must
not depend on it. Viewing does (`pip install tensorboard`; Colab has it).
"""

from __future__ import annotations

import glob
import os
import struct
from collections import defaultdict
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from simgan_tf.files import atomic_write

LOGDIR = "tensorboard"  # inside the run directory
CONFIG_TAG, SAMPLES_TAG = "config", "samples"


class Summary(NamedTuple):
    tag: str
    step: int
    plugin: str  # "scalars", "images" or "text"
    value: np.ndarray


def event_files(logdir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))


def _read_events(path: str) -> tuple[list, bool]:
    """(the events of one file, whether it was whole): a damaged record, or one a kill cut short,
    raises DataLossError, and the events before it are returned."""
    from tensorflow.core.util import event_pb2

    events = []
    try:
        # Not tf.compat.v1.train.summary_iterator: the same records, without its deprecation warning.
        for record in tf.data.TFRecordDataset(path):
            events.append(event_pb2.Event.FromString(record.numpy()))
    except tf.errors.DataLossError:
        return events, False
    return events, True


def summaries(logdir: str) -> list[Summary]:
    """Every summary in the event files of `logdir`, file by file, in the order written."""
    return [
        Summary(
            v.tag, int(event.step), v.metadata.plugin_data.plugin_name, tf.make_ndarray(v.tensor)
        )
        for path in event_files(logdir)
        for event in _read_events(path)[0]
        for v in event.summary.value
    ]


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...] in step order} of the scalars in `logdir`."""
    series = defaultdict(list)
    for s in summaries(logdir):
        if s.plugin == "scalars":
            series[s.tag].append((s.step, float(s.value)))
    return {tag: sorted(points) for tag, points in series.items()}


def prune_events(logdir: str, last_step: int) -> None:
    """Drop the summaries after `last_step` (each changed file rewritten atomically).

    A killed run may have logged past the checkpoint it is resumed from; the resumed run logs those
    steps again, and TensorBoard would show both.
    """
    for path in event_files(logdir):
        events, whole = _read_events(path)
        kept = [e for e in events if not e.HasField("summary") or e.step <= last_step]
        if not any(e.HasField("summary") for e in kept):
            os.remove(path)
        elif len(kept) < len(events) or not whole:
            with atomic_write(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
                for event in kept:
                    writer.write(event.SerializeToString())


def _metadata(plugin: str):
    from tensorflow.core.framework import summary_pb2

    # What TensorBoard's scalar, image and text summaries attach: their plugin data at version 0
    # serialises to empty content.
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )


def png_summary_tensor(png: bytes) -> tf.Tensor:
    """An image summary's tensor: [width, height, PNG] as strings, the PNG as drawn (not re-encoded)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk, always first
    return tf.constant([str(width).encode(), str(height).encode(), png])


class TensorBoardLog(keras.callbacks.Callback):
    """Writes the run's metrics, sample grids and config into OUT/tensorboard/.

    Listed after `SampleGrids`: at each interval's end it logs the grid just saved there (the same
    PNG, `samples_dir/step_N.png`), so images follow the grids' cadence and skip what they skip.
    `resume_step` None starts a fresh stream (an overwritten run's events are removed); a step
    continues the existing one from there, dropping what was logged after it.
    """

    def __init__(
        self, out: str, config_text: str, samples_dir: str, resume_step: int | None = None
    ):
        super().__init__()
        self.logdir = os.path.join(out, LOGDIR)
        self.samples_dir = samples_dir
        if resume_step is None:
            for path in event_files(self.logdir):
                os.remove(path)
        else:
            prune_events(self.logdir, resume_step)
        logged = summaries(self.logdir)
        # Grid steps already in the stream: the final grid of a run that ends on a sample step is
        # that step's grid again, and each (tag, step) is logged once.
        self.grid_steps = {s.step for s in logged if s.tag == SAMPLES_TAG}
        logged = {s.tag for s in logged}
        self.writer = None  # opened at the first write: resuming a finished run adds no file
        # A killed run's grids past the checkpoint are redrawn on resume, with a new mtime.
        self.stale = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(samples_dir, "*"))}
        if CONFIG_TAG not in logged:
            # Indented: TensorBoard renders text as Markdown, and this keeps the JSON's lines.
            text = "\n".join("    " + line for line in config_text.splitlines())
            self.write(CONFIG_TAG, tf.constant(text), 0, "text")
            self.writer.flush()

    def write(self, tag: str, tensor, step: int, plugin: str) -> None:
        if self.writer is None:
            os.makedirs(self.logdir, exist_ok=True)
            self.writer = tf.summary.create_file_writer(self.logdir)
        with self.writer.as_default():
            tf.summary.write(tag, tensor, step=step, metadata=_metadata(plugin))

    def log_image(self, path: str, step: int) -> None:
        with open(path, "rb") as f:
            self.write(SAMPLES_TAG, png_summary_tensor(f.read()), step, "images")

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.step.numpy())
        for tag, value in (logs or {}).items():
            self.write(tag, tf.constant(float(value), tf.float32), step, "scalars")
        self.log_grid(step)

    def log_grid(self, step: int) -> None:
        """The sample grid SampleGrids saved at `step`, if it did and it is not logged yet; flushed
        (every interval: a live `tensorboard` sees it, and a killed run loses none of it)."""
        grid = os.path.join(self.samples_dir, f"step_{step:06d}.png")  # SampleGrids.save's name
        fresh = os.path.exists(grid) and os.stat(grid).st_mtime_ns != self.stale.get(grid)
        if fresh and step not in self.grid_steps:
            self.log_image(grid, step)
            self.grid_steps.add(step)
        if self.writer is not None:
            self.writer.flush()
