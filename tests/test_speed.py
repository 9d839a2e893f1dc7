"""The GPU speed path on the CPU: bfloat16 mixed precision and XLA train as float32 does; benchmarks run.

A GPU turns both on by default (distribute.speed_defaults) and this project has none, so the same code
runs here on the CPU, which executes bfloat16 and XLA too, only not faster.
"""

import json
import math
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from simgan_tf import bench
from simgan_tf.config import make_config
from simgan_tf.simgan import DISCRIMINATOR_METRICS, REFINER_METRICS
from simgan_tf.train import build_model

# The continuous metrics: d_acc_* count logits on each side of 0, and a logit near 0 may change side
# under any round-off, so they may differ by a patch where the losses agree.
LOSSES = ("r_adv", "r_l1", "r_spread", "d_loss_real", "d_loss_refined")


@pytest.fixture(autouse=True)
def float32_policy():
    """build_model sets the global dtype policy: a test failing half-way must not leave bfloat16 to
    the next test in this pytest-xdist worker."""
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def no_op_determinism():
    """Keras turns XLA off, with only a warning, while op determinism is on, and a --deterministic
    run (tests/test_resume.py) leaves it on for the rest of its worker."""
    from tensorflow.python.framework import config as tf_config

    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was_on:
        tf_config.enable_op_determinism()


def _model(**speed):
    """A smoke-sized model; `speed` sets jit_compile, mixed_precision, mixed_precision_dtype."""
    keras.utils.set_random_seed(0)
    cfg = make_config("smoke", batch_size=4, buffer_size=16, **speed)
    return cfg, build_model(cfg)


def _batch(cfg) -> tuple[tf.Tensor, tf.Tensor]:
    """One step's (synthetic, real): (K_g + K_d, B, H, W, 1) and (K_d, B, H, W, 1), in [-1, 1]."""
    rng = np.random.default_rng(0)
    return tuple(
        tf.constant(rng.uniform(-1, 1, (groups, cfg.batch_size, *cfg.image_shape)), tf.float32)
        for groups in (cfg.kg + cfg.kd, cfg.kd)
    )


def _adversarial_steps(model, batch, steps: int = 1) -> dict[str, float]:
    """Run `steps` compiled adversarial steps on `batch`; the metrics, means over those steps."""
    model.set_phase("adversarial")
    model.make_train_function()
    it = iter(tf.data.Dataset.from_tensors(batch).repeat())
    for _ in range(steps):
        logs = model.train_function(it)
    return {name: float(value) for name, value in logs.items()}


def _same_start(source, target) -> None:
    """Networks, history buffer and fill, step and the buffer's random state, all copied; both
    optimizers are freshly built (zero moments) in either model."""
    target.set_weights(source.get_weights())


def _one_step_each(cfg, reference, other) -> tuple[dict[str, float], dict[str, float]]:
    """`other` starts from `reference`'s state; the losses of one step of each on the same batch."""
    _same_start(reference, other)
    batch = _batch(cfg)
    want = {k: v for k, v in _adversarial_steps(reference, batch).items() if k in LOSSES}
    got = {k: v for k, v in _adversarial_steps(other, batch).items() if k in LOSSES}
    assert set(want) == set(LOSSES)
    # Losses near 0 would pass any relative tolerance.
    assert min(abs(v) for v in want.values()) > 1e-2, want
    return want, got


