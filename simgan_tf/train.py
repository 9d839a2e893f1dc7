"""Train a SimGAN refiner: `python -m simgan_tf.train [--preset quick] [--synthetic S.h5 --real R.h5]`.

Writes into --out: config.json, metrics.csv, losses.png, samples/step_N.png, warnings.txt (if any),
summary.json, checkpoints/, refiner.keras and discriminator.keras (and with --gaze-reg,
gaze_reader.keras: the frozen estimator its term reads the gaze with).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import fields, replace

import numpy as np

from simgan_tf import photometry
from simgan_tf.config import (
    DISCRIMINATOR_NORMS,
    GAZE_READERS,
    PRESETS,
    SCENE_PROFILES,
    STRATEGIES,
    Config,
    make_config,
)
from simgan_tf.data import load_eyes, to_gray_levels, to_model_range, training_dataset
from simgan_tf.errors import SimGANError, cli
from simgan_tf.files import atomic_write, read_json, write_text

N_SAMPLES = 8  # rows in each sample grid


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """(the run's config: the preset's settings with the flags given on top, the parsed flags)."""
    args = _parser().parse_args(argv)
    names = {f.name for f in fields(Config)}
    overrides = {k: v for k, v in vars(args).items() if k in names and k != "preset"}
    cfg = make_config(args.preset, **overrides)
    return cfg, args


def _parser() -> argparse.ArgumentParser:
    """The command line, one argument group a topic, so that --help reads by topic too."""
    p = argparse.ArgumentParser(
        prog="python -m simgan_tf.train",
        description="Train a SimGAN refiner and discriminator on eye images.",
        epilog="Every setting not given takes the preset's value (README, Presets); "
        "python -m simgan_tf.train --preset P prints them all at the start of a run.",
    )
    p.add_argument(
        "--preset", default="quick", choices=sorted(PRESETS), help="settings to start from"
    )
    _add_data_options(p)
    _add_schedule_options(p)
    _add_network_options(p)
    _add_output_options(p)
    _add_long_run_options(p)
    _add_speed_options(p)
    return p


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """The training sets (files, or the built-in simulator's) and how the inputs are normalised."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--synthetic",
        help="labelled synthetic images (Kaggle gaze.h5 layout); default: built-in simulator",
    )
    g.add_argument(
        "--real",
        help="unlabelled real images; default: data/real_gaze.h5, else the simulator's target domain",
    )
    g.add_argument("--n-synthetic", type=int, help="built-in synthetic images to simulate")
    g.add_argument("--n-real", type=int, help="built-in target-domain images to simulate")
    g.add_argument("--data-dir", help="where built-in data is cached")
    g.add_argument(
        "--scene-profile",
        choices=SCENE_PROFILES,
        help="scene distribution of the built-in simulator (README, Simulator; default uniform)",
    )
    g.add_argument(
        "--input-norm",
        choices=photometry.MODES,
        help="normalise synthetic images like the real set before the refiner sees them: per-image "
        "histogram equalisation, a histogram-matching lookup table, or none (default: auto, "
        "equalize if the real set is equalised, else match); saved in config.json for refine",
    )


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    """How long each phase trains, on what batches, with which losses and optimizers."""
    g = p.add_argument_group("schedule and optimisation")
    g.add_argument(
        "--steps", type=int, help="adversarial steps (each K_g refiner + K_d discriminator updates)"
    )
    g.add_argument("--batch-size", type=int)
    g.add_argument("--pretrain-refiner-steps", type=int, help="refiner steps on the L1 loss alone")
    g.add_argument(
        "--pretrain-discriminator-steps",
        type=int,
        help="discriminator steps before adversarial training",
    )
    g.add_argument(
        "--lambda-reg", type=float, help="weight of the mean |refined - synthetic| (see losses.py)"
    )
    g.add_argument(
        "--gaze-reg",
        type=float,
        help="weight of a gaze-keeping term: how far (radians) a frozen estimator trained on the "
        "synthetic set with random appearance changes reads the refined image's gaze from the "
        "synthetic one's (default 0: the paper's L1 alone)",
    )
    g.add_argument(
        "--gaze-reader",
        choices=GAZE_READERS,
        help="how --gaze-reg's estimator is trained: augmented (default: under random appearance "
        "changes), plain (on the synthetic images as they are) or both (one of each; the term is "
        "the root mean square of their two readings' distances)",
    )
    g.add_argument(
        "--augmented-reader-weight",
        type=float,
        help="with --gaze-reader both: how much the augmented reader's distance counts against the "
        "plain one's (default 1; the term is the root of their weighted mean square)",
    )
    g.add_argument("--kg", type=int, help="refiner updates per step")
    g.add_argument("--kd", type=int, help="discriminator updates per step")
    g.add_argument("--buffer-size", type=int, help="history buffer capacity (images)")
    g.add_argument(
        "--refiner-ema",
        type=float,
        metavar="MOMENTUM",
        help="save a moving average of the refiner's weights as refiner.keras, with this momentum "
        "per refiner update, e.g. 0.999 (default 0: the last weights)",
    )
    g.add_argument("--optimizer", choices=("sgd", "adam"))
    g.add_argument("--learning-rate", type=float)
    g.add_argument(
        "--discriminator-learning-rate",
        type=float,
        help="the discriminator's own learning rate (default: --learning-rate)",
    )
    g.add_argument(
        "--discriminator-norm",
        choices=DISCRIMINATOR_NORMS,
        help="spectral: spectrally normalised discriminator convolutions (default: none)",
    )
    g.add_argument("--seed", type=int)


