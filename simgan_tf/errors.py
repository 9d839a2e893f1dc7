"""One kind of user-facing error, and the CLI wrapper that turns it into one line and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class SimGANError(Exception):
    """A problem with the user's input or environment: printed as one line, never as a traceback."""


def cli(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a CLI `main`: a SimGANError (or Ctrl-C) becomes one line on stderr and exit code 2 (130)."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except SimGANError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
