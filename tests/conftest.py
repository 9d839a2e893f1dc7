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