def _add_network_options(p: argparse.ArgumentParser) -> None:
    """The refiner's size (the discriminator's comes from the preset)."""
    g = p.add_argument_group("networks")
    g.add_argument("--refiner-filters", type=int)
    g.add_argument("--refiner-blocks", type=int)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """Where the run is written, and how often it reports."""
    g = p.add_argument_group("outputs")
    g.add_argument("--out", help="run directory (default: runs/<preset>)")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    g.add_argument("--log-every", type=int, help="steps per metrics row (and per progress bar)")
    g.add_argument("--sample-every", type=int, help="steps between sample grids")
    g.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        help="TensorBoard event files in --out/tensorboard/: metrics, sample grids, config "
        "(default: on)",
    )
    g.add_argument(
        "--verbose",
        type=int,
        default=1,
        help="Keras progress: 0 silent, 1 bars, 2 one line per interval",
    )


def _add_long_run_options(p: argparse.ArgumentParser) -> None:
    """Checkpoints, backups and resuming: what lets a run outlive a session."""
    g = p.add_argument_group("long runs")
    g.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    g.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    g.add_argument("--keep-checkpoints", type=int, help="how many checkpoints to keep")
    g.add_argument(
        "--backup-dir", help="also keep the newest checkpoint here; --resume restores from it"
    )


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    """Determinism, XLA, mixed precision and the tf.distribute strategy: how steps use hardware."""
    g = p.add_argument_group("speed and devices")
    g.add_argument(
        "--deterministic", action="store_true", default=None, help="TensorFlow op determinism"
    )
    g.add_argument(
        "--jit-compile", action=argparse.BooleanOptionalAction, help="XLA (default: on a GPU only)"
    )
    g.add_argument(
        "--cpu-threads",
        type=int,
        help="threads each op's CPU work is split over (default: one per core); a CPU run repeats "
        "bit for bit only at the same count, which config.json records",
    )
    g.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        help="half-precision compute, float32 weights, logits and losses "
        "(default: on a GPU of compute capability 8.0 or newer only)",
    )
    g.add_argument(
        "--mixed-precision-dtype",
        choices=("bfloat16", "float16"),
        help="the half type: float16 adds dynamic loss scaling (default: bfloat16, or float16 on "
        "a GPU older than compute capability 8.0, such as a T4 or V100)",
    )
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy; --batch-size is the global batch, split among the replicas "
        "(default: default, one device)",
    )


def load_training_data(cfg: Config) -> tuple[np.ndarray, np.ndarray, dict]:
    """(synthetic uint8, real uint8, where each came from). Built-in data is simulated once and cached."""
    shape = tuple(cfg.image_shape[:2])
    path = _synthetic_path(cfg)
    synthetic = load_eyes(path, expected_shape=shape).images
    source = {"synthetic": cfg.synthetic or f"built-in simulator ({path})"}
    kaggle_real = os.path.join(cfg.data_dir, "real_gaze.h5")
    if cfg.real:
        real = load_eyes(cfg.real, expected_shape=shape).images
        source["real"] = cfg.real
    elif os.path.exists(kaggle_real):
        real = load_eyes(kaggle_real, expected_shape=shape).images
        source["real"] = kaggle_real
    else:
        from simgan_tf import simulator

        # Other scenes than the synthetic set's (another seed): real images must not be paired.
        path = simulator.ensure_simulated(
            "target", cfg.n_real, cfg.seed + 1, cfg.data_dir, profile=cfg.scene_profile
        )
        real = load_eyes(path, expected_shape=shape).images
        source["real"] = f"built-in target domain ({path}); images only, never its labels"
    for name, images in (("synthetic", synthetic), ("real", real)):
        if len(images) < cfg.batch_size:
            raise SimGANError(
                f"{source[name]}: {len(images)} {name} images, fewer than one batch ({cfg.batch_size})"
            )
    return synthetic, real, source


