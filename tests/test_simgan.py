"""The training algorithm's behaviour: who updates what, losses that fall, an adversarial term that works."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import gaussian_filter

from simgan_tf.config import make_config
from simgan_tf.data import to_model_range, training_dataset
from simgan_tf.losses import local_adversarial_loss, patch_accuracy, self_regularization_loss
from simgan_tf.simgan import REFINER_METRICS, SimGAN
from simgan_tf.train import build_model


def _blobs(n: int, seed: int, offset: float) -> np.ndarray:
    """Smooth random textures (uint8), shifted in brightness by `offset` gray levels."""
    noise = np.random.default_rng(seed).normal(size=(n, 35, 55))
    smooth = gaussian_filter(noise, sigma=(0, 3, 3))
    smooth = smooth / smooth.std() * 25 + 80 + offset
    return np.clip(smooth, 0, 255).astype(np.uint8)


def _model(**overrides):
    keras.utils.set_random_seed(0)
    # float32 pinned: these tests compare the step with float32 arithmetic of their own.
    settings = {"batch_size": 16, "buffer_size": 64, "mixed_precision": False, **overrides}
    cfg = make_config("smoke", **settings)
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
PAPER_SGD = 0.001  # the paper's SGD learning rate, on its losses summed over patches and pixels


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


def _brightness_reader(path) -> str:
    """A fixed 'gaze estimator' that reads an image's mean brightness as the gaze's x: what the
    adversarial term changes (above) is then what a gaze term must keep."""
    x_in = keras.Input((35, 55, 1))
    gaze = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x_in))
    reader = keras.Model(x_in, gaze)
    reader.layers[-1].set_weights([np.array([[1.0, 0.0, 0.0]]), np.array([0.0, 0.0, -1.0])])
    reader.save(path)
    return str(path)


def test_the_gaze_term_keeps_what_its_reader_reads(tmp_path):
    reader = _brightness_reader(tmp_path / "reader.keras")
    start, target = SYN.mean(), REAL.mean()
    moved = {}
    for weight in (0.0, 100.0):
        keras.utils.set_random_seed(0)
        cfg = make_config(
            "smoke",
            batch_size=16,
            buffer_size=64,
            mixed_precision=False,
            lambda_reg=0.5,
            learning_rate=2e-3,
            gaze_reg=weight,
        )
        model = build_model(cfg, gaze_reader=reader)
        _fit(model, cfg, "pretrain_refiner", 60, SYN, REAL)
        _fit(model, cfg, "pretrain_discriminator", 20, SYN, REAL, seed=1)
        logs = _fit(model, cfg, "adversarial", 60, SYN, REAL, seed=2).history
        assert ("r_gaze" in logs) == (weight > 0)
        refined = model.refiner.predict(to_model_range(SYN[:64]), verbose=0)
        moved[weight] = float((refined.mean() + 1) * 127.5) - start
    print(f"start {start:.1f} target {target:.1f} moved {moved}")
    assert moved[0.0] > 0.25 * (target - start)  # as in the test above, without the term
    assert moved[100.0] < 0.5 * moved[0.0]


def test_a_gaze_term_needs_both_its_weight_and_its_reader(tmp_path):
    cfg, model = _model()
    reader = keras.models.load_model(_brightness_reader(tmp_path / "reader.keras"))
    for weight, given in ((1.0, None), (0.0, reader)):
        with pytest.raises(ValueError, match="gaze_reg > 0 and a gaze_reader"):
            model.compile(
                keras.optimizers.Adam(),
                keras.optimizers.Adam(),
                lambda_reg=1.0,
                gaze_reg=weight,
                gaze_reader=given,
            )


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


def _batch(images, groups: int, b: int):
    """`groups` batches of `b` images in the model range, shaped as one step's element."""
    x = to_model_range(images[: groups * b])
    return tf.constant(x.reshape(groups, b, *x.shape[1:]))


def test_refiner_pretraining_minimises_the_l1_term_alone():
    # lambda weighs L1 against the adversarial term; pretraining has none to weigh it against.
    def pretrained(lambda_reg):
        cfg, model = _model(lambda_reg=lambda_reg, optimizer="sgd", learning_rate=0.05)
        _fit(model, cfg, "pretrain_refiner", 2, SYN, REAL)
        return model.refiner

    start = _weights(_model()[1].refiner)
    zero, one, four = (pretrained(lam) for lam in (0.0, 1.0, 4.0))
    assert _changed(start, zero), "--lambda-reg 0 must still pretrain the refiner"
    for a, b, c in zip(_weights(zero), _weights(one), _weights(four), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7)


