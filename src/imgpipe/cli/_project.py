"""The project the command runs in: the folder holding dvc.yaml, at or above the current one."""

from __future__ import annotations

from pathlib import Path

from imgpipe.paths import find_project_root


def project_root() -> Path:
    return find_project_root(Path.cwd())
