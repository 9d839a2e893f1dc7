"""The training CLI end to end: every output, repeatability, clear errors, failure warnings."""

import csv
import json
import subprocess
import sys

import keras
import pytest

from simgan_tf.callbacks import FailureMonitor
from simgan_tf.train import main


def _run(pair, out, *extra):
    args = [
        "--preset",
        "smoke",
        "--synthetic",
        str(pair[0]),
        "--real",
        str(pair[1]),
        "--out",
        str(out),
    ]
    return main([*args, "--verbose", "0", *extra])


def _rows(out):
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_cli_smoke_run_writes_every_output(pair, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simgan_tf.train", "--preset", "smoke", "--synthetic", str(pair[0]),
         "--real", str(pair[1]), "--out", str(out), "--verbose", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in (
        "config.json",
        "metrics.csv",
        "losses.png",
        "summary.json",
        "refiner.keras",
        "discriminator.keras",
    ):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "samples").glob("step_*.png"))) >= 3
    assert list((out / "checkpoints").glob("step_*.weights.h5"))
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "smoke" and config["synthetic"] == str(pair[0])
    rows = _rows(out)
    assert [r["phase"] for r in rows] == [
        "pretrain_refiner",
        "pretrain_discriminator",
        "adversarial",
        "adversarial",
    ]
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 12]
    assert all(float(r["d_loss_real"]) > 0 for r in rows[2:])
    refiner = keras.models.load_model(out / "refiner.keras")
    assert refiner.output_shape == (None, 35, 55, 1)
    keras.models.load_model(out / "discriminator.keras")
    assert "synthetic -> refined" in proc.stdout


def test_same_seed_gives_the_same_run(pair, tmp_path):
    _run(pair, tmp_path / "a", "--seed", "3")
    _run(pair, tmp_path / "b", "--seed", "3")
    _run(pair, tmp_path / "c", "--seed", "4")

    def metrics(run):
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in _rows(tmp_path / run)]

    assert metrics("a") == metrics("b")
    assert metrics("a") != metrics("c")


def test_existing_run_is_not_overwritten(pair, tmp_path, capsys):
    out = tmp_path / "run"
    _run(pair, out)
    before = (out / "metrics.csv").read_text()
    with pytest.raises(SystemExit) as e:
        _run(pair, out)
    assert e.value.code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "metrics.csv").read_text() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--synthetic", "/nonexistent/gaze.h5"], "no such file"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--buffer-size", "2", "--batch-size", "16"], "must hold at least half a batch"),
        (["--batch-size", "128", "--buffer-size", "512"], "fewer than one batch"),
    ],
)
def test_bad_input_gives_one_clear_line(pair, tmp_path, capsys, args, message):
    base = [
        "--preset",
        "smoke",
        "--synthetic",
        str(pair[0]),
        "--real",
        str(pair[1]),
        "--out",
        str(tmp_path / "r"),
    ]
    with pytest.raises(SystemExit) as e:
        main([*base, *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_failure_monitor_names_each_failure():
    monitor = FailureMonitor("unused")
    assert "collapse" in monitor.check("adversarial", {"r_spread": 0.05, "r_l1": 0.2})
    assert "no-op" in monitor.check("adversarial", {"r_spread": 1.0, "r_l1": 0.001})
    assert monitor.check("pretrain_refiner", {"r_spread": 0.05, "r_l1": 0.001}) == {}
    wins = {"r_spread": 1.0, "r_l1": 0.1, "d_acc_real": 0.999, "d_acc_refined": 0.998}
    assert set(monitor.check("adversarial", wins)) == {"discriminator-wins"}
    healthy = {"r_spread": 0.9, "r_l1": 0.05, "d_acc_real": 0.7, "d_acc_refined": 0.6}
    assert monitor.check("adversarial", healthy) == {}


def test_collapse_is_reported_with_its_step(pair, tmp_path, capsys):
    # A huge learning rate with no L1 anchor drives this tiny refiner to a constant image.
    _run(pair, tmp_path / "run", "--lambda-reg", "0", "--learning-rate", "0.5", "--steps", "30",
         "--log-every", "10")  # fmt: skip
    warnings = (tmp_path / "run" / "warnings.txt").read_text()
    assert "warning: step " in warnings
    assert "collapse" in warnings or "discriminator wins" in warnings
