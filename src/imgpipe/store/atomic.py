"""Files written safely: to a temporary sibling, renamed into place on success.

An interrupted stage never leaves a half-written file where a valid one belongs, and a
failed one leaves the previous output as it was.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imgpipe.errors import ImgpipeError, check_free_space, disk_full_message


@contextlib.contextmanager
def atomic_path(target: Path, needed: int = 0, replaces: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    Works for files and folders. On failure the temporary is removed and any previous
    ``target`` is left as it was. ``needed``, the bytes the write will take when known,
    is checked against the free space first, so a full disk is a sentence, not a
    half-written temporary.

    A file at ``target`` is replaced. A folder there that is not empty is replaced only
    when ``replaces(target)`` says it is this writer's previous output; any other is
    refused in a sentence before anything is written, never cleared: it may be the
    user's project (``-o .``) or another command's output (``-o models``).
    """
    target = Path(os.path.abspath(target))  # "." has no name to put a temporary beside
    refuse_occupied(target, replaces)
    tmp = _temporary_beside(target, needed)
    staged = tmp / target.name
    try:
        yield staged
        refuse_occupied(target, replaces)  # it may have been filled while this one wrote
        _swap(staged, target, tmp)
    except RuntimeError:  # torch's writer says "file write failed", not ENOSPC
        check_free_space(target, needed, failed=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def refuse_occupied(target: Path, replaces: Callable[[Path], bool] | None = None) -> None:
    """Refuse a non-empty folder at ``target`` that ``replaces`` does not claim."""
    if target.is_dir() and not target.is_symlink() and any(target.iterdir()) and not (replaces and replaces(target)):
        raise ImgpipeError(
            f"{target} already holds files that are not this command's previous output, so it is "
            "left as it is: choose a new or empty folder, or move those files away yourself."
        )


def refuse_enclosing(target: Path, kept: dict[str, Path]) -> None:
    """Refuse a ``target`` that is, or holds, one of ``kept`` (named by their keys), the
    folders a command reads or runs in, before any work."""
    target = Path(target).resolve()
    for name, path in kept.items():
        path = Path(path).resolve()
        if target == path or target in path.parents:
            relation = "is" if target == path else "holds"
            raise ImgpipeError(
                f"{target} {relation} {name}, which an output folder must not replace: choose a "
                "new folder for the output."
            )


def _temporary_beside(target: Path, needed: int) -> Path:
    """A fresh temporary folder in ``target``'s folder, made once the space is checked."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A killed writer leaves its temporary behind (a killed ingest: 100 MB and more);
        # the next write of the same target clears it, before the space is counted.
        # Only names that mkdtemp below makes: the user's own dot-files stay.
        mine = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            if mine.fullmatch(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
        check_free_space(target, needed)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _unwritable(target, exc) from None


def _unwritable(target: Path, exc: OSError) -> ImgpipeError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ImgpipeError(disk_full_message(target))
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    why = (
        f"{blocking} is a file, not a folder"
        if blocking
        else f"no new file can be made in {target.parent}: {(exc.strerror or str(exc)).lower()}"
    )
    return ImgpipeError(f"cannot write {target} ({why}): choose a path in a folder you can write to.")


def _swap(staged: Path, target: Path, tmp: Path) -> None:
    """Move ``staged`` onto ``target``; a folder there (claimed, or empty) goes into ``tmp``
    first, and back if the move fails."""
    if staged.is_dir() and (target.is_symlink() or target.exists() and not target.is_dir()):
        raise ImgpipeError(
            f"{target} is a file, and this command writes a folder there: choose another path "
            "(the file is left as it is)."
        )
    if not target.is_dir() or target.is_symlink():
        os.replace(staged, target)
        return
    previous = tmp / ".previous"
    os.replace(target, previous)
    try:
        os.replace(staged, target)
    except OSError:
        os.replace(previous, target)
        raise


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
