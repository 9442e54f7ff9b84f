"""imgpipe build-docker: MLflow's Dockerfile for a registered model, and what it says when Docker cannot build it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import run
from imgpipe.cli import main
from imgpipe.serving.docker import default_tag

# Logged in a process of its own: mlflow.set_tracking_uri would leave the store in this
# one's environment for the next test.
LOG_TINY_MODEL = """
import mlflow
from mlflow import MlflowClient

class Length(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [len(model_input)]

mlflow.set_tracking_uri("sqlite:///mlflow.db")
with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="model", python_model=Length(), registered_model_name="tiny",
                                   pip_requirements=["mlflow"])
MlflowClient().set_registered_model_alias("tiny", "champion", info.registered_model_version)
"""


def write_project(root: Path, registered_model: str | None) -> Path:
    """The least that find_project_root and params.yaml's mlflow section need."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    name = registered_model or "null"
    (root / "params.yaml").write_text(f"mlflow:\n  experiment_name: tiny\n  registered_model: {name}\n")
    return root


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """A project whose sqlite store holds the model 'tiny', version 1 aliased champion."""
    root = write_project(tmp_path_factory.mktemp("registry") / "Tiny Project", "tiny")
    run([sys.executable, "-c", LOG_TINY_MODEL], cwd=root)
    return root


@pytest.fixture
def in_project(monkeypatch):
    def enter(root: Path) -> Path:
        for name in ("MLFLOW_TRACKING_URI", "IMGPIPE_ROOT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(root)
        return root

    return enter


def imgpipe(*argv: str) -> int:
    """``imgpipe build-docker ARGV``: a user error is a line and status 2."""
    return main(["build-docker", *argv])


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("imgpipe: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_default_tag_is_a_docker_name(tmp_path):
    assert default_tag("models:/tiny@champion", tmp_path) == "imgpipe-tiny:latest"
    assert default_tag("models:/My Pets_v2/3", tmp_path) == "imgpipe-my-pets-v2:latest"
    project = write_project(tmp_path / "Cats & Dogs", None)
    assert default_tag("runs:/abc/model", project) == "imgpipe-cats-dogs:latest"


def test_without_a_registered_model_the_model_flag_is_required(tmp_path, in_project, capsys):
    in_project(write_project(tmp_path / "proj", None))
    assert imgpipe("--no-build") == 2
    err = one_error(capsys)
    assert "mlflow.registered_model" in err and "--model" in err


def test_a_missing_store_is_refused_before_mlflow_creates_one(tmp_path, in_project, capsys):
    root = in_project(write_project(tmp_path / "proj", "tiny"))
    assert imgpipe("--no-build") == 2
    assert "models:/tiny@champion" in one_error(capsys)
    assert not (root / "mlflow.db").exists() and not (root / "build").exists()


@pytest.mark.slow
def test_no_build_writes_the_dockerfile_and_the_model(registry, in_project, capsys):
    in_project(registry)
    assert imgpipe("--no-build") == 0
    out = capsys.readouterr().out
    context = registry / "build" / "docker"
    dockerfile = (context / "Dockerfile").read_text()
    assert "ENTRYPOINT" in dockerfile and "C._serve('local')" in dockerfile  # MLflow's scoring server
    assert "COPY model_dir /opt/ml/model" in dockerfile
    assert "python_function" in yaml.safe_load((context / "model_dir" / "MLmodel").read_text())["flavors"]
    assert "mlflow" in (context / "model_dir" / "requirements.txt").read_text().split()  # as logged
    assert f"docker build -t imgpipe-tiny:latest '{context}'" in out  # the folder's name has a space
    assert "docker run --rm -p 8080:8080 imgpipe-tiny:latest" in out
    assert [p.name for p in context.parent.iterdir()] == ["docker"]  # no temporary left beside it


@pytest.mark.slow
def test_without_docker_the_context_is_kept_and_named(registry, in_project, monkeypatch, tmp_path, capsys):
    in_project(registry)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # mlflow's folder, not docker's
    assert shutil.which("docker") is None
    out = tmp_path / "context"
    assert imgpipe("--model", "models:/tiny/1", "-o", str(out), "-t", "tiny:test") == 2
    err = one_error(capsys)
    assert "docker is not installed" in err and str(out) in err and f"docker build -t tiny:test {out}" in err
    assert "COPY model_dir /opt/ml/model" in (out / "Dockerfile").read_text()


def docker_daemon_state() -> str | None:
    """Why the no-daemon test cannot run here, or None."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker client is not installed"
    if subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode == 0:
        return "a Docker daemon answers here"
    return None


@pytest.mark.slow
def test_without_a_daemon_the_error_says_so(registry, in_project, tmp_path, capsys):
    if reason := docker_daemon_state():
        pytest.skip(reason)
    in_project(registry)
    out = tmp_path / "context"
    assert imgpipe("-o", str(out)) == 2
    err = one_error(capsys)
    assert "Docker daemon is not running or not reachable" in err and str(out) in err
    assert "COPY model_dir /opt/ml/model" in (out / "Dockerfile").read_text()


@pytest.mark.slow
def test_an_unknown_model_uri_is_one_sentence_naming_it(registry, in_project, tmp_path, capsys):
    in_project(registry)
    out = tmp_path / "context"
    assert imgpipe("--model", "models:/nope@champion", "-o", str(out), "--no-build") == 2
    err = one_error(capsys)
    assert "models:/nope@champion" in err and "name=nope not found" in err and "imgpipe promote" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written, no temporary