def _sgd_step(net, loss_fn, rate: float) -> None:
    with tf.GradientTape() as tape:
        loss = loss_fn()
    weights = net.trainable_weights
    keras.optimizers.SGD(rate).apply_gradients(
        zip(tape.gradient(loss, weights), weights, strict=True)
    )


def test_paper_learning_rate_is_the_papers_sgd_step_on_our_mean_losses():
    keras.utils.set_random_seed(0)
    small = dict(refiner_filters=4, refiner_blocks=1, discriminator_filters=(4, 4, 4, 4))
    cfg = make_config(
        "paper",
        batch_size=4,
        buffer_size=4,
        kg=1,
        kd=1,
        lambda_reg=0.5,
        mixed_precision=False,
        **small,
    )
    model = build_model(cfg)
    refiner, disc = (keras.models.clone_model(n) for n in (model.refiner, model.discriminator))
    refiner.set_weights(model.refiner.get_weights())
    disc.set_weights(model.discriminator.get_weights())
    patches = int(np.prod(disc.output_shape[1:3]))
    synthetic, real = _batch(SYN, 2, 4), _batch(REAL, 1, 4)
    model.set_phase("adversarial")
    model.train_step((synthetic, real))

    # The paper's losses: per image, summed over its patches (and pixels, with lambda_paper), then
    # averaged over the images of the batch; SGD 0.001 on them.
    def per_image(x):
        return tf.reduce_sum(x, axis=[1, 2, 3])

    lambda_paper = cfg.lambda_reg * patches / (35 * 55)
    x = synthetic[0]

    def refiner_loss():
        refined = refiner(x, training=True)
        adv = per_image(tf.nn.softplus(-disc(refined)))
        return tf.reduce_mean(adv + lambda_paper * per_image(tf.abs(refined - x)))

    _sgd_step(refiner, refiner_loss, PAPER_SGD)
    fake = refiner(synthetic[1])  # the buffer is empty: the whole refined half is current images

    def discriminator_loss():
        sums = [per_image(tf.nn.softplus(-disc(real[0]))), per_image(tf.nn.softplus(disc(fake)))]
        return tf.reduce_mean(tf.concat(sums, axis=0))

    _sgd_step(disc, discriminator_loss, PAPER_SGD)

    for ours, paper in ((model.refiner, refiner), (model.discriminator, disc)):
        for a, b in zip(ours.trainable_weights, paper.trainable_weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-7, err_msg=a.path)


def test_refined_metrics_are_the_current_refiners_and_the_history_half_has_its_own():
    cfg, model = _model()
    history = model.image_history
    # A full buffer of one flat image: its half of the batch looks nothing like current refined images.
    flat = np.full(history.images.shape, 0.9, np.float32)
    history.images.assign(flat)
    history.count.assign(history.capacity)
    synthetic, real = _batch(SYN, 1, cfg.batch_size), _batch(REAL, 1, cfg.batch_size)
    half = cfg.batch_size // 2
    current = model.discriminator(model.refiner(synthetic[0])[:half])
    old = model.discriminator(flat[:half])
    expected = {
        "d_loss_refined": local_adversarial_loss(current, real=False),
        "d_acc_refined": patch_accuracy(current, real=False),
        "d_acc_history": patch_accuracy(old, real=False),
    }
    model.set_phase("pretrain_discriminator")
    logs = model.train_step((synthetic, real))
    for name, value in expected.items():
        assert float(logs[name]) == pytest.approx(float(value), abs=1e-5), name


def test_assigning_the_phase_retraces_and_checks_it():
    cfg, model = _model()
    ds = training_dataset(SYN, REAL, cfg.batch_size, cfg.kg + cfg.kd, cfg.kd, 0)
    model.phase = "adversarial"
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    r0 = _weights(model.refiner)
    model.phase = "pretrain_discriminator"  # not set_phase: must still take effect
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    assert not _changed(r0, model.refiner)
    with pytest.raises(ValueError, match="unknown phase"):
        model.phase = "pretrain"
    assert model.phase == "pretrain_discriminator"