def _synthetic_path(cfg: Config) -> str:
    """The synthetic set's file: --synthetic, or the built-in simulator's cached renders."""
    if cfg.synthetic:
        return cfg.synthetic
    from simgan_tf import simulator

    return simulator.ensure_simulated(
        "synthetic", cfg.n_synthetic, cfg.seed, cfg.data_dir, profile=cfg.scene_profile
    )


def resolve_input_norm(cfg: Config, synthetic: np.ndarray, real: np.ndarray) -> tuple[Config, str]:
    """`cfg` with its input normalisation resolved against the training sets, and why (one line).

    A "match" with its table (a resumed run's config.json) is kept as it is: resolving it again
    from other data would change what the trained refiner expects.
    """
    if cfg.input_norm == "match" and cfg.input_lut is not None:
        return cfg, "match (the lookup table in config.json)"
    mode, lut = photometry.resolve(cfg.input_norm, synthetic, real)
    if cfg.input_norm != "auto":
        why = f"{mode} (as asked)"
    elif mode == "equalize":
        why = "equalize (the real set is histogram-equalised per image)"
    else:
        why = (
            "match (the real set is not equalised per image: one lookup table maps the synthetic "
            "set's gray levels onto the real set's distribution)"
        )
    resolved = replace(cfg, input_norm=mode, input_lut=None if lut is None else tuple(lut))
    return resolved.validate(), why


def build_model(cfg: Config, strategy=None, gaze_reader: str | None = None):
    """The compiled SimGAN of this config (networks, buffer, optimizers).

    Everything is created under `strategy` (default: the one cfg.strategy names), so that fit() runs
    each step on all of its replicas; `distribute.distribute_steps` splits the data to match.
    `gaze_reader`: the saved estimator of cfg.gaze_reg's term (`train_gaze_reader`); without it the
    model has no gaze term (what refine and evaluate need: they only apply the refiner).
    """
    import keras

    from simgan_tf.distribute import check_batch, make_strategy, resolve_speed

    strategy = strategy or make_strategy(cfg.strategy)
    check_batch(cfg.batch_size, strategy.num_replicas_in_sync)
    speed = resolve_speed(cfg)
    # Logits and losses stay float32. The policy is global, and only layers made now need it: it is
    # put back afterwards, so that a gaze estimator built next (in a notebook, after training)
    # computes in float32 as the evaluate command's does.
    half = speed["mixed_precision_dtype"] if speed["mixed_precision"] else None
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(f"mixed_{half}" if half else "float32")
    try:
        return _compiled_model(cfg, strategy, half, speed["jit_compile"], gaze_reader)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _compiled_model(
    cfg: Config, strategy, half: str | None, jit_compile: bool, gaze_reader: str | None
):
    """build_model's networks, buffer and optimizers, made under the policy it has set."""
    import keras

    from simgan_tf.models import build_discriminator, build_refiner
    from simgan_tf.simgan import SimGAN

    def optimizer(rate: float, ema: float = 0.0):
        kind = keras.optimizers.Adam if cfg.optimizer == "adam" else keras.optimizers.SGD
        # Keras keeps the average in the optimizer's variables: checkpoints hold it, resume restores it.
        opt = kind(rate, use_ema=ema > 0, ema_momentum=ema or 0.99)
        # float16's narrow range underflows small gradients: dynamic loss scaling for both networks.
        # bfloat16 keeps float32's range and needs none.
        return keras.optimizers.LossScaleOptimizer(opt) if half == "float16" else opt

    with strategy.scope():
        refiner = build_refiner(cfg.image_shape, cfg.refiner_filters, cfg.refiner_blocks)
        discriminator = build_discriminator(
            cfg.image_shape,
            cfg.discriminator_filters,
            spectral_norm=cfg.discriminator_norm == "spectral",
        )
        model = SimGAN(refiner, discriminator, cfg.buffer_size, cfg.kg, cfg.kd, seed=cfg.seed)
        reader = None
        if gaze_reader and cfg.gaze_reg > 0:
            # Loaded here, under the strategy, so that each replica can run it.
            reader = keras.models.load_model(gaze_reader, compile=False)
            reader.trainable = False
        model.compile(
            optimizer(cfg.learning_rate, cfg.refiner_ema),
            optimizer(cfg.discriminator_learning_rate or cfg.learning_rate),
            lambda_reg=cfg.lambda_reg,
            gaze_reg=cfg.gaze_reg if reader is not None else 0.0,
            gaze_reader=reader,
            jit_compile=jit_compile,
        )
    return model


