"""Argument types for the command line: a bad value is argparse's own one-line usage error.

argparse calls these on the flag's text; an ``ArgumentTypeError`` becomes
``imgpipe <command>: error: argument --seed: ...`` and exit status 2, before any work.
"""

from __future__ import annotations

import argparse

SEED_MAX = 2**32 - 1  # the largest seed that numpy, scikit-learn (t-SNE, folds) and torch all take


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to ``SEED_MAX``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give a seed from 0 to {SEED_MAX}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a seed from 0 to {SEED_MAX}")
    return value
