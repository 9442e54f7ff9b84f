"""Joining a Ray cluster, for ``ingest.engine: ray`` and ``train.launcher: ray``.

``RAY_ADDRESS`` names the cluster (``head-node:6379``, or ``ray://head-node:10001`` for Ray
Client), as Ray itself reads it; without it a Ray session already started in this process
is used, else a local cluster on this machine's cores. A cluster that does not answer is
one sentence within seconds, naming the address, rather than Ray's own minute of retries.
Ray is an optional extra: ``pip install -e '.[ray]'``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from imgpipe.errors import ImgpipeError

CONNECT_TIMEOUT_S = 5.0


def ray_module(key: str) -> Any:
    try:
        import ray
    except ImportError:
        raise ImgpipeError(
            f"params.yaml: {key} is ray, but Ray is not installed: pip install -e '.[ray]' "
            "(or set it back to the default)."
        ) from None
    return ray


def connect(key: str) -> Any:
    """The ``ray`` module, joined to the cluster; ``key`` is the params key that asked for it."""
    ray = ray_module(key)
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address and address != "auto":
        check_reachable(address)
    # Workers import imgpipe as installed on their node (docs/how-to/distributed.md: what the nodes share);
    # their output (train's epoch lines) comes back to this process, prefixed by Ray.
    ray.init(address=address or None)
    return ray


def check_reachable(address: str) -> None:
    """Fail within seconds when nothing listens at ``address`` (host:port or ray://host:port)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ImgpipeError(
            f"RAY_ADDRESS={address!r} is not host:port (or ray://host:port); "
            "set it to the cluster's head node, e.g. head-node:6379."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ImgpipeError(
            f"the Ray cluster at RAY_ADDRESS={address} does not answer ({exc.strerror or exc}); "
            "start it (ray start --head, or ray up), or unset RAY_ADDRESS to run on this machine."
        ) from None