def train_gaze_reader(cfg: Config, synthetic: np.ndarray, verbose: int = 1) -> str:
    """The frozen estimator of cfg.gaze_reg's term, in cfg.out/gaze_reader.keras; returns the path.

    Trained once per run (a resumed run reads with the one it began with) on the synthetic images as
    the refiner receives them, with their labels, under the strong random appearance changes of the
    drift estimator (gaze.train_drift_estimator), so that what a refiner does to texture and tone
    moves its reading little and what it does to the eye's geometry moves it much; the estimator
    preset of the same name as cfg.preset, seed cfg.seed. With cfg.gaze_reader "plain", the same
    recipe without the changes; with "both", one of each, saved as one model whose reading is
    their two unit readings side by side (losses.gaze_consistency_loss then measures the root mean
    square of the two distances).
    """
    from simgan_tf.gaze import AUGMENTED_COPIES, ESTIMATOR_PRESETS, train_drift_estimator

    path = os.path.join(cfg.out, "gaze_reader.keras")
    if os.path.exists(path):
        print(f"gaze term: reading with {path}, as this run began")
        return path
    look_vec = synthetic_labels(cfg, len(synthetic))
    spec = ESTIMATOR_PRESETS.get(cfg.preset, ESTIMATOR_PRESETS["quick"])
    kinds = ("plain", "augmented") if cfg.gaze_reader == "both" else (cfg.gaze_reader,)
    print(
        f"gaze term: training its {' and '.join(kinds)} estimator{'s' * (len(kinds) > 1)} "
        f"({spec.steps} steps each) on the synthetic set"
    )
    readers = [
        train_drift_estimator(
            synthetic,
            look_vec,
            seed=cfg.seed,
            spec=spec,
            copies=AUGMENTED_COPIES if kind == "augmented" else 0,
            equalize_input=False,
            verbose=verbose,
        )
        for kind in kinds
    ]
    if len(readers) > 1:
        weights = {"augmented": cfg.augmented_reader_weight}
        _save_keras(_side_by_side(readers, kinds, [weights.get(k, 1.0) for k in kinds]), path)
    else:
        _save_keras(readers[0], path)
    return path


def _side_by_side(readers: list, kinds: tuple[str, ...], weights: list[float]):
    """One model reading with every reader: their unit gaze vectors, each scaled by the root of its
    weight, concatenated. The concatenation's length is then the same for every image, so the gaze
    term's distance (losses.gaze_consistency_loss) is the root of the weighted mean of the squared
    distances."""
    import keras

    x = keras.Input(readers[0].input_shape[1:])
    # Renamed: the readers are built alike, and one model's parts need names of their own.
    named = [
        keras.Model(r.inputs, r.outputs[0], name=f"{k}_reader")
        for r, k in zip(readers, kinds, strict=True)
    ]
    units = [
        keras.layers.Rescaling(w**0.5)(keras.layers.UnitNormalization(axis=-1)(r(x)))
        for r, w in zip(named, weights, strict=True)
    ]
    return keras.Model(x, keras.layers.Concatenate()(units), name="gaze_readers")


def synthetic_labels(cfg: Config, n: int) -> np.ndarray:
    """The gaze labels of the synthetic set load_training_data read (n images)."""
    path = _synthetic_path(cfg)
    look_vec = load_eyes(path, expected_shape=tuple(cfg.image_shape[:2])).look_vec
    if look_vec is None:
        raise SimGANError(f"{path}: no gaze labels (look_vec), which --gaze-reg needs")
    if len(look_vec) != n:
        raise SimGANError(f"{path}: {len(look_vec)} gaze labels for {n} images")
    return look_vec


