"""The realism measure: two-sample tests and probe discriminators, real vs raw synthetic and refined."""

from __future__ import annotations

import numpy as np

from simgan_tf.evaluation.run import Setup, discriminator_filters
from simgan_tf.realism import c2st, probe_discriminator

# The two pairs every realism test compares, as report.json names them ("real vs NAME") and as the
# report and figures label them.
PAIRS = (("synthetic", "raw synthetic"), ("refined", "refined"))


def realism_tests(
    s: Setup,
    real: np.ndarray,
    synthetic: np.ndarray,
    refined: np.ndarray,
    unseen: np.ndarray | None = None,
) -> dict:
    """C2ST and probe, real vs raw synthetic and vs refined; with `unseen` (real eyes of people in
    no real set the run or the evaluation used), the probe also against them: vs refined, and vs
    the real set itself, which is what refined eyes that looked like other people's real eyes
    would score."""
    s.log("two-sample tests and probe discriminators: real vs raw synthetic, real vs refined")
    # One seed for every test: the same real images and the same split positions on the other
    # side, where synthetic and refined images show the same scenes, so the scores compare pairwise.
    filters = discriminator_filters(s.config)
    c2st_args = dict(seed=s.seed, steps=s.sizes.c2st_steps, max_per_class=s.sizes.c2st_per_class)
    probe_args = dict(
        filters=filters,
        seed=s.seed,
        steps=s.sizes.probe_steps,
        max_per_class=s.sizes.c2st_per_class,
    )
    measured = {
        "c2st_real_vs_synthetic": c2st(real, synthetic, **c2st_args),
        "c2st_real_vs_refined": c2st(real, refined, **c2st_args),
        "n_per_class": int(min(len(real), len(synthetic), s.sizes.c2st_per_class)),
        "steps": s.sizes.c2st_steps,
        "probe_real_vs_synthetic": probe_discriminator(real, synthetic, **probe_args),
        "probe_real_vs_refined": probe_discriminator(real, refined, **probe_args),
        "probe_filters": list(filters),
        "probe_steps": s.sizes.probe_steps,
    }
    if unseen is not None and len(unseen) >= 2:
        s.log("probe discriminators against the unseen people's real eyes: vs refined, vs real")
        measured["probe_unseen_vs_refined"] = probe_discriminator(unseen, refined, **probe_args)
        measured["probe_unseen_vs_real"] = probe_discriminator(unseen, real, **probe_args)
        measured["n_unseen"] = len(unseen)
    return measured
