"""User-facing errors and the stage entry point that reports them."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from imgpipe.logs import configure as configure_logging


class ImgpipeError(Exception):
    """A problem the user can fix: bad params, unreadable input, missing files."""


class ParamsError(ImgpipeError):
    """params.yaml failed validation. The message names the offending key."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main`` and turn what a user can act on into one sentence.

    Tracebacks are for bugs; a wrong params key, a full disk or a Ctrl-C deserve a
    sentence that says what happened and what to do. Exit codes: 2 for user errors, 130
    for an interrupt (the shell's convention for SIGINT). The library's log lines are
    shown as its prints were (``logs.configure``).
    """
    configure_logging()
    try:
        main()
    except ImgpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "stopped (Ctrl-C). Outputs are written whole or not at all; `dvc repro` carries on from "
            "here (train resumes from its last checkpoint).",
            file=sys.stderr,
        )
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: {disk_full_message(Path(exc.filename or '.'))}", file=sys.stderr)
        sys.exit(2)


def disk_full_message(where: Path, needed: int | None = None) -> str:
    """Which disk filled up, the space a write needs there (when known) and is free, and what to do."""
    where = Path(where).resolve()
    wants = f"needs {_size(needed)}, " if needed else ""
    return (
        f"no room on the disk holding {where} ({wants}{_size(_free_bytes(where))} free there now); the "
        "stage's outputs are whole or absent, never half-written. Free some space (dvc gc, old experiments, "
        "the DVC cache) and run `dvc repro` again."
    )


def check_free_space(where: Path, needed: int, failed: bool = False) -> None:
    """Refuse, in a sentence, a write of ``needed`` bytes to ``where`` that the disk cannot
    hold, with a margin for the file format's own overhead. ``failed``: a write already
    failed there; say so if the disk is why (under 1 MiB free).

    Filesystems that report no size (some FUSE and network mounts) are not judged, and
    ``IMGPIPE_SKIP_SPACE_CHECK=1`` turns the check off where the free space misleads
    (compressed filesystems store uint8 images in far less than their size).
    """
    if not needed or os.environ.get("IMGPIPE_SKIP_SPACE_CHECK") == "1":
        return
    usage = shutil.disk_usage(_existing(Path(where).parent))  # where its temporary goes
    if usage.total == 0:
        return
    if usage.free < (2**20 if failed else needed * 1.05 + 2**16):
        raise ImgpipeError(disk_full_message(where, needed))


def _free_bytes(where: Path) -> int:
    return shutil.disk_usage(_existing(where)).free


def _existing(where: Path) -> Path:
    return next((p for p in (where, *where.parents) if p.exists()), Path("."))


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 2**10:.0f} KiB"
