"""Every setting of a training run, in one dataclass, with the presets `paper`, `quick` and `smoke`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from simgan_tf import photometry
from simgan_tf.errors import SimGANError

_KINDS = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict}
# tf.distribute strategies `--strategy` can name (distribute.make_strategy creates them).
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
DISCRIMINATOR_NORMS = ("none", "spectral")
GAZE_READERS = ("augmented", "plain", "both")
# simulator.PROFILES' names, listed here so that reading a config needs no simulator (a test checks).
SCENE_PROFILES = ("uniform", "columbia", "mpiigaze", "columbia_follow")
# The paper's SGD learning rate, which acts on its losses summed over the discriminator's patches.
PAPER_SGD_RATE = 0.001


def patch_count(image_shape: tuple[int, ...] = (35, 55)) -> int:
    """Patches in the discriminator's logit map for H x W images: 9 x 14 = 126 for 35 x 55.

    Its two stride-2 "same" convolutions each halve H and W, rounding up (models.build_discriminator;
    counted here without building it, so that reading a config needs no Keras; tests check the two
    agree).
    """
    h, w = image_shape[:2]
    for _ in range(2):
        h, w = -(-h // 2), -(-w // 2)
    return h * w


# Our losses are means over the P patches (losses.py), 1 / P of the paper's sums, and so are their
# gradients: the paper's SGD step is PAPER_SGD_RATE * P on our scale (0.126 for eyes).
PAPER_LEARNING_RATE = PAPER_SGD_RATE * patch_count()


@dataclass
class Config:
    preset: str = "quick"
    # Data: None means built-in (simulator synthetic images; data/real_gaze.h5 or the target domain).
    synthetic: str | None = None
    real: str | None = None
    n_synthetic: int = 20_000  # images the simulator makes when --synthetic is not given
    n_real: int = 20_000  # target-domain images made when no real set is found
    data_dir: str = "data"
    # Scenes of the built-in simulator (simulator.PROFILES): gaze, head pose, eye placement.
    scene_profile: str = "uniform"
    # How synthetic images are normalised before the refiner sees them (photometry.py): "auto" picks
    # "equalize" or "match" from the real set; training writes the choice (and "match"'s 256-entry
    # synthetic -> real lookup table) into config.json, so that refine prepares images the same way.
    input_norm: str = "auto"
    input_lut: tuple[int, ...] | None = None
    out: str = "runs/quick"
    seed: int = 0
    image_shape: tuple[int, int, int] = (35, 55, 1)
    # Networks (REFERENCE.md); CPU presets shrink the width, never the structure.
    refiner_filters: int = 64
    refiner_blocks: int = 4
    discriminator_filters: tuple[int, int, int, int] = (96, 64, 32, 32)
    # Schedule.
    steps: int = 10_000  # adversarial steps, each K_g refiner + K_d discriminator updates
    pretrain_refiner_steps: int = 1_000
    pretrain_discriminator_steps: int = 200
    kg: int = 2
    kd: int = 1
    batch_size: int = 512
    buffer_size: int = 25_600
    # lambda weighs the mean |refined - synthetic| against the mean per-patch cross-entropy
    # (losses.py says how this relates to the paper's sums).
    lambda_reg: float = 1.0
    # Weight of a second self-regularisation term, in a feature space (the paper's psi): how far
    # (radians) a frozen, appearance-blind gaze estimator's reading of the refined image moves from
    # its reading of the synthetic one. 0 (every preset): the paper's pixel L1 alone.
    gaze_reg: float = 0.0
    # How the term's estimator is trained. "augmented": under random appearance changes, so texture
    # and tone move its reading little. "plain": on the synthetic images as they are, so it also reads
    # what augmentation teaches the other to ignore (a test of what the augmented one is blind to).
    # "both": one of each, the term the root mean square of their two distances, so the refiner pays
    # for what either reads (the plain one the tone shifts that turn the refined arm's estimator,
    # the augmented one the geometry the drift measure reads).
    gaze_reader: str = "augmented"
    # With "both": how much the augmented reader's distance counts against the plain one's (the
    # term is then the root of the weighted mean of their squared distances, weights 1 and this).
    augmented_reader_weight: float = 1.0
    # Momentum of an exponential moving average of the refiner's weights, kept by its optimizer (one
    # update per refiner update) and saved as the run's refiner.keras instead of the last weights:
    # the refiner keeps repainting (checkpoints a few hundred steps apart differ as much as each
    # differs from its input), and an average is the usual remedy for a GAN generator that moves.
    # 0 (every preset): the last weights, as the paper.
    refiner_ema: float = 0.0
    optimizer: str = "sgd"
    learning_rate: float = PAPER_LEARNING_RATE
    # The discriminator's own rate (None: learning_rate). A faster discriminator is one way to keep
    # it from being outrun by K_g refiner updates per step (two time-scale updates, Heusel et al.).
    discriminator_learning_rate: float | None = None
    # "spectral": every discriminator convolution spectrally normalised (Miyato et al. 2018), which
    # bounds how fast the discriminator can change; "none": the paper's plain convolutions.
    discriminator_norm: str = "none"
    # Output cadence, in steps.
    log_every: int = 100
    sample_every: int = 1_000
    checkpoint_every: int = 1_000
    keep_checkpoints: int = 3
    tensorboard: bool = True  # event files in OUT/tensorboard/ (tensorboard --logdir runs)
    backup_dir: str | None = (
        None  # a second copy of the newest checkpoint (a mounted Drive on Colab)
    )
    deterministic: bool = False  # TensorFlow's op determinism: identical runs, a little slower
    # Speed; None = decide from the hardware (on for a GPU, off for a CPU).
    jit_compile: bool | None = None
    mixed_precision: bool | None = None
    # bfloat16 or float16 (with loss scaling); None: bfloat16, or float16 on a GPU older than
    # compute capability 8.0, which has float16 tensor cores but no native bfloat16.
    mixed_precision_dtype: str | None = None
    # Devices: the tf.distribute strategy; batch_size is the global batch, split among replicas.
    strategy: str = "default"
    # Threads each op's CPU work is split over (TensorFlow's intra-op pool); None: one per core.
    # The count changes a run's sums in their last bits, so a CPU run repeats only at the same
    # count: config.json records the count used, and a resumed run keeps it.
    cpu_threads: int | None = None
    extra: dict = field(default_factory=dict)

    def validate(self) -> Config:
        self._check_types()
        checks = self._data_checks() + self._schedule_checks() + self._speed_checks()
        for ok, message in checks:
            if not ok:
                raise SimGANError(message)
        return self

    def _data_checks(self) -> list[tuple[bool, str]]:
        """Data, scenes, input normalisation and the networks' sizes."""
        return [
            (0 <= self.seed < 2**32, f"--seed must be in [0, 2**32), got {self.seed}"),
            (
                self.n_synthetic >= 1 and self.n_real >= 1,
                f"--n-synthetic and --n-real must be >= 1, got {self.n_synthetic}, {self.n_real}",
            ),
            (
                len(self.image_shape) == 3 and min(self.image_shape) >= 1,
                f"image_shape must be three positive sizes (H, W, C), got {self.image_shape}",
            ),
            (
                self.refiner_filters >= 1 and self.refiner_blocks >= 1,
                f"--refiner-filters and --refiner-blocks must be >= 1, "
                f"got {self.refiner_filters}, {self.refiner_blocks}",
            ),
            (
                len(self.discriminator_filters) == 4 and min(self.discriminator_filters) >= 1,
                f"--discriminator-filters must be four widths >= 1, got {self.discriminator_filters}",
            ),
            (
                self.preset in PRESETS,
                f"unknown preset {self.preset!r}; expected one of {sorted(PRESETS)}",
            ),
            (
                self.scene_profile in SCENE_PROFILES,
                f"unknown --scene-profile {self.scene_profile!r}; expected one of "
                f"{', '.join(SCENE_PROFILES)}",
            ),
            (
                self.input_norm in photometry.MODES,
                f"unknown --input-norm {self.input_norm!r}; expected one of "
                f"{', '.join(photometry.MODES)}",
            ),
            (
                self.input_lut is None
                or (len(self.input_lut) == 256 and all(0 <= v <= 255 for v in self.input_lut)),
                "input_lut must be 256 gray levels 0..255 (one per input level)",
            ),
            (
                self.input_lut is None or self.input_norm == "match",
                f"input_lut goes with input_norm 'match', not {self.input_norm!r}",
            ),
        ]

    def _schedule_checks(self) -> list[tuple[bool, str]]:
        """Steps, batch, buffer, loss weight, optimizers and output cadence."""
        return [
            (self.batch_size >= 2, f"--batch-size must be at least 2, got {self.batch_size}"),
            (self.steps >= 0, f"--steps must be >= 0, got {self.steps}"),
            (self.pretrain_refiner_steps >= 0, "--pretrain-refiner-steps must be >= 0"),
            (self.pretrain_discriminator_steps >= 0, "--pretrain-discriminator-steps must be >= 0"),
            (
                self.kg >= 1 and self.kd >= 1,
                f"--kg and --kd must be >= 1, got {self.kg}, {self.kd}",
            ),
            (
                self.buffer_size >= self.batch_size // 2,
                f"--buffer-size ({self.buffer_size}) must hold at least half a batch ({self.batch_size // 2})",
            ),
            (self.lambda_reg >= 0, f"--lambda-reg must be >= 0, got {self.lambda_reg}"),
            (self.gaze_reg >= 0, f"--gaze-reg must be >= 0, got {self.gaze_reg}"),
            (
                self.gaze_reader in GAZE_READERS,
                f"--gaze-reader must be one of {', '.join(GAZE_READERS)}, got {self.gaze_reader!r}",
            ),
            (
                # Without a term there is no reader, and a silently ignored choice would mislead.
                self.gaze_reader == "augmented" or self.gaze_reg > 0,
                f"--gaze-reader {self.gaze_reader} needs a gaze term (--gaze-reg > 0)",
            ),
            (
                self.augmented_reader_weight > 0,
                f"--augmented-reader-weight must be > 0, got {self.augmented_reader_weight}",
            ),
            (
                self.augmented_reader_weight == 1.0 or self.gaze_reader == "both",
                "--augmented-reader-weight weighs one reader against the other: it needs "
                "--gaze-reader both",
            ),
            (self.learning_rate > 0, f"--learning-rate must be > 0, got {self.learning_rate}"),
            (
                0 <= self.refiner_ema < 1,
                f"--refiner-ema must be in [0, 1) (0: no average), got {self.refiner_ema}",
            ),
            (
                self.discriminator_norm in DISCRIMINATOR_NORMS,
                f"--discriminator-norm must be one of {', '.join(DISCRIMINATOR_NORMS)}, "
                f"got {self.discriminator_norm!r}",
            ),
            (
                # Its power-iteration vector is a variable written in the replica's step.
                self.discriminator_norm == "none" or self.strategy == "default",
                "--discriminator-norm spectral works with --strategy default only",
            ),
            (
                self.discriminator_learning_rate is None or self.discriminator_learning_rate > 0,
                f"--discriminator-learning-rate must be > 0, got {self.discriminator_learning_rate}",
            ),
            (
                self.optimizer in ("sgd", "adam"),
                f"--optimizer must be sgd or adam, got {self.optimizer!r}",
            ),
            (self.log_every >= 1, "--log-every must be >= 1"),
            (self.keep_checkpoints >= 1, "--keep-checkpoints must be >= 1"),
            (
                self.sample_every >= 1 and self.checkpoint_every >= 1,
                "--sample-every and --checkpoint-every must be >= 1",
            ),
        ]

    def _speed_checks(self) -> list[tuple[bool, str]]:
        """Precision, devices and determinism, which rule each other out in places."""
        return [
            (
                self.mixed_precision_dtype in (None, "bfloat16", "float16"),
                "--mixed-precision-dtype must be bfloat16 or float16, "
                f"got {self.mixed_precision_dtype!r}",
            ),
            (
                self.cpu_threads is None or self.cpu_threads >= 1,
                f"--cpu-threads must be >= 1, got {self.cpu_threads}",
            ),
            (
                self.strategy in STRATEGIES,
                f"unknown --strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}",
            ),
            (
                # Keras compiles the whole multi-device step as one XLA cluster, which cannot span
                # the replicas' devices (and a TPU compiles with XLA anyway).
                self.strategy == "default" or not self.jit_compile,
                f"--jit-compile works with --strategy default only, not {self.strategy!r}",
            ),
            (
                # Keras would silently compile without XLA: op determinism rules XLA out.
                not (self.deterministic and self.jit_compile),
                "--deterministic turns XLA off: drop --jit-compile",
            ),
        ]

    def _check_types(self) -> None:
        """Refuse values of the wrong type (say, from a hand-edited config.json) before comparing."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            declared = str(f.type)
            if value is None and declared.endswith("| None"):
                continue
            base = declared.split(" |")[0].split("[")[0]
            if base == "tuple":
                ok = isinstance(value, tuple) and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                )
            else:
                # bool is an int subclass: True is no batch size.
                ok = isinstance(value, _KINDS[base]) and (
                    base == "bool" or not isinstance(value, bool)
                )
            if not ok:
                raise SimGANError(f"setting {f.name!r} must be of type {declared}, got {value!r}")

    @property
    def total_steps(self) -> int:
        return self.pretrain_refiner_steps + self.pretrain_discriminator_steps + self.steps

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SimGANError(f"unknown config keys: {', '.join(unknown)}")
        values = dict(values)
        for key in ("image_shape", "discriminator_filters", "input_lut"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)


PRESETS: dict[str, dict] = {
    # The paper's settings: full networks, batch 512, SGD, 1,000 + 200 pretraining steps, K_g = 2,
    # K_d = 1, a 25,600-image history. Meant for a GPU. Its SGD 0.001 on the paper's summed losses
    # is PAPER_LEARNING_RATE on our mean ones (above).
    "paper": dict(
        out="runs/paper", n_synthetic=100_000, n_real=100_000, learning_rate=PAPER_LEARNING_RATE
    ),
    # The same structure at a quarter of the width, sized to finish in about 15 minutes on a
    # 2-core CPU and still refine visibly: Adam, because SGD at this step budget barely moves.
    "quick": dict(
        out="runs/quick",
        refiner_filters=32,
        discriminator_filters=(48, 32, 16, 16),
        steps=1_000,
        pretrain_refiner_steps=200,
        pretrain_discriminator_steps=100,
        batch_size=32,
        buffer_size=3_200,
        optimizer="adam",
        learning_rate=1e-3,
        log_every=50,
        sample_every=250,
        checkpoint_every=500,
    ),
    # Seconds, for tests and for checking an installation.
    "smoke": dict(
        out="runs/smoke",
        n_synthetic=512,
        n_real=512,
        refiner_filters=8,
        refiner_blocks=1,
        discriminator_filters=(8, 8, 8, 8),
        steps=6,
        pretrain_refiner_steps=3,
        pretrain_discriminator_steps=3,
        batch_size=8,
        buffer_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        log_every=3,
        sample_every=3,
        checkpoint_every=3,
    ),
}


def make_config(preset: str = "quick", **overrides) -> Config:
    """The preset's settings with `overrides` (None values ignored) on top, validated."""
    if preset not in PRESETS:
        raise SimGANError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    values = {"preset": preset, **PRESETS[preset]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config.from_dict(values).validate()
