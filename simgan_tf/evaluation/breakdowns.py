"""`evaluate --by`: the groups of test images that each arm's error is broken down by.

`KEY` gives one group per value of the target file's per-image column KEY (`subject`: per person);
`KEY=PATTERN` two groups, the images whose KEY matches and the others (`path=*_R.jpg`: Columbia's
two file types), matched as `data subset --where` matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simgan_tf.data import match_rows, require_column
from simgan_tf.errors import SimGANError

# More groups than this make a table nobody reads; a pattern then says which images to compare.
MAX_GROUPS = 50


def value_label(value: object) -> str:
    """A group's key in report.json: numbers as `%g` (15, 0.5), text as it is."""
    if isinstance(value, np.floating | float):
        # + 0.0: a value rounded from just below zero is -0.0, whose key would read "-0".
        return f"{float(value) + 0.0:g}"
    return str(value)


def _by_value(path: str, key: str) -> dict[str, np.ndarray]:
    values = require_column(path, key, " to break the errors down by")
    distinct = np.unique(values)  # numbers in numeric order, text in text order
    if len(distinct) > MAX_GROUPS:
        raise SimGANError(
            f"{path}: '{key}' holds {len(distinct)} distinct values, more than {MAX_GROUPS} "
            f"groups; give a pattern (--by '{key}=PATTERN') to compare the images it matches"
        )
    return {value_label(v): values == v for v in distinct}


def read_breakdowns(path: str | None, by: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """For each `--by` spec, its groups: label -> which images of the target file belong."""
    if not by:
        return {}
    if not path:
        raise SimGANError(
            "--by reads per-image columns of a --target file; the built-in target has none"
        )
    groups = {}
    for spec in by:
        key, sep, pattern = spec.partition("=")
        if not key or (sep and not pattern):
            raise SimGANError(f"--by takes KEY or KEY=PATTERN, got {spec!r}")
        if sep:
            hit = match_rows(path, key, pattern)
            groups[spec] = {pattern: hit, f"not {pattern}": ~hit}
        else:
            groups[spec] = _by_value(path, key)
    return groups
