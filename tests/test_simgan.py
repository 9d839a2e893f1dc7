"""The training algorithm's behaviour: who updates what, losses that fall, an adversarial term that works."""

import keras
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from simgan_tf.config import make_config
from simgan_tf.data import to_model_range, training_dataset
from simgan_tf.train import build_model


def _blobs(n: int, seed: int, offset: float) -> np.ndarray:
    """Smooth random textures (uint8), shifted in brightness by `offset` gray levels."""
    noise = np.random.default_rng(seed).normal(size=(n, 35, 55))
    smooth = gaussian_filter(noise, sigma=(0, 3, 3))
    smooth = smooth / smooth.std() * 25 + 80 + offset
    return np.clip(smooth, 0, 255).astype(np.uint8)


def _model(**overrides):
    keras.utils.set_random_seed(0)
    cfg = make_config("smoke", **{"batch_size": 16, "buffer_size": 64, **overrides})
    return cfg, build_model(cfg)


def _fit(model, cfg, phase, steps, synthetic, real, seed=0):
    model.set_phase(phase)
    ds = training_dataset(synthetic, real, cfg.batch_size, cfg.kg + cfg.kd, cfg.kd, seed)
    return model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)


def _weights(net):
    return [w.numpy().copy() for w in net.trainable_weights]


def _changed(before, net) -> bool:
    return any(
        not np.array_equal(a, w.numpy()) for a, w in zip(before, net.trainable_weights, strict=True)
    )


SYN, REAL = _blobs(256, 0, 0), _blobs(256, 1, 90)


@pytest.mark.parametrize(
    "phase, refiner_moves, discriminator_moves",
    [
        ("pretrain_refiner", True, False),
        ("pretrain_discriminator", False, True),
        ("adversarial", True, True),
    ],
)
def test_each_update_changes_only_its_own_network(phase, refiner_moves, discriminator_moves):
    cfg, model = _model()
    r0, d0 = _weights(model.refiner), _weights(model.discriminator)
    _fit(model, cfg, phase, 2, SYN, REAL)
    assert _changed(r0, model.refiner) == refiner_moves
    assert _changed(d0, model.discriminator) == discriminator_moves
    assert int(model.step.numpy()) == 2


def test_adversarial_step_runs_kg_refiner_and_kd_discriminator_updates():
    cfg, model = _model(kg=3, kd=2)
    _fit(model, cfg, "adversarial", 2, SYN, REAL)
    assert int(model.refiner_optimizer.iterations.numpy()) == 6
    assert int(model.discriminator_optimizer.iterations.numpy()) == 4
    # Each discriminator update pushes half a batch into the history.
    assert int(model.image_history.count.numpy()) == 4 * cfg.batch_size // 2


def test_pretraining_losses_go_down():
    cfg, model = _model()
    first = _fit(model, cfg, "pretrain_refiner", 1, SYN, REAL).history["r_l1"][-1]
    last = _fit(model, cfg, "pretrain_refiner", 40, SYN, REAL, seed=1).history["r_l1"][-1]
    assert last < 0.5 * first
    d_first = _fit(model, cfg, "pretrain_discriminator", 1, SYN, REAL).history
    d_last = _fit(model, cfg, "pretrain_discriminator", 40, SYN, REAL, seed=2).history
    loss = lambda h: h["d_loss_real"][-1] + h["d_loss_refined"][-1]  # noqa: E731
    assert loss(d_last) < 0.8 * loss(d_first)
    assert d_last["d_acc_real"][-1] > 0.8 and d_last["d_acc_refined"][-1] > 0.8


def _brightness_after(adversarial: bool) -> float:
    """Mean gray level of refined images after a short run from identity-pretrained weights."""
    cfg, model = _model(lambda_reg=0.5, learning_rate=2e-3)
    _fit(model, cfg, "pretrain_refiner", 60, SYN, REAL)
    if adversarial:
        _fit(model, cfg, "pretrain_discriminator", 20, SYN, REAL, seed=1)
        _fit(model, cfg, "adversarial", 60, SYN, REAL, seed=2)
    else:  # the same number of refiner updates, L1 only
        _fit(model, cfg, "pretrain_refiner", 120, SYN, REAL, seed=2)
    refined = model.refiner.predict(to_model_range(SYN[:64]), verbose=0)
    return float((refined.mean() + 1) * 127.5)


def test_adversarial_term_moves_refined_images_toward_real():
    start, target = SYN.mean(), REAL.mean()  # about 80 and 170 gray levels
    with_adv = _brightness_after(adversarial=True)
    l1_only = _brightness_after(adversarial=False)
    print(f"start {start:.1f} target {target:.1f} adversarial {with_adv:.1f} l1-only {l1_only:.1f}")
    assert abs(l1_only - start) < 8, "an L1-only refiner must stay near the synthetic images"
    assert with_adv - start > 0.25 * (target - start), "the adversarial term must pull toward real"


def test_whole_state_round_trips_through_weights(tmp_path):
    cfg, model = _model()
    _fit(model, cfg, "adversarial", 3, SYN, REAL)
    model.save_weights(tmp_path / "ckpt.weights.h5")
    _, fresh = _model()
    fresh.load_weights(tmp_path / "ckpt.weights.h5")
    assert int(fresh.step.numpy()) == 3
    assert int(fresh.image_history.count.numpy()) == int(model.image_history.count.numpy())
    np.testing.assert_array_equal(
        fresh.image_history.images.numpy(), model.image_history.images.numpy()
    )
    for name in ("refiner_optimizer", "discriminator_optimizer"):
        saved, loaded = getattr(model, name).variables, getattr(fresh, name).variables
        assert len(saved) == len(loaded) > 2
        for a, b in zip(saved, loaded, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = to_model_range(SYN[:4])
    np.testing.assert_allclose(fresh.refiner(x).numpy(), model.refiner(x).numpy(), atol=1e-6)
