"""Files written the safe way, and JSON read with one-line errors.

Every output is written under a temporary name beside its target and renamed when complete, so a
crash, a full disk or Ctrl-C never leaves a half-written file where a good one was. The temporary name
is a prefix (".tmp-PID-name"): it keeps the extension, which Keras and matplotlib read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from simgan_tf.errors import SimGANError


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces `path`, on any failure it is removed.

    The folder is created if missing; an OSError (no space, no permission) becomes a SimGANError.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
    try:
        os.makedirs(directory, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise SimGANError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from `path`; a missing, unreadable or non-object file raises SimGANError."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError) as e:
        raise SimGANError(f"{path}: cannot be read ({e})") from None
    if not isinstance(value, dict):
        raise SimGANError(f"{path}: expected a JSON object")
    return value