def _prepare_out(cfg: Config, overwrite: bool) -> None:
    """Fail before any training if --out holds a run (unless --overwrite) or cannot be written."""
    if os.path.exists(os.path.join(cfg.out, "config.json")):
        if not overwrite:
            raise SimGANError(f"{cfg.out}: already holds a run (pass --overwrite to replace it)")
        for name in ("samples", "checkpoints", "tensorboard"):
            shutil.rmtree(os.path.join(cfg.out, name), ignore_errors=True)
        for name in ("metrics.csv", "warnings.txt", "summary.json", "gaze_reader.keras"):
            if os.path.exists(os.path.join(cfg.out, name)):
                os.remove(os.path.join(cfg.out, name))
    try:
        os.makedirs(cfg.out, exist_ok=True)
        write_text(os.path.join(cfg.out, "config.json"), cfg.to_json() + "\n")
    except OSError as e:
        raise SimGANError(
            f"{cfg.out}: cannot write the run directory ({e.strerror or e})"
        ) from None


def _forget_run(out: str) -> None:
    """Remove what _prepare_out and the set-up wrote into `out`, and `out` itself if left empty."""
    for name in ("config.json", "gaze_reader.keras"):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    try:
        os.rmdir(out)
    except OSError:
        pass  # it holds other things (the user's, or a TensorBoard folder): leave them


def _save_keras(model, path: str) -> None:
    with atomic_write(path) as tmp:
        model.save(tmp)


def phase_groups(cfg: Config, phase: str) -> tuple[int, int]:
    """(synthetic, real) batches one train_step of `phase` uses: pretraining uses one of each."""
    return (cfg.kg + cfg.kd, cfg.kd) if phase == "adversarial" else (1, 1)


def phase_dataset(cfg: Config, phase: str, synthetic: np.ndarray, real: np.ndarray, step: int):
    """`phase`'s training stream from global step `step` on.

    Each phase has a stream of its own (seeded by the seed and the phase) that starts at the phase's
    first step, so a step's batches are a pure function of (seed, step) although the phases gather
    different numbers of batches per step: a resumed run sees what an uninterrupted one saw.
    """
    from simgan_tf.simgan import PHASES

    begin, _ = _phase_span(cfg, phase)
    groups = phase_groups(cfg, phase)
    return training_dataset(
        synthetic,
        real,
        cfg.batch_size,
        *groups,
        cfg.seed,
        start_step=step - begin,
        stream=PHASES.index(phase),
    )


def _phase_span(cfg: Config, phase: str) -> tuple[int, int]:
    """(first step, end step) of `phase`; (0, 0) for a phase of 0 steps, which is not in the plan."""
    ((begin, end),) = [(b, e) for p, b, e in phase_plan(cfg) if p == phase] or [(0, 0)]
    return begin, end


def phase_plan(cfg: Config) -> list[tuple[str, int, int]]:
    """(phase, first step, end step) for each phase with steps, in global step numbers."""
    plan, begin = [], 0
    for phase, steps in (
        ("pretrain_refiner", cfg.pretrain_refiner_steps),
        ("pretrain_discriminator", cfg.pretrain_discriminator_steps),
        ("adversarial", cfg.steps),
    ):
        if steps:
            plan.append((phase, begin, begin + steps))
        begin += steps
    return plan


