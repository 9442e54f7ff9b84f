"""Ray as the engine past one machine: ingest's decoding and train's launcher, on a real
local cluster (``ray.init(num_cpus=2)``), against the local engine and torchrun."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import free_port, make_project, write_digit_folder

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs; stages join it through RAY_ADDRESS, as on a real one.

    Started with a stray DVC_ROOT and MLflow store in its environment, which its workers
    inherit, as a cluster started elsewhere has its own: the stage must not go by them."""
    stray = {"DVC_ROOT": "/nonexistent/project", "MLFLOW_TRACKING_URI": "sqlite:////nonexistent/mlflow.db"}
    saved = {k: os.environ.get(k) for k in stray}
    os.environ.update(stray)
    try:
        ray.init(num_cpus=2, include_dashboard=False)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    yield {"RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    ray.shutdown()


def file_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_ray_ingest_writes_the_same_bytes_as_the_local_engine(cluster, project):
    root = project.root
    write_digit_folder(root / "raw" / "digits3", per_class=30)
    project.set_params({"ingest": {"source": "raw/digits3", "channels": 3, "image_size": 16}})
    project.run("python", "-m", "stages.ingest")
    local = file_hashes(root / "data" / "ingest")
    project.set_params({"ingest": {"engine": "ray"}})
    out = project.run("python", "-m", "stages.ingest", env=cluster)
    assert "ingest (ray)" in out.stdout + out.stderr
    assert file_hashes(root / "data" / "ingest") == local


def test_a_cluster_that_does_not_answer_fails_fast_naming_its_address(project):
    address = f"127.0.0.1:{free_port()}"
    write_digit_folder(project.root / "raw" / "digits3", per_class=4)
    project.set_params({"ingest": {"source": "raw/digits3", "engine": "ray"}, "train": {"launcher": "ray"}})
    for stage in ("ingest", "train"):
        began = time.monotonic()
        out = project.run("python", "-m", f"stages.{stage}", env={"RAY_ADDRESS": address}, check=False)
        said = out.stdout + out.stderr
        assert out.returncode == 2 and f"the Ray cluster at RAY_ADDRESS={address} does not answer" in said, said
        assert "Traceback" not in said and time.monotonic() - began < 60


def trained(project) -> tuple[bytes, bytes]:
    return (project.root / "models" / "model.pt").read_bytes(), (project.root / "metrics.json").read_bytes()


@pytest.fixture(scope="module")
def torchrun_result(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("ray") / "proj")
    project.set_params({"train": {"nproc": 2, "epochs": 2}})
    project.commit("two processes")
    project.run("dvc", "repro")
    return project, trained(project)


def test_ray_train_ends_where_torchrun_ends_with_the_same_workers(cluster, torchrun_result):
    project, by_torchrun = torchrun_result
    project.set_params({"train": {"launcher": "ray"}})
    out = project.run("dvc", "repro", env=cluster)
    assert "train: on Ray, 2 worker(s), CPU" in out.stdout
    assert trained(project) == by_torchrun
    run_id = json.loads((project.root / "models" / "run.json").read_text())["run_id"]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root}/mlflow.db")
    assert client.get_run(run_id).data.params["train.launcher"] == "ray"  # rank 0 recorded the run


def test_stopping_the_stage_stops_its_ray_workers(cluster, torchrun_result):
    project, _ = torchrun_result
    project.set_params({"train": {"launcher": "ray", "epochs": 50}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "IMGPIPE_"))}
    env.update(cluster, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=project.root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "epoch 2:" in line:  # the workers are training
            os.killpg(proc.pid, signal.SIGINT)
            break
    seen.extend(proc.stdout)
    assert proc.wait(timeout=120) != 0, "".join(seen)
    # The workers belonged to the stopped driver: the cluster gets its CPUs back.
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert ray.available_resources().get("CPU", 0) == 2, "".join(seen)
