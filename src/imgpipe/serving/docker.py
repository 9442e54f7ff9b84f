"""``imgpipe build-docker``: a Docker image that serves a registered model, made by MLflow's own tooling.

``mlflow models generate-dockerfile`` writes the build context (a Dockerfile and the model
downloaded from the tracking store); this command runs it against the project's store,
keeps the context under ``build/docker`` even when Docker is missing, and then runs
``docker build`` on it. The image serves MLflow's scoring server on port 8080.

With ``--env-manager local`` MLflow bases the image on ``python:<the model's version>-slim``,
pip-installs mlflow and then the model's ``requirements.txt`` at build time, so building
needs network access; anything inside the model folder (``code_paths`` included) is copied
into the image with it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from imgpipe.errors import ImgpipeError
from imgpipe.store.atomic import atomic_path, refuse_enclosing, refuse_occupied

ALIAS = "champion"
MODEL_DIR = "model_dir"  # where MLflow's generated Dockerfile copies the model from
PORT = 8080  # where MLflow's generated image serves; fixed by its entrypoint
CURL = (
    "curl -s localhost:8080/invocations -H 'Content-Type: application/json' "
    '-d \'{"dataframe_records": [{"image": "\'$(base64 -w0 photo.jpg)\'"}]}\''
    "   # answers the class and every class's probability"
)


@dataclass(frozen=True)
class BuildContext:
    """A written Docker build context: where, for which model, and the commands that use it."""

    uri: str
    tag: str
    folder: Path

    @property
    def build(self) -> str:
        return f"docker build -t {shlex.quote(self.tag)} {shlex.quote(str(self.folder))}"

    @property
    def run(self) -> str:
        return _run_command(self.tag)


def write_build_context(root: Path, uri: str | None, tag: str | None, output: Path | None) -> BuildContext:
    """MLflow's Dockerfile and the model for ``uri`` (default: the champion) in ``output``."""
    uri = uri or _champion_uri(root)
    context = BuildContext(uri, tag or default_tag(uri, root), (output or root / "build" / "docker").resolve())
    refuse_enclosing(context.folder, {"the project root": root, "the current folder": Path.cwd()})
    refuse_occupied(context.folder, is_build_context)  # before MLflow's minutes of work, not after
    _check_store_exists(root, uri)
    # A failed export leaves the previous context as it was; only a previous context is replaced.
    with atomic_path(context.folder, replaces=is_build_context) as staged:
        _generate_dockerfile(root, uri, staged)
    return context


def docker_command(context: BuildContext) -> str:
    """The docker executable, checked to reach a daemon; refused in one sentence if not."""
    return _working_docker(context.folder, context.build)


def build_image(context: BuildContext, docker: str) -> None:
    """``docker build`` the context, its output streaming through; a failure is one sentence."""
    status = subprocess.run([docker, "build", "-t", context.tag, str(context.folder)]).returncode
    if status != 0:
        raise ImgpipeError(
            f"`docker build` exited with status {status} (its output is above; it needs network "
            f"access for the base image and pip), and the build context stays in {context.folder}: "
            f"fix the cause and run `{context.build}` again."
        )


def is_build_context(folder: Path) -> bool:
    """Whether ``folder`` holds what ``mlflow models generate-dockerfile`` wrote, and nothing else."""
    names = {p.name for p in folder.iterdir()}
    return "Dockerfile" in names and names <= {"Dockerfile", MODEL_DIR}


def _champion_uri(root: Path) -> str:
    name = _registered_model(root)
    if not name:
        raise ImgpipeError(
            "params.yaml's mlflow.registered_model is not set, so this project has no registered "
            "model to serve: set it and run `dvc repro`, or pass --model with an MLflow model URI "
            "(e.g. runs:/<run_id>/model)."
        )
    return f"models:/{name}@{ALIAS}"


def _registered_model(root: Path) -> str | None:
    from imgpipe.params.tracking import MlflowConfig

    return MlflowConfig.load(root / "params.yaml").registered_model


