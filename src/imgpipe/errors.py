"""User-facing errors and the stage entry point that reports them."""

from __future__ import annotations

import sys
from typing import Callable


class ImgpipeError(Exception):
    """A problem the user can fix: bad params, unreadable input, missing files."""


class ParamsError(ImgpipeError):
    """params.yaml failed validation. The message names the offending key."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main`` and turn user errors into a one-line message and exit 2.

    Tracebacks are for bugs; a wrong params key deserves a sentence that says what to fix.
    """
    try:
        main()
    except ImgpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
