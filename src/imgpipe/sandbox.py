"""A throwaway git-initialised copy of this project, and running commands in it.

The tests and the benchmarks both run the real pipeline (``dvc repro``, ``imgpipe``
commands) in such copies, so that neither touches the checkout's own data, params or
tracking store. No stage imports this module: it is for checkouts, not for pipelines.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from imgpipe.errors import ImgpipeError

# What a clone holds that the pipeline needs; data, models and stores are made by running it.
PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "stages",
    "src",
    "raw",
    ".dvc/config",
    ".dvc/plots",
    ".dvcignore",
    ".gitignore",
]


def checkout_root() -> Path:
    """The checkout this module was imported from (``src/imgpipe/sandbox.py`` lies two
    folders below it); an installed, non-editable imgpipe has no project around it to copy."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "dvc.yaml").is_file():
        raise ImgpipeError(
            f"imgpipe.sandbox copies a checkout of imgpipe, but {root} has no dvc.yaml: "
            "install imgpipe from a clone with `pip install -e .` to use it."
        )
    return root


def deep_update(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, nested sections key by key rather than replaced."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def run(
    cmd: list[str],
    cwd: Path,
    check: bool = True,
    env: dict | None = None,
    leaves_daemons: bool = False,
    timeout: float | None = 900,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` with a clean environment and this venv first on PATH; its output comes back.

    ``leaves_daemons``: the command starts processes that outlive it (``dvc queue start``'s
    workers). They inherit its output, so it goes to a file: through pipes, waiting for
    the output would wait for the daemons too. ``timeout`` (seconds; None = none) stops a
    hung command; benchmarks that train for longer lift it.
    """
    # The caller's tracking store and DVC settings would leak into the copy otherwise.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "IMGPIPE_"))}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    if leaves_daemons:
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True, env=full_env, timeout=timeout
            )
            out.seek(0)
            proc = subprocess.CompletedProcess(cmd, done.returncode, out.read(), "")
    else:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


class Project:
    """A git-initialised copy of imgpipe in a temporary folder."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def set_params(self, changes: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(deep_update(self.params, changes), sort_keys=False))

    def run(
        self,
        *cmd: str,
        check: bool = True,
        env: dict | None = None,
        leaves_daemons: bool = False,
        timeout: float | None = 900,
    ) -> subprocess.CompletedProcess:
        return run(list(cmd), self.root, check=check, env=env, leaves_daemons=leaves_daemons, timeout=timeout)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def copy_project(root: Path) -> Project:
    """Copy the checkout's tracked files to ``root``, git-initialised, params as shipped."""
    repo = checkout_root()
    for name in PROJECT_FILES:
        src, dst = repo / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    proj = Project(root)
    proj.run("git", "init", "-q")
    proj.run("git", "config", "user.email", "test@example.com")
    proj.run("git", "config", "user.name", "imgpipe tests")
    return proj


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