def test_evaluate_reports_the_losses_and_updates_nothing():
    cfg, model = _model()
    ds = training_dataset(SYN, REAL, cfg.batch_size, cfg.kg + cfg.kd, cfg.kd, 0)
    before = [v.numpy().copy() for v in model.variables]
    logs = model.evaluate(ds, steps=1, verbose=0, return_dict=True)
    assert set(logs) == {*REFINER_METRICS, "d_loss_real", "d_loss_refined", "d_acc_real",
                         "d_acc_refined"}  # fmt: skip
    assert all(np.isfinite(v) for v in logs.values()), logs
    for a, b in zip(before, model.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy(), err_msg=b.path)
    synthetic, real = next(iter(ds))
    refined = model.refiner(synthetic[0])
    assert logs["r_l1"] == pytest.approx(float(self_regularization_loss(refined, synthetic[0])))
    logits = model.discriminator(real[0])
    assert logs["d_acc_real"] == pytest.approx(float(patch_accuracy(logits, real=True)))


def test_the_whole_model_saves_and_loads(tmp_path):
    cfg, model = _model(kg=3)
    _fit(model, cfg, "adversarial", 2, SYN, REAL)
    model.save(tmp_path / "simgan.keras")
    loaded = keras.models.load_model(tmp_path / "simgan.keras")
    assert isinstance(loaded, SimGAN)
    assert (loaded.kg, loaded.kd, loaded.image_history.capacity) == (3, 1, cfg.buffer_size)
    assert int(loaded.step.numpy()) == 2
    for a, b in zip(model.image_history.weights, loaded.image_history.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    x = to_model_range(SYN[:4])
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(
        loaded.discriminator(x).numpy(), model.discriminator(x).numpy(), atol=1e-6
    )
    # Compiled again, it trains on.
    opt = keras.optimizers.Adam
    loaded.compile(opt(1e-3), opt(1e-3), lambda_reg=cfg.lambda_reg)
    r0 = _weights(loaded.refiner)
    _fit(loaded, cfg, "adversarial", 1, SYN, REAL)
    assert _changed(r0, loaded.refiner) and int(loaded.step.numpy()) == 3


@pytest.mark.parametrize("shape", [(35, 55, 1), (36, 60, 1), (17, 9, 1)])
def test_config_counts_the_discriminators_patches(shape):
    from simgan_tf.config import patch_count
    from simgan_tf.models import build_discriminator

    grid = build_discriminator(shape, (4, 4, 4, 4)).output_shape[1:3]
    assert patch_count(shape) == grid[0] * grid[1]


def test_the_discriminator_learning_rate_drives_its_updates_only():
    """SGD moves each network by its own rate: 3 x the discriminator's rate, 3 x its step."""

    def deltas(**rates):
        cfg, model = _model(optimizer="sgd", kg=1, kd=1, **rates)
        before = [_weights(model.refiner), _weights(model.discriminator)]
        model.set_phase("adversarial")
        model.train_step((_batch(SYN, 2, 16), _batch(REAL, 1, 16)))
        after = [_weights(model.refiner), _weights(model.discriminator)]
        return [
            np.concatenate([(a - b).ravel() for a, b in zip(x, y, strict=True)])
            for x, y in zip(after, before, strict=True)
        ]

    refiner_same, disc_same = deltas(learning_rate=0.01)
    refiner_fast, disc_fast = deltas(learning_rate=0.01, discriminator_learning_rate=0.03)
    np.testing.assert_allclose(refiner_fast, refiner_same, rtol=1e-5, atol=1e-9)
    # Deltas are differences of float32 weights: compare to within their rounding.
    assert np.abs(disc_same).max() > 0
    np.testing.assert_allclose(disc_fast, 3 * disc_same, atol=1e-3 * np.abs(disc_fast).max())


def test_the_refiner_average_is_the_moving_average_of_its_weights():
    """--refiner-ema: after each refiner update, average <- m x average + (1 - m) x weights."""
    m = 0.6
    cfg, model = _model(refiner_ema=m, kg=1)
    model.set_phase("pretrain_refiner")  # one refiner update per step
    seen = []
    for i in range(4):
        model.train_step((_batch(SYN[16 * i :], 2, 16), _batch(REAL, 1, 16)))
        seen.append(_weights(model.refiner))
    expected = seen[0]  # the first update starts the average at the weights
    for weights in seen[1:]:
        expected = [m * e + (1 - m) * w for e, w in zip(expected, weights, strict=True)]
    model.use_refiner_average()
    for average, want in zip(_weights(model.refiner), expected, strict=True):
        np.testing.assert_allclose(average, want, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(expected, seen[-1], strict=True))


def test_without_an_average_the_refiner_keeps_its_last_weights():
    cfg, model = _model()
    _fit(model, cfg, "pretrain_refiner", 2, SYN, REAL)
    last = _weights(model.refiner)
    model.use_refiner_average()
    assert not _changed(last, model.refiner)
