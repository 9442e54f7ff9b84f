"""Ending, as KILLED, the pipeline runs a killed process left RUNNING.

A ``dvc repro`` killed mid-stage leaves its pipeline run RUNNING. When the next one has
the same key (commit and params), its stage finds that run again and ends it; after a
params change the key differs, so nothing would. Every stage therefore looks, as it
starts, for RUNNING pipeline runs whose owner (owner.py) has died on this machine, and
ends each with its RUNNING stage runs. A run whose owner lives, such as a parallel
queued experiment's, or whose owner is on another machine, is left alone.
"""

from __future__ import annotations

from typing import Any

from imgpipe.tracking.owner import OWNER_TAG, is_dead
from imgpipe.tracking.pipeline import KEY_TAG


def end_abandoned_pipelines(client: Any, experiment_ids: list[str], keep: str) -> list[str]:
    """End as KILLED each RUNNING pipeline run (but ``keep``) whose owner has died, with its
    stage runs; return their ids."""
    running = client.search_runs(
        experiment_ids, filter_string=f"tags.`{KEY_TAG}` LIKE '%' and attributes.status = 'RUNNING'"
    )
    ended = []
    for parent in running:
        if parent.info.run_id == keep or not is_dead(parent.data.tags.get(OWNER_TAG)):
            continue
        children = _children(client, parent)
        # A stage of it still at work elsewhere (reopened by a live process): not abandoned.
        if any(c.info.status == "RUNNING" and not is_dead(c.data.tags.get(OWNER_TAG)) for c in children):
            continue
        end_pipeline(client, parent, children, stopped=("RUNNING",))  # a stage that FAILED did so itself
        ended.append(parent.info.run_id)
    return ended


def end_pipeline(
    client: Any, parent: Any, children: list[Any] | None = None, stopped: tuple[str, ...] = ("RUNNING", "FAILED")
) -> None:
    """End ``parent``, unless it FINISHED, and each stage run of it in a ``stopped`` state as
    KILLED: its process was stopped, not failed by its own doing (a stage interrupted by
    Ctrl-C ends its run FAILED). What finished stays FINISHED."""
    for run in _children(client, parent) if children is None else children:
        if run.info.status in stopped:
            client.set_terminated(run.info.run_id, status="KILLED")
    if parent.info.status != "FINISHED":
        client.set_terminated(parent.info.run_id, status="KILLED")


def _children(client: Any, parent: Any) -> list[Any]:
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
