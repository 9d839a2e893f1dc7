"""`evaluate --compare`: several evaluations' headline figures side by side, with their mean and spread.

A recipe's figures move with the training seed as well as with the estimator seeds one report
averages over (`--repeats`), so a recipe is measured by training it with several seeds and
evaluating each run. This reads those reports (report.json) and puts the figures the goals judge in
one table, one row per report, then their mean and standard deviation over the reports.
"""

from __future__ import annotations

import json
import os

import numpy as np

from simgan_tf.errors import SimGANError
from simgan_tf.files import read_json

REPORT = "report.json"


def _report_path(path: str) -> str:
    """An evaluation directory, a run directory with eval/, or a report.json itself."""
    for candidate in (path, os.path.join(path, REPORT), os.path.join(path, "eval", REPORT)):
        if os.path.isfile(candidate):
            return candidate
    raise SimGANError(f"{path}: no {REPORT} here or in {os.path.join(path, 'eval')}")


def read_report(path: str) -> tuple[str, dict]:
    """The report.json an evaluation wrote, and its path; a one-line error if it is not one."""
    file = _report_path(path)
    report = read_json(file)
    if "gaze" not in report:
        raise SimGANError(f"{file}: not an evaluation report (no 'gaze' entry)")
    return file, report


def _get(report: dict, *keys: str) -> float | None:
    value = report
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def headline(report: dict) -> dict[str, float | None]:
    """The figures the goals judge, None where the report did not measure them."""
    drift = report.get("label_drift") or {}
    raw_heldout = drift.get("synthetic_heldout_error_deg")
    ref_heldout = drift.get("refined_heldout_error_deg")
    return {
        "raw": _get(report, "gaze", "synthetic", "mean_deg"),
        "refined": _get(report, "gaze", "refined", "mean_deg"),
        "oracle": _get(report, "gaze", "oracle", "mean_deg"),
        "raw_unbiased": _get(report, "gaze", "synthetic", "mean_deg_less_pose_bias"),
        "refined_unbiased": _get(report, "gaze", "refined", "mean_deg_less_pose_bias"),
        "raw_pitch_read": _get(report, "gaze", "synthetic", "reading_slope", "pitch"),
        "refined_pitch_read": _get(report, "gaze", "refined", "reading_slope", "pitch"),
        "gain": _get(report, "gain"),
        "drift": _get(report, "label_drift_deg"),
        "after_turn": _get(drift, "after_turn_deg"),
        "floor": _get(drift, "appearance_floor_deg"),
        # The drift readers' own scale: a reader that reads every gaze smaller drifts less.
        "drift_pitch_read": _get(drift, "reading_slope", "pitch"),
        "drift_yaw_read": _get(drift, "reading_slope", "yaw"),
        "heldout": ref_heldout / raw_heldout if raw_heldout and ref_heldout else None,
        "probe": _get(report, "realism", "probe_real_vs_refined", "image_accuracy"),
        "probe_unseen": _get(report, "realism", "probe_unseen_vs_refined", "image_accuracy"),
        "c2st": _get(report, "realism", "c2st_real_vs_refined"),
    }


# (key, column heading, format of one value)
COLUMNS = [
    ("raw", "raw synthetic (deg)", "{:.2f}"),
    ("refined", "refined (deg)", "{:.2f}"),
    ("oracle", "oracle (deg)", "{:.2f}"),
    ("raw_unbiased", "raw less pose bias (deg)", "{:.2f}"),
    ("refined_unbiased", "refined less pose bias (deg)", "{:.2f}"),
    ("raw_pitch_read", "raw pitch read", "{:.2f}"),
    ("refined_pitch_read", "refined pitch read", "{:.2f}"),
    ("gain", "gain", "{:+.1%}"),
    ("drift", "drift (deg)", "{:.2f}"),
    ("after_turn", "drift less the mean turn (deg)", "{:.2f}"),
    ("floor", "floor (deg)", "{:.2f}"),
    ("drift_pitch_read", "drift reader pitch read", "{:.2f}"),
    ("drift_yaw_read", "drift reader yaw read", "{:.2f}"),
    ("heldout", "refined / raw held-out", "{:.2f} x"),
    ("probe", "probe image", "{:.3f}"),
    ("probe_unseen", "probe image, unseen people", "{:.3f}"),
    ("c2st", "C2ST refined", "{:.3f}"),
]


