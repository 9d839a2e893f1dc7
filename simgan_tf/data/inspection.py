"""What `inspect` shows of a loaded file: describe's lines and write_montage's grid of images."""

from __future__ import annotations

import os

import numpy as np

from simgan_tf.data.checks import _check_output, _one_line
from simgan_tf.data.eyeset import EyeSet, gaze_angles
from simgan_tf.errors import SimGANError
from simgan_tf.files import atomic_write


def describe(path: str, eyes: EyeSet) -> list[str]:
    """The lines `inspect` prints about a loaded file."""
    n, h, w = eyes.images.shape
    layout = {"group": f"'image' group of {n} datasets", "dataset": "one 'image' dataset"}
    imgs = eyes.images
    lines = [
        f"file: {path}",
        f"layout: {layout.get(eyes.layout, eyes.layout)}"
        + (f"; {eyes.cache_status}" if eyes.cache_status else ""),
        f"images: {n} x {h} x {w}, stored {eyes.stored_dtype}, read as uint8; "
        f"values {imgs.min()}..{imgs.max()} (mean {imgs.mean():.1f}, std {imgs.std():.1f})",
    ]
    if eyes.look_vec is None:
        lines.append("look_vec: none (an unlabelled set, like real_gaze.h5)")
    else:
        v = eyes.look_vec
        norms = np.linalg.norm(v, axis=1)
        ranges = ", ".join(
            f"{c} {v[:, i].min():.3f}..{v[:, i].max():.3f}" for i, c in enumerate("xyz")
        )
        lines.append(f"look_vec: {len(v)} x 3; {ranges}; norm {norms.min():.3f}..{norms.max():.3f}")
        # Adding 0.0 turns -0.0 into 0.0 for printing.
        pitch, yaw = (np.degrees(a) + 0.0 for a in gaze_angles(v))
        for name, a in (("pitch", pitch), ("yaw", yaw)):
            lines.append(
                f"{name}: {a.min():.1f}..{a.max():.1f} deg (mean {a.mean():.1f}, std {a.std():.1f})"
            )
        if np.mean(v[:, 2] > 0) > 0.5:
            lines.append(
                "note: most look_vec z are positive; this project's convention (UnityEyes') has z "
                "negative for an eye looking toward the camera"
            )
    if eyes.paths is not None:
        lines.append(f"path: {len(eyes.paths)} names, first {str(eyes.paths[0])!r}")
    return lines


def _image_formats() -> set[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # PGF is LaTeX drawing code, not an image, and needs a TeX installation to write.
    return set(FigureCanvasAgg(Figure()).get_supported_filetypes()) - {"pgf"}


def write_montage(
    out: str | os.PathLike, eyes: EyeSet, *, count: int = 64, overwrite: bool = False
) -> int:
    """Save a grid of up to `count` images spread over the set, with gaze arrows where labelled."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out = os.fspath(out)
    if os.path.lexists(out) and not overwrite:
        raise SimGANError(f"{out}: already exists (pass --overwrite to replace it)")
    n = len(eyes)
    idx = np.unique(np.linspace(0, n - 1, min(count, n)).astype(int))
    cols = min(8, len(idx))
    rows = -(-len(idx) // cols)
    h, w = eyes.images.shape[1:]
    grid = np.full((rows * h, cols * w), 255, dtype=np.uint8)
    for k, i in enumerate(idx):
        r, c = divmod(k, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = eyes.images[i]
    fig = Figure(figsize=(cols * w / 25, rows * h / 25))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if eyes.look_vec is not None:
        v = (
            eyes.look_vec[idx]
            / np.maximum(np.linalg.norm(eyes.look_vec[idx], axis=1), 1e-6)[:, None]
        )
        for k, (x, y) in enumerate(v[:, :2]):
            r, c = divmod(k, cols)
            # look_vec y points up, image rows point down.
            ax.arrow(c * w + w / 2, r * h + h / 2, x * h / 2, -y * h / 2, color="lime", width=0.4)
    ax.set_xlim(-0.5, cols * w - 0.5)
    ax.set_ylim(rows * h - 0.5, -0.5)
    ax.set_axis_off()
    try:
        with atomic_write(out) as tmp:
            fig.savefig(tmp)
    # matplotlib and Pillow report a format they cannot write (a missing codec, say) this way.
    except (RuntimeError, ValueError) as e:
        raise SimGANError(f"{out}: cannot write ({_one_line(e)})") from None
    return len(idx)


def _check_montage_path(out: str, source: str, overwrite: bool) -> None:
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    formats = _image_formats()
    if ext not in formats:
        raise SimGANError(f"{out}: unknown image type '.{ext}', expected one of {sorted(formats)}")
    _check_output(out, [source], overwrite)
