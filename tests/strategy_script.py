"""Run by tests/test_strategy.py in a fresh interpreter, with the CPU split into two logical devices.

The split must be made before TensorFlow initialises its devices, which pytest's workers have done
long before a test runs. Usage, each printing one `RESULT <json>` line where it has a result:

    python tests/strategy_script.py step           # a mirrored step against a single-device step
    python tests/strategy_script.py errors JSON    # train.main on each argument list: exit codes
    python tests/strategy_script.py train ARGS...  # exactly `python -m simgan_tf.train ARGS...`
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file, from anywhere

from simgan_tf.distribute import split_cpu  # noqa: E402

split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from simgan_tf.config import make_config  # noqa: E402
from simgan_tf.distribute import distribute_steps, make_strategy  # noqa: E402
from simgan_tf.train import build_model  # noqa: E402


def _weights(model) -> list[np.ndarray]:
    return [w.numpy() for w in model.refiner.weights + model.discriminator.weights]


def _gap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def compare_step() -> dict:
    """One pretrain_refiner step then one adversarial step, on one device and on two replicas."""
    # SGD, not Adam: Adam's first update is about lr * sign(gradient) whatever the gradient's scale,
    # so it would hide a wrongly scaled loss. A large rate makes the update large against round-off.
    # float32 pinned: the two are compared to 1e-7, float32's round-off.
    cfg = make_config(
        "smoke",
        batch_size=8,
        buffer_size=32,
        optimizer="sgd",
        learning_rate=0.5,
        mixed_precision=False,
    )
    keras.utils.set_random_seed(0)
    single = build_model(cfg, make_strategy("default"))
    mirrored_strategy = make_strategy("mirrored")
    mirrored = build_model(cfg, mirrored_strategy)
    mirrored.set_weights(single.get_weights())  # networks, buffer, step and random state
    rng = np.random.default_rng(0)
    batch = (
        tf.constant(rng.uniform(-1, 1, (cfg.kg + cfg.kd, 8, 35, 55, 1)), tf.float32),
        tf.constant(rng.uniform(-0.5, 1, (cfg.kd, 8, 35, 55, 1)), tf.float32),
    )
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    result = {"replicas": mirrored_strategy.num_replicas_in_sync, "phases": {}}
    start = _weights(single)
    for phase in ("pretrain_refiner", "adversarial"):
        losses = {}
        for name, model, data in (
            ("single", single, ds),
            ("mirrored", mirrored, distribute_steps(ds, mirrored_strategy)),
        ):
            model.set_phase(phase)
            history = model.fit(data, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
            losses[name] = {k: float(v[0]) for k, v in history.history.items()}
        moved = _gap(start, _weights(single))
        start = _weights(single)
        result["phases"][phase] = {
            "losses": losses,
            "weight_gap": _gap(_weights(single), _weights(mirrored)),
            "weight_moved": moved,
        }
    # The buffer after one discriminator update: half of each replica's batch, gathered, on both
    # replicas' copies; one device pushes the first half of the global batch.
    d_group = batch[0][cfg.kg]
    refined_single = single.refiner(d_group).numpy()
    refined_mirrored = mirrored.refiner(d_group).numpy()
    copies = [v.numpy() for v in mirrored.image_history.images.value.values]
    buffers = (single.image_history, mirrored.image_history)
    result["buffer"] = {
        "count": [int(b.count.numpy()) for b in buffers],
        "step": [int(single.step.numpy()), int(mirrored.step.numpy())],
        "single_gap": _gap([buffers[0].images.numpy()[:4]], [refined_single[:4]]),
        "mirrored_gap": _gap([copies[0][:4]], [refined_mirrored[[0, 1, 4, 5]]]),
        "copies_gap": _gap(copies[:1], copies[1:]),
    }
    result["mix"] = compare_mix(single.image_history, mirrored.image_history, mirrored_strategy)
    return result


def compare_mix(single, mirrored, strategy) -> dict:
    """History draws from a full buffer, the same on both: the replicas' old halves, in replica
    order, against one device's old half (the same random stream, split)."""
    rng = np.random.default_rng(1)
    pool = rng.uniform(-1, 1, (single.capacity, 35, 55, 1)).astype(np.float32)
    for history in (single, mirrored):
        history.images.assign(pool)
        history.count.assign(single.capacity)
    mirrored.rng.assign(single.rng.numpy())
    current = tf.constant(rng.uniform(-1, 1, (8, 35, 55, 1)), tf.float32)
    old = single.mix(current).numpy()[4:]
    parts = strategy.experimental_distribute_values_from_function(
        lambda context: current[4 * context.replica_id_in_sync_group :][:4]
    )
    mixed = tf.function(lambda x: strategy.run(mirrored.mix, args=(x,)))(parts)
    replica_old = [m.numpy()[2:] for m in mixed.values]
    return {
        "old_gap": _gap([np.concatenate(replica_old)], [old]),
        "replicas_gap": _gap(replica_old[:1], replica_old[1:]),
        "current_gap": _gap([mixed.values[1].numpy()[:2]], [current.numpy()[4:6]]),
    }


def exit_codes(runs: list[list[str]]) -> list[int]:
    """The exit code of `simgan_tf.train.main` for each argument list (errors go to stderr)."""
    from simgan_tf.train import main

    codes = []
    for argv in runs:
        try:
            main(argv)
            codes.append(0)
        except SystemExit as e:
            codes.append(e.code)
        print(f"--- end of run {len(codes)}", file=sys.stderr, flush=True)
    return codes


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "step":
        print("RESULT " + json.dumps(compare_step()))
    elif mode == "errors":
        print("RESULT " + json.dumps(exit_codes(json.loads(rest[0]))))
    else:  # train: exactly `python -m simgan_tf.train ARGS...`
        sys.argv = ["simgan_tf.train", *rest]
        runpy.run_module("simgan_tf.train", run_name="__main__", alter_sys=True)
