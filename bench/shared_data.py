"""The shared datasets the benchmarks read (``../shared/datasets``, see its README)."""

from __future__ import annotations

import tarfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CIFAR_ARCHIVE = SHARED / "cifar10-jpeg.tar.gz"


def cifar_folder(given: Path | str | None, scratch: Path) -> Path:
    """CIFAR-10's JPEGs (``train/``, ``test/``): the folder ``given``, else the shared
    archive unpacked into ``scratch`` (a temporary folder the caller removes)."""
    if given:
        return Path(given)
    if not CIFAR_ARCHIVE.is_file():
        raise SystemExit(f"{CIFAR_ARCHIVE} is missing: pass --cifar with an unpacked copy of CIFAR-10's JPEGs")
    out = Path(scratch) / "cifar10"
    with tarfile.open(CIFAR_ARCHIVE) as tar:
        tar.extractall(out, filter="data")
    return out
