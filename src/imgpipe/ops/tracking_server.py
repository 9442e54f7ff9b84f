"""A tracking server for a team: ``mlflow server`` on PostgreSQL, with artifacts on local disk.

SQLite (``mlflow.db``) stays the zero-setup default, but it serialises writers: parallel
queued experiments logging to one SQLite file hit "database is locked". PostgreSQL takes
concurrent writers, and the server proxies artifact uploads, so every DVC queue workspace
only needs ``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``.

PostgreSQL is Debian's own cluster (``pg_lsclusters``/``pg_ctlcluster``), started when it
is down; a role and a database for MLflow are created on first use. The role's password
is ``IMGPIPE_MLFLOW_DB_PASSWORD``, else a random one made on first use and kept in a file
only the user can read (``~/.config/imgpipe/mlflow-db-password``), set on every start
so that changing it needs nothing else; it travels in environments and stdin, never on a
command line that ``ps`` shows.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from imgpipe.errors import ImgpipeError
from imgpipe.tracking.store import hide_password

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    database: str = "mlflow"
    user: str = "mlflow"
    password: str = field(default_factory=lambda: default_password(), repr=False)
    artifacts: Path = Path("mlflow-server/artifacts")
    workers: int = 4


def password_file() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "imgpipe" / "mlflow-db-password"


def default_password() -> str:
    """``IMGPIPE_MLFLOW_DB_PASSWORD``, else the user's own random password, made on first use.

    A well-known default (``mlflow``) would let anyone on the machine into the database.
    """
    if env := os.environ.get("IMGPIPE_MLFLOW_DB_PASSWORD"):
        return env
    path = password_file()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary, then linked into place: a second server
        # starting at the same moment sees no file or the whole one, never an empty one.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".password.")  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another server start made it first: use theirs
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    online: bool


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as the ``postgres`` superuser: directly, through runuser as root, else sudo."""
    import getpass

    if getpass.getuser() == "postgres":
        return cmd
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["sudo", "-u", "postgres", *cmd]


def _run(cmd: list[str], what: str, stdin: str | None = None) -> str:
    # cwd=/ because the postgres user may not be allowed into the caller's folder.
    proc = subprocess.run(cmd, cwd="/", capture_output=True, text=True, input=stdin)
    if proc.returncode != 0:
        raise ImgpipeError(f"{what} failed ({' '.join(cmd)}): {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def find_cluster() -> Cluster:
    """Debian's newest PostgreSQL cluster."""
    if shutil.which("pg_lsclusters") is None:
        raise ImgpipeError(
            "PostgreSQL is not installed: install Debian's package (sudo apt-get install postgresql), "
            "or use the zero-setup default by leaving MLFLOW_TRACKING_URI unset"
        )
    rows = [
        line.split()
        for line in _run(["pg_lsclusters", "-h"], "listing PostgreSQL clusters").splitlines()
        if line.strip()
    ]
    if not rows:
        raise ImgpipeError("no PostgreSQL cluster exists: create one with sudo pg_createcluster <version> main")
    version, name, port, status = max(rows, key=lambda r: [int(p) for p in r[0].split(".")])[:4]
    return Cluster(version, name, int(port), status.startswith("online"))


def ensure_postgres() -> Cluster:
    """Start the cluster when it is down; return it."""
    cluster = find_cluster()
    if not cluster.online:
        log.info(f"server: starting PostgreSQL {cluster.version}/{cluster.name} on port {cluster.port}")
        _run(_as_postgres(["pg_ctlcluster", cluster.version, cluster.name, "start"]), "starting PostgreSQL")
        cluster = find_cluster()
    return cluster


def psql(cluster: Cluster, sql: str) -> str:
    # The SQL goes in on stdin: it may hold the password.
    return _run(
        _as_postgres(["psql", "-p", str(cluster.port), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]),
        "PostgreSQL",
        stdin=sql,
    ).strip()


def ensure_database(cluster: Cluster, settings: ServerSettings) -> None:
    """Create the MLflow role, its database and the one for ``imgpipe tune``'s studies when
    missing, and set the role's password (idempotent)."""
    for name in (settings.user, settings.database):
        if not _NAME.match(name):
            raise ImgpipeError(f"{name!r} is not a plain PostgreSQL name: use lower-case letters, digits and _")
    password = settings.password.replace("'", "''")
    exists = psql(cluster, f"SELECT 1 FROM pg_roles WHERE rolname = '{settings.user}'") == "1"
    psql(cluster, f"{'ALTER' if exists else 'CREATE'} ROLE {settings.user} LOGIN PASSWORD '{password}'")
    # Optuna and MLflow each keep an alembic_version table: one database each.
    for database in (settings.database, tune_database(settings)):
        if psql(cluster, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") != "1":
            psql(cluster, f"CREATE DATABASE {database} OWNER {settings.user}")


def tune_database(settings: ServerSettings) -> str:
    """Where ``imgpipe tune`` keeps its Optuna studies, beside the MLflow database."""
    return f"{settings.database}_optuna"


def backend_uri(cluster: Cluster, settings: ServerSettings, database: str | None = None) -> str:
    return (
        f"postgresql+psycopg://{settings.user}:{quote(settings.password, safe='')}@127.0.0.1:{cluster.port}"
        f"/{database or settings.database}"
    )


def server_command(cluster: Cluster, settings: ServerSettings) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    # The backend URI (it holds the password) goes in MLFLOW_BACKEND_STORE_URI: see serve().
    return [
        str(mlflow) if mlflow.exists() else "mlflow",
        "server",
        # Artifacts go through the server to this folder, so clients need no shared disk.
        "--artifacts-destination",
        str(settings.artifacts.resolve()),
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
    ]


def serve(settings: ServerSettings) -> int:
    """Prepare PostgreSQL, then run ``mlflow server`` in the foreground until interrupted."""
    try:
        import psycopg  # noqa: F401  (the postgresql+psycopg driver SQLAlchemy uses)
    except ImportError:
        raise ImgpipeError(
            "the PostgreSQL driver is missing: pip install 'psycopg[binary]' (make setup installs it)"
        ) from None
    cluster = ensure_postgres()
    ensure_database(cluster, settings)
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    url = f"http://{settings.host}:{settings.port}"
    log.info(
        f"server: MLflow on {url}, runs in PostgreSQL {cluster.version}/{cluster.name} "
        f"(port {cluster.port}, database {settings.database}), artifacts in {settings.artifacts.resolve()}"
    )
    log.info(f"server: point the pipeline at it with  export MLFLOW_TRACKING_URI={url}")
    tune = hide_password(backend_uri(cluster, settings, tune_database(settings)), "PASSWORD")
    log.info(
        f"server: imgpipe tune keeps studies in database {tune_database(settings)}:  export "
        f"IMGPIPE_TUNE_STORAGE={tune}  (PASSWORD: the role's, see --user; URL-encoded; from another machine, "
        "the database host's name instead of 127.0.0.1)"
    )
    try:
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend_uri(cluster, settings)}
        return subprocess.call(server_command(cluster, settings), env=env)
    except KeyboardInterrupt:
        return 0
