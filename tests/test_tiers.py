"""The test tiers stay honest: outside the slow tier, starting the pipeline's commands fails."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import starts_the_pipeline


@pytest.mark.parametrize(
    "cmd, starts",
    [
        (["dvc", "repro"], True),
        (["/venv/bin/imgpipe", "doctor"], True),
        (["/venv/bin/mlflow", "models", "serve", "-m", "models"], True),
        (["python", "-m", "stages.ingest"], True),
        ([sys.executable, "-m", "imgpipe.cli", "init", "raw/pets"], True),
        (["git", "init", "-q"], False),  # what copying a project runs
        ([sys.executable, "-c", "print(1)"], False),
        (["python", "-m"], False),
    ],
)
def test_the_pipeline_commands_are_told_apart(cmd, starts):
    assert starts_the_pipeline(cmd) is starts


def test_a_fast_test_that_starts_dvc_is_told_to_move_to_the_slow_tier():
    with pytest.raises(pytest.fail.Exception, match=r"starts `dvc version` .*mark it @pytest.mark.slow"):
        subprocess.run(["dvc", "version"], capture_output=True)
    assert subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.startswith("git version")


@pytest.mark.slow
def test_a_slow_test_may_start_dvc():
    assert subprocess.run(["dvc", "version"], capture_output=True, text=True).returncode == 0
