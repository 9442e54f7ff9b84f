"""ruff's lint and format checks over the whole tree, as pre-commit runs them on each commit
(the rules and the line length are in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def ruff() -> str:
    beside = Path(sys.executable).parent / "ruff"  # the pinned one of this environment
    found = str(beside) if beside.is_file() else shutil.which("ruff")
    if not found:
        pytest.fail("ruff is not installed: run `make setup` (it is in the dev extra)")
    return found


@pytest.mark.parametrize("check", [["check", "--no-fix"], ["format", "--check"]], ids=["lint", "format"])
def test_the_tree_passes_ruff(check):
    done = subprocess.run([ruff(), *check, "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"`ruff {' '.join(check)} .` failed (fix: ruff check --fix . && ruff format .):\n{done.stdout[-4000:]}"
    )


def test_pre_commit_runs_the_same_ruff():
    import yaml

    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hooks = [
        hook
        for repo in yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    ]
    assert sorted(hook["entry"].split()[1] for hook in hooks) == ["check", "format"]
    assert all(hook["entry"].startswith("ruff ") and hook["language"] == "system" for hook in hooks)
