"""Files written safely: to a temporary sibling, renamed into place on success.

An interrupted stage never leaves a half-written file where a valid one belongs, and a
failed one leaves the previous output as it was.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from imgpipe.errors import ImgpipeError, check_free_space


@contextlib.contextmanager
def atomic_path(target: Path, needed: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    Works for files and folders. On failure the temporary is removed and any previous
    ``target`` is left as it was. ``needed``, the bytes the write will take when known,
    is checked against the free space first, so a full disk is a sentence, not a
    half-written temporary.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A killed writer leaves its temporary behind (a killed ingest: 100 MB and more);
    # the next write of the same target clears it, before the space is counted.
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    check_free_space(target, needed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
    except RuntimeError:  # torch's writer says "file write failed", not ENOSPC
        check_free_space(target, needed, failed=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def scratch_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, on the same disk, removed afterwards.

    For intermediate arrays too big for memory (decoded images, augmented variants) that
    are copied into ``target`` by its atomic write. A killed run's leftover is removed
    by the next one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}-scratch-"
    for stale in target.parent.glob(f"{glob.escape(prefix)}*"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ImgpipeError(f"{path} is missing: run the stage that makes it (dvc repro).") from None


def write_csv(path: Path, table: Any) -> None:
    """A pandas table as CSV, without its index, with Unix line ends on every platform."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
