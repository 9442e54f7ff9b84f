"""Stopping ``imgpipe tune`` (Ctrl-C, SIGTERM) so that its trial's processes end their runs.

Ctrl-C in a terminal reaches tune, its ``dvc exp run`` and the stage at work alike: each
stage ends its own MLflow run, and tune then ends the trial's runs and the study's as
KILLED. A SIGTERM (``kill``, a scheduler's time limit) reaches tune alone, and Python's
default for it ends the process at once, leaving every run RUNNING; so tune passes it on
to its processes as the Ctrl-C they would have seen, and stops as on a Ctrl-C. They must
take it as one even where tune was started with SIGINT ignored (``imgpipe tune &`` in a
script, ``nohup``, a batch job), a setting children inherit and Python then keeps:
``ctrl_c_at_default`` gives the trial's process SIGINT back.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator

OWN_END_S = 5  # what a process given Ctrl-C has to end on its own before it is sent one
STOP_S = 60  # then, to end its runs, before it is killed


def _tree(pid: int, itself: bool = True) -> list:
    """The process ``pid`` (unless not ``itself``) and all its descendants, as psutil Processes."""
    import psutil

    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)] if itself else process.children(recursive=True)
    except psutil.Error:  # ended meanwhile
        return []


def _signal(processes: list, sig: int) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def ctrl_c_at_default() -> None:
    """SIGINT at its default: for a child (``preexec_fn``), so that Python there raises
    KeyboardInterrupt on the Ctrl-C tune passes on, though tune itself may ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within: a SIGTERM passes SIGINT on to this process's children and raises KeyboardInterrupt."""
    import os

    def on_term(signum: int, frame: object) -> None:
        _signal(_tree(os.getpid(), itself=False), signal.SIGINT)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_stopping(proc: subprocess.Popen) -> int:
    """``proc``'s exit code; on Ctrl-C, first let it and its children end their work and runs:
    they had Ctrl-C too (sent again if not ended after OWN_END_S), and are killed after STOP_S."""
    try:
        return proc.wait()
    except KeyboardInterrupt:
        tree = _tree(proc.pid)
        try:
            try:
                proc.wait(OWN_END_S)
            except subprocess.TimeoutExpired:  # the Ctrl-C reached tune alone
                _signal(tree, signal.SIGINT)
                proc.wait(STOP_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # hung, or a second Ctrl-C: no more waiting
            _signal([p for p in tree if p.is_running()], signal.SIGKILL)
            proc.wait()
        raise
