"""The MLflow tracking store: which one, whether it answers, and the experiment to log to.

``MLFLOW_TRACKING_URI`` when set, else the zero-setup SQLite file at the project root.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from imgpipe.errors import ImgpipeError


def store_root(root: Path) -> Path:
    """Where the local store lives: the user's repo, even for a queued experiment.

    ``dvc queue`` runs each experiment in a temporary copy of the repo, deleted when it
    ends; DVC points ``DVC_ROOT`` at the parent repo there, so runs are not lost with it.
    """
    return Path(os.environ.get("DVC_ROOT") or root)


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the zero-setup SQLite file at the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(store_root(root) / 'mlflow.db').as_posix()}"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds when an HTTP tracking server does not answer.

    MLflow's own client retries with exponential backoff for minutes; a training job
    should learn that its record cannot be kept before it starts, not after.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered: a server is there (some proxies have no /health)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImgpipeError(
            f"the MLflow tracking server at {uri} does not answer ({reason}). Start the server, "
            "fix MLFLOW_TRACKING_URI, or unset it to use the local sqlite:///mlflow.db."
        ) from None


def connect(root: Path, experiment_name: str) -> str:
    """Point MLflow at the tracking store and select the experiment; return the URI.

    New experiments keep their artifacts in ``mlartifacts/`` beside the SQLite file, so
    ``mlflow ui`` run from the project root can show them.
    """
    import mlflow

    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        with creation_lock(uri):
            if mlflow.get_experiment_by_name(experiment_name) is None:
                location = (store_root(root) / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
                mlflow.create_experiment(experiment_name, artifact_location=location)
        mlflow.set_experiment(experiment_name)
    except ImgpipeError:
        raise
    except Exception as exc:  # any store error: unreachable server, bad URI, permissions
        cause = database_failure(exc) or exc
        reason = (str(cause).splitlines() or [type(cause).__name__])[0]
        raise ImgpipeError(f"cannot use the MLflow tracking store at {shown_uri(uri)}: {reason}") from None
    return uri


def database_failure(exc: BaseException) -> BaseException | None:
    """The database driver's own error when ``exc`` was raised because of it, else None.

    Only explicit causes count (``raise ... from``, as MLflow wraps its SQL errors): an
    error merely raised while handling a database error is not the store failing.
    """
    from sqlalchemy.exc import DBAPIError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return seen.orig
        seen = seen.__cause__
    return None


# What to do about a failing SQLite store, by the start of SQLite's error name.
_ADVICE = {
    "SQLITE_READONLY": "make it writable again (a deleted one is made afresh by the next run)",
    "SQLITE_IOERR": "make it writable again (a deleted one is made afresh by the next run)",
    "SQLITE_CANTOPEN": "make its folder writable",
    "SQLITE_FULL": "free some space on its disk",
    "SQLITE_BUSY": "another process holds it locked: let that finish",
    "SQLITE_LOCKED": "another process holds it locked: let that finish",
    "SQLITE_CORRUPT": "it is damaged: move it aside (a new one is made; past runs stay in the moved file)",
    "SQLITE_NOTADB": "it is damaged: move it aside (a new one is made; past runs stay in the moved file)",
}


def shown_uri(uri: str) -> str:
    """A tracking URI fit to print: a SQLite store as its file, a password hidden."""
    if uri.startswith("sqlite:///"):
        return uri.removeprefix("sqlite:///").split("?", 1)[0]
    return hide_password(uri)


def hide_password(url: str, mask: str = "***") -> str:
    """``url`` (a database or HTTP URL) with its password, if any, replaced by ``mask``: the
    one place a URL is made fit for messages, MLflow tags and printed commands."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)  # the last @: an unencoded one may sit in the password
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:{mask}@{host}"))


@contextlib.contextmanager
def store_errors(root: Path, then: str) -> Iterator[None]:
    """Say in one sentence that the tracking store failed mid-stage, and what to do; ``then``
    says what the stage does when run again.

    A SQLite file made read-only, deleted (SQLite then calls it read-only too), filled up,
    locked or damaged while a stage records into it would otherwise end the stage in
    MLflow's traceback, after MLflow's own log of the same error.
    """
    import logging

    db_log = logging.getLogger("mlflow.store.db.utils")  # logs the error it then raises: said once, below
    level = db_log.level
    db_log.setLevel(logging.CRITICAL)
    try:
        yield
    except ImgpipeError:
        raise
    except Exception as exc:
        cause = database_failure(exc)
        if cause is None:
            raise
        uri = tracking_uri(root)
        where = shown_uri(uri)
        gone = " (the file was deleted while in use)" if uri.startswith("sqlite:") and not Path(where).exists() else ""
        name = getattr(cause, "sqlite_errorname", "")
        advice = next((a for code, a in _ADVICE.items() if name.startswith(code)), "check that it can be written")
        reason = (str(cause).splitlines() or [type(cause).__name__])[0]
        raise ImgpipeError(
            f"MLflow could not write to {where}{gone} ({reason}): {advice}, then run `dvc repro` again; {then}."
        ) from None
    finally:
        db_log.setLevel(level)


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Hold a file lock beside a SQLite store while its tables and experiments are made.

    Parallel queued experiments on a fresh project otherwise race to create the schema
    (``table latest_metrics already exists``) or the same experiment, and one run is lost.
    A server (PostgreSQL) serialises this itself: no lock there.
    """
    with store_lock(uri, "is creating the MLflow store"):
        yield


@contextlib.contextmanager
def store_lock(uri: str, doing: str) -> Iterator[None]:
    """The file lock beside a SQLite store (``mlflow.db.lock``), for work that must not
    interleave with another process's; nothing for any other store. ``doing`` says what the
    holder does, for the message when it is held for 5 minutes."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock, Timeout

    lock = Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).with_suffix(".db.lock")
    try:
        # An OS lock (flock), never a marker file that a killed process would leave behind.
        with FileLock(lock, timeout=300, fallback_to_soft=False):
            yield
    except Timeout:
        raise ImgpipeError(
            f"waited 5 minutes for {lock}, held by another process that {doing}; let it finish, or stop it."
        ) from None