class Run:
    """One training run, phase by phase: `train` runs every phase; a notebook can step through them.

    Creating it does everything before the first step: the strategy, the output folder (refused if it
    holds a run, unless `overwrite`), the data, the compiled model, the callbacks, and with `resume`
    the newest checkpoint. `callbacks` are added after the run's own (which write metrics.csv and the
    sample grids first). `run_phase` trains one phase of `phase_plan(cfg)`; `finish` writes the final
    checkpoint, grid, models and summary.json.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        overwrite: bool = False,
        resume: bool = False,
        verbose: int = 1,
        callbacks: tuple = (),
    ):
        # Each step reads what the ones before it set on self; the order is the run's: a --seed run
        # repeats exactly, and a resumed one continues as the uninterrupted one would have.
        self.cfg, self.verbose = cfg, verbose
        self._check_devices_and_out(overwrite, resume)
        try:
            self._report_config()
            self._load_data()
            self._normalise_inputs()
            self._build_model()
            start = self._restore_or_start(resume)
            self._set_up_callbacks(start, resume, callbacks)
        except BaseException:
            if not resume:
                # Nothing trained yet: a config.json left behind would make the corrected command
                # refuse the folder ("already holds a run").
                _forget_run(self.cfg.out)
            raise
        self.started = time.time()

    def _check_devices_and_out(self, overwrite: bool, resume: bool) -> None:
        """The strategy, the run directory and --backup-dir: what can fail fails before any work."""
        from simgan_tf.distribute import (
            check_batch,
            make_strategy,
            resolve_speed,
            set_cpu_threads,
        )

        # The half type and the thread count change what a run computes: config.json records the
        # ones this machine chose, and a resumed run keeps them wherever it resumes.
        speed = resolve_speed(self.cfg)
        self.cfg = cfg = replace(
            self.cfg,
            mixed_precision=speed["mixed_precision"],
            mixed_precision_dtype=speed["mixed_precision_dtype"],
        ).validate()
        self.cfg = cfg = replace(cfg, cpu_threads=set_cpu_threads(cfg.cpu_threads))
        # Before anything is written: a missing TPU or a batch the replicas cannot share fails first.
        self.strategy = make_strategy(cfg.strategy)
        check_batch(cfg.batch_size, self.strategy.num_replicas_in_sync)
        if not resume:
            _prepare_out(cfg, overwrite)
        if cfg.backup_dir:
            # Found out now, not at the first checkpoint an hour in.
            try:
                os.makedirs(os.path.join(cfg.backup_dir, "checkpoints"), exist_ok=True)
            except OSError as e:
                raise SimGANError(
                    f"{cfg.backup_dir}: cannot use as --backup-dir ({e.strerror or e})"
                ) from None

    def _report_config(self) -> None:
        """Print the settings, and what the hardware decided for those config.json leaves open."""
        from simgan_tf.distribute import resolve_speed

        cfg, replicas = self.cfg, self.strategy.num_replicas_in_sync
        print(f"simgan_tf: preset {cfg.preset}, writing to {cfg.out}\n{cfg.to_json()}")
        # config.json keeps XLA's None ("decide from the hardware"); this line says what was decided.
        self.devices = {
            "strategy": cfg.strategy,
            "replicas": replicas,
            **resolve_speed(cfg),
            "cpu_threads": cfg.cpu_threads,
        }
        print(
            f"devices: {cfg.strategy} strategy, {replicas} replica(s) of batch "
            f"{cfg.batch_size // replicas}; XLA {'on' if self.devices['jit_compile'] else 'off'}, "
            "mixed precision "
            + (self.devices["mixed_precision_dtype"] if self.devices["mixed_precision"] else "off")
            + f"; {cfg.cpu_threads} CPU thread(s) per op"
        )

    def _load_data(self) -> None:
        """Load (or simulate) the synthetic and real sets, and say where each came from."""
        self.synthetic, self.real, self.source = load_training_data(self.cfg)
        print(f"synthetic: {len(self.synthetic)} images from {self.source['synthetic']}")
        print(f"real:      {len(self.real)} images from {self.source['real']}")

    def _normalise_inputs(self) -> None:
        """Resolve the input normalisation against the data, record it, and apply it."""
        cfg = self.cfg
        # What the refiner receives, and what its L1 term compares to, from here on.
        self.cfg, why = resolve_input_norm(cfg, self.synthetic, self.real)
        if self.cfg != cfg:
            # config.json records the resolved choice: refine and a resumed run read it back.
            write_text(os.path.join(cfg.out, "config.json"), self.cfg.to_json() + "\n")
        cfg = self.cfg
        self.synthetic = photometry.apply(self.synthetic, cfg.input_norm, cfg.input_lut)
        print(f"input normalisation: {why}")

    def _build_model(self) -> None:
        """Seed every generator, then build the compiled model: its first weights follow --seed."""
        import keras
        import tensorflow as tf

        reader = None
        if self.cfg.gaze_reg > 0:
            reader = train_gaze_reader(self.cfg, self.synthetic, self.verbose)
        keras.utils.set_random_seed(self.cfg.seed)
        if self.cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.model = build_model(self.cfg, self.strategy, reader)

    def _restore_or_start(self, resume: bool) -> int:
        """With `resume`, load the newest checkpoint (if any); returns the step to start from."""
        from simgan_tf.callbacks import list_checkpoints

        cfg, model = self.cfg, self.model
        found = list_checkpoints(cfg.out) if resume else []
        if found:
            model.load_weights(found[-1])
            print(f"resuming from {found[-1]}")
        start = int(model.step.numpy())
        self.done = (
            resume
            and start >= cfg.total_steps
            and os.path.exists(os.path.join(cfg.out, "refiner.keras"))
        )
        return start

    def _set_up_callbacks(self, start: int, resume: bool, callbacks: tuple) -> None:
        """Pick the images the sample grids show, and make the run's callbacks, then `callbacks`."""
        from simgan_tf.callbacks import run_callbacks

        cfg = self.cfg
        self.rng = rng = np.random.default_rng(cfg.seed)
        shown = min(N_SAMPLES, len(self.synthetic), len(self.real))  # a tiny set shows all it has
        self.shown_synthetic = self.synthetic[rng.choice(len(self.synthetic), shown, replace=False)]
        self.shown_real = self.real[rng.choice(len(self.real), shown, replace=False)]
        run = run_callbacks(cfg, self.shown_synthetic, self.shown_real, start, resume, callbacks)
        self.guard, self.grids = run.guard, run.grids
        self.checkpoints, self.board = run.checkpoints, run.board
        self.callbacks = run.all
        for callback in self.callbacks:
            # Also used outside fit(), for the final grid and checkpoint.
            callback.set_model(self.model)

    @property
    def step(self) -> int:
        return int(self.model.step.numpy())

    def run_phase(self, phase: str) -> None:
        """Train `phase` from where the run stands to its end (nothing if it is already past it)."""
        from simgan_tf.callbacks import list_checkpoints
        from simgan_tf.distribute import distribute_steps
        from simgan_tf.simgan import PHASES

        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        cfg, model = self.cfg, self.model
        begin, end = _phase_span(cfg, phase)
        first = max(begin, self.step)
        if first >= end:
            return
        model.set_phase(phase)
        print(f"\n== {phase}: steps {first} to {end} of batch {cfg.batch_size}")
        t0 = time.time()
        full, rest = divmod(end - first, cfg.log_every)
        for epochs, per_epoch in ((full, cfg.log_every), (1 if rest else 0, rest)):
            if epochs == 0:
                continue
            ds = phase_dataset(cfg, phase, self.synthetic, self.real, self.step)
            model.fit(
                distribute_steps(ds, self.strategy),
                epochs=epochs,
                steps_per_epoch=per_epoch,
                callbacks=self.callbacks,
                verbose=self.verbose,
                shuffle=False,
            )
            if self.guard.bad_step is not None:
                last = list_checkpoints(cfg.out)[-1:] or ["none yet"]
                raise SimGANError(
                    f"step {self.guard.bad_step}: {', '.join(self.guard.bad_metrics)} became NaN "
                    f"or infinite; training stopped. Last good checkpoint: {last[0]}"
                )
        print(f"{phase}: {end - first} steps in {time.time() - t0:.1f} s")

    def finish(self) -> dict:
        """The final checkpoint, sample grid, both models and summary.json; returns the summary."""
        from simgan_tf.callbacks import backup_run, checkpoint_step, list_checkpoints
        from simgan_tf.stats import toward_real

        cfg, model, rng = self.cfg, self.model, self.rng
        step = self.step
        newest = list_checkpoints(cfg.out)[-1:]
        if not newest or checkpoint_step(newest[0]) != step:
            self.checkpoints.save(step)
        # After the checkpoint, which keeps the last weights (and the average) for a resume.
        model.use_refiner_average()
        last_grid = self.grids.save(step)
        if self.board:
            self.board.log_grid(step)  # a run that ends between sample steps shows its end too
        _save_keras(model.refiner, os.path.join(cfg.out, "refiner.keras"))
        _save_keras(model.discriminator, os.path.join(cfg.out, "discriminator.keras"))

        n = min(len(self.synthetic), len(self.real), 2000)
        x = self.synthetic[rng.choice(len(self.synthetic), n, replace=False)]
        refined = to_gray_levels(
            model.refiner.predict(to_model_range(x), batch_size=256, verbose=0)
        )
        shown_real = self.real[rng.choice(len(self.real), n, replace=False)]
        summary = {
            "steps": step,
            "wall_time_s": round(time.time() - self.started, 1),
            "devices": self.devices,
            "data": self.source,
            "refiner": (
                f"moving average of its weights (momentum {cfg.refiner_ema})"
                if cfg.refiner_ema
                else "last weights"
            ),
            "appearance": toward_real(x, refined, shown_real, cfg.seed),
            "last_sample_grid": last_grid,
        }
        write_text(os.path.join(cfg.out, "summary.json"), json.dumps(summary, indent=2) + "\n")
        if cfg.backup_dir:
            backup_run(cfg.out, cfg.backup_dir)
        return summary