def test_mixed_precision_computes_in_bfloat16_and_trains_float32_weights():
    cfg, model = _model(mixed_precision=True, jit_compile=False)
    x = tf.zeros((1, *cfg.image_shape))
    for net in (model.refiner, model.discriminator):
        layers = net.layers[1:]  # after the input layer
        outputs = keras.Model(net.inputs, [layer.output for layer in layers])([x])
        computed = {layer.name: out.dtype.name for layer, out in zip(layers, outputs, strict=True)}
        convs = [layer for layer in layers[:-1] if isinstance(layer, keras.layers.Conv2D)]
        assert convs, net.name
        assert {c.name: computed[c.name] for c in convs} == {c.name: "bfloat16" for c in convs}
        # The refined images enter the L1 term, the logits the cross-entropy: both at full precision.
        assert computed[layers[-1].name] == "float32", net.name
        assert net(x).dtype.name == "float32", net.name
        assert {w.path: w.dtype for w in net.weights} == {w.path: "float32" for w in net.weights}

    nets = (model.refiner, model.discriminator)
    before = [[w.numpy() for w in net.weights] for net in nets]
    metrics = _adversarial_steps(model, _batch(cfg), steps=3)
    assert set(metrics) == {*REFINER_METRICS, *DISCRIMINATOR_METRICS}
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    # The bfloat16 gradients reach both networks' float32 weights, and leave them finite.
    for net, start in zip(nets, before, strict=True):
        now = [w.numpy() for w in net.weights]
        assert all(np.isfinite(w).all() for w in now), net.name
        assert any(not np.array_equal(a, b) for a, b in zip(start, now, strict=True)), net.name
    assert int(model.step.numpy()) == 3


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_mixed_precision_step_matches_float32_step(half):
    cfg, exact = _model(mixed_precision=False, jit_compile=False)
    _, mixed = _model(mixed_precision=True, mixed_precision_dtype=half, jit_compile=False)
    # float16 underflows small gradients without loss scaling; bfloat16 has float32's range.
    scaled = [
        isinstance(o, keras.optimizers.LossScaleOptimizer)
        for o in (mixed.refiner_optimizer, mixed.discriminator_optimizer)
    ]
    assert scaled == [half == "float16"] * 2
    assert mixed.refiner.layers[1].compute_dtype == half
    want, got = _one_step_each(cfg, exact, mixed)
    # bfloat16 keeps 8 significant bits (each value within 0.4%), but the losses are means over
    # thousands of values, which averages the rounding out: gaps of 0.03% (oneDNN kernels) to 0.1%
    # (TF_ENABLE_ONEDNN_OPTS=0) were measured; float16 (11 bits) comes closer. 0.5% leaves room,
    # and a 2% change in the weights of one refiner layer still fails it.
    assert got == pytest.approx(want, rel=5e-3, abs=0)
    # Identical to the last bit would mean the mixed model never computed in half precision.
    assert got != want


def test_xla_step_matches_plain_step(no_op_determinism):
    cfg, plain = _model(mixed_precision=False, jit_compile=False)
    _, xla = _model(mixed_precision=False, jit_compile=True)
    # Keras falls back to no XLA (a warning) for a model it thinks cannot be compiled.
    assert xla.jit_compile is True and plain.jit_compile is False
    # One step from an empty buffer: the history half is current images, no random draws. Those
    # would differ: tf.random.stateless_uniform gives other numbers under XLA for the same seed.
    want, got = _one_step_each(cfg, plain, xla)
    # Both float32: XLA only fuses and reorders, so the gap is float32 round-off.
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_gpu_defaults_give_way_to_strategy_determinism_and_flags(monkeypatch):
    from simgan_tf import distribute
    from simgan_tf.errors import SimGANError

    # What speed_defaults says on an older GPU (a T4): XLA on, float16 chosen but mixed precision off.
    gpu = {"jit_compile": True, "mixed_precision": False, "mixed_precision_dtype": "float16"}
    monkeypatch.setattr(distribute, "speed_defaults", lambda: dict(gpu))
    assert distribute.resolve_speed(make_config("smoke")) == gpu
    # Keras drops XLA under op determinism and across replicas: the run must not claim it.
    assert not distribute.resolve_speed(make_config("smoke", deterministic=True))["jit_compile"]
    assert not distribute.resolve_speed(make_config("smoke", strategy="mirrored"))["jit_compile"]
    chosen = distribute.resolve_speed(
        make_config("smoke", mixed_precision=True, mixed_precision_dtype="bfloat16")
    )
    assert chosen["mixed_precision"] and chosen["mixed_precision_dtype"] == "bfloat16"
    with pytest.raises(SimGANError, match="--deterministic turns XLA off"):
        make_config("smoke", deterministic=True, jit_compile=True)
    with pytest.raises(SimGANError, match="--mixed-precision-dtype must be bfloat16 or float16"):
        make_config("smoke", mixed_precision_dtype="float8")


