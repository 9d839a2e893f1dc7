"""The image history buffer (Shrivastava et al. 2017, Sec. 2.3), held in non-trainable variables.

Each discriminator update sees half a batch of current refined images and half a batch drawn at random
from earlier refined images, so the discriminator keeps penalising artefacts the refiner produced long
ago. Being layer weights, the images and the fill count are saved with the model and restored on load.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


class ImageHistory(keras.layers.Layer):
    """A fixed-size pool of past refined images: `mix` draws from it, `push` writes into it."""

    def __init__(self, capacity: int, image_shape: tuple[int, int, int], seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if capacity < 1:
            raise ValueError(f"history buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.image_shape = tuple(image_shape)
        self.images = self.add_weight(
            shape=(capacity, *self.image_shape), initializer="zeros", trainable=False, name="images"
        )
        self.count = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="count"
        )
        # The random state is a weight of its own: save_weights does not write a
        # keras.random.SeedGenerator's state, so a resumed run would replay its draws from the start.
        self.rng = self.add_weight(
            shape=(2,),
            initializer=keras.initializers.Constant([seed, 0]),
            dtype="int32",
            trainable=False,
            name="rng",
        )
        self.built = True

    def _uniform(self, shape):
        """Stateless uniform draws from the saved counter, which then moves on."""
        seed = tf.identity(self.rng.value)
        self.rng.assign_add(tf.constant([0, 1], dtype="int32"))
        return tf.random.stateless_uniform(shape, seed)

    def mix(self, current):
        """The discriminator's batch: first half current images, second half history draws.

        Until the buffer holds half a batch, the second half is current images too. Shapes never
        depend on the fill, so the step compiles once (XLA needs fixed shapes).
        """
        half = ops.shape(current)[0] // 2
        drawn = ops.floor(self._uniform((half,)) * ops.cast(ops.maximum(self.count, 1), "float32"))
        old = ops.take(self.images, ops.cast(drawn, "int32"), axis=0)
        old = ops.where(self.count >= half, old, ops.cast(current[half : 2 * half], old.dtype))
        return ops.concatenate([current[:half], ops.cast(old, current.dtype)], axis=0)

    def push(self, current) -> None:
        """Write half a batch of current images: into empty slots while filling, then random slots."""
        half = ops.shape(current)[0] // 2
        fill = self.count + ops.arange(half, dtype="int32")
        # Distinct random slots among the full ones (empty slots sort last), so a push that straddles
        # the end of the fill never overwrites what it has just written.
        empty = ops.cast(ops.arange(self.capacity) >= self.count, "float32")
        keys = self._uniform((self.capacity,)) + 2.0 * empty
        random_slots = ops.cast(ops.argsort(keys)[:half], "int32")
        slots = ops.where(fill < self.capacity, fill, random_slots)
        new = ops.cast(current[:half], self.images.dtype)
        # In place on the TF variable: the buffer is large (200 MB at the paper's size); never copy it.
        self.images.value.scatter_nd_update(tf.reshape(slots, (-1, 1)), new)
        self.count.assign(ops.minimum(self.count + half, self.capacity))
