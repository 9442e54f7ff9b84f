"""Shared fixtures: small real data, and throwaway copies of the project for stage runs.
The helpers behind them live in helpers.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Under pytest-xdist (`make test` runs a worker per core), each worker's stage processes
# share the cores with the others': a torch with a thread per core in every one of them
# oversubscribes the machine and runs many times slower. Set before anything imports torch.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    )

import contextlib
import subprocess

import numpy as np
import pytest

from helpers import Project, make_project

# The programs whose start-up alone (dvc, torch, MLflow imports) costs seconds per call.
PIPELINE_PROGRAMS = {"dvc", "imgpipe", "mlflow"}


def starts_the_pipeline(cmd: list[str]) -> bool:
    """Whether a subprocess's command line runs dvc, the imgpipe or mlflow command, or a stage."""
    module = cmd[cmd.index("-m") + 1] if "-m" in cmd[:-1] else ""
    return bool(cmd) and (Path(cmd[0]).name in PIPELINE_PROGRAMS or module.startswith(("stages.", "imgpipe.cli")))


@contextlib.contextmanager
def kept_to_the_fast_tier(item):
    """Outside the slow tier, starting the pipeline's commands fails the test, naming the fix.

    `make test-fast` (-m "not slow") is the edit loop's tier and must stay quick: a test
    that drives dvc or the imgpipe command in a process of its own belongs in the slow one,
    and this keeps the tiers honest by what a test does rather than by how long it took.
    """
    if item.get_closest_marker("slow") is not None:
        yield
        return
    started = subprocess.Popen

    class Guarded(started):
        def __init__(self, args, *rest, **options):
            cmd = args.split() if isinstance(args, str) else [str(a) for a in args]
            if starts_the_pipeline(cmd):
                pytest.fail(
                    f"{item.nodeid} starts `{' '.join(cmd[:3])}` in a process of its own: mark it "
                    "@pytest.mark.slow (make test-fast runs the tests without that mark, in-process ones)",
                    pytrace=False,
                )
            super().__init__(args, *rest, **options)

    subprocess.Popen = Guarded
    try:
        yield
    finally:
        subprocess.Popen = started


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with kept_to_the_fast_tier(item):  # module fixtures start here, in their first test's setup
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with kept_to_the_fast_tier(item):
        return (yield)


@pytest.fixture(autouse=True)
def no_tracking_store_from_another_test(monkeypatch):
    """``mlflow.set_tracking_uri`` also sets MLFLOW_TRACKING_URI in ``os.environ``, where
    imgpipe looks first: without this, one test's store would be the next test's."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)  # and on the way out, whatever the test set
    yield
    # mlflow.set_experiment also keeps the experiment's id in a module global, which a
    # later test's fresh store does not have ("No Experiment with id=1 exists").
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None and hasattr(fluent, "_active_experiment_id"):
        fluent._active_experiment_id = None


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj")


@pytest.fixture(scope="session")
def digits_small() -> tuple[np.ndarray, np.ndarray]:
    """300 real digit scans as uint8 (N, 8, 8, 1), with labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images[:300] * 16, 0, 255).astype(np.uint8)[..., None]
    return images, bunch.target[:300].astype(np.int64)