def test_native_bfloat16_is_read_off_the_cpu_flags(tmp_path):
    from simgan_tf.distribute import native_bf16_cpu

    def cpu(flags: str) -> str:
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\n")
        return str(path)

    assert native_bf16_cpu(cpu("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"))
    assert native_bf16_cpu(cpu("fpu avx2 amx_tile amx_bf16"))
    # AVX-512 alone, or a flag that merely contains the name, emulates bfloat16: not native.
    assert not native_bf16_cpu(cpu("fpu avx2 avx512f avx512_vnni xavx512_bf16"))
    assert not native_bf16_cpu(str(tmp_path / "missing"))  # not Linux


def test_a_mixed_model_leaves_the_global_policy_as_it_was():
    _, model = _model(mixed_precision=True, jit_compile=False)
    assert model.refiner.layers[1].compute_dtype == "bfloat16"
    # What is built next (a notebook's gaze estimator, after training) computes in float32.
    assert keras.mixed_precision.global_policy().name == "float32"
    assert keras.layers.Dense(2).compute_dtype == "float32"


def test_a_failed_mixed_build_leaves_the_global_policy_as_it_was(monkeypatch):
    from simgan_tf import models

    def broken(*args, **kwargs):
        raise MemoryError("out of memory while building")

    monkeypatch.setattr(models, "build_refiner", broken)
    with pytest.raises(MemoryError):
        _model(mixed_precision=True, jit_compile=False)
    assert keras.mixed_precision.global_policy().name == "float32"


BENCHMARKS = ("train-step", "fit", "refine", "refine-file", "simulator")


def test_speed_benchmarks_report_finite_figures(capsys):
    # bench.main is wrapped by errors.cli: a SimGANError would raise SystemExit(2) here.
    bench.main(
        [
            "--only",
            *BENCHMARKS,
            "--preset",
            "smoke",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--refine-images",
            "16",
            "--scene-profile",
            "columbia",
            "--json",
        ]  # fmt: skip
    )
    report = json.loads(capsys.readouterr().out)  # stdout must hold the JSON object alone
    figures: dict[str, dict[str, float]] = {}
    for r in report["results"]:
        figures.setdefault(r["benchmark"], {})[r["name"]] = r["value"]
    assert set(figures) == set(BENCHMARKS)
    bad = {(b, n): v for b, f in figures.items() for n, v in f.items() if not math.isfinite(v)}
    assert not bad
    for name, f in figures.items():
        assert f["peak_rss_mb"] > 0, name
    fit = figures["fit"]
    assert {"bare_step_ms", "fit_step_ms", "fit_overhead_pct"} <= set(fit)
    assert fit["bare_step_ms"] > 0 and fit["fit_step_ms"] > 0
    assert figures["train-step"]["train_refined_per_s"] > 0
    notes = {r["name"]: r["note"] for r in report["results"] if r["benchmark"] == "simulator"}
    assert notes["simulator_synthetic_per_s"] == "columbia scenes"
    assert figures["refine"]["refine_images_per_s"] > 0
    assert figures["refine-file"]["refine_file_images_per_s"] > 0


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_the_pytorch_yardstick_has_the_keras_networks(preset):
    # bench vs-torch compares speeds: a network that drifted from models.py would make it unfair.
    torch = pytest.importorskip("torch")
    from simgan_tf.bench_torch import TorchSimGAN

    cfg = make_config(preset, batch_size=4, buffer_size=8)
    model, yardstick = build_model(cfg), TorchSimGAN(cfg)
    for keras_net, torch_net in [
        (model.refiner, yardstick.refiner),
        (model.discriminator, yardstick.discriminator),
    ]:
        assert sum(p.numel() for p in torch_net.parameters()) == keras_net.count_params()
        out = torch_net(torch.zeros(1, 1, *cfg.image_shape[:2]))
        assert tuple(out.shape[2:]) == keras_net.output_shape[1:3]
    g = cfg.kg + cfg.kd
    synthetic = torch.rand((g, 4, 1, *cfg.image_shape[:2])) * 2 - 1
    losses = [yardstick.step(synthetic, synthetic[:1] * 0 + 0.5) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses) and yardstick.count == 6  # 3 pushes of 2


def test_the_pytorch_yardstick_without_torch_says_how_to_get_it(monkeypatch):
    from simgan_tf import bench_torch
    from simgan_tf.errors import SimGANError

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(SimGANError, match="pip install torch"):
        bench_torch.TorchSimGAN(make_config("smoke"))
