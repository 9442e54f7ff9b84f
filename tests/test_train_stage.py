"""The train stage as DVC runs it: reproducible metrics, resuming after a kill, DDP with gloo."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow


def metrics_bytes(project) -> bytes:
    return (project.root / "metrics.json").read_bytes()


def test_same_params_same_metrics_and_a_killed_run_resumes_to_the_same_end(project):
    project.set_params({"train": {"epochs": 5, "dropout": 0.2, "scheduler": {"name": "cosine", "warmup_epochs": 1}}})
    project.commit("tiny project")
    project.run("dvc", "repro")
    uninterrupted = metrics_bytes(project)

    # A second run of the same params, from scratch (the finished checkpoint is not resumed).
    project.run("dvc", "repro", "--force", "train")
    project.run("python", "-m", "stages.evaluate")
    assert metrics_bytes(project) == uninterrupted

    # Kill the stage once epoch 2 is reported (its checkpoint is written before the report).
    kill_when(project, "epoch 2:")
    saved = torch.load(project.root / "checkpoints" / "last.pt", weights_only=True)
    assert 2 <= len(saved["history"]) < 5 and not saved["complete"]

    rerun = project.run("dvc", "repro")
    assert "resuming from" in rerun.stdout
    assert metrics_bytes(project) == uninterrupted

    # The resumed epochs went into the same MLflow run as the first ones.
    import mlflow

    run_id = json.loads((project.root / "models" / "run.json").read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root}/mlflow.db")
    assert sorted(m.step for m in client.get_metric_history(run_id, "val_loss")) == [1, 2, 3, 4, 5]

    # Killed after the last epoch, while saving: the next run saves, it does not retrain.
    project.run("dvc", "repro", "--force", "train", "--single-item")  # a fresh training to kill
    shutil.rmtree(project.root / "models")
    kill_when(project, "train: saving the model")
    saved = torch.load(project.root / "checkpoints" / "last.pt", weights_only=True)
    assert len(saved["history"]) == 5 and not saved["complete"]
    rerun = project.run("dvc", "repro")
    assert "training had finished: saving its model" in rerun.stdout and "epoch 1:" not in rerun.stdout
    assert metrics_bytes(project) == uninterrupted


def kill_when(project, line_start: str) -> None:
    """Run the train stage and SIGKILL its process group when it prints ``line_start``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=project.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.startswith(line_start):
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the stage ended before printing {line_start!r}"


def test_two_process_ddp_with_gloo_completes(project):
    project.set_params({"train": {"nproc": 2, "epochs": 2}})
    project.commit("ddp")
    out = project.run("dvc", "repro")
    assert "on cpu x2" in out.stdout
    history = (project.root / "reports" / "train_history.csv").read_text().splitlines()
    assert len(history) == 3  # header and two epochs, written once (by rank 0)
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.3  # ten digit classes: chance is 0.1
