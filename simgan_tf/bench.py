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
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from simgan_tf import data
from simgan_tf.config import STRATEGIES
from simgan_tf.errors import SimGANError, cli


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
    old_env, old_min = os.environ.get("SIMGAN_CACHE_DIR"), data.CACHE_MIN_IMAGES
    with tempfile.TemporaryDirectory(prefix="simgan-bench-") as tmp:
        path = os.path.join(tmp, "gaze.h5")
        # Keep the cache inside the temp folder, and build it whatever the size asked for.
        os.environ["SIMGAN_CACHE_DIR"] = tmp
        data.CACHE_MIN_IMAGES = 0
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
            data.CACHE_MIN_IMAGES = old_min
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
    p.add_argument("--mixed-precision", action="store_true", default=None, help="bfloat16 compute")
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy of train-step and fit; --batch-size is the global batch",
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
        strategy=args.strategy,
        log_every=args.steps,
        sample_every=10**9,
        checkpoint_every=10**9,
    )


def _replicas(model) -> str:
    strategy = model.distribute_strategy
    return f"{strategy.num_replicas_in_sync} replica(s), {type(strategy).__name__}"


def _time_steps(run_step, steps: int) -> float:
    """Seconds per step after two warm-up steps (tracing and compilation excluded)."""
    for _ in range(2):
        run_step()
    t0 = time.perf_counter()
    for _ in range(steps):
        run_step()
    return (time.perf_counter() - t0) / steps


@register(
    "train-step",
    "the bare compiled step: K_g refiner + K_d discriminator updates with the buffer",
    _model_options,
)
def bench_train_step(args: argparse.Namespace) -> list[Figure]:
    import tensorflow as tf

    from simgan_tf.distribute import distribute_steps
    from simgan_tf.train import build_model

    cfg = _bench_config(args)
    model = build_model(cfg)
    model.set_phase("adversarial")
    b, g = cfg.batch_size, cfg.kg + cfg.kd
    batch = (
        tf.random.uniform((g, b, *cfg.image_shape), -1, 1),
        tf.random.uniform((cfg.kd, b, *cfg.image_shape), -1, 1),
    )
    it = iter(
        distribute_steps(tf.data.Dataset.from_tensors(batch).repeat(), model.distribute_strategy)
    )
    model.make_train_function()
    step = model.train_function
    dt = _time_steps(lambda: float(step(it)["r_l1"]), args.steps)
    refined = b * g  # every update refines a batch: K_g for the refiner, K_d for the discriminator
    return [
        Figure(
            "train_step_ms",
            dt * 1000,
            "ms/step",
            f"batch {b}, K_g {cfg.kg}, K_d {cfg.kd}, {cfg.preset} networks, {_replicas(model)}",
        ),
        Figure("train_refined_per_s", refined / dt, "images/s", "refined images per second"),
    ]


@register(
    "fit",
    "the same step through fit() with a training run's callbacks and input pipeline",
)
def bench_fit(args: argparse.Namespace) -> list[Figure]:
    from simgan_tf.callbacks import Checkpoints, FailureMonitor, NanGuard, RunLog, SampleGrids
    from simgan_tf.distribute import distribute_steps
    from simgan_tf.train import build_model

    cfg = _bench_config(args)
    model = build_model(cfg)
    model.set_phase("adversarial")
    b, g = cfg.batch_size, cfg.kg + cfg.kd
    synthetic, real = _random_eyes(max(4 * b * g, 2000), 0), _random_eyes(max(4 * b, 2000), 1)
    # The run's warnings (FailureMonitor prints them) go to stderr: stdout stays one JSON object.
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):
        guard = NanGuard()
        callbacks = [
            guard,
            RunLog(out),
            SampleGrids(out, synthetic[:8], real[:8], cfg.sample_every, guard),
            FailureMonitor(out),
            Checkpoints(out, cfg.checkpoint_every, guard=guard),
        ]
        ds = distribute_steps(
            data.training_dataset(synthetic, real, b, g, cfg.kd, seed=0), model.distribute_strategy
        )
        model.fit(ds, epochs=1, steps_per_epoch=2, callbacks=callbacks, verbose=0, shuffle=False)
        t0 = time.perf_counter()
        model.fit(
            ds,
            epochs=2,
            steps_per_epoch=max(1, args.steps // 2),
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )
        dt = (time.perf_counter() - t0) / (2 * max(1, args.steps // 2))
    return [
        Figure(
            "fit_step_ms",
            dt * 1000,
            "ms/step",
            f"incl. callbacks (2 log intervals) and tf.data, {_replicas(model)}",
        ),
        Figure("fit_refined_per_s", b * g / dt, "images/s", "refined images per second"),
    ]


@register("refine", "refiner inference (images/s)")
def bench_refine(args: argparse.Namespace) -> list[Figure]:
    import tensorflow as tf

    from simgan_tf.distribute import resolve_speed
    from simgan_tf.train import build_model

    cfg = _bench_config(args)
    refiner = build_model(cfg).refiner
    x = tf.random.uniform((args.batch_size, *cfg.image_shape), -1, 1)
    jit = resolve_speed(cfg)["jit_compile"]
    infer = tf.function(lambda v: refiner(v, training=False), jit_compile=jit)
    dt = _time_steps(lambda: infer(x).numpy(), args.steps)
    return [
        Figure("refine_images_per_s", args.batch_size / dt, "images/s", f"batch {args.batch_size}")
    ]


@register("simulator", "the built-in eye simulator (images/s, one process)")
def bench_simulator(args: argparse.Namespace) -> list[Figure]:
    from simgan_tf.simulator import render

    figures = []
    for domain in ("synthetic", "target"):
        render(200, domain, seed=0)
        n, t0 = 2000, time.perf_counter()
        render(n, domain, seed=1)
        figures.append(
            Figure(f"simulator_{domain}_per_s", n / (time.perf_counter() - t0), "images/s")
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


def run_benchmarks(args: argparse.Namespace) -> dict:
    """Run the selected benchmarks; one JSON-ready dict of the machine and every figure."""
    results = []
    for name in args.only or list(BENCHMARKS):
        if not args.json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        for fig in BENCHMARKS[name].run(args):
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
