"""Which process owns a run, and whether that process still lives.

A run left RUNNING by a process that was killed (SIGKILL, the OOM killer, a closed
laptop) looks, in the store, exactly like one at work in a parallel queued experiment.
Each run therefore names its owner, ``host:pid:start time``, and a run counts as
abandoned only when its owner is on this machine and no longer running. The start time
tells a reused pid from the owner. A run owned by another machine cannot be judged from
here, so it is never taken for abandoned.
"""

from __future__ import annotations

import os
import socket

OWNER_TAG = "imgpipe.owner"  # on a pipeline or stage run: the process that holds it open


def this_process() -> str:
    """This process as an owner: ``host:pid:start time``."""
    return _owner(os.getpid())


def _owner(pid: int) -> str:
    import psutil

    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def is_dead(owner: str | None) -> bool:
    """Whether ``owner`` names a process on this machine that has ended; False when it lives,
    is on another machine, or is not named at all (a run from before owners were recorded)."""
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return False
    import psutil

    try:
        process = psutil.Process(int(parts[1]))
        # A zombie has ended; only its parent has not read its exit status yet.
        return process.status() == psutil.STATUS_ZOMBIE or _owner(process.pid) != owner
    except psutil.NoSuchProcess:
        return True
    except (ValueError, psutil.Error):  # unreadable: cannot tell, so not dead
        return False
