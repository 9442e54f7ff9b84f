"""What ``dvc.yaml`` and ``dvc.lock`` say about a stage, and DVC's own hash of an output.

A stage's MLflow run names its outputs by the md5 DVC records for them, so the run that
made a version of ``data/ingest`` can be found again from any later ``dvc.lock``, also
when DVC skips the stage because that version is cached.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml


def _stages(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    stat = path.stat()
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """A file's stages, parsed once per version of it: a stage's run reads dvc.yaml and
    dvc.lock a dozen times, and PyYAML takes tens of milliseconds for each."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it
    return (yaml.load(Path(path).read_text(), Loader=loader) or {}).get("stages") or {}


def stage_names(root: Path) -> list[str]:
    """The stages of ``dvc.yaml`` in the order written, which is the order they run in."""
    return list(_stages(root / "dvc.yaml"))


def declared_outs(root: Path, stage: str) -> list[str]:
    """The paths ``stage`` writes (outs and metrics), less the persistent ones such as
    checkpoints/, which DVC keeps between runs and so are no stage's product."""
    found = []
    definition = _stages(root / "dvc.yaml").get(stage) or {}
    for entry in [*(definition.get("outs") or []), *(definition.get("metrics") or [])]:
        path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        if not (options or {}).get("persist"):
            found.append(path)
    return found


def declared_deps(root: Path, stage: str) -> list[str]:
    """The paths ``stage`` depends on, as dvc.yaml lists them."""
    return [str(dep) for dep in (_stages(root / "dvc.yaml").get(stage) or {}).get("deps") or []]


def locked(root: Path, stage: str, kind: str) -> dict[str, str]:
    """``{path: md5}`` of the ``deps`` or ``outs`` that dvc.lock records for ``stage``.

    Under ``dvc repro`` each stage is locked as soon as it ends (not before it starts), so
    a stage that starts reads there the versions of what the stages before it wrote or
    reused.
    """
    entries = (_stages(root / "dvc.lock").get(stage) or {}).get(kind) or []
    return {e["path"]: e["md5"] for e in entries if "md5" in e}


def locked_outs(lock_path: Path) -> dict[str, str]:
    """``{path: md5}`` of every stage's outs in the dvc.lock at ``lock_path`` (none when it is missing)."""
    return {
        e["path"]: e["md5"]
        for definition in _stages(lock_path).values()
        for e in (definition or {}).get("outs") or []
        if "md5" in e
    }


def producers(root: Path) -> dict[str, str]:
    """``{output path: stage}`` for every stage of dvc.yaml."""
    return {path: stage for stage in stage_names(root) for path in declared_outs(root, stage)}


def dvc_md5(path: Path) -> str | None:
    """The md5 ``dvc commit`` will record for ``path`` (``<md5>.dir`` for a folder), with
    DVC's own code; None when the path does not exist."""
    if not path.exists():
        return None
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory() as tmp:
        # The object DB only holds a folder's listing while it is hashed: thrown away after.
        _, _, obj = build(HashFileDB(fs, tmp), str(path), fs, "md5", ignore=None)
    return obj.hash_info.value
