"""The history buffer's semantics, checked on its contents (ports had buffers that never filled or
always returned the same images)."""

import keras
import numpy as np

from simgan_tf.history import ImageHistory

SHAPE = (2, 3, 1)


def _batch(step: int, b: int = 8) -> np.ndarray:
    """b images whose every pixel holds the step id, so the buffer's contents say where they came from."""
    return np.full((b, *SHAPE), float(step), dtype="float32")


def _ids(images) -> np.ndarray:
    return np.asarray(images)[:, 0, 0, 0].round().astype(int)


def test_fill_count_and_slots_while_filling():
    h = ImageHistory(10, SHAPE)
    h.push(_batch(1))
    assert int(h.count.numpy()) == 4
    assert list(_ids(h.images.numpy())[:4]) == [1, 1, 1, 1]
    assert list(_ids(h.images.numpy())[4:]) == [0] * 6  # untouched
    h.push(_batch(2))
    h.push(_batch(3))  # 4 + 4 + 4 > 10: capped at capacity
    assert int(h.count.numpy()) == 10
    held = _ids(h.images.numpy())
    # The third push filled slots 8 and 9, then overwrote 2 random slots among the full ones.
    assert list(held[8:]) == [3, 3]
    assert sum(held[:8] == 3) == 2
    assert sum(held[:4] == 1) + sum(held[4:8] == 2) == 6


def test_mix_uses_only_current_images_until_half_a_batch_is_stored():
    h = ImageHistory(16, SHAPE)
    mixed = h.mix(_batch(5))
    assert list(_ids(mixed)) == [5] * 8
    h.push(_batch(1))
    mixed = h.mix(_batch(5))
    assert list(_ids(mixed)[:4]) == [5] * 4
    assert list(_ids(mixed)[4:]) == [1] * 4  # second half from the history


def test_buffer_mixes_images_from_many_steps_and_draws_at_random():
    capacity, b = 40, 8
    h = ImageHistory(capacity, SHAPE)
    for step in range(1, 31):
        h.push(_batch(step, b))
    held = _ids(h.images.numpy())
    assert int(h.count.numpy()) == capacity
    # Random overwrites after filling: many different steps survive, not only the last 10 pushes.
    assert len(set(held)) >= 8
    assert held.min() < 21, "old images must survive random replacement"
    assert held.max() == 30
    draws = np.concatenate([_ids(h.mix(_batch(99, b)))[b // 2 :] for _ in range(50)])
    assert 99 not in draws
    # Draws cover the buffer, not its first b/2 slots (one port's bug).
    assert len(set(draws)) >= 0.8 * len(set(held))
    first_slots = set(held[: b // 2])
    assert not set(draws) <= first_slots


def test_buffer_survives_save_and_load(tmp_path):
    def model_with_history():
        inp = keras.Input(SHAPE)
        layer = ImageHistory(12, SHAPE, name="history")
        model = keras.Model(inp, keras.layers.Identity()(inp))
        model.history_layer = layer  # tracked: its weights are the model's weights
        return model, layer

    model, h = model_with_history()
    for step in (3, 4, 5):
        h.push(_batch(step))
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    model2, h2 = model_with_history()
    assert int(h2.count.numpy()) == 0
    model2.load_weights(path)
    assert int(h2.count.numpy()) == 12
    np.testing.assert_array_equal(h2.images.numpy(), h.images.numpy())
    # The random state comes back too: the loaded buffer draws what the original would have drawn.
    np.testing.assert_array_equal(h2.mix(_batch(9)).numpy(), h.mix(_batch(9)).numpy())
