"""Epoch checkpoints, so that a killed train stage resumes where it stopped.

``checkpoints/`` is a DVC ``persist: true`` output: DVC leaves it in place when it reruns
train, and the next run picks up the last saved epoch, provided the params and data are
the ones it was saved with (the fingerprint). A checkpoint is marked complete only once
the model is saved and logged, so a run that finished training but failed to save
resumes into saving rather than retraining. A complete one is not trained again either:
its model is written out again (an orphaned trainer may have finished after ``dvc`` was
killed, and DVC then reruns the stage). The fingerprint covers the train stage's code as
well, so an edit to it trains afresh; so does deleting ``checkpoints/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from imgpipe.errors import ImgpipeError
from imgpipe.store.atomic import atomic_path

log = logging.getLogger(__name__)


# Bumped whenever what a checkpoint holds changes, so an older one is never half-understood.
FORMAT = 2


def fingerprint(*parts: Any) -> str:
    """A short hash of everything that decides the training result, and of the format."""
    return hashlib.sha256(json.dumps([FORMAT, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_digest(root: Path, stage: str = "train") -> str:
    """A hash of the code that trains: the Python files among ``stage``'s deps in dvc.yaml
    (the files DVC reruns the stage for) and the versions of the libraries that run them.

    A checkpoint saved by other code is then neither resumed nor reused; the data deps are
    fingerprinted by their DVC hashes.
    """
    from importlib.metadata import PackageNotFoundError, version

    from imgpipe.tracking.dvc_files import declared_deps

    deps = declared_deps(root, stage)
    files: set[Path] = set()
    for dep in deps:
        path = root / dep
        files.update(path.rglob("*.py") if path.is_dir() else [path] if path.suffix == ".py" else [])
    digest = hashlib.sha256()
    for file in sorted(files):  # the order of deps in dvc.yaml does not matter
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    for package in ("torch", "torchvision", "timm", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()[:16]


def file_digest(path: Path | None) -> str | None:
    """A hash of a file the training reads outside DVC's deps (``train.weights_path``)."""
    if path is None or not path.is_file():
        return None
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


@contextlib.contextmanager
def training_lock(folder: Path) -> Iterator[None]:
    """Held while a training runs on ``folder``'s checkpoint: a second one (an orphaned
    trainer still running, say) would train on the same state and double the record."""
    from filelock import FileLock, Timeout

    lock = folder.with_name(f"{folder.name}.lock")
    try:
        with FileLock(lock, timeout=0, fallback_to_soft=False):  # an OS lock: released when its holder dies
            yield
    except Timeout:
        raise ImgpipeError(
            f"another training of this project is running (it holds {lock}); wait for it to end, "
            "or stop it (ps aux | grep stages.train), then run dvc repro again."
        ) from None


def tensor_bytes(state: Any) -> int:
    """The bytes of the tensors in a nested state dict: about the size of its file."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(tensor_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(tensor_bytes(v) for v in state)
    return 0


class Checkpoint:
    def __init__(self, folder: Path, fingerprint: str, name: str = "last.pt"):
        self.path = folder / name
        self.fingerprint = fingerprint
        self.extra: dict[str, Any] = {}  # what the stage wants back on resume, e.g. the MLflow run id
        self.abandoned_run_id: str | None = None  # the run of an unfinished checkpoint that will not resume

    def load(self) -> dict[str, Any] | None:
        """The saved training state, or None: absent, unreadable, or for other params, data
        or code. ``state["complete"]`` says its model was saved and logged already."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)  # plain data only: no code runs
        except Exception as exc:  # a file cut short by a crash of the disk, not of training
            log.warning(f"train: ignoring unreadable checkpoint {self.path} ({exc}); starting afresh")
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.warning(
                f"train: {self.path} was saved with other params or data, or by another imgpipe version; starting afresh"
            )
            self.abandoned_run_id = None if state.get("complete") else state.get("run_id")
            return None
        return state

    def save(self, state: dict[str, Any], complete: bool = False) -> None:
        """Write atomically: a kill mid-write leaves the previous epoch's checkpoint whole."""
        # The space is checked beside the previous checkpoint, kept until this one is whole.
        with atomic_path(self.path, needed=tensor_bytes(state)) as tmp:
            torch.save({**state, **self.extra, "fingerprint": self.fingerprint, "complete": complete}, tmp)

    def mark_complete(self) -> None:
        """Call once the trained model is safely saved: this checkpoint is never resumed again."""
        state = self.load()
        # Saved again when it was complete already but its model went to another MLflow
        # run (the store was reset), so the checkpoint names the run that holds the model.
        if state is not None and (not state["complete"] or state.get("run_id") != self.extra.get("run_id")):
            self.save({k: v for k, v in state.items() if k not in ("fingerprint", "complete")}, complete=True)
