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

from helpers import make_project

pytestmark = pytest.mark.slow


def metrics_bytes(project) -> bytes:
    return (project.root / "metrics.json").read_bytes()


def trained_model(project) -> tuple[bytes, dict]:
    """The training's history and weights, as evaluate reads them."""
    weights = torch.load(project.root / "models" / "model.pt", weights_only=True)
    return (project.root / "reports" / "train_history.csv").read_bytes(), {k: v.tolist() for k, v in weights.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny project trained once, uninterrupted: the project, its model and its metrics."""
    project = make_project(tmp_path_factory.mktemp("kills") / "proj")
    project.set_params({"train": {"dropout": 0.2, "scheduler": {"name": "cosine", "warmup_epochs": 1}}})
    project.commit("tiny project")
    project.run("dvc", "repro")
    return project, trained_model(project), metrics_bytes(project)


def test_same_params_same_metrics_and_a_finished_training_is_never_redone(trained):
    project, _, uninterrupted = trained
    # A finished training's checkpoint is not trained again when DVC reruns the stage.
    again = project.run("dvc", "repro", "--force", "--single-item", "train").stdout
    assert "writing its model out again, not retraining" in again and "epoch 1:" not in again
    # A second training of the same params, from scratch, ends with the same metrics.
    shutil.rmtree(project.root / "checkpoints")
    project.run("dvc", "repro", "--force", "--single-item", "train")
    project.run("dvc", "repro")
    assert metrics_bytes(project) == uninterrupted


# How a run is stopped: the machine or the OOM killer takes the whole process group; only
# the `dvc` process dies (its stage runs on, orphaned); Ctrl-C in the terminal.
STOPS = {"SIGKILL group": (signal.SIGKILL, True), "SIGKILL dvc alone": (signal.SIGKILL, False),
         "Ctrl-C": (signal.SIGINT, True)}
# Where: an upstream stage at work, training between epochs, and saving after the last.
POINTS = {"before training": ("augment", "augment: "), "during training": ("train", "epoch 1:"),
          "after training": ("train", "train: saving the model")}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("stop", STOPS)
def test_a_stopped_run_loses_nothing_and_redoes_no_finished_epoch(trained, stop, point):
    project, uninterrupted, _ = trained
    stage, line = POINTS[point]
    if stage == "train":
        shutil.rmtree(project.root / "checkpoints")  # so that the stopped run trains afresh
    stop_at(project, ["dvc", "repro", "--force", "--single-item", stage], line, *STOPS[stop])
    # What evaluate reads comes out the same as uninterrupted (evaluate itself is the fixture's).
    rerun = project.run("dvc", "repro", "train").stdout
    assert trained_model(project) == uninterrupted
    if stage == "train":
        assert "epoch 1:" not in rerun, rerun  # epoch 1 was checkpointed: it is not trained again
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    run_id = json.loads((project.root / "models" / "run.json").read_text())["run_id"]
    assert sorted(m.step for m in client.get_metric_history(run_id, "val_loss")) == [1, 2]  # each epoch once


def stop_at(project, cmd: list[str], line_start: str, sig: int, whole_group: bool) -> None:
    """Run ``cmd`` and send ``sig`` when it prints ``line_start``: to its process group, or
    to the process alone; then wait until every process it started has ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "IMGPIPE_"))}
    env.update(PYTHONUNBUFFERED="1", PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}")
    proc = subprocess.Popen(cmd, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen = []
    for out in proc.stdout:
        seen.append(out)
        if out.startswith(line_start):
            os.killpg(proc.pid, sig) if whole_group else os.kill(proc.pid, sig)
            break
    else:
        raise AssertionError(f"{cmd} ended before printing {line_start!r}:\n{''.join(seen)}")
    seen.extend(proc.stdout)  # until every writer, an orphaned stage too, has ended
    assert proc.wait() != 0, "".join(seen)


def test_two_process_ddp_with_gloo_completes(project):
    project.set_params({"train": {"nproc": 2, "epochs": 2}})
    project.commit("ddp")
    out = project.run("dvc", "repro")
    assert "on cpu x2" in out.stdout
    history = (project.root / "reports" / "train_history.csv").read_text().splitlines()
    assert len(history) == 3  # header and two epochs, written once (by rank 0)
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.3  # ten digit classes: chance is 0.1