def default_tag(uri: str, root: Path) -> str:
    """``imgpipe-<name>:latest``: the registered model's name (from a models:/ URI, else
    params.yaml), else the project folder's, made a valid Docker repository name."""
    name = None
    if uri.startswith("models:/"):
        name = re.split(r"[/@]", uri.removeprefix("models:/"), maxsplit=1)[0]
        if re.fullmatch(r"m-[0-9a-f]{32}", name):  # MLflow 3's logged-model id, not a name
            name = None
    name = name or _registered_model(root) or root.name
    # Docker's repository names: lower-case letters and digits, separated by single dashes (and others).
    safe = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"imgpipe-{safe or 'model'}:latest"


def _run_command(tag: str) -> str:
    return f"docker run --rm -p {PORT}:{PORT} {shlex.quote(tag)}"


def _check_store_exists(root: Path, uri: str) -> None:
    """Refuse before MLflow would create an empty SQLite store (and its tables, for seconds)
    just to find nothing in it."""
    from imgpipe.tracking.store import tracking_uri

    store = tracking_uri(root)
    if store.startswith("sqlite:///") and uri.startswith(("models:/", "runs:/")):
        path = Path(store.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            raise ImgpipeError(
                f"there is no MLflow store at {path} to find {uri} in: train and register a model "
                "first (`dvc repro` with mlflow.registered_model set in params.yaml), or set "
                "MLFLOW_TRACKING_URI to the store that holds it."
            )


def _generate_dockerfile(root: Path, uri: str, out: Path) -> None:
    from imgpipe.tracking.store import tracking_uri

    mlflow = Path(sys.executable).parent / "mlflow"  # the one of this environment, whatever PATH holds
    if not mlflow.is_file():
        raise ImgpipeError(
            f"the mlflow command is missing beside {sys.executable}; reinstall imgpipe "
            "(pip install -e .) in this environment."
        )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(root)}
    cmd = [str(mlflow), "models", "generate-dockerfile", "-m", uri, "-d", str(out), "--env-manager", "local"]
    # Its log and progress bars are noise on success; on failure its last line says why.
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not (out / "Dockerfile").is_file():
        raise ImgpipeError(
            f"MLflow could not export the model {uri} ({last_line(done.stderr)}): check the URI, "
            "or train and register a model with `dvc repro` (mlflow.registered_model set in "
            f"params.yaml) and give it the alias {ALIAS} with `imgpipe promote`."
        )


def _working_docker(context: Path, build: str) -> str:
    """The docker client's path, once its daemon answers; else why not, in a sentence."""
    docker = shutil.which("docker")
    if docker is None:
        raise ImgpipeError(
            f"docker is not installed (not on PATH); the build context with its Dockerfile was "
            f"written to {context}: build it on a machine with Docker with `{build}`."
        )
    try:
        info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
        reason = None if info.returncode == 0 else last_line(info.stderr)
    except subprocess.TimeoutExpired:
        reason = "`docker info` did not answer in 60 s"
    if reason is not None:
        raise ImgpipeError(
            f"the Docker daemon is not running or not reachable ({reason}); the build context with "
            f"its Dockerfile was written to {context}: start Docker (or get access to its "
            f"socket) and run `imgpipe build-docker` again, or build it elsewhere with `{build}`."
        )
    return docker


def last_line(text: str) -> str:
    """A failed command's last words, as part of a sentence: its final line (progress bars'
    carriage returns aside), without Python's exception class or a second sentence."""
    lines = [line.split("\r")[-1].strip() for line in (text or "").splitlines()]
    last = next((line for line in reversed(lines) if line), "no message")
    last = re.sub(r"^(?:[\w.]+(?:Error|Exception)|ERROR|Error|error): ", "", last)
    return re.split(r"(?<=[a-z0-9])\. (?=[A-Z])", last, maxsplit=1)[0].rstrip(".?! ")
