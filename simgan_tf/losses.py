"""The two SimGAN losses, as means, so that lambda means the same at any batch or image size.

The paper sums: per refined image, L_R = sum over P patches of CE(patch) + lambda_paper * sum over
H*W pixels |x~ - x|. We take means instead, per image and over the batch:

    L_R = mean_patches CE + lambda * mean_pixels |x~ - x|      (this module)
        = (1 / P) * (sum_patches CE + lambda * (P / (H W)) * sum_pixels |x~ - x|)

so lambda_paper = lambda * P / (H * W) (for 35 x 55 eyes and 9 x 14 patches, P / (H W) = 126 / 1925),
and the overall 1 / P scale only rescales the learning rate: our gradients are 1 / P of the paper's,
so its SGD 0.001 is SGD 0.001 * P = 0.126 here (config.PAPER_LEARNING_RATE, the `paper` preset's).
Adam divides each gradient by its own running scale, and needs no such change. Averaging over the batch (not summing)
keeps both terms' gradients independent of the batch size; a port that summed over the batch made
lambda's effect change with it.
"""

from __future__ import annotations

from keras import ops


def local_adversarial_loss(logits, real: bool):
    """Sigmoid cross-entropy of every patch logit against one target (1 = real, 0 = refined), averaged.

    For the refiner's adversarial term call it on D(refined) with real=True: the non-saturating
    -log D(x~) form of the paper.
    """
    logits = ops.cast(logits, "float32")
    # softplus(-z) = -log sigmoid(z) and softplus(z) = -log(1 - sigmoid(z)), stable for large |z|.
    return ops.mean(ops.softplus(-logits if real else logits))


def self_regularization_loss(refined, synthetic):
    """Mean absolute difference between refined and synthetic images (psi = identity for eyes)."""
    return ops.mean(ops.abs(ops.cast(refined, "float32") - ops.cast(synthetic, "float32")))


def gaze_consistency_loss(gaze_refined, gaze_synthetic):
    """Mean distance between the unit gaze vectors a frozen estimator reads on refined and on
    synthetic images: about the angle between them, in radians (the chord of a small arc).

    The paper's self-regularisation in a feature space (its psi), the feature being the gaze: a
    refiner may change what the estimator does not read, and pays for moving what it does.
    """

    def unit(v):
        v = ops.cast(v, "float32")
        return v / ops.sqrt(ops.sum(v * v, axis=-1, keepdims=True) + 1e-12)

    d = unit(gaze_refined) - unit(gaze_synthetic)
    # The small constant keeps the gradient finite where the two readings agree exactly.
    return ops.mean(ops.sqrt(ops.sum(d * d, axis=-1) + 1e-12))


def patch_accuracy(logits, real: bool):
    """Share of patches that the discriminator puts on the right side of 0."""
    logits = ops.cast(logits, "float32")
    hits = logits > 0 if real else logits <= 0
    return ops.mean(ops.cast(hits, "float32"))
