"""Shared test fixtures. Everything a test needs is made at test time; the shared real set is optional."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = Path(
    os.environ.get("SIMGAN_SHARED_REAL", REPO.parent / "shared" / "data" / "real_gaze_mpiigaze.h5")
)


@pytest.fixture
def shared_real() -> Path:
    """The 2,500 real MPIIGaze patches beside the checkout; tests using it skip where it is absent."""
    if not SHARED_REAL.exists():
        pytest.skip(f"{SHARED_REAL} not present")
    return SHARED_REAL


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """A small training pair in the Kaggle layout: dark labelled synthetic eyes, bright real ones."""
    from simgan_tf.data import save_eyes

    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    synthetic = rng.integers(60, 120, (96, 35, 55), dtype=np.uint8)
    real = rng.integers(100, 220, (96, 35, 55), dtype=np.uint8)
    save_eyes(d / "gaze.h5", synthetic, look_vec=np.tile([0.0, 0.0, -1.0], (96, 1)))
    save_eyes(d / "real_gaze.h5", real)
    return d / "gaze.h5", d / "real_gaze.h5"
