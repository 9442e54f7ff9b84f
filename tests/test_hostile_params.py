"""Issue #28, the params and registry cases: two promotes at once, non-finite floats, unbounded
integers, and a params.yaml nested too deep for the parser."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

# Each round resets the champion to version 1 and promotes 2 and 3 at once, under the lock a
# sqlite store gets, then the one a tracking server gets (here on the sqlite store).
LOCKS = ("file", "registry", "file", "registry")


def _store(tmp_path: Path) -> str:
    """A sqlite registry holding 'pets': version 1 (the champion, 0.5), 2 (0.9) and 3 (0.7),
    all scored on the same val data."""
    import mlflow

    from imgpipe.evaluate.registry import VAL_DATA_TAG, VAL_SCORE_TAG

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("pets")
    for score in ("0.5", "0.9", "0.7"):
        client.create_model_version("pets", (tmp_path / "m").as_uri(),
                                    tags={VAL_SCORE_TAG: score, VAL_DATA_TAG: "same"})
    client.set_registered_model_alias("pets", "champion", "1")
    return uri


def _promoter(uri: str, version: str, pause: float, barrier) -> None:
    """A child process: `imgpipe promote --version VERSION` once a round, all rounds in step.

    Between its check and its move it pauses, as a slow store would: without a lock both
    promoters check against version 1, and the later move wins, whatever its score.
    """
    import time

    import mlflow

    from imgpipe.evaluate import registry

    mlflow.set_tracking_uri(uri)
    must_beat, file_lock = registry._must_beat, getattr(registry, "promotion_lock", None)

    def slow_check(*args):
        must_beat(*args)
        time.sleep(pause)

    def server_lock(uri, name):
        from imgpipe.evaluate.promotion_lock import registry_lock

        return registry_lock(name, wait=60)

    registry._must_beat = slow_check
    for lock in LOCKS:
        registry.promotion_lock = file_lock if lock == "file" else server_lock
        barrier.wait()
        try:
            registry.promote("pets", version, None)
        except registry.NotPromoted:
            pass
        barrier.wait()


def test_two_promotes_at_once_leave_the_better_version_champion(tmp_path):
    import mlflow

    uri = _store(tmp_path)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    spawn = multiprocessing.get_context("spawn")  # no sqlite connection is inherited
    barrier = spawn.Barrier(3, timeout=120)
    children = [spawn.Process(target=_promoter, args=(uri, version, pause, barrier))
                for version, pause in (("2", 0.1), ("3", 0.6))]  # the worse one moves last
    for child in children:
        child.start()
    champions = []
    for _ in LOCKS:
        client.set_registered_model_alias("pets", "champion", "1")
        barrier.wait()
        barrier.wait()
        champions.append(str(client.get_model_version_by_alias("pets", "champion").version))
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert champions == ["2"] * len(LOCKS)
    assert "pets.promote-lock" not in [m.name for m in client.search_registered_models()]