def _cell(fmt: str, value: float | None) -> str:
    return "-" if value is None else fmt.format(value)


def _spread(fmt: str, values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    mean, sd = float(np.mean(values)), float(np.std(values))
    # The gain is a share: its spread reads in percentage points.
    shown_sd = f"{100 * sd:.1f} pt" if fmt == "{:+.1%}" else fmt.format(sd).removesuffix(" x")
    return f"{fmt.format(mean)} ± {shown_sd}"


def compare_table(paths: list[str]) -> str:
    """A markdown table of each report's headline figures, their mean ± standard deviation over
    the reports, and a note where the reports tested different people, counted the drift with
    different numbers of estimators, or differ in their target or estimator recipe."""
    if len(paths) < 2:
        raise SimGANError("--compare needs at least two evaluations to set side by side")
    rows = [read_report(p) for p in paths]
    figures = [headline(report) for _, report in rows]
    lines = [
        "| report | seed | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for (file, report), fig in zip(rows, figures, strict=True):
        cells = [_cell(fmt, fig[key]) for key, _, fmt in COLUMNS]
        lines.append(
            f"| {os.path.dirname(file)} | {report.get('seed', '-')} | {' | '.join(cells)} |"
        )
    spreads = [
        _spread(fmt, [f[key] for f in figures if f[key] is not None]) for key, _, fmt in COLUMNS
    ]
    lines.append(f"| mean ± sd over {len(rows)} reports | | {' | '.join(spreads)} |")
    return "\n".join(lines + _notes(rows))


def _notes(rows: list[tuple[str, dict]]) -> list[str]:
    notes = []
    people = {tuple(r.get("data", {}).get("split", {}).get("test_people") or ()) for _, r in rows}
    if len(people) > 1:
        notes.append(
            "the reports tested different people: the spread holds the test split's share as "
            "well as the training seed's (evaluate with one --seed to compare on the same people)"
        )
    estimators = {
        (r.get("label_drift") or {}).get("estimators", 1) for _, r in rows if r.get("label_drift")
    }
    if len(estimators) > 1:
        shown = ", ".join(str(n) for n in sorted(estimators))
        notes.append(
            f"the drift was measured by the consensus of different numbers of estimators "
            f"({shown}): more estimators read a lower drift and floor"
        )
    recipes = {json.dumps(r.get("estimator"), sort_keys=True) for _, r in rows}
    targets = {r.get("data", {}).get("target") for _, r in rows}
    if len(targets) > 1:
        notes.append("the reports differ in their target: compare with care")
    if len(recipes) > 1:
        # Named per report: an estimator's width moves every arm, so rows of different recipes
        # compare only their gains (evaluate --estimator-width).
        each = "; ".join(f"{os.path.dirname(f)} {_recipe(r.get('estimator'))}" for f, r in rows)
        notes.append(f"the reports differ in their estimator recipe: compare with care ({each})")
    threads = {r["cpu_threads"] for _, r in rows if r.get("cpu_threads")}
    if len(threads) > 1:
        # Reports from before the count was recorded say nothing either way, so they are left out.
        each = "; ".join(f"{os.path.dirname(f)} {r.get('cpu_threads') or '-'}" for f, r in rows)
        notes.append(
            "the reports' estimators trained at different CPU thread counts "
            f"({each}): the same seeds then train other estimators (--cpu-threads)"
        )
    return [line for n in notes for line in ("", f"Note: {n}.")]


def _recipe(spec: dict | None) -> str:
    spec = spec or {}
    parts = [("width", "width {}"), ("dense", "FC {}"), ("steps", "{} steps")]
    return ", ".join(fmt.format(spec[k]) for k, fmt in parts if k in spec) or "recipe unknown"
