"""The SimGAN step of simgan.py written in PyTorch: the yardstick of `bench --only vs-torch`.

Same networks as models.py (mirrored 3 x 3 convolutions in the refiner; the discriminator's strides,
pooling and widths), same losses (means, as losses.py), same update order (K_g refiner updates, then
K_d discriminator updates on real images against half current, half history-buffer refined images),
same optimizers. It is what a plain PyTorch CPU training loop of this model costs, in float32 (the
PyTorch default), so that the Keras step's speed has something to be compared with. PyTorch is not
a dependency of simgan_tf: `pip install torch` to run it.
"""

from __future__ import annotations

import time

import numpy as np


def _torch():
    try:
        import torch
    except ImportError:
        from simgan_tf.errors import SimGANError

        raise SimGANError("bench vs-torch needs PyTorch: pip install torch (CPU build)") from None
    return torch


def _refiner(torch, channels: int, filters: int, blocks: int):
    nn = torch.nn

    def conv3(c_in: int):
        return nn.Conv2d(c_in, filters, 3, padding=1, padding_mode="reflect")

    class Refiner(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_in = conv3(channels)
            self.blocks = nn.ModuleList(
                nn.ModuleList([conv3(filters), conv3(filters)]) for _ in range(blocks)
            )
            self.conv_out = nn.Conv2d(filters, channels, 1)

        def forward(self, x):
            x = torch.relu(self.conv_in(x))
            for a, b in self.blocks:
                x = torch.relu(x + b(torch.relu(a(x))))
            return torch.tanh(self.conv_out(x))

    return Refiner()


def _discriminator(torch, channels: int, filters: tuple[int, int, int, int]):
    nn = torch.nn
    f1, f2, f3, f4 = filters
    # Keras's "same" padding with stride 2 pads bottom/right only; padding 1 gives the same output
    # sizes (18 x 28, then 9 x 14) and the same work.
    return nn.Sequential(
        nn.Conv2d(channels, f1, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(f1, f2, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=1, padding=1),
        nn.Conv2d(f2, f3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(f3, f4, 1),
        nn.ReLU(),
        nn.Conv2d(f4, 1, 1),
    )


class TorchSimGAN:
    """One adversarial step at a time: `step(synthetic, real)` with (K_g + K_d, B, 1, H, W) and
    (K_d, B, 1, H, W) float32 tensors in [-1, 1] (PyTorch's channels-first layout)."""

    def __init__(self, cfg, seed: int = 0):
        torch = self.torch = _torch()
        torch.manual_seed(seed)
        h, w, c = cfg.image_shape
        self.refiner = _refiner(torch, c, cfg.refiner_filters, cfg.refiner_blocks)
        self.discriminator = _discriminator(torch, c, tuple(cfg.discriminator_filters))
        opt = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        d_rate = cfg.discriminator_learning_rate or cfg.learning_rate
        self.r_opt = opt(self.refiner.parameters(), lr=cfg.learning_rate)
        self.d_opt = opt(self.discriminator.parameters(), lr=d_rate)
        self.kg, self.kd, self.lambda_reg = cfg.kg, cfg.kd, cfg.lambda_reg
        self.buffer = torch.zeros((cfg.buffer_size, c, h, w))
        self.count = 0
        self.rng = np.random.default_rng(seed)

    def _refiner_update(self, x) -> float:
        torch = self.torch
        self.discriminator.requires_grad_(
            False
        )  # as Keras: gradients of the refiner's weights only
        refined = self.refiner(x)
        adv = torch.nn.functional.softplus(-self.discriminator(refined)).mean()
        loss = adv + self.lambda_reg * (refined - x).abs().mean()
        self.r_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.r_opt.step()
        self.discriminator.requires_grad_(True)
        return float(loss.detach())

    def _discriminator_update(self, x, real) -> float:
        torch, softplus = self.torch, self.torch.nn.functional.softplus
        with torch.no_grad():
            refined = self.refiner(x)
        half = len(refined) // 2
        fake = refined
        if self.count >= half:  # half current images, half drawn from the buffer
            old = self.buffer[self.rng.integers(0, min(self.count, len(self.buffer)), half)]
            fake = torch.cat([refined[:half], old])
        loss = 0.5 * (
            softplus(-self.discriminator(real)).mean() + softplus(self.discriminator(fake)).mean()
        )
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        slots = (self.count + np.arange(half)) % len(self.buffer)
        self.buffer[slots] = refined[:half]
        self.count += half
        return float(loss.detach())

    def step(self, synthetic, real) -> float:
        for i in range(self.kg):
            loss = self._refiner_update(synthetic[i])
        for j in range(self.kd):
            loss = self._discriminator_update(synthetic[self.kg + j], real[j])
        return loss


def time_torch_step(cfg, steps: int, warmup: int = 2) -> float:
    """Seconds per adversarial step of TorchSimGAN at cfg's batch, after `warmup` steps."""
    model = TorchSimGAN(cfg)
    torch = model.torch
    h, w, c = cfg.image_shape
    g, b = cfg.kg + cfg.kd, cfg.batch_size
    synthetic = torch.rand((g, b, c, h, w)) * 2 - 1
    real = torch.rand((cfg.kd, b, c, h, w)) * 2 - 1
    for _ in range(warmup):
        model.step(synthetic, real)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.step(synthetic, real)
    return (time.perf_counter() - t0) / steps
