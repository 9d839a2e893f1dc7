"""download: fetch the Kaggle eye-gaze files with kagglehub, place them in a folder and check them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from simgan_tf.data.checks import _one_line
from simgan_tf.data.load import load_eyes
from simgan_tf.errors import SimGANError
from simgan_tf.files import atomic_write

KAGGLE_DATASET = "4quant/eye-gaze"
KAGGLE_FILES = ("gaze.h5", "real_gaze.h5")


def _place(src: str, target: Path, overwrite: bool) -> str:
    if target.exists() and os.path.samefile(src, target):
        return "already in place"
    if os.path.lexists(target) and not overwrite:
        raise SimGANError(f"{target}: already exists (pass --overwrite to replace it)")
    with atomic_write(target) as tmp:
        try:
            os.symlink(os.path.abspath(src), tmp)
            how = "linked"
        except OSError:
            # No symlinks here (some Windows and network file systems): copy instead.
            shutil.copyfile(src, tmp)
            how = "copied"
    return how


def download(dest: str | os.PathLike = "data", *, overwrite: bool = False) -> list[str]:
    """Fetch the Kaggle eye-gaze files with kagglehub and link (or copy) them into `dest`."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise SimGANError(f"{dest}: not a folder")
    try:
        import kagglehub
    except ImportError:
        raise SimGANError(
            f"kagglehub is not installed: pip install kagglehub, or download {KAGGLE_DATASET} "
            f"from kaggle.com and put {' and '.join(KAGGLE_FILES)} in {dest}/"
        ) from None
    try:
        root = kagglehub.dataset_download(KAGGLE_DATASET)
    # kagglehub raises requests', urllib3's and its own exception types, with no common base.
    except Exception as e:
        text = f"{type(e).__name__}: {_one_line(e)}"
        text = text if len(text) <= 160 else text[:157] + "..."
        offline = isinstance(e, OSError | TimeoutError) or re.search(
            r"connect|resolve|network|timed? ?out|offline", text, re.IGNORECASE
        )
        if offline:
            raise SimGANError(
                f"cannot reach Kaggle to download {KAGGLE_DATASET}: offline? ({text})"
            ) from None
        raise SimGANError(f"kagglehub could not download {KAGGLE_DATASET} ({text})") from None
    found = {}
    for folder, _, files in os.walk(root):
        for name in KAGGLE_FILES:
            if name in files and name not in found:
                found[name] = os.path.join(folder, name)
    missing = [n for n in KAGGLE_FILES if n not in found]
    if missing:
        raise SimGANError(f"{root}: the download lacks {', '.join(missing)}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SimGANError(
            f"{dest}: cannot create the folder ({e.strerror or _one_line(e)})"
        ) from None
    lines = []
    for name in KAGGLE_FILES:
        how = _place(found[name], dest / name, overwrite)
        # Loading checks the file and writes its cache, so training's first load is fast.
        eyes = load_eyes(dest / name)
        labels = ", with look_vec" if eyes.look_vec is not None else ""
        lines.append(f"{dest / name}: {how} from {found[name]} ({len(eyes)} images{labels})")
    return lines
