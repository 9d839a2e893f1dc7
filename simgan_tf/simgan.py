"""SimGAN as one keras.Model: the whole training algorithm (Shrivastava et al. 2017, Algorithm 1).

Each `fit()` step receives fresh batches, (synthetic, real), shaped (K_g + K_d, b, H, W, 1) and
(K_d, b, H, W, 1), and runs K_g refiner updates then K_d discriminator updates, as in the paper.
The phase chooses what a step does: "pretrain_refiner" (L1 only), "pretrain_discriminator" (against
the pretrained refiner), then "adversarial". Each network has its own optimizer and each gradient is
applied only to its own network's weights; `trainable` is never toggled (toggling it after compile
is what silently froze the discriminator in Keras 2-style ports under Keras 3).

Under a tf.distribute strategy every replica runs `train_step` on its part of each batch:
`_replica_share` says how the losses are scaled, history.py how the buffer is shared.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

import simgan_tf.models  # noqa: F401 - registers ReflectPad, which a saved model's refiner holds
from simgan_tf.history import ImageHistory
from simgan_tf.losses import (
    gaze_consistency_loss,
    local_adversarial_loss,
    patch_accuracy,
    self_regularization_loss,
)

PHASES = ("pretrain_refiner", "pretrain_discriminator", "adversarial")
REFINER_METRICS = ("r_adv", "r_l1", "r_spread")
# Logged only with a gaze term (compile's gaze_reg > 0).
GAZE_METRIC = "r_gaze"
# d_loss_refined and d_acc_refined judge the current refiner's half of the refined batch only;
# d_acc_history the half drawn from the history buffer (images up to hundreds of updates old).
DISCRIMINATOR_METRICS = (
    "d_loss_real",
    "d_loss_refined",
    "d_acc_real",
    "d_acc_refined",
    "d_acc_history",
)
# What `evaluate()` reports: no history draws there, so no d_acc_history.
EVALUATION_METRICS = REFINER_METRICS + DISCRIMINATOR_METRICS[:-1]


def _replica_share(loss):
    """A replica's loss as its share of the global-batch mean: the per-replica mean / replicas.

    Why: under tf.distribute, Keras 3's TF optimizer all-reduces gradients with SUM inside
    apply_gradients (`_all_reduce_sum_gradients`); Keras scales only the losses it computes itself
    (`keras.losses.Loss` calls `scale_loss_for_distribution`), and ours are plain means. Dividing
    here makes the summed gradient that of the global-batch mean, as on one device. Metrics get the
    unscaled values. One replica: returned unchanged (not even multiplied by 1).
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


