"""report.md and the console tables: the figures of report.json in words, and the goals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simgan_tf.evaluation.arms import ARM_LABELS, NEAR_POSE_KEY, POSE_NEAR_DEG
from simgan_tf.evaluation.probes import PAIRS
from simgan_tf.evaluation.run import MEASURES

GOAL_GAIN = 0.25  # refined training cuts the real-eye error by at least this share
GOAL_C2ST_REFINED = 0.85
GOAL_C2ST_SYNTHETIC = (
    0.95  # the test must tell raw synthetic from real, or its refined score is moot
)
GOAL_PROBE_IMAGE = 0.80
GOAL_DRIFT_DEG = 3.0
GOAL_HELDOUT_RATIO = 1.2  # refined held-out error at most this times raw synthetic's


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}"


def _deg(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def gaze_table(report: dict, arms: tuple[str, ...] = tuple(ARM_LABELS)) -> str:
    lines = [
        "| trained on | train images | mean error (deg) | median (deg) | within 7 deg |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def spread(g: dict) -> str:
        return f" ± {g['mean_deg_std']:.2f}" if len(g["runs"]) > 1 else ""

    for name in arms:
        label, g = ARM_LABELS[name], report["gaze"][name]
        if g is None:
            lines.append(f"| {label} | - | not measured | | |")
        else:
            lines.append(
                f"| {label} | {g['n_train']} | {_deg(g['mean_deg'])}{spread(g)} | {_deg(g['median_deg'])} "
                f"| {_pct(g['within_7deg'])} |"
            )
    return "\n".join(lines)


def _group_table(
    report: dict,
    heading: str,
    groups_of: Callable[[dict], dict | None],
    label: Callable[[str], str],
) -> str | None:
    """One row per group of test images (groups_of(arm's figures): label -> figures), a column per
    arm, and the refined arm's gain where both synthetic and refined were measured."""
    arms = [n for n, g in report["gaze"].items() if g and groups_of(g)]
    if not arms:
        return None
    with_gain = "synthetic" in arms and "refined" in arms
    lines = [
        f"| {heading} | test images | "
        + " | ".join(f"{ARM_LABELS[a]}: mean (within 7; yaw bias)" for a in arms)
        + (" | refined vs raw |" if with_gain else " |"),
        "| --- | ---: |" + " ---: |" * (len(arms) + with_gain),
    ]
    for key, row in groups_of(report["gaze"][arms[0]]).items():
        cells = [groups_of(report["gaze"][a])[key] for a in arms]
        gain = ""
        if with_gain:
            raw, ref = (
                groups_of(report["gaze"][a])[key]["mean_deg"] for a in ("synthetic", "refined")
            )
            gain = f" {(raw - ref) / max(raw, 1e-9):+.1%} |"
        lines.append(
            f"| {label(key)} | {row['n']} | "
            + " | ".join(
                f"{_deg(c['mean_deg'])} ({_pct(c['within_7deg'])}; {_signed(c.get('yaw_bias_deg'))})"
                for c in cells
            )
            + " |"
            + gain
        )
    return "\n".join(lines)


def pose_table(report: dict) -> str | None:
    """Each arm's error per head pose of the test images, None where the target has no poses."""
    # No "|pose|" in a table cell: its bars would split the cell.
    near = f"-{POSE_NEAR_DEG:g} to {POSE_NEAR_DEG:g}"
    return _group_table(
        report,
        "head pose (deg)",
        lambda g: g.get("by_pose"),
        lambda key: near if key == NEAR_POSE_KEY else key,
    )


def _breakdowns(report: dict) -> list[tuple[str, str]]:
    """Each `evaluate --by` breakdown's name and table."""
    tables = []
    for name in report["data"].get("by") or []:
        table = _group_table(
            report,
            name.partition("=")[0],
            lambda g, n=name: g.get("by", {}).get(n),
            lambda key: f"`{key}`",  # code: a pattern's * would read as emphasis
        )
        if table:
            tables.append((name, table))
    return tables


def breakdown_sections(report: dict) -> list[str]:
    """report.md's `evaluate --by` tables, one per breakdown."""
    parts = []
    for name, table in _breakdowns(report):
        parts += [
            f"### By `{name}`",
            f"Mean error (deg), share within 7 degrees and mean signed yaw error per group of "
            f"the test images (`--by {name}`).",
            table,
        ]
    return parts


def breakdown_tables(report: dict) -> str | None:
    """The `evaluate --by` tables for the console, each under its flag."""
    tables = [f"--by {name}:\n{table}" for name, table in _breakdowns(report)]
    return "\n\n".join(tables) or None


def realism_table(report: dict) -> str | None:
    r = report["realism"]
    if r is None:
        return None
    lines = [
        "| pair | C2ST accuracy | probe discriminator: image accuracy | patch accuracy |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, label in PAIRS:
        probe = r[f"probe_real_vs_{name}"]
        lines.append(
            f"| real vs {label} | {r[f'c2st_real_vs_{name}']:.3f} | "
            f"{probe['image_accuracy']:.3f} | {probe['patch_accuracy']:.3f} |"
        )
    for key, label in UNSEEN_PROBES:
        if key in r:
            lines.append(
                f"| {label} | - | {r[key]['image_accuracy']:.3f} | {r[key]['patch_accuracy']:.3f} |"
            )
    return "\n".join(lines)


# The probes against real eyes of the target's test people (in no real set), when there are some.
UNSEEN_PROBES = (
    ("probe_unseen_vs_refined", "unseen people's real vs refined"),
    ("probe_unseen_vs_real", "unseen people's real vs real"),
)


def _unseen_text(report: dict) -> str:
    """What the probes against unseen people's eyes say; '' where there were none."""
    r = report["realism"]
    if "probe_unseen_vs_refined" not in r:
        return ""
    people = report["data"]["split"].get("n_test_people")
    return (
        f"Against real eyes nobody trained on ({r['n_unseen']} images of the target's "
        f"{people} test people, in no real set) a probe tells refined eyes apart at "
        f"{r['probe_unseen_vs_refined']['image_accuracy']:.3f} per image, against "
        f"{r['probe_real_vs_refined']['image_accuracy']:.3f} with the real set above; and those "
        "people's eyes from the real set's at "
        f"{r['probe_unseen_vs_real']['image_accuracy']:.3f}, what refined eyes that looked like "
        "real eyes of other people would score. Where the first lies above the probe's "
        "figure with the real set, refined eyes look more like the real set's own people than "
        "like real eyes in general."
    )


# Each measure's goals: (key, what the goal asks). The key is report.json's goals entry.
_GOALS = {
    "gain": [
        (
            "refined_error_cut_25pct",
            f"refined training cuts the target error by >= {GOAL_GAIN:.0%} against raw synthetic",
        ),
        ("gain_above_seed_spread", "that gain is larger than its spread over seeds"),
    ],
    "realism": [
        (
            "c2st_refined_at_most_0.85_synthetic_above_0.95",
            f"C2ST real vs refined <= {GOAL_C2ST_REFINED} while real vs synthetic > "
            f"{GOAL_C2ST_SYNTHETIC}",
        ),
        (
            "probe_image_accuracy_at_most_0.80",
            f"probe discriminator, real vs refined: image accuracy <= {GOAL_PROBE_IMAGE}",
        ),
    ],
    "label_drift": [
        ("label_drift_at_most_3deg", f"label drift <= {GOAL_DRIFT_DEG:g} deg"),
        (
            "refined_heldout_error_at_most_1.2x",
            f"refined held-out error <= {GOAL_HELDOUT_RATIO:g} x raw synthetic's",
        ),
    ],
}


def _gain_measured(report: dict) -> list[tuple[str, bool | None]]:
    g, gain = report["gaze"], report["gain"]
    spread = float(np.std(report["gain_runs"]))
    one_seed = report["repeats"] < 2
    return [
        (
            f"{gain:+.1%} ({g['synthetic']['mean_deg']:.2f} -> {g['refined']['mean_deg']:.2f} deg)",
            gain >= GOAL_GAIN,
        ),
        (
            "n/a (one seed)"
            if one_seed
            else f"{gain:+.1%} against ± {spread:.1%} over {report['repeats']} seeds",
            None if one_seed else gain > spread,
        ),
    ]


def _realism_measured(report: dict) -> list[tuple[str, bool | None]]:
    r = report["realism"]
    probe = r["probe_real_vs_refined"]["image_accuracy"]
    c2st_ref, c2st_syn = r["c2st_real_vs_refined"], r["c2st_real_vs_synthetic"]
    return [
        (
            f"{c2st_ref:.3f} (synthetic {c2st_syn:.3f})",
            c2st_ref <= GOAL_C2ST_REFINED and c2st_syn > GOAL_C2ST_SYNTHETIC,
        ),
        (f"{probe:.3f}", probe <= GOAL_PROBE_IMAGE),
    ]


def _drift_measured(report: dict) -> list[tuple[str, bool | None]]:
    drift = report["label_drift"]
    held_syn, held_ref = drift["synthetic_heldout_error_deg"], drift["refined_heldout_error_deg"]
    return [
        (f"{drift['mean_deg']:.2f} deg", drift["mean_deg"] <= GOAL_DRIFT_DEG),
        (f"{held_ref:.2f} vs {held_syn:.2f} deg", held_ref <= GOAL_HELDOUT_RATIO * held_syn),
    ]


_MEASURED = {"gain": _gain_measured, "realism": _realism_measured, "label_drift": _drift_measured}


def goals(report: dict) -> list[tuple[str, str, str, bool | None]]:
    """(key, goal, measured, met) for each goal; met is None where it cannot be judged. A measure
    `--measures` left out lists its goals as not measured, so that reports compare row by row."""
    rows = []
    for measure, listed in _GOALS.items():
        found = (
            _MEASURED[measure](report)
            if report[measure] is not None
            else [("not measured", None)] * len(listed)
        )
        rows += [
            (key, goal, measured, met)
            for (key, goal), (measured, met) in zip(listed, found, strict=True)
        ]
    return rows


def _yes_no(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "no")


def split_text(d: dict) -> str:
    sp = d["split"]
    if sp["by"] == "image":
        text = f"The target was {sp['note']}."
    else:
        n_test, n_oracle = sp["n_test_people"], sp["n_oracle_people"]
        text = (
            f"The target was split by person ('{sp['by']}'): {n_test} "
            f"{'person' if n_test == 1 else 'people'} ({', '.join(map(str, sp['test_people']))}) "
            f"{'gives' if n_test == 1 else 'give'} the test images, {n_oracle} "
            f"{'other' if n_oracle == 1 else 'others'} ({', '.join(map(str, sp['oracle_people']))}) "
            "the oracle's training images; nobody is on both sides."
        )
    if sp["excluded_people"]:
        text += (
            f" Left out of both: {sp['by']} {', '.join(map(str, sp['excluded_people']))}, "
            f"because {sp['excluded_because']}."
        )
    return " ".join([text, *sp["notes"]])


def _list_deg(values: list[float]) -> str:
    return ", ".join(map(_deg, values))


def _drift_text(drift: dict) -> str:
    parts = []
    if drift.get("appearance_floor_deg") is not None:
        each = drift.get("per_estimator_floor_deg") or []
        parts.append(
            "The drift also counts the estimators' remaining sensitivity to appearance: on the "
            "same scenes rendered in the target domain (identical labels, another camera) their "
            f"reading moves by {drift['appearance_floor_deg']:.2f} degrees (the appearance floor"
            + (f"; each estimator alone {_list_deg(each)})." if len(each) > 1 else ").")
        )
    else:
        parts.append("Part of any drift is the estimator's sensitivity to appearance.")
    slope = drift.get("reading_slope") or {}
    if slope.get("pitch") is not None and slope.get("yaw") is not None:
        reader = "their consensus" if drift.get("estimators", 1) > 1 else "the estimator"
        parts.append(
            f"On the held-out renders {reader} reads {slope['pitch']:.3f} of each degree of "
            f"pitch and {slope['yaw']:.3f} of yaw (slope of read on true): a reader that reads "
            "every gaze smaller shows every drift and floor smaller."
        )
    if drift.get("oracle_refined_heldout_error_deg") is not None:
        parts.append(
            "The oracle, trained on target renders, errs by "
            f"{drift['oracle_refined_heldout_error_deg']:.2f} degrees on the refined held-out "
            f"images (synthetic labels) against {drift['oracle_test_error_deg']:.2f} on the target "
            "test images: refined images that look like the target and keep their labels read alike."
        )
    return " ".join(parts)


def _systematic_text(drift: dict) -> str | None:
    shift = drift.get("systematic")
    if not shift:
        return None  # reports from before the measure

    def turn(t: dict) -> str:
        return f"{t['pitch_deg']:+.2f} degrees of pitch and {t['yaw_deg']:+.2f} of yaw"

    text = (
        "What moves every image the same way (mean signed change, refined minus raw; pitch up, "
        "yaw right): the drift estimator reads the refined images "
        f"{turn(shift['drift_estimator'])} from the raw ones; the raw arm's estimator (trained "
        f"without appearance changes, as the refined arm's is) {turn(shift['raw_arm_estimator'])}."
    )
    if drift.get("after_turn_deg") is not None:
        text += (
            " Taken out of every image, the drift estimator's turn leaves "
            f"{drift['after_turn_deg']:.2f} degrees of its {drift['mean_deg']:.2f} of drift: "
            "what refinement moves each image its own way."
        )
    if shift.get("blob"):
        b = shift["blob"]
        text += (
            f" The dark blob (iris and pupil, eyestats) moves {b['x_px']:+.2f} px right and "
            f"{b['y_px']:+.2f} px up (medians of per-image differences)."
        )
    return text + (
        " An estimator trained on refined images with the synthetic labels learns such a shift "
        "as a bias, and reads real eyes off by as much the other way."
    )


def _seeds_text(report: dict) -> str:
    n = report["repeats"]
    if n == 1:
        return f"seed {report['seed']}"
    return f"seeds {report['seed']}..{report['seed'] + n - 1} (mean ± spread over seeds)"


def reused_text(report: dict) -> list[str]:
    """Which arms an earlier evaluation's identical training gave (`--reuse-arms`)."""
    reused = {
        ARM_LABELS[n]: g["reused_from"]
        for n, g in report["gaze"].items()
        if g and g.get("reused_from")
    }
    if not reused:
        return []
    arms = "; ".join(f"{label}: `{path}`" for label, path in reused.items())
    return [
        f"Reused from an earlier evaluation (same training images, test set, recipe, seeds and "
        f"code): {arms}."
    ]


def _gaze_section(report: dict) -> list[str]:
    d, e, n_seeds = report["data"], report["estimator"], report["repeats"]
    gains = ", ".join(f"{g:+.1%}" for g in report["gain_runs"])
    parts = [
        "## Gaze estimation on the target set",
        "Does training on refined images beat training on raw synthetic ones (the paper, on MPIIGaze: "
        f"11.2 -> 7.8 degrees)? Every estimator is the paper's network (width {e['width']}, "
        f"FC {e['dense']}) trained the same way: {e['steps']} steps of batch {e['batch_size']}, "
        f"Adam {e['learning_rate']:g} with cosine decay, {_seeds_text(report)}. The synthetic and "
        "refined arms see the same images and labels in the same order, normalised as in training "
        f"(input_norm {d['input_norm']}). All are tested on {d['n_test']} labelled target images: "
        f"{d['target']}.",
        split_text(d),
        *reused_text(report),
        gaze_table(report),
        f"Refined vs raw synthetic: mean error {report['gain']:+.1%} (positive = refinement helped"
        + (f"; per seed: {gains}" if n_seeds > 1 else "")
        + "). The oracle, trained on labelled target images, shows how low the error can go. "
        + (
            "One seed per arm: between seeds the gain can move by ten points or more; "
            "`--repeats 3` averages over seeds."
            if n_seeds == 1
            else ""
        ),
    ]
    by_pose = pose_table(report)
    if by_pose:
        parts += [
            "### By head pose",
            f"Mean error (deg), share within 7 degrees and mean signed yaw error (predicted minus "
            f"true, deg) per head pose of the test images ('{d['pose_key']}'); |pose| <= "
            f"{POSE_NEAR_DEG:g} keeps the camera-frame gaze within the simulator's range.",
            by_pose,
        ]
        parts += [text for text in [blindness_text(report)] if text]
    parts += [text for text in [reading_text(report)] if text]
    return parts + breakdown_sections(report)


def reading_text(report: dict) -> str:
    """Each arm's reading slopes (arms.reading_slopes) in one sentence; '' for older reports."""
    slopes = {a: g.get("reading_slope") or {} for a, g in report["gaze"].items() if g}
    axes = []
    for axis in ("pitch", "yaw"):
        shown = ", ".join(
            f"{ARM_LABELS[a]} {s[axis]:.2f}"
            + (f" (r {s[axis + '_r']:.2f})" if s.get(axis + "_r") is not None else "")
            for a, s in slopes.items()
            if s.get(axis) is not None
        )
        if shown:
            axes.append(f"{axis}: {shown}")
    if not axes:
        return ""
    posed = any(g.get("by_pose") for g in report["gaze"].values() if g)
    within = " within a head pose" if posed else ""
    means = ", each pose's means taken out" if posed else ""
    return (
        f"How much of the gaze each arm reads{within} (the slope of the predicted angle on the "
        f"true one{means}, and their correlation; 1: every degree, 0: none): {'; '.join(axes)}."
    )


def blindness_text(report: dict) -> str:
    arms = {a: g.get("pose_blindness") for a, g in report["gaze"].items() if g}
    shown = ", ".join(f"{ARM_LABELS[a]} {b:+.2f}" for a, b in arms.items() if b is not None)
    if not shown:
        return ""
    text = (
        f"Pose blindness (the slope of the yaw error on the head pose; 0: the estimator sees the "
        f"head's turn, 1: it does not see it at all): {shown}."
    )
    unbiased = {a: g.get("mean_deg_less_pose_bias") for a, g in report["gaze"].items() if g}
    listed = ", ".join(f"{ARM_LABELS[a]} {e:.2f}" for a, e in unbiased.items() if e is not None)
    if listed:
        text += (
            f" Mean error once each head pose's mean pitch and yaw error is taken out of that "
            f"pose's predictions (the scatter within a pose; the rest of the mean error is what "
            f"the per-pose biases cost): {listed} deg."
        )
    return text


def _drift_section(report: dict) -> list[str]:
    d, drift = report["data"], report["label_drift"]
    n, each = drift.get("estimators", 1), drift.get("per_estimator_deg") or []
    who = (
        f"The consensus (mean reading) of {n} estimators, one per seed, trained"
        if n > 1
        else "An estimator trained"
    )
    return [
        "## Label drift",
        f"{who} on raw synthetic images with strong photometric augmentation "
        f"(gaze.train_drift_estimator), applied to {d['n_heldout']} held-out synthetic images and "
        f"to their refined versions, predicts gazes {drift['mean_deg']:.2f} degrees apart on "
        f"average (median {drift['median_deg']:.2f}"
        + (f"; each estimator alone {_list_deg(each)}" if len(each) > 1 else "")
        + "). Refinement should change appearance, not gaze; a large drift means the refined "
        "images may no longer match their labels.",
        _drift_text(drift),
        "Label consistency: each gaze arm on held-out images of its own kind, with the synthetic "
        f"labels, errs by {drift['synthetic_heldout_error_deg']:.2f} degrees (raw synthetic) and "
        f"{drift['refined_heldout_error_deg']:.2f} degrees (refined). A clear rise on refined images "
        "means refinement destroyed some of the gaze information the labels describe.",
        *filter(None, [_systematic_text(drift)]),
    ]


def _probe_bands_text(r: dict) -> str:
    """Where the probe tells each pair apart, by thirds of its output rows; '' for older reports."""
    parts = []
    for name, label in PAIRS:
        grid = r[f"probe_real_vs_{name}"].get("patch_accuracy_map")
        if not grid:
            return ""
        thirds = [float(np.mean(rows)) for rows in np.array_split(np.asarray(grid), 3)]
        parts.append(f"real vs {label} " + " / ".join(f"{t:.2f}" for t in thirds))
    return (
        "Where the probe tells them apart, its patch accuracy over the top, middle and bottom "
        "thirds of the image (for eyes: brow and upper lid, the eye, lower lid and cheek; "
        "`patch_accuracy_map` in report.json has every position): " + "; ".join(parts) + "."
    )


def _realism_section(report: dict) -> list[str]:
    r = report["realism"]
    return [
        "## Realism: two-sample tests and a probe discriminator",
        f"A fresh small CNN (C2ST, {r['steps']} steps) and a fresh discriminator of the run's "
        f"architecture (filters {r['probe_filters']}, {r['probe_steps']} steps) are each trained on "
        f"half of each pair ({r['n_per_class']} images per side) and tested on the other half; "
        f"0.5 = indistinguishable. Real images: {report['data']['real']}.",
        realism_table(report),
        *filter(None, [_unseen_text(report), _probe_bands_text(r)]),
    ]


def _fixed_pattern_section(report: dict) -> list[str]:
    return [
        "## Fixed patterns",
        "The mean change (refined minus synthetic) over the held-out images, high-passed, in each "
        "8 x 8 corner and inside (gray levels): "
        + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in report["fixed_pattern"].items())
        + ". Changes that follow each image's content average out; a corner well above the others "
        "is a pattern painted into every image.",
    ]


def _goals_section(report: dict) -> list[str]:
    rows = [f"| {goal} | {measured} | {_yes_no(met)} |" for _, goal, measured, met in goals(report)]
    return [
        "## Goals",
        "\n".join(["| goal | measured | met |", "| --- | --- | --- |", *rows]),
        "Reported, not enforced. The gain goals are meant for labelled real eyes as `--target`, "
        "split by person; the realism goals for the real set the refiner trained against.",
    ]


def _figures_section(report: dict) -> list[str]:
    items = [
        "- `montage.png`: rows of held-out synthetic images, the same images refined, their "
        "difference (x4; black = unchanged), and unpaired real images. Refined should look "
        "real and keep the eye's shape and gaze."
    ]
    if report["figures"].get("error_hist"):
        items.append(
            "- `error_hist.png`: each estimator's angular errors on the target test set (all "
            "seeds); the dotted line is 7 degrees."
        )
    if report["figures"].get("probe_map"):
        items.append(
            "- `probe_map.png`: the probe discriminator's patch accuracy at each position, over "
            "the mean real image, for raw synthetic and refined images: where a fresh "
            "discriminator still tells them from real (0.5 = nowhere)."
        )
    if report["figures"].get("losses"):
        items.append(
            "- `losses.png`: the run's training curves (refiner, discriminator, patch accuracy)."
        )
    return ["## Figures", "\n".join(items)]


def render_markdown(report: dict) -> str:
    """report.md: what was measured, the tables, the goals, and how to read the figures."""
    parts = [
        "# SimGAN evaluation",
        f"Run `{report['run']}` (training preset {report['run_preset']}); evaluation preset "
        f"{report['preset']}, seed {report['seed']}, {report['wall_seconds']['total']:.0f} s.",
    ]
    if report.get("refiner"):
        parts.append(f"Refiner: `{report['refiner']}`.")
    if report["preset"] == "smoke":
        parts.append(
            "> Smoke-sized evaluation: it checks that the tools run; its numbers mean nothing."
        )
    measured = [
        (report["gain"], _gaze_section),
        (report["label_drift"], _drift_section),
        (report["realism"], _realism_section),
    ]
    if report.get("pending"):
        parts.append(
            f"> Written part way: still to run when this was written: "
            f"{', '.join(report['pending'])}. An evaluation that stopped here measured only what "
            "follows."
        )
    left_out = [m for m in MEASURES if m not in report.get("measures", MEASURES)]
    if left_out:
        parts.append(f"Not measured (`--measures`): {', '.join(left_out)}.")
    for value, section in measured:
        if value is not None:
            parts += section(report)
    for section in (_fixed_pattern_section, _goals_section):
        parts += section(report)
    if report["figures"] is not None:
        parts += _figures_section(report)
    return "\n\n".join(parts) + "\n"
