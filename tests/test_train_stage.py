"""The train stage as DVC runs it: reproducible metrics, resuming after a kill, DDP with gloo."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import torch

from helpers import free_port, make_project

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
STOPS = {
    "SIGKILL group": (signal.SIGKILL, True),
    "SIGKILL dvc alone": (signal.SIGKILL, False),
    "Ctrl-C": (signal.SIGINT, True),
}
# Where: an upstream stage at work, training between epochs, and saving after the last.
POINTS = {
    "before training": ("augment", "augment: "),
    "during training": ("train", "epoch 1:"),
    "after training": ("train", "train: saving the model"),
}


# Every way to stop during training, where resuming is exact to the epoch; around it, the
# ways that differ there: an orphaned upstream stage finishing alone, a kill while saving.
# (Ctrl-C upstream or while saving, and an orphaned save, are left out: each case costs a
# pipeline run, and make test keeps under 20 minutes.)
CASES = [
    ("SIGKILL group", "before training"),
    ("SIGKILL dvc alone", "before training"),
    *((stop, "during training") for stop in STOPS),
    ("SIGKILL group", "after training"),
]


@pytest.mark.parametrize("stop, point", CASES)
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
    else:  # augment's data came out the same, so train did not rerun
        assert "Running stage 'train'" not in rerun and "Stage 'train' didn't change" in rerun, rerun
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
    # Ctrl-C as a terminal sends it: a suite started in the background (`make test &`, nohup)
    # hands its children SIGINT ignored, and an ignored signal stays ignored across exec.
    proc = subprocess.Popen(
        cmd,
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # A hung stage must fail this test, not hang the suite: its group is killed after 5 minutes.
    deadline = threading.Timer(300, lambda: os.killpg(proc.pid, signal.SIGKILL))
    deadline.start()
    try:
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
        assert deadline.is_alive(), f"{cmd} was still running after 5 minutes:\n{''.join(seen)}"
    finally:
        deadline.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_two_process_ddp_with_gloo_completes_and_two_nodes_end_the_same(project):
    project.set_params({"train": {"nproc": 2, "epochs": 2}})
    project.commit("ddp")
    out = project.run("dvc", "repro")
    assert "on cpu x2" in out.stdout
    history = (project.root / "reports" / "train_history.csv").read_text().splitlines()
    assert len(history) == 3  # header and two epochs, written once (by rank 0)
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.3  # ten digit classes: chance is 0.1
    one_node = trained_model(project), metrics_bytes(project)

    # The README's two-machine recipe, both "machines" on localhost sharing the project:
    # one process per node, a c10d rendezvous, `dvc repro` on one and the stage on the other.
    # One thread per process, as torchrun gives the two processes of one node: CPU sums
    # split across another number of threads round differently.
    project.set_params({"train": {"nproc": 1}})
    shutil.rmtree(project.root / "checkpoints")
    env = {
        "PET_NNODES": "2",
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": f"localhost:{free_port()}",
        "PET_RDZV_ID": "imgpipe-test",
        "OMP_NUM_THREADS": "1",
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "IMGPIPE_"))}
    other = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=project.root,
        env={**full_env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = project.run("dvc", "repro", env=env, timeout=600)
        other_out, _ = other.communicate(timeout=120)
    finally:
        other.kill()
    assert other.returncode == 0, other_out
    assert "on cpu x2" in out.stdout + other_out
    assert (trained_model(project), metrics_bytes(project)) == one_node


@contextlib.contextmanager
def small_disk(folder, size: int):
    """A tmpfs of ``size`` bytes mounted on ``folder`` (root only); yields a function that
    resizes it, and unmounts it afterwards, so what was there before shows again."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield lambda new: subprocess.run(["mount", "-o", f"remount,size={new}", str(folder)], check=True)
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_full_disk_is_one_sentence_and_the_run_carries_on_once_there_is_room(trained):
    project, uninterrupted, _ = trained
    checkpoints = project.root / "checkpoints"
    one_checkpoint = (checkpoints / "last.pt").stat().st_size
    # Room for epoch 1's checkpoint, not for epoch 2's beside it (the first is kept until the
    # second is whole). The mount hides the finished checkpoint there, so training starts afresh.
    with small_disk(checkpoints, one_checkpoint * 2) as resize:
        failed = project.run("dvc", "repro", "--force", "--single-item", "train", check=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0 and "Traceback" not in said
        assert f"no room on the disk holding {checkpoints / 'last.pt'} (needs " in said and "epoch 1:" in said
        resize(10 * 2**20)
        rerun = project.run("dvc", "repro", "train").stdout
        assert "resuming from" in rerun and "epoch 1:" not in rerun and trained_model(project) == uninterrupted

    # Ingest's arrays on a disk too small for them: refused before writing, then carried on.
    with small_disk(project.root / "data", 64 * 2**10) as resize:
        failed = project.run("dvc", "repro", "--force", "--single-item", "ingest", check=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0 and "Traceback" not in said
        assert f"no room on the disk holding {project.root / 'data' / 'ingest'} (needs " in said
        resize(10 * 2**20)
        project.run("dvc", "repro", "train")
        assert project.run("dvc", "status", "train").stdout.strip().endswith("up to date.")
