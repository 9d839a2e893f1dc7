"""Small benchmarks, one function each: `python -m simgan_tf.bench [--only NAME ...] [--json]`.

A benchmark is a function taking the parsed arguments and returning a list of `Figure`s; `register`
adds it to `BENCHMARKS` together with the command-line options of its own; `--batch-size` and
`--seconds` are shared by all. To add one:

    def _my_options(p):
        p.add_argument("--my-steps", type=int, default=100)

    @register("my-bench", "what it measures", _my_options)
    def bench_my(args):
        ...
        return [Figure("my_rate", value, "steps/s")]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from simgan_tf import data
from simgan_tf.config import STRATEGIES, Config
from simgan_tf.errors import SimGANError, cli

if TYPE_CHECKING:  # TensorFlow is imported by the benchmarks that use it, not by --list
    import keras
    import tensorflow as tf

    from simgan_tf.callbacks import RunCallbacks
    from simgan_tf.simgan import SimGAN


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class Benchmark:
    name: str
    help: str
    run: Callable[[argparse.Namespace], list[Figure]]
    add_options: Callable[[argparse.ArgumentParser], None] | None = None


BENCHMARKS: dict[str, Benchmark] = {}


def register(
    name: str, help: str, add_options: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Callable[[argparse.Namespace], list[Figure]]], Callable]:
    """Decorator: add a benchmark function under `name`, with a hook adding its CLI options."""

    def decorate(fn: Callable[[argparse.Namespace], list[Figure]]) -> Callable:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, help, fn, add_options)
        return fn

    return decorate


def _random_eyes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *data.IMAGE_SHAPE), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------
# Data benchmarks


def _load_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--load-images",
        type=int,
        default=10_000,
        help="images in the generated group-layout file (default 10000; gaze.h5 has about 50000)",
    )


@register(
    "load", "group-layout HDF5 load time, without and with the contiguous cache", _load_options
)
def bench_load(args: argparse.Namespace) -> list[Figure]:
    n = args.load_images
    if n < 1:
        raise SimGANError(f"--load-images must be >= 1, got {n}")
    images = _random_eyes(n, 0)
    look_vec = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    old_env, old_min = os.environ.get("SIMGAN_CACHE_DIR"), data.cache.CACHE_MIN_IMAGES
    with tempfile.TemporaryDirectory(prefix="simgan-bench-") as tmp:
        path = os.path.join(tmp, "gaze.h5")
        # Keep the cache inside the temp folder, and build it whatever the size asked for.
        os.environ["SIMGAN_CACHE_DIR"] = tmp
        data.cache.CACHE_MIN_IMAGES = 0
        try:
            t0 = time.perf_counter()
            data.save_eyes(path, images, look_vec, [f"{i}.jpg" for i in range(n)])
            t1 = time.perf_counter()
            data.load_eyes(path, cache=False)
            t2 = time.perf_counter()
            data.load_eyes(path)
            t3 = time.perf_counter()
            eyes = data.load_eyes(path)
            t4 = time.perf_counter()
        finally:
            data.cache.CACHE_MIN_IMAGES = old_min
            if old_env is None:
                os.environ.pop("SIMGAN_CACHE_DIR", None)
            else:
                os.environ["SIMGAN_CACHE_DIR"] = old_env
        assert np.array_equal(eyes.images, images) and "cache" in eyes.cache_status
        size_mb = os.path.getsize(path) / 1e6
    # The file was just written, so "cold" means not yet cached by us; the OS page cache is warm.
    return [
        Figure("load_images", n, "images", f"{size_mb:.0f} MB group-layout file"),
        Figure("load_write_s", t1 - t0, "s", "save_eyes"),
        Figure("load_uncached_s", t2 - t1, "s", "load_eyes(cache=False)"),
        Figure("load_cold_s", t3 - t2, "s", "first load: read HDF5 and write the cache"),
        Figure("load_cached_s", t4 - t3, "s", "second load: from the cache"),
    ]


def _pipeline_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--synthetic-groups", type=int, default=3, help="K_g + K_d (default 3)")
    p.add_argument("--real-groups", type=int, default=1, help="K_d (default 1)")
    p.add_argument(
        "--pipeline-images", type=int, default=50_000, help="synthetic set size (default 50000)"
    )


@register("pipeline", "training_dataset throughput from memory, after warm-up", _pipeline_options)
def bench_pipeline(args: argparse.Namespace) -> list[Figure]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    b, sg, rg = args.batch_size, args.synthetic_groups, args.real_groups
    n = args.pipeline_images
    if min(b, sg, rg, n) < 1 or args.seconds <= 0:
        raise SimGANError(
            "--batch-size, the group counts, --pipeline-images and --seconds must be > 0"
        )
    synthetic, real = _random_eyes(n, 0), _random_eyes(max(n // 2, b), 1)
    ds = data.training_dataset(synthetic, real, b, sg, rg, seed=0)
    it = iter(ds)
    # Warm-up fills the shuffle buffers and prefetch; it is not what a long run sees.
    for _ in range(max(5, (2 * n) // (b * sg) + 1)):
        next(it)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        next(it)
        steps += 1
    dt = time.perf_counter() - t0
    per_step = b * (sg + rg)
    return [
        Figure("pipeline_images_per_s", steps * per_step / dt, "images/s", "synthetic + real"),
        Figure("pipeline_steps_per_s", steps / dt, "steps/s", f"{per_step} images a step"),
    ]


# ----------------------------------------------------------------------------------------------
# Training and refinement benchmarks


def _model_options(p: argparse.ArgumentParser) -> None:
    """Options of train-step, read by fit and refine too (registered once: argparse refuses twice)."""
    p.add_argument(
        "--preset", default="quick", help="network sizes, K_g, K_d from this preset (default quick)"
    )
    p.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None, help="jit_compile")
    p.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="half compute (default: as training chooses on this machine)",
    )
    p.add_argument(
        "--mixed-precision-dtype",
        choices=("bfloat16", "float16"),
        help="the half type (default: as training chooses)",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy of train-step and fit; --batch-size is the global batch",
    )
    p.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit with TensorBoard event files, as a run writes them (default: the preset's, on)",
    )


def _bench_config(args: argparse.Namespace):
    from simgan_tf.config import make_config

    b = args.batch_size
    return make_config(
        args.preset,
        batch_size=b,
        buffer_size=max(b * 50, 1000),
        jit_compile=args.xla,
        mixed_precision=args.mixed_precision,
        mixed_precision_dtype=args.mixed_precision_dtype,
        strategy=args.strategy,
        tensorboard=args.tensorboard,
    )


def _replicas(model) -> str:
    strategy = model.distribute_strategy
    return f"{strategy.num_replicas_in_sync} replica(s), {type(strategy).__name__}"


def _fixed_batches(cfg, model):
    """An endless iterator of one fixed (synthetic, real) step batch, split among the replicas:
    the bare step without any input pipeline."""
    import tensorflow as tf

    from simgan_tf.distribute import distribute_steps

    b, g = cfg.batch_size, cfg.kg + cfg.kd
    batch = (
        tf.random.uniform((g, b, *cfg.image_shape), -1, 1),
        tf.random.uniform((cfg.kd, b, *cfg.image_shape), -1, 1),
    )
    return iter(
        distribute_steps(tf.data.Dataset.from_tensors(batch).repeat(), model.distribute_strategy)
    )


def _adversarial_model(cfg: Config) -> tuple[SimGAN, Iterator]:
    """The compiled model of cfg in its adversarial phase, and its fixed step batches."""
    from simgan_tf.train import build_model

    model = build_model(cfg)
    model.set_phase("adversarial")
    return model, _fixed_batches(cfg, model)


def _bare_step(model: SimGAN, batches: Iterator) -> Callable[[], float]:
    """One bare compiled step per call (traced now); the float it returns waits for the step."""
    model.make_train_function()
    step = model.train_function
    return lambda: float(step(batches)["r_l1"])


def _time_steps(run_step, steps: int) -> float:
    """Seconds per step after two warm-up steps (tracing and compilation excluded)."""
    for _ in range(2):
        run_step()
    t0 = time.perf_counter()
    for _ in range(steps):
        run_step()
    return (time.perf_counter() - t0) / steps


def step_flops(model, kg: int, kd: int) -> int:
    """FLOPs of one adversarial step per batch image (a backward pass counted as two forwards).

    A refiner update runs R forward and backward (3 R) and D forward and back to its input (2 D); a
    discriminator update refines (R), then runs D forward and backward on refined and real (6 D).
    """
    from simgan_tf.models import forward_flops

    r, d = forward_flops(model.refiner), forward_flops(model.discriminator)
    return kg * (3 * r + 2 * d) + kd * (r + 6 * d)


def run_flops(model, preset: str) -> int:
    """FLOPs of a whole run of `preset` (its own batch size and schedule): divided by a machine's
    sustained FLOP/s, what the run costs there."""
    from simgan_tf.config import make_config
    from simgan_tf.models import forward_flops

    cfg = make_config(preset)
    r, d = forward_flops(model.refiner), forward_flops(model.discriminator)
    per_image = (
        cfg.pretrain_refiner_steps * 3 * r
        + cfg.pretrain_discriminator_steps * (r + 6 * d)
        + cfg.steps * step_flops(model, cfg.kg, cfg.kd)
    )
    return cfg.batch_size * per_image


@register(
    "train-step",
    "the bare compiled step: K_g refiner + K_d discriminator updates with the buffer",
    _model_options,
)
def bench_train_step(args: argparse.Namespace) -> list[Figure]:
    cfg = _bench_config(args)
    model, batches = _adversarial_model(cfg)
    b, g = cfg.batch_size, cfg.kg + cfg.kd
    dt = _time_steps(_bare_step(model, batches), args.steps)
    refined = b * g  # every update refines a batch: K_g for the refiner, K_d for the discriminator
    flops, whole_run = b * step_flops(model, cfg.kg, cfg.kd), run_flops(model, cfg.preset)
    return [
        Figure(
            "train_step_ms",
            dt * 1000,
            "ms/step",
            f"batch {b}, K_g {cfg.kg}, K_d {cfg.kd}, {cfg.preset} networks, {_replicas(model)}",
        ),
        Figure("train_refined_per_s", refined / dt, "images/s", "refined images per second"),
        Figure("train_step_gflop", flops / 1e9, "GFLOP", "conv and dense work of one step"),
        Figure("train_tflop_per_s", flops / dt / 1e12, "TFLOP/s", "what the step sustains"),
        Figure(
            "preset_run_hours",
            whole_run / (flops / dt) / 3600,
            "h",
            f"a whole {cfg.preset} run ({whole_run / 1e15:.3g} PFLOP) at this "
            "rate; pretraining counted, start-up and callbacks not",
        ),
    ]


def _step_timer():
    """A callback timing fit() from its first batch to its last epoch end: the per-step cost of a
    long run, without once-per-phase set-up and the final plot. Listed last, it sees the others."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.begin = self.end = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.begin is None:
                self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.end = time.perf_counter()

    return StepTimer()


