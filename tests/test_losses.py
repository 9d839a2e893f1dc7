import math

import numpy as np
import pytest

from simgan_tf.losses import (
    gaze_consistency_loss,
    local_adversarial_loss,
    patch_accuracy,
    self_regularization_loss,
)


def test_adversarial_loss_against_hand_computed_values():
    logits = np.array([[[[0.0], [2.0]], [[-1.0], [3.0]]]], dtype="float32")  # one 2 x 2 patch map
    z = [0.0, 2.0, -1.0, 3.0]
    real = sum(math.log(1 + math.exp(-v)) for v in z) / 4
    fake = sum(math.log(1 + math.exp(v)) for v in z) / 4
    assert float(local_adversarial_loss(logits, real=True)) == pytest.approx(real, rel=1e-6)
    assert float(local_adversarial_loss(logits, real=False)) == pytest.approx(fake, rel=1e-6)


def test_adversarial_loss_is_a_mean_over_batch_and_patches():
    one = np.full((1, 9, 14, 1), 0.7, dtype="float32")
    many = np.full((16, 9, 14, 1), 0.7, dtype="float32")
    assert float(local_adversarial_loss(one, True)) == pytest.approx(
        float(local_adversarial_loss(many, True))
    )
    assert float(local_adversarial_loss(one, True)) == pytest.approx(
        math.log(1 + math.exp(-0.7)), rel=1e-6
    )


def test_adversarial_loss_is_stable_for_large_logits():
    big = np.array([[[[200.0], [-200.0]]]], dtype="float32")
    assert float(local_adversarial_loss(big, real=True)) == pytest.approx(100.0, rel=1e-5)
    assert np.isfinite(float(local_adversarial_loss(big, real=False)))


def test_self_regularization_is_mean_absolute_difference():
    a = np.zeros((2, 2, 2, 1), dtype="float32")
    b = np.array([1, -1, 0.5, 0, 0, 0, 0, 2], dtype="float32").reshape(2, 2, 2, 1)
    assert float(self_regularization_loss(b, a)) == pytest.approx(4.5 / 8)
    # Independent of batch size: the same per-image difference repeated gives the same loss.
    assert float(
        self_regularization_loss(np.concatenate([b, b]), np.concatenate([a, a]))
    ) == pytest.approx(4.5 / 8)


def test_gaze_consistency_is_the_angle_between_readings_whatever_their_length():
    def toward(deg: float, length: float) -> list[float]:
        a = math.radians(deg)
        return [length * math.sin(a), 0.0, -length * math.cos(a)]

    synthetic = np.array([toward(0, 1.0), toward(20, 0.9)], dtype="float32")
    refined = np.array([toward(10, 2.5), toward(20, 0.3)], dtype="float32")
    chord = 2 * math.sin(math.radians(10) / 2)  # about the angle in radians, 0.1745
    # One pair 10 degrees apart, one the same direction at another length: the mean of the two.
    assert float(gaze_consistency_loss(refined, synthetic)) == pytest.approx(chord / 2, rel=1e-4)
    assert float(gaze_consistency_loss(synthetic, synthetic)) == pytest.approx(0, abs=1e-5)


def test_patch_accuracy():
    logits = np.array([[[[1.0], [-1.0], [2.0], [0.0]]]], dtype="float32")
    assert float(patch_accuracy(logits, real=True)) == pytest.approx(0.5)
    assert float(patch_accuracy(logits, real=False)) == pytest.approx(0.5)
