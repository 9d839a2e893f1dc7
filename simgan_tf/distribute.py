"""Which devices train, and how: the tf.distribute strategy for a name, the batch split it implies,
and the speed settings the hardware suggests.

`--strategy` names one of STRATEGIES. The model is created and compiled under the strategy's scope
(`train.build_model`), after which Keras runs each `fit()` step on every replica. The global batch is
`--batch-size`; each replica gets batch / replicas images of every group. How the losses are scaled
and how the history buffer behaves under replicas: `simgan.py` and `history.py`.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from simgan_tf.config import STRATEGIES, Config
from simgan_tf.errors import SimGANError


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`; a SimGANError (one line) when it cannot be had here.

    default: TensorFlow's default (one device). mirrored: every local GPU, else every logical CPU
    (`split_cpu`). multiworker: MultiWorkerMirroredStrategy, its cluster from $TF_CONFIG (none: this
    machine alone). tpu: the TPU named by $TPU_NAME / Colab, else the local TPU VM's.
    """
    if name not in STRATEGIES:
        raise SimGANError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        try:
            return tf.distribute.MirroredStrategy([d.name for d in devices])
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise SimGANError(f"cannot create the mirrored strategy: {_first_line(e)}") from None
    if name == "multiworker":
        _check_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise SimGANError(f"cannot create the multiworker strategy: {_first_line(e)}") from None
    return _tpu_strategy()


def _tpu_strategy() -> tf.distribute.Strategy:
    resolver_class = tf.distribute.cluster_resolver.TPUClusterResolver
    try:
        try:
            resolver = resolver_class()  # a named or Colab TPU ($TPU_NAME, $COLAB_TPU_ADDR)
            tf.config.experimental_connect_to_cluster(resolver)
        except ValueError:  # "Please provide a TPU Name": try the TPU VM's own chips
            resolver = resolver_class(tpu="local")
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    # The TPU stack reports a missing TPU as ValueError, NotFoundError or others by version: any
    # failure here means "no usable TPU", which is the one line the user needs.
    except Exception as e:
        raise SimGANError(f"no TPU available for --strategy tpu: {_first_line(e)}") from None


def _check_tf_config() -> None:
    """Refuse a malformed $TF_CONFIG with its reason (TensorFlow's own error is a JSON traceback)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return  # no cluster: MultiWorkerMirroredStrategy runs this machine alone
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise SimGANError(f"TF_CONFIG is not valid JSON ({e})") from None
    cluster, task = (spec.get("cluster"), spec.get("task")) if isinstance(spec, dict) else (0, 0)
    if not isinstance(cluster, dict) or not isinstance(task, dict) or "type" not in task:
        raise SimGANError(
            'TF_CONFIG must hold {"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}'
        )


def _first_line(e: BaseException) -> str:
    """The first sentence of an error: TensorFlow's go on with node attributes and stack traces."""
    text = str(e).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(e).__name__


def check_batch(batch_size: int, replicas: int) -> None:
    """Refuse a global batch that does not split into equal per-replica batches of 2 or more."""
    if batch_size % replicas or batch_size // replicas < 2:
        raise SimGANError(
            f"--batch-size {batch_size} does not split over {replicas} replicas: it must be a "
            f"multiple of {replicas} with at least 2 images per replica (half current, half history)"
        )