def _time_fit_and_bare(
    model: SimGAN,
    ds: tf.data.Dataset | tf.distribute.DistributedDataset,
    run: RunCallbacks,
    timer: keras.callbacks.Callback,
    bare_it: Iterator,
    steps: int,
    per_epoch: int,
) -> tuple[float, float]:
    """(seconds a step through fit() with the run's callbacks, seconds a bare compiled step).

    `timer` is in `run.extra`, after the run's own callbacks, so it reads the time after them.
    """

    def fit() -> float:
        model.fit(
            ds,
            epochs=max(1, steps // per_epoch),
            steps_per_epoch=per_epoch,
            callbacks=run.all,
            verbose=0,
            shuffle=False,
        )
        return (timer.end - timer.begin) / (max(1, steps // per_epoch) * per_epoch)

    model.fit(ds, epochs=1, steps_per_epoch=2, callbacks=run.all, verbose=0, shuffle=False)
    bare_step = _bare_step(model, bare_it)  # fit() left its own train function: trace the bare one

    def bare() -> float:
        return _time_steps(bare_step, steps)

    # Interleaved and the best of two each, so that a burst of load elsewhere hits both alike.
    bare_s, fit_s = min(bare(), bare()), 1e9
    for _ in range(2):
        fit_s = min(fit_s, fit())
        bare_s = min(bare_s, bare())
    return fit_s, bare_s


def _time_events(cfg: Config, run: RunCallbacks, fit_s: float) -> dict[str, float]:
    """Seconds per step of each event a run pays every so many steps, timed once each and spread
    over its interval."""
    t0 = time.perf_counter()
    grid = run.grids.save(0)
    if run.board:
        run.board.log_image(grid, 0)  # the grid's TensorBoard copy
    t1 = time.perf_counter()
    run.checkpoints.save(0)
    t2 = time.perf_counter()
    run.log.on_train_end()  # draws losses.png, as a run does every `redraw_s` seconds
    t3 = time.perf_counter()
    return {
        f"sample grid every {cfg.sample_every} steps": (t1 - t0) / cfg.sample_every,
        f"checkpoint every {cfg.checkpoint_every} steps": (t2 - t1) / cfg.checkpoint_every,
        f"loss plot every {run.log.redraw_s:.0f} s": (t3 - t2) * fit_s / run.log.redraw_s,
    }


@register(
    "vs-torch",
    "the bare compiled step against the same networks, losses and updates in a plain PyTorch "
    "float32 loop (needs torch), alternated in one process",
)
def bench_vs_torch(args: argparse.Namespace) -> list[Figure]:
    from simgan_tf.bench_torch import time_torch_step
    from simgan_tf.distribute import resolve_speed

    cfg = _bench_config(args)
    torch_s = time_torch_step(cfg, 1, warmup=1)  # fails first, in one line, if torch is missing
    keras_step = _bare_step(*_adversarial_model(cfg))
    keras_s = _time_steps(keras_step, 1)
    # Alternated, best of two each: a burst of load elsewhere hits both alike.
    for _ in range(2):
        keras_s = min(keras_s, _time_steps(keras_step, args.steps))
        torch_s = min(torch_s, time_torch_step(cfg, args.steps))
    speed = resolve_speed(cfg)
    half = speed["mixed_precision_dtype"] if speed["mixed_precision"] else "float32"
    import torch

    setting = f"batch {cfg.batch_size}, K_g {cfg.kg}, K_d {cfg.kd}, {cfg.preset} networks"
    return [
        Figure("keras_step_ms", keras_s * 1000, "ms/step", f"{setting}, {half}"),
        Figure(
            "torch_step_ms",
            torch_s * 1000,
            "ms/step",
            f"PyTorch {torch.__version__}, float32, {torch.get_num_threads()} threads",
        ),
        Figure("speedup_over_torch", torch_s / keras_s, "x", "PyTorch's time / Keras's"),
    ]


@register(
    "fit",
    "the same step through fit() with a training run's callbacks and input pipeline, against the "
    "bare step in the same process",
)
def bench_fit(args: argparse.Namespace) -> list[Figure]:
    from simgan_tf.callbacks import run_callbacks
    from simgan_tf.distribute import distribute_steps

    cfg = _bench_config(args)
    model, bare_it = _adversarial_model(cfg)
    b, g, steps = cfg.batch_size, cfg.kg + cfg.kd, args.steps
    per_epoch = min(cfg.log_every, steps)  # a run's epoch is one log interval
    synthetic, real = _random_eyes(max(4 * b * g, 2000), 0), _random_eyes(max(4 * b, 2000), 1)
    # The run's warnings (FailureMonitor prints them) go to stderr: stdout stays one JSON object.
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):
        # Grids and checkpoints never fire inside fit(): _time_events times each once and spreads
        # it over the run's interval, so whether the timed steps cross one does not decide the figure.
        never = replace(cfg, out=out, sample_every=10**9, checkpoint_every=10**9, backup_dir=None)
        timer = _step_timer()
        run = run_callbacks(never, synthetic[:8], real[:8], extra=(timer,))
        ds = distribute_steps(
            data.training_dataset(synthetic, real, b, g, cfg.kd, seed=0), model.distribute_strategy
        )
        fit_s, bare_s = _time_fit_and_bare(model, ds, run, timer, bare_it, steps, per_epoch)
        events = _time_events(cfg, run, fit_s)
    events_s = sum(events.values())
    overhead = (fit_s + events_s) / bare_s - 1
    spread = ", ".join(f"{k}: {v * 1000:.2f} ms" for k, v in events.items())
    return [
        Figure("bare_step_ms", bare_s * 1000, "ms/step", f"batch {b}, {_replicas(model)}"),
        Figure(
            "fit_step_ms",
            fit_s * 1000,
            "ms/step",
            f"tf.data pipeline, callbacks every {per_epoch} steps (the run's log interval)",
        ),
        Figure("fit_events_ms", events_s * 1000, "ms/step", spread),
        Figure(
            "fit_overhead_pct",
            overhead * 100,
            "%",
            "(fit + events) over the bare step; the issue's bound is 10%",
        ),
        Figure("fit_refined_per_s", b * g / (fit_s + events_s), "images/s", "refined images/s"),
    ]


def _bench_refiner(args: argparse.Namespace):
    from simgan_tf.train import build_model

    return build_model(_bench_config(args)).refiner


@register("refine", "refiner inference: the refine command's compiled uint8 -> uint8 call")
def bench_refine(args: argparse.Namespace) -> list[Figure]:
    from simgan_tf.refine import make_refine_fn

    refiner = _bench_refiner(args)
    refine = make_refine_fn(refiner, args.batch_size, data.IMAGE_SHAPE, args.xla)
    x = _random_eyes(args.batch_size, 0)
    dt = _time_steps(lambda: refine(x), args.steps)
    return [
        Figure("refine_images_per_s", args.batch_size / dt, "images/s", f"batch {args.batch_size}")
    ]


def _refine_file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--refine-images",
        type=int,
        default=2_000,
        help="images in the file to refine (default 2000); a quarter as many are refined first",
    )
    p.add_argument(
        "--refine-layout", choices=("group", "plain"), default="plain", help="layout of both files"
    )


def _peak_rss_mb() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


@register(
    "refine-file",
    "the refine command end to end on an HDF5 file, and whether its memory stays flat",
    _refine_file_options,
)
def bench_refine_file(args: argparse.Namespace) -> list[Figure]:
    import h5py

    from simgan_tf.refine import refine_file

    n, layout = args.refine_images, args.refine_layout
    if n < 4:
        raise SimGANError(f"--refine-images must be >= 4, got {n}")
    refiner_keras = _bench_refiner(args)
    figures = []
    with tempfile.TemporaryDirectory(prefix="simgan-bench-") as tmp:
        refiner_path = os.path.join(tmp, "refiner.keras")
        refiner_keras.save(refiner_path)
        for count in (n // 4, n):
            src, dst = os.path.join(tmp, f"in{count}.h5"), os.path.join(tmp, f"out{count}.h5")
            with h5py.File(src, "w") as f:  # written in slices: the bench holds no whole set either
                if layout == "plain":
                    images = f.create_dataset("image", (count, *data.IMAGE_SHAPE), np.uint8)
                for start in range(0, count, 10_000):
                    chunk = _random_eyes(min(10_000, count - start), start)
                    if layout == "plain":
                        images[start : start + len(chunk)] = chunk
                    else:
                        for i, img in enumerate(chunk, start):
                            f.create_dataset(f"image/{i:07d}", data=img)
            t0 = time.perf_counter()
            refine_file(refiner_path, src, dst, batch_size=args.batch_size, progress=False)
            dt = time.perf_counter() - t0
            figures.append((count, dt, _peak_rss_mb()))
            os.remove(dst)
    (small, _, rss_small), (big, dt, rss_big) = figures
    return [
        Figure("refine_file_images_per_s", big / dt, "images/s", f"{big} images, {layout} layout"),
        Figure(
            "refine_file_rss_growth_mb",
            rss_big - rss_small,
            "MB",
            f"peak memory refining {big} images minus refining {small}; those {big - small} "
            f"extra images hold {(big - small) * np.prod(data.IMAGE_SHAPE) / 2**20:.0f} MB as "
            "uint8, which a loader holding the set would add",
        ),
    ]


def _simulator_options(p: argparse.ArgumentParser) -> None:
    from simgan_tf.simulator import PROFILES

    p.add_argument(
        "--scene-profile",
        choices=sorted(PROFILES),
        default="uniform",
        help="the scenes to render (default uniform): time a simulator change on its profile",
    )


@register("simulator", "the built-in eye simulator (images/s, one process)", _simulator_options)
def bench_simulator(args: argparse.Namespace) -> list[Figure]:
    from simgan_tf.simulator import render

    figures = []
    for domain in ("synthetic", "target"):
        render(200, domain, 0, args.scene_profile)
        n, t0 = 2000, time.perf_counter()
        render(n, domain, 1, args.scene_profile)
        rate = n / (time.perf_counter() - t0)
        figures.append(
            Figure(f"simulator_{domain}_per_s", rate, "images/s", f"{args.scene_profile} scenes")
        )
    return figures


# ----------------------------------------------------------------------------------------------
# CLI


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.bench", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--only", nargs="+", metavar="NAME", choices=sorted(BENCHMARKS), help="benchmarks to run"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    # Options more than one benchmark reads.
    p.add_argument("--batch-size", type=int, default=512, help="images per batch (default 512)")
    p.add_argument(
        "--seconds", type=float, default=5.0, help="time each throughput figure over (default 5)"
    )
    p.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        help="split the CPU into N logical devices, so that --strategy mirrored runs N replicas "
        "without GPUs",
    )
    for bench in BENCHMARKS.values():
        if bench.add_options is not None:
            bench.add_options(p.add_argument_group(f"{bench.name}: {bench.help}"))
    return p


def _gpus() -> list:
    """The logical GPUs, if a benchmark imported TensorFlow (one that did not used no GPU)."""
    tf = sys.modules.get("tensorflow")
    return tf.config.list_logical_devices("GPU") if tf is not None else []


def _peak_memory() -> list[Figure]:
    """Host peak RSS of the process so far, and each GPU's peak since the benchmark began."""
    figures = [Figure("peak_rss_mb", _peak_rss_mb(), "MB", "host, process peak so far")]
    for gpu in _gpus():
        info = sys.modules["tensorflow"].config.experimental.get_memory_info(gpu.name)
        figures.append(Figure("peak_gpu_mb", info["peak"] / 2**20, "MB", gpu.name))
    return figures


def run_benchmarks(args: argparse.Namespace) -> dict:
    """Run the selected benchmarks; one JSON-ready dict of the machine and every figure."""
    results = []
    for name in args.only or list(BENCHMARKS):
        if not args.json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        for gpu in _gpus():
            sys.modules["tensorflow"].config.experimental.reset_memory_stats(gpu.name)
        for fig in [*BENCHMARKS[name].run(args), *_peak_memory()]:
            results.append({"benchmark": name, **asdict(fig)})
    return {"machine": _machine(), "results": results}


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:12s} {bench.help}")
        return
    if args.cpu_devices:
        from simgan_tf.distribute import split_cpu

        split_cpu(args.cpu_devices)  # before any benchmark makes TensorFlow initialise its devices
    report = run_benchmarks(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'benchmark':10s} {'figure':24s} {'value':>12s}  unit")
    for r in report["results"]:
        note = f"  ({r['note']})" if r["note"] else ""
        print(f"{r['benchmark']:10s} {r['name']:24s} {r['value']:12.4g}  {r['unit']}{note}")


if __name__ == "__main__":
    main()
