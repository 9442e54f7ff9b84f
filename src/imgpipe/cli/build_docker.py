"""``imgpipe build-docker``: a Docker image that serves a registered model (MLflow's scoring server)."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgpipe.cli._project import project_root


def add_parser(commands) -> argparse.ArgumentParser:
    from imgpipe.serving.docker import ALIAS

    build = commands.add_parser(
        "build-docker",
        help="build a Docker image that serves a registered model (MLflow's scoring server)",
        description="Write a Docker build context for an MLflow model (its Dockerfile, by `mlflow models "
        "generate-dockerfile`, and the model) to build/docker, then `docker build` it. The image answers "
        "POST /invocations on port 8080. Building needs network access: the image pip-installs mlflow and "
        "the model's requirements.",
    )
    build.add_argument(
        "--model",
        metavar="URI",
        help=f"an MLflow model URI (default: models:/<name>@{ALIAS}, "
        "with the name from params.yaml's mlflow.registered_model), e.g. models:/<name>/<version> "
        "or runs:/<run_id>/model",
    )
    build.add_argument(
        "-t",
        "--tag",
        help="the image's name (default: imgpipe-<registered model name, else the project folder's name>:latest)",
    )
    build.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the folder to write the build context to "
        "(default: build/docker of the project; a previous build context there is replaced, a folder "
        "holding anything else is refused)",
    )
    build.add_argument(
        "--no-build",
        action="store_true",
        help="write the build context only, and print the docker commands that build and run it",
    )
    return build


def run(args: argparse.Namespace) -> int:
    from imgpipe.serving.docker import CURL, build_image, docker_command, write_build_context

    context = write_build_context(project_root(), args.model, args.tag, args.output)
    if args.no_build:
        print(f"build-docker: wrote the build context (Dockerfile and model) for {context.uri} to {context.folder}")
        print(f"build it:  {context.build}\nrun it:    {context.run}\nthen:      {CURL}")
        return 0
    docker = docker_command(context)
    print(f"build-docker: building {context.tag} from {context.folder}", flush=True)
    build_image(context, docker)
    print(f"build-docker: built {context.tag} serving {context.uri}\nrun it:    {context.run}\nthen:      {CURL}")
    return 0
