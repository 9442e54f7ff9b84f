"""``imgpipe server``: a team MLflow tracking server (PostgreSQL for runs, artifacts on disk)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> argparse.ArgumentParser:
    server = commands.add_parser(
        "server",
        help="run a team MLflow tracking server (PostgreSQL, artifacts on disk)",
        description="Start Debian's PostgreSQL if it is down, create the MLflow database "
        "if missing, and run `mlflow server` in the foreground.",
    )
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--database", default="mlflow", help="PostgreSQL database (created if missing)")
    server.add_argument(
        "--user",
        default="mlflow",
        help="PostgreSQL role that owns it (created if missing); "
        "its password is $IMGPIPE_MLFLOW_DB_PASSWORD, else a random one kept in "
        "~/.config/imgpipe/mlflow-db-password",
    )
    server.add_argument(
        "--artifacts",
        type=Path,
        default=Path("mlflow-server/artifacts"),
        help="folder the server stores artifacts in (default: mlflow-server/artifacts)",
    )
    server.add_argument("--workers", type=int, default=4)
    return server


def run(args: argparse.Namespace) -> int:
    from imgpipe.ops.tracking_server import ServerSettings, serve

    return serve(
        ServerSettings(
            host=args.host,
            port=args.port,
            database=args.database,
            user=args.user,
            artifacts=args.artifacts,
            workers=args.workers,
        )
    )