def train(cfg: Config, *, overwrite: bool = False, resume: bool = False, verbose: int = 1):
    """Run every phase of `cfg`, writing the run directory; returns the trained SimGAN model.

    With `resume`, continues from the newest checkpoint in cfg.out: the networks, optimizers, history
    buffer, step and random state come from the checkpoint, and the data stream restarts at that
    step's position, so the resumed run sees the batches an uninterrupted one would have seen.
    """
    run = Run(cfg, overwrite=overwrite, resume=resume, verbose=verbose)
    if run.done:
        print(
            f"{cfg.out}: the run already finished ({run.step} of {cfg.total_steps} steps); "
            "nothing to do"
        )
        return run.model
    for phase, _, _ in phase_plan(cfg):
        run.run_phase(phase)
    summary = run.finish()
    a = summary["appearance"]
    print(
        f"\ndone: {summary['steps']} steps in {summary['wall_time_s']} s. Distance to real (gray "
        f"levels), synthetic -> refined: intensity {a['synthetic_to_real']['intensity']:.2f} -> "
        f"{a['refined_to_real']['intensity']:.2f}, gradient {a['synthetic_to_real']['gradient']:.2f} -> "
        f"{a['refined_to_real']['gradient']:.2f}; mean change {a['mean_abs_change']:.2f}."
    )
    print(
        f"outputs in {cfg.out}: refiner.keras, discriminator.keras, metrics.csv, losses.png, "
        f"{summary['last_sample_grid']}"
    )
    return run.model


