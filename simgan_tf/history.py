"""The image history buffer (Shrivastava et al. 2017, Sec. 2.3), held in non-trainable variables.

Each discriminator update sees half a batch of current refined images and half a batch drawn at random
from earlier refined images, so the discriminator keeps penalising artefacts the refiner produced long
ago. Being layer weights, the images and the fill count are saved with the model and restored on load.

Under a tf.distribute strategy with R replicas, each holding b = batch / R images of every batch, the
buffer behaves as on one device with the global batch:

- every replica holds the same copy of the buffer, its fill count and its random state;
- `mix` draws R * b/2 slots from one random stream (the one a single device would use), and replica
  r takes the r-th b/2 of them, so the replicas draw different old images;
- `push` gathers every replica's b/2 current images (`all_gather`), and every replica writes the same
  R * b/2 images into the same slots. The buffer thus grows by half a global batch per update and
  holds images from all replicas, not only the first one's.

The one difference: the current half is the first half of each replica's part of the batch, not the
first half of the global batch; as many images, picked otherwise from a shuffled batch.

The weights are created with aggregation "only_first_replica": tf.distribute then writes the first
replica's value to every copy, so the copies are equal by construction (the replicas' values are the
same anyway). With the default, "none", each replica writes only its own copy and nothing keeps
them together. One device: no difference.
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
        first = "only_first_replica"  # see the module docstring
        self.images = self.add_weight(
            shape=(capacity, *self.image_shape),
            initializer="zeros",
            trainable=False,
            name="images",
            aggregation=first,
        )
        self.count = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            trainable=False,
            name="count",
            aggregation=first,
        )
        # The random state is a weight of its own: save_weights does not write a
        # keras.random.SeedGenerator's state, so a resumed run would replay its draws from the start.
        self.rng = self.add_weight(
            shape=(2,),
            initializer=keras.initializers.Constant([seed, 0]),
            dtype="int32",
            trainable=False,
            name="rng",
            aggregation=first,
        )
        self.built = True

    def _uniform(self, shape):
        """Stateless uniform draws from the saved counter, which then moves on."""
        seed = tf.identity(self.rng.value)
        self.rng.assign_add(tf.constant([0, 1], dtype="int32"))
        return tf.random.stateless_uniform(shape, seed)

    def mix(self, current):
        """The discriminator's batch: first half current images, second half history draws.

        Until the buffer holds half a (global) batch, the second half is current images too. Shapes
        never depend on the fill, so the step compiles once (XLA needs fixed shapes).
        """
        half = ops.shape(current)[0] // 2
        replicas = _replicas()
        # One stream of draws for the global batch; each replica takes its own part of it.
        drawn = self._uniform((replicas * half,)) * ops.cast(ops.maximum(self.count, 1), "float32")
        drawn = ops.floor(drawn)
        if replicas > 1:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            drawn = ops.reshape(drawn, (replicas, half))[replica]
        old = ops.take(self.images, ops.cast(drawn, "int32"), axis=0)
        enough = self.count >= replicas * half
        old = ops.where(enough, old, ops.cast(current[half : 2 * half], old.dtype))
        return ops.concatenate([current[:half], ops.cast(old, current.dtype)], axis=0)

    def push(self, current) -> None:
        """Write half a batch of current images: into empty slots while filling, then random slots.

        Under replicas, the halves of all replicas, gathered: the same writes on every replica.
        """
        new = ops.cast(current[: ops.shape(current)[0] // 2], self.images.dtype)
        if _replicas() > 1:
            new = tf.distribute.get_replica_context().all_gather(new, axis=0)
        half = ops.shape(new)[0]
        fill = self.count + ops.arange(half, dtype="int32")
        # Distinct random slots among the full ones (empty slots sort last), so a push that straddles
        # the end of the fill never overwrites what it has just written.
        empty = ops.cast(ops.arange(self.capacity) >= self.count, "float32")
        keys = self._uniform((self.capacity,)) + 2.0 * empty
        random_slots = ops.cast(ops.argsort(keys)[:half], "int32")
        slots = ops.where(fill < self.capacity, fill, random_slots)
        # In place on the TF variable: the buffer is large (200 MB at the paper's size); never copy it.
        # scatter_update, not scatter_nd_update: distributed variables implement only the former.
        self.images.value.scatter_update(tf.IndexedSlices(new, slots))
        self.count.assign(ops.minimum(self.count + half, self.capacity))


def _replicas() -> int:
    """Replicas running this step together: 1 outside any strategy."""
    context = tf.distribute.get_replica_context()
    # None: cross-replica context (an eager call under a strategy's scope), one call for all.
    return 1 if context is None else context.num_replicas_in_sync
