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
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import numpy as np
import pytest

from helpers import Project, make_project


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
