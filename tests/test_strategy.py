"""Scale-out with tf.distribute: a mirrored step over two CPU devices is a single-device step.

The two logical CPUs must be configured before TensorFlow initialises, so everything that needs them
runs in a fresh interpreter (tests/strategy_script.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simgan_tf.config import make_config
from simgan_tf.distribute import check_batch, make_strategy
from simgan_tf.errors import SimGANError
from simgan_tf.train import build_model, main

SCRIPT = Path(__file__).with_name("strategy_script.py")


def _script(*args: str) -> tuple[subprocess.CompletedProcess, object]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return proc, json.loads(results[-1]) if results else None


def test_mirrored_step_matches_single_device_step():
    """One pretrain_refiner step then one adversarial step, each through fit(), on the same global
    batch of 8: on one device, and mirrored over two CPU devices (4 images each)."""
    _, result = _script("step")
    assert result["replicas"] == 2
    for phase, r in result["phases"].items():
        # The weights moved far more than the tolerance, so a mis-scaled loss (each replica's
        # gradient summed unscaled, twice the update) would show as a gap the size of the move.
        assert r["weight_moved"] > 0.05, phase
        assert r["weight_gap"] < 1e-5, (phase, r)
        single, mirrored = r["losses"]["single"], r["losses"]["mirrored"]
        assert set(single) == set(mirrored)
        # r_spread is a spread across each replica's batch (4 images, not 8): not the same figure.
        # The refined-half metrics judge the first half of each replica's part (history.py), other
        # images than one device's first half.
        per_replica = {"r_spread", "d_loss_refined", "d_acc_refined", "d_acc_history"}
        for name in set(single) - per_replica:
            assert mirrored[name] == pytest.approx(single[name], rel=1e-5, abs=1e-6), (phase, name)
    assert set(result["phases"]["adversarial"]["losses"]["single"]) > {"r_adv", "d_loss_real"}
    # The buffer after one discriminator update, buffer empty before it (so both mixed only current
    # images, the same 8 in all): both hold 4 images and counted one step per step (not per
    # replica); the mirrored buffer holds the first half of each replica's batch (global images
    # 0, 1, 4, 5), gathered, identical on both devices.
    buffer = result["buffer"]
    assert buffer["count"] == [4, 4] and buffer["step"] == [2, 2]
    assert buffer["single_gap"] < 1e-6 and buffer["mirrored_gap"] < 1e-6
    assert buffer["copies_gap"] == 0.0
    # From a full buffer, identical on both: the replicas draw different old images, and together
    # exactly the ones one device draws (one random stream, split); each replica keeps its own
    # current half.
    mix = result["mix"]
    assert mix["old_gap"] == 0.0 and mix["current_gap"] == 0.0
    assert mix["replicas_gap"] > 0.1


def test_mirrored_training_cli_end_to_end(pair, tmp_path):
    out = tmp_path / "run"
    args = [
        "--preset", "smoke", "--strategy", "mirrored", "--synthetic", str(pair[0]),
        "--real", str(pair[1]), "--out", str(out), "--verbose", "0", "--steps", "2",
        "--pretrain-refiner-steps", "1", "--pretrain-discriminator-steps", "0", "--log-every", "2",
    ]  # fmt: skip
    proc, _ = _script("train", *args)
    assert "devices: mirrored strategy, 2 replica(s) of batch 4" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["devices"]["replicas"] == 2
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [["1", "pretrain_refiner"], ["3", "adversarial"]]
    assert (out / "refiner.keras").stat().st_size > 0
    # A checkpoint written under the mirrored strategy loads on one device.
    model = build_model(make_config("smoke"))
    model.load_weights(sorted((out / "checkpoints").glob("step_*.weights.h5"))[-1])
    assert int(model.step.numpy()) == 3 and int(model.image_history.count.numpy()) == 8


def test_strategy_errors_are_one_line(pair, tmp_path):
    base = ["--preset", "smoke", "--synthetic", str(pair[0]), "--real", str(pair[1])]
    runs = [
        [*base, "--strategy", "mirrored", "--batch-size", "9", "--out", str(tmp_path / "a")],
        [*base, "--strategy", "mirrored", "--batch-size", "2", "--out", str(tmp_path / "b")],
        [*base, "--strategy", "tpu", "--out", str(tmp_path / "c")],
    ]
    proc, codes = _script("errors", json.dumps(runs))
    assert codes == [2, 2, 2]
    runs_err = proc.stderr.split("--- end of run")
    messages = [
        "error: --batch-size 9 does not split over 2 replicas",
        "error: --batch-size 2 does not split over 2 replicas",
        "error: no TPU available for --strategy tpu",
    ]
    for err, message in zip(runs_err, messages, strict=False):
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(message), err[-1500:]
        assert "Traceback" not in err
    # Refused before anything was written.
    assert not any((tmp_path / name).exists() for name in "abc")


def test_unknown_strategy_and_xla_under_replicas_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--preset", "smoke", "--strategy", "bogus"])
    assert e.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SimGANError, match="unknown --strategy 'bogus'; expected one of default"):
        make_config("smoke", strategy="bogus")  # as from a hand-edited config.json
    with pytest.raises(SimGANError, match="--jit-compile works with --strategy default only"):
        make_config("smoke", strategy="mirrored", jit_compile=True)
    with pytest.raises(SimGANError, match="unknown strategy"):
        make_strategy("bogus")


@pytest.mark.parametrize(
    "batch, replicas, ok", [(8, 1, True), (8, 2, True), (8, 4, True), (9, 2, False), (8, 8, False)]
)
def test_check_batch(batch, replicas, ok):
    if ok:
        check_batch(batch, replicas)
    else:
        with pytest.raises(SimGANError, match=f"--batch-size {batch} does not split"):
            check_batch(batch, replicas)


def test_malformed_tf_config_is_one_line(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(SimGANError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": ["w0"]}')
    with pytest.raises(SimGANError, match="TF_CONFIG must hold"):
        make_strategy("multiworker")