def resume_config(out: str, backup_dir: str | None, overrides: dict) -> Config:
    """The saved settings of the run in `out` (restored from `backup_dir` first if `out` has none)."""
    from simgan_tf.callbacks import restore_run

    saved = os.path.join(out, "config.json")
    if (
        not os.path.exists(saved)
        and backup_dir
        and os.path.exists(os.path.join(backup_dir, "config.json"))
    ):
        print(f"{out} holds no run: restoring it from the backup in {backup_dir}")
        restore_run(backup_dir, out)
    if not os.path.exists(saved):
        raise SimGANError(f"{out}: no run to resume (no config.json)")
    values = read_json(saved)
    # Runs made before input normalisation existed trained on raw images: keep them on those.
    values.setdefault("input_norm", "none")
    if values.get("mixed_precision") is None:
        # Saved before config.json recorded the precision, when null meant bfloat16 on a GPU of
        # compute capability 8.0 or newer and float32 on every CPU: it resumes in what it began in.
        import tensorflow as tf

        from simgan_tf.distribute import speed_defaults

        gpu = bool(tf.config.list_physical_devices("GPU"))
        values["mixed_precision"] = gpu and speed_defaults()["mixed_precision"]
    # The run may have moved (or come back from a backup): it lives where it is now.
    cfg = Config.from_dict({**values, "out": out})
    changed = sorted(
        k for k, v in overrides.items() if v is not None and getattr(cfg, k) != v and k != "out"
    )
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise SimGANError(f"--resume continues {out} with its saved settings; drop {flags}")
    return cfg.validate()


@cli
def main(argv: list[str] | None = None) -> None:
    cfg, args = parse_args(argv)
    if args.resume:
        names = {f.name for f in fields(Config)}
        # The strategy may change between sessions (one GPU, then several): the global batch, the
        # data stream and the buffer's fill stay those of the saved run.
        kept = ("preset", "backup_dir", "strategy")
        given = {k: v for k, v in vars(args).items() if k in names and k not in kept}
        cfg = resume_config(cfg.out, cfg.backup_dir, given)
        if args.strategy:
            cfg = replace(cfg, strategy=args.strategy).validate()
    train(cfg, overwrite=args.overwrite, resume=args.resume, verbose=args.verbose)


if __name__ == "__main__":
    main()