def distribute_steps(
    dataset: tf.data.Dataset, strategy: tf.distribute.Strategy
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """The training stream, each step's batches split along the batch axis among the replicas.

    Why not let fit() do it: Keras hands a plain dataset to `experimental_distribute_dataset`, which
    splits axis 0, and our elements are (groups, batch, H, W, 1): the replicas would get different
    groups (with K_d = 1, one of two replicas no real batch at all) instead of parts of each batch.
    Replica r gets images [r * b, (r + 1) * b) of every group, b = batch / replicas. One replica: the
    dataset unchanged.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return dataset

    def split(x):
        groups, batch, *image = x.shape
        parts = tf.reshape(x, (groups, replicas, batch // replicas, *image))
        return tf.transpose(parts, (1, 0, *range(2, len(parts.shape))))

    # R consecutive elements per step, one per replica: tf.distribute hands them out in turn.
    per_replica = dataset.map(lambda *step: tuple(split(x) for x in step)).unbatch()

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        ds = per_replica
        if context.num_input_pipelines > 1:
            # Every worker computes the same stream (one seed) and keeps its replicas' parts.
            ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        return ds.prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def split_cpu(devices: int) -> None:
    """Make the CPU `devices` logical devices, so that `mirrored` can be tried without GPUs.

    Must run before TensorFlow initialises its devices (before any op or strategy).
    """
    if devices < 1:
        raise SimGANError(f"the CPU cannot be split into {devices} devices")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices
        )
    except RuntimeError:
        raise SimGANError(
            "cannot split the CPU after TensorFlow has initialised its devices"
        ) from None


def default_cpu_threads() -> int:
    """The intra-op thread count TensorFlow picks when told none: TF_NUM_INTRAOP_THREADS if set,
    else one per core this process may run on (its CPU affinity, as `taskset` sets it)."""
    try:
        return max(int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")), 0) or _cores()
    except ValueError:
        return _cores()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_cpu_threads(threads: int | None) -> int:
    """Run every op's CPU work on `threads` threads (None: default_cpu_threads()); returns the count.

    A CPU op splits its sums over these threads, so the count changes a run's last bits: with the
    same seed, one thread and two train different runs (measured: docs/RESULTS.md, "The same seed
    in another session"). Must be set before TensorFlow starts; once it has, only the count in
    effect is accepted.
    """
    threads = default_cpu_threads() if threads is None else int(threads)
    if threads < 1:
        raise SimGANError(f"--cpu-threads must be >= 1, got {threads}")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        running = cpu_threads_in_effect()
        if running != threads:
            raise SimGANError(
                f"--cpu-threads {threads}: TensorFlow already runs with {running} threads in this "
                "process; start a new one"
            ) from None
    return threads


def cpu_threads_in_effect() -> int:
    """The intra-op thread count this process's ops run with (set_cpu_threads's, or the default)."""
    return tf.config.threading.get_intra_op_parallelism_threads() or default_cpu_threads()


# /proc/cpuinfo flags of x86 CPUs that multiply bfloat16 natively; oneDNN, under TensorFlow's CPU
# kernels, uses them. Elsewhere bfloat16 is emulated, and slower than float32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16_cpu(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512_BF16 or AMX-BF16); False where unknown."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:  # not Linux: no native bfloat16 is assumed
        return False
    return any(flag in flags.split() for flag in BF16_CPU_FLAGS)


def speed_defaults() -> dict:
    """XLA and mixed precision where they help: XLA on any GPU; bfloat16 on a GPU that runs it
    natively (compute capability 8.0 or newer: A100, H100, RTX 30xx on), and on a CPU that does
    (AVX512_BF16 or AMX: 1.6 to 1.75 times float32's step, same quality over three seeds;
    docs/BENCHMARKS.md, docs/RESULTS.md). XLA stays off on CPUs: it helped at batch 32 but hurt at
    batch 128 there. float16, the half type of older GPUs (V100, T4), is offered but not on by
    default: unmeasured here.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {
            "jit_compile": False,
            "mixed_precision": native_bf16_cpu(),
            "mixed_precision_dtype": "bfloat16",
        }
    capabilities = [
        tf.config.experimental.get_device_details(g).get("compute_capability") or (0, 0)
        for g in gpus
    ]
    native_bf16 = min(capabilities) >= (8, 0)
    return {
        "jit_compile": True,
        "mixed_precision": native_bf16,
        "mixed_precision_dtype": "bfloat16" if native_bf16 else "float16",
    }


def resolve_speed(cfg: Config) -> dict:
    """cfg's jit_compile, mixed_precision and mixed_precision_dtype, each None replaced by
    `speed_defaults()`'s choice.

    XLA stays off under any strategy but the default, and with --deterministic (Config.validate
    refuses either combination when asked for explicitly): Keras wraps the whole `strategy.run`
    step in one XLA function, which fails across devices (what Keras's own jit_compile="auto" does
    under tf.distribute too), and drops XLA under op determinism.
    """
    defaults = speed_defaults()
    # Keras compiles without XLA under op determinism (XLA promises no determinism); say so here
    # rather than report an XLA the run does not use.
    defaults["jit_compile"] &= cfg.strategy == "default" and not cfg.deterministic
    return {k: v if (v := getattr(cfg, k)) is not None else defaults[k] for k in defaults}
