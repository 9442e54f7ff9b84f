"""Test helpers in one place: throwaway project copies, commands, free ports, real image folders."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "src", "raw", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore"]
SHARED = REPO.parent / "shared" / "datasets"

# Small but real: every stage does its actual work, only on fewer and smaller images.
TINY = {
    "ingest": {"image_size": 16, "imbalance_ratio": 5},
    "augment": {"copies": 1},
    "train": {"epochs": 2, "batch_size": 32, "simple_cnn": {"filters": 8, "kernel_size": 3, "dense_units": 32}},
}


def deep_update(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None,
        leaves_daemons: bool = False, timeout: float | None = 900) -> subprocess.CompletedProcess:
    """Run ``cmd`` with a clean environment and this venv first on PATH; its output comes back.

    ``leaves_daemons``: the command starts processes that outlive it (``dvc queue start``'s
    workers). They inherit its output, so it goes to a file: through pipes, waiting for
    the output would wait for the daemons too. ``timeout`` (seconds; None = none) stops a
    hung command; benchmarks that train for longer lift it.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "IMGPIPE_"))}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    if leaves_daemons:
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True, env=full_env,
                                  timeout=timeout)
            out.seek(0)
            proc = subprocess.CompletedProcess(cmd, done.returncode, out.read(), "")
    else:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
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

    def run(self, *cmd: str, check: bool = True, env: dict | None = None,
            leaves_daemons: bool = False, timeout: float | None = 900) -> subprocess.CompletedProcess:
        return run(list(cmd), self.root, check=check, env=env, leaves_daemons=leaves_daemons, timeout=timeout)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def copy_project(root: Path) -> Project:
    """Copy the project's tracked files to ``root``, git-initialised, params as shipped."""
    for name in PROJECT_FILES:
        src, dst = REPO / name, root / name
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


def make_project(root: Path) -> Project:
    """A project copy (see ``copy_project``) with TINY params."""
    proj = copy_project(root)
    proj.set_params(TINY)
    return proj


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_digit_folder(root: Path, per_class: int = 12, classes: tuple[str, ...] = ("zero", "one", "two")) -> dict[str, list[Path]]:
    """An ImageFolder tree of real digit scans in mixed formats, modes and sizes.

    Class ``k`` holds scans of digit ``k``, upscaled, so a model can learn them. Formats
    rotate through JPEG, PNG (some named .jpg), BMP, WebP, GIF and TIFF, with upper-case
    extensions and a nested subfolder, as real collections have.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    written: dict[str, list[Path]] = {}
    kinds = [("JPEG", ".jpg", "RGB"), ("PNG", ".png", "L"), ("PNG", ".jpg", "RGBA"), ("BMP", ".BMP", "RGB"),
             ("WEBP", ".webp", "RGB"), ("GIF", ".gif", "P"), ("TIFF", ".tif", "RGB"), ("JPEG", ".JPEG", "L")]
    for label, name in enumerate(classes):
        scans = bunch.images[bunch.target == label][:per_class]
        for i, scan in enumerate(scans):
            fmt, ext, mode = kinds[i % len(kinds)]
            pixels = np.clip(scan * 16, 0, 255).astype(np.uint8)
            size = 40 + 7 * (i % 5)
            image = Image.fromarray(pixels, "L").resize((size, size + 3 * (i % 3)), Image.Resampling.BICUBIC).convert(mode)
            folder = root / name / ("more" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}_{i:03d}{ext}"
            image.save(path, format=fmt)
            written.setdefault(name, []).append(path)
    return written


def wait_for_server(process, port: int) -> None:
    """Wait until ``mlflow models serve`` (``process``) answers /ping on ``port``; fail the
    test with its last output if it ends or has not answered within two minutes."""
    import time
    import urllib.request

    import pytest

    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                pytest.fail(f"mlflow models serve did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