@keras.saving.register_keras_serializable(package="simgan_tf")
class SimGAN(keras.Model):
    """Refiner, discriminator and history buffer, trained by `fit()` phase by phase.

    `model.save()` writes all three with the step counter (load with keras.models.load_model after
    importing simgan_tf.simgan); the optimizers are not saved, so compile the loaded model again.
    Checkpoints that resume a run exactly are `save_weights()` files (train.py).
    """

    def __init__(
        self,
        refiner: keras.Model,
        discriminator: keras.Model,
        buffer_size: int,
        kg: int = 2,
        kd: int = 1,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.refiner = refiner
        self.discriminator = discriminator
        self.image_history = ImageHistory(
            buffer_size, tuple(refiner.input_shape[1:]), seed=seed or 0, name="history"
        )
        self.kg, self.kd = kg, kd
        self.buffer_size, self.seed = buffer_size, seed
        # Counts train steps over all phases and fits; saved with the weights, so a resumed run knows
        # where it is. Every replica adds 1 per step: keep the first replica's (not the sum).
        self.step = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            name="step",
            aggregation="only_first_replica",
        )
        self._phase = "adversarial"
        self.built = True  # fit() and save_weights() need it; the sub-networks are already built.

    def compile(
        self,
        refiner_optimizer,
        discriminator_optimizer,
        lambda_reg: float,
        gaze_reg: float = 0.0,
        gaze_reader: keras.Model | None = None,
        **kwargs,
    ):
        """`gaze_reg` > 0 adds gaze_reg x losses.gaze_consistency_loss to the refiner's adversarial
        loss, read by `gaze_reader`, a frozen gaze estimator (train.py trains one on the synthetic set)."""
        if (gaze_reg > 0) != (gaze_reader is not None):
            raise ValueError("a gaze term needs both gaze_reg > 0 and a gaze_reader")
        super().compile(**kwargs)
        # Keras gives the model an optimizer of its own (RMSprop) that nothing uses. Under a
        # tf.distribute strategy fit() would build it over every weight (a useless copy of each, and
        # checkpoints whose layout depends on the strategy); built empty, it stays as on one device.
        self.optimizer.build([])
        self.refiner_optimizer = refiner_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.lambda_reg, self.gaze_reg = lambda_reg, gaze_reg
        # Not tracked (object.__setattr__ skips Keras's tracking): the reader is a fixed part of the
        # loss, not of the model, so checkpoints and saved models stay what they are without it.
        object.__setattr__(self, "gaze_reader", gaze_reader)
        # Built now, not at the first update, so that load_weights() restores their state as well.
        refiner_optimizer.build(self.refiner.trainable_weights)
        discriminator_optimizer.build(self.discriminator.trainable_weights)
        self.trackers = {
            m: keras.metrics.Mean(name=m)
            for m in REFINER_METRICS + (GAZE_METRIC,) + DISCRIMINATOR_METRICS
        }

    @property
    def metrics(self):
        return list(getattr(self, "trackers", {}).values())

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        self._phase = phase
        self.train_function = None  # the phase is fixed at trace time: make fit() trace again

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    def use_refiner_average(self) -> None:
        """Replace the refiner's weights by their moving average, where its optimizer keeps one
        (train.py's --refiner-ema); otherwise nothing. The last weights stay in the checkpoints."""
        self.refiner_optimizer.finalize_variable_values(self.refiner.trainable_variables)

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "refiner": serialize(self.refiner),
            "discriminator": serialize(self.discriminator),
            "buffer_size": self.buffer_size,
            "kg": self.kg,
            "kd": self.kd,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict) -> SimGAN:
        config = dict(config)
        for name in ("refiner", "discriminator"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

    def get_compile_config(self) -> None:
        # compile() takes two optimizers and lambda, which Keras cannot re-create on load: a loaded
        # model comes back uncompiled.
        return None

    def call(self, synthetic, training=False):
        return self.refiner(synthetic, training=training)

    def train_step(self, data):
        synthetic, real = data
        if self.phase == "pretrain_refiner":
            self._refiner_update(synthetic[0], adversarial=False)
            shown = ("r_l1", "r_spread")
        elif self.phase == "pretrain_discriminator":
            self._discriminator_update(synthetic[0], real[0])
            shown = DISCRIMINATOR_METRICS
        else:
            for i in range(self.kg):
                self._refiner_update(synthetic[i], adversarial=True)
            for j in range(self.kd):
                self._discriminator_update(synthetic[self.kg + j], real[j])
            shown = REFINER_METRICS + DISCRIMINATOR_METRICS
            if self.gaze_reader is not None:
                shown += (GAZE_METRIC,)
        self.step.assign_add(1)
        return {m: self.trackers[m].result() for m in shown}

    def test_step(self, data):
        """The losses and accuracies of one element (train_step's format), without any update.

        The first synthetic and real batches only, and no history draws (they would move its random
        state): the discriminator judges the current refiner's images.
        """
        synthetic, real = data[0][0], data[1][0]
        refined = self.refiner(synthetic, training=False)
        logits_refined = self.discriminator(refined, training=False)
        logits_real = self.discriminator(real, training=False)
        values = {
            "r_adv": local_adversarial_loss(logits_refined, real=True),
            "r_l1": self_regularization_loss(refined, synthetic),
            "r_spread": _spread(refined, synthetic),
            "d_loss_real": local_adversarial_loss(logits_real, real=True),
            "d_loss_refined": local_adversarial_loss(logits_refined, real=False),
            "d_acc_real": patch_accuracy(logits_real, real=True),
            "d_acc_refined": patch_accuracy(logits_refined, real=False),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {m: self.trackers[m].result() for m in EVALUATION_METRICS}

    def _refiner_update(self, synthetic, adversarial: bool) -> None:
        gaze_term = adversarial and self.gaze_reader is not None
        # Read before the tape: the synthetic image's gaze does not depend on the refiner.
        read_synthetic = self.gaze_reader(synthetic, training=False) if gaze_term else None
        with tf.GradientTape() as tape:
            refined = self.refiner(synthetic, training=True)
            l1 = self_regularization_loss(refined, synthetic)
            # Pretraining minimises L1 alone: lambda only weighs it against the adversarial term
            # (with lambda in front, --lambda-reg 0 pretrained nothing).
            loss = l1
            if adversarial:
                adv = local_adversarial_loss(self.discriminator(refined, training=False), real=True)
                loss = adv + self.lambda_reg * l1
                self.trackers["r_adv"].update_state(adv)
                if gaze_term:
                    drift = gaze_consistency_loss(
                        self.gaze_reader(refined, training=False), read_synthetic
                    )
                    loss = loss + self.gaze_reg * drift
                    self.trackers[GAZE_METRIC].update_state(drift)
            # Loss scaling under float16 mixed precision (a no-op otherwise).
            scaled = self.refiner_optimizer.scale_loss(_replica_share(loss))
        weights = self.refiner.trainable_weights
        self.refiner_optimizer.apply_gradients(
            zip(tape.gradient(scaled, weights), weights, strict=True)
        )
        self.trackers["r_l1"].update_state(l1)
        self.trackers["r_spread"].update_state(_spread(refined, synthetic))

    def _discriminator_update(self, synthetic, real) -> None:
        refined = ops.stop_gradient(self.refiner(synthetic, training=False))
        fake = self.image_history.mix(refined)
        with tf.GradientTape() as tape:
            logits_real = self.discriminator(real, training=True)
            logits_fake = self.discriminator(fake, training=True)
            loss_real = local_adversarial_loss(logits_real, real=True)
            loss_fake = local_adversarial_loss(logits_fake, real=False)
            # Mean over all patches of both halves: real and refined weigh the same.
            loss = 0.5 * (loss_real + loss_fake)
            scaled = self.discriminator_optimizer.scale_loss(_replica_share(loss))
        weights = self.discriminator.trainable_weights
        self.discriminator_optimizer.apply_gradients(
            zip(tape.gradient(scaled, weights), weights, strict=True)
        )
        self.image_history.push(refined)
        # mix() puts the current images first: the metrics of the refiner as it is now must not
        # average in buffer images that an earlier refiner made.
        half = ops.shape(fake)[0] // 2
        self.trackers["d_loss_real"].update_state(loss_real)
        self.trackers["d_loss_refined"].update_state(
            local_adversarial_loss(logits_fake[:half], real=False)
        )
        self.trackers["d_acc_real"].update_state(patch_accuracy(logits_real, real=True))
        self.trackers["d_acc_refined"].update_state(patch_accuracy(logits_fake[:half], real=False))
        self.trackers["d_acc_history"].update_state(patch_accuracy(logits_fake[half:], real=False))


def _spread(refined, synthetic):
    """Refined images' per-pixel spread over the batch, relative to the synthetic images'.

    Near 0 means every refined image looks alike: the collapse the paper's ports ran into.
    """
    return ops.mean(ops.std(refined, axis=0)) / (ops.mean(ops.std(synthetic, axis=0)) + 1e-6)
