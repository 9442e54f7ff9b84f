"""One trial: a real DVC experiment, ``dvc exp run --temp -n <name> -S ...``, and its metrics.

``--temp`` runs it in a copy of the repo, so the workspace is left as it was, a trial
that fails or is pruned leaves nothing half-done behind, and ``dvc exp apply`` brings
the best one back. DVC restores the stages a trial does not change from its cache
instead of running them again: a trial that only changes train params trains and
evaluates, nothing before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.tune.interrupts import ctrl_c_at_default, wait_stopping


@dataclass
class TrialRun:
    name: str  # the DVC experiment's
    log: Path  # everything dvc printed
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self, lines: int = 15) -> str:
        """The end of the log: what dvc and the stage said when it failed."""
        text = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])

    def stages_run(self) -> list[str]:
        """The stages DVC ran (not restored from its cache), in order."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line.split("'")[1] for line in text.splitlines() if line.startswith("Running stage '")]


def run_trial(root: Path, name: str, overrides: list[str], env: dict[str, str], log: Path) -> TrialRun:
    """Run the experiment ``name`` with ``overrides`` (``key=value``); dvc's output goes to ``log``."""
    # This interpreter's folder first on PATH: dvc, and the stages' `python -m stages.<name>`,
    # must be the environment imgpipe runs in, activated or not.
    bin_dir = str(Path(sys.executable).parent)
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(Path(bin_dir) / "dvc") if (Path(bin_dir) / "dvc").exists() else "dvc",
        "exp",
        "run",
        "--temp",
        "--name",
        name,
    ]
    for item in overrides:
        cmd += ["--set-param", item]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            preexec_fn=ctrl_c_at_default if os.name == "posix" else None,
        )
        code = wait_stopping(proc)  # on Ctrl-C, only once the trial's stages have ended their runs
    return TrialRun(name, log, code)


def experiment_file(root: Path, name: str, path: str) -> str:
    """The text of ``path`` as the experiment ``name`` committed it."""
    refs = _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    ref = next((r for r in refs if r.rsplit("/", 1)[-1] == name), None)
    if ref is None:
        raise ImgpipeError(f"DVC experiment {name} is not in this repo: was it removed (dvc exp remove)?")
    return _git(root, "show", f"{ref}:{path}")


def experiment_metrics(root: Path, name: str) -> dict[str, Any]:
    return json.loads(experiment_file(root, name, "metrics.json"))


def check_repo(root: Path) -> None:
    """DVC experiments are git commits: refuse a folder that is not a git repo with a commit."""
    try:
        _git(root, "rev-parse", "--verify", "HEAD")
    except ImgpipeError:
        raise ImgpipeError(
            f"{root} is not a git repository with a commit, and each trial is a DVC experiment "
            "(a git commit): git init, then commit the project (git add -A; git commit)."
        ) from None


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImgpipeError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()}")
    return proc.stdout
