"""The networks, in the Functional API: refiner, discriminator, and the paper's gaze estimator.

Shapes are (H, W, C) with images in [-1, 1]. The paper's eye networks (Shrivastava et al. 2017, and
REFERENCE.md) are the defaults; width and depth are arguments so that CPU presets can shrink them.
"""

from __future__ import annotations

import math

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="simgan_tf")
class ReflectPad(layers.Layer):
    """Pads height and width by one pixel with the mirrored image (no weights)."""

    def call(self, x):
        return keras.ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")

    def compute_output_shape(self, shape):
        h, w = (None if d is None else d + 2 for d in shape[1:3])
        return (shape[0], h, w, shape[3])


def build_refiner(
    input_shape: tuple[int, int, int] = (35, 55, 1),
    filters: int = 64,
    blocks: int = 4,
    name: str = "refiner",
) -> keras.Model:
    """conv 3x3 -> `blocks` ResNet blocks -> conv 1x1 -> tanh; no striding, so output shape = input.

    Every 3x3 convolution pads by mirroring the border (ReflectPad), not with zeros: zero padding
    set a gray frame beside the images' bright corners, and trained refiners painted a fixed blotch
    there (docs/RESULTS.md). A flat image now stays flat up to its edges.

    Receptive field: 1 + 2 * (1 + 2 * blocks) pixels (19 for 4 blocks), small on purpose: the refiner
    may change local appearance, never the eye's geometry (which carries the gaze label).
    """

    def conv3(x, name, activation=None):
        # Mirrored borders: zero padding puts a gray frame next to the image's bright corners.
        x = ReflectPad(name=f"{name}_pad")(x)
        return layers.Conv2D(filters, 3, activation=activation, name=name)(x)

    x_in = keras.Input(input_shape, name="synthetic")
    x = conv3(x_in, "conv_in", "relu")
    for i in range(blocks):
        y = conv3(x, f"block{i}_a", "relu")
        y = conv3(y, f"block{i}_b")
        x = layers.ReLU(name=f"block{i}_out")(layers.Add(name=f"block{i}_add")([x, y]))
    x = layers.Conv2D(input_shape[-1], 1, name="conv_out")(x)
    # float32 output: under mixed precision the L1 term still compares images at full precision.
    x_out = layers.Activation("tanh", dtype="float32", name="refined")(x)
    return keras.Model(x_in, x_out, name=name)


def build_discriminator(
    input_shape: tuple[int, int, int] = (35, 55, 1),
    filters: tuple[int, int, int, int] = (96, 64, 32, 32),
    name: str = "discriminator",
    spectral_norm: bool = False,
) -> keras.Model:
    """Fully convolutional; outputs an (h, w, 1) map of per-patch logits (9 x 14 for 35 x 55).

    One sigmoid logit per patch is the paper's 2-way softmax per patch. ReLUs sit between every pair
    of convolutions (a linear discriminator was one port's bug); the logits themselves stay linear.
    `spectral_norm` wraps every convolution in keras.layers.SpectralNormalization (one power
    iteration per training call), which keeps each layer's largest singular value near 1.
    """

    def conv(f, k, label, **kwargs):
        layer = layers.Conv2D(f, k, name=label, **kwargs)
        if not spectral_norm:
            return layer
        # The wrapper casts to its own compute dtype: the logits' float32 must be its too.
        dtype = {"dtype": kwargs["dtype"]} if "dtype" in kwargs else {}
        return layers.SpectralNormalization(layer, name=f"{label}_sn", **dtype)

    f1, f2, f3, f4 = filters
    x_in = keras.Input(input_shape, name="image")
    x = conv(f1, 3, "conv1", strides=2, padding="same", activation="relu")(x_in)
    x = conv(f2, 3, "conv2", strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, strides=1, padding="same", name="pool")(x)
    x = conv(f3, 3, "conv3", padding="same", activation="relu")(x)
    x = conv(f4, 1, "conv4", activation="relu")(x)
    logits = conv(1, 1, "patch_logits", dtype="float32")(x)
    return keras.Model(x_in, logits, name=name)


def build_gaze_estimator(
    input_shape: tuple[int, int, int] = (35, 55, 1),
    width: float = 1.0,
    dense: int = 1000,
    name: str = "gaze_estimator",
) -> keras.Model:
    """The paper's estimator: conv 32, 32, 64, pool 3/2, conv 80, 192, pool 2/2, FC, FC 1000, FC 3.

    With valid padding a 35 x 55 input flattens to 192 x 5 x 10 = 9,600 features, the paper's
    "FC 9600". `width` scales every convolution (and `dense` the hidden layer) for CPU-sized runs.
    Output: an unnormalised 3-vector, trained with a Euclidean (MSE) loss against unit gaze vectors.
    """

    def conv(f: int, label: str):
        return layers.Conv2D(max(4, round(f * width)), 3, activation="relu", name=label)

    x_in = keras.Input(input_shape, name="eye")
    x = conv(32, "conv1")(x_in)
    x = conv(32, "conv2")(x)
    x = conv(64, "conv3")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = conv(80, "conv4")(x)
    x = conv(192, "conv5")(x)
    x = layers.MaxPooling2D(2, strides=2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, activation="relu", name="fc")(x)
    gaze = layers.Dense(3, dtype="float32", name="gaze")(x)
    return keras.Model(x_in, gaze, name=name)


def receptive_field(model: keras.Model) -> int:
    """Receptive field (pixels, one axis) of a plain chain of conv / pool layers, read off the model."""
    rf, jump = 1, 1
    for layer in model.layers:
        layer = getattr(layer, "layer", layer)  # inside a SpectralNormalization wrapper
        kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        if kernel is None:
            continue
        stride = (getattr(layer, "strides", None) or (1,))[0]
        rf += (kernel[0] - 1) * jump
        jump *= stride
    return rf


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the model's Conv2D and Dense layers.

    The convolutions are nearly all of the work; activations, adds and pooling are left out. The
    benchmark divides a step's count by its time to show how much of a device's peak a run uses.
    """
    total = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # inside a SpectralNormalization wrapper
        if isinstance(inner, layers.Conv2D):
            _, h, w, _ = layer.output.shape
            total += 2 * h * w * math.prod(inner.kernel.shape)
        elif isinstance(inner, layers.Dense):
            total += 2 * math.prod(inner.kernel.shape)
    return total
