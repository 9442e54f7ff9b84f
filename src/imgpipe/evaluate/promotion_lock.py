"""One ``imgpipe promote`` at a time per registered model, on any tracking store.

MLflow's registry has no compare-and-set on aliases: two promotes that both check against
the same champion both move it, and the later move wins, whatever its score. Checking
again after the move does not close the gap (the better promote may have checked, moved
and re-read before the worse one's stale move lands), so the check and the move run under
a lock:

- a SQLite store: the OS file lock beside ``mlflow.db`` (tracking.store.store_lock). Every
  process that writes that file runs on this machine, and the OS frees the lock when its
  holder dies, so a killed promote leaves nothing behind;
- any other store (a tracking server, a database URI): a file here excludes nothing on
  another machine, so the lock is held in the registry itself: a registered model named
  ``<name>.promote-lock``. Creating a registered model is the one atomic test-and-set the
  registry offers (its name is the table's primary key: of two creates, one fails with
  RESOURCE_ALREADY_EXISTS). It is deleted when the promote ends; one left by a promote
  killed in between is named in the error, with how to remove it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone

from imgpipe.errors import ImgpipeError

HOLDER_TAG = "imgpipe.promote_holder"


def promotion_lock(uri: str, name: str) -> contextlib.AbstractContextManager[None]:
    """The lock under which ``imgpipe promote`` checks and moves ``name``'s champion."""
    from imgpipe.tracking.store import store_lock

    if uri.startswith("sqlite:///"):
        return store_lock(uri, f"is promoting a version of {name}")
    return registry_lock(name)


@contextlib.contextmanager
def registry_lock(name: str, wait: float = 60.0) -> Iterator[None]:
    """Hold the registered model ``<name>.promote-lock`` (see the module's note)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client, lock = mlflow.MlflowClient(), f"{name}.promote-lock"
    holder = f"{socket.gethostname()} pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    deadline = time.monotonic() + wait
    while True:
        try:
            client.create_registered_model(
                lock,
                tags={HOLDER_TAG: holder},
                description=(
                    f"Held by `imgpipe promote` while it moves {name}'s champion alias; deleted when it ends."
                ),
            )
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        if time.monotonic() > deadline:
            raise ImgpipeError(
                f"another `imgpipe promote` of {name} holds the registered model {lock} "
                f"({_holder(client, lock)}) for over {wait:.0f} s; if no promote is running, "
                f"delete that registered model (it is only a lock), then promote again."
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        client.delete_registered_model(lock)


def _holder(client: object, lock: str) -> str:
    with contextlib.suppress(Exception):
        return client.get_registered_model(lock).tags.get(HOLDER_TAG, "holder unknown")  # type: ignore[attr-defined]
    return "holder unknown"
