"""The MLflow parent run of one pipeline execution, which every stage's run is a child of.

A ``dvc repro`` or ``dvc exp run`` runs up to five stages as five processes; each opens
(or reopens) the parent by its key: the DVC experiment's name under ``dvc exp run``, else
the git commit and a hash of params.yaml less its ``mlflow`` section. The parent holds
every param, the headline metrics evaluate rolls up into it, and for each stage a tag and
a line of its description naming the run that made that stage's output: a child when the
stage ran here, the earlier run that made the cached output when DVC skipped it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from imgpipe.tracking.owner import OWNER_TAG, this_process
from imgpipe.tracking.runs import flatten

KEY_TAG = "imgpipe.pipeline"  # on a parent run: the key it was opened by
STAGE_TAG = "imgpipe.stage"  # on a stage's run: the stage
STAGE_RUN_TAG = "imgpipe.stage_run."  # + stage, on a parent run: the run that made the stage's output
OUT_TAG = "imgpipe.out."  # + path, on a stage's run: DVC's md5 of that output
IN_TAG = "imgpipe.in."  # + path, on a stage's run: the run that made that input

# `imgpipe tune` names its study's run here: each trial's pipeline run is filed under it.
ENV_TUNE_PARENT_RUN = "IMGPIPE_TUNE_PARENT_RUN"


def pipeline_key(commit: str | None, params: dict[str, Any]) -> tuple[str, str]:
    """(key, run name) of the pipeline execution a stage belongs to.

    Every stage of one ``dvc exp run`` sees the same ``DVC_EXP_NAME``; parallel queued
    experiments see different ones, so their runs stay apart. A plain ``dvc repro`` is
    told by what decides its outputs: the commit and the params. The mlflow section only
    says where runs go, so a new experiment name or server is the same execution.
    """
    if exp := os.environ.get("DVC_EXP_NAME"):
        baseline = os.environ.get("DVC_EXP_BASELINE_REV") or commit or ""
        return f"exp:{baseline[:12]}:{exp}", exp
    kept = {section: value for section, value in params.items() if section != "mlflow"}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]
    name = f"repro@{commit[:7]}" if commit else "repro"
    return f"{name}:{digest}", name


def open_pipeline(client: Any, experiment_id: str, commit: str | None, params: dict[str, Any]) -> Any:
    """The parent run of this execution, made on first use and marked RUNNING again, owned
    by this process (so that, if it is killed, a later stage can tell the run abandoned)."""
    key, name = pipeline_key(commit, params)
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{KEY_TAG}` = '{key}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        client.set_tag(found[0].info.run_id, OWNER_TAG, this_process())
        return found[0]
    tags = {KEY_TAG: key, OWNER_TAG: this_process()}
    if commit:
        tags["mlflow.source.git.commit"] = commit
    for env, tag in (
        ("DVC_EXP_NAME", "dvc.exp_name"),
        ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline_rev"),
        (ENV_TUNE_PARENT_RUN, "mlflow.parentRunId"),
    ):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    from mlflow.entities import Param

    flat = flatten({section: value for section, value in params.items() if section != "mlflow"})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in flat.items()], synchronous=True)
    return run


def link_stage(client: Any, parent_id: str, stage: str, run: Any, here: bool) -> None:
    """Name on the parent the run that made ``stage``'s output (``here``: a child of it)."""
    client.set_tag(parent_id, f"{STAGE_RUN_TAG}{stage}", run.info.run_id)
    if not here:
        client.set_tag(parent_id, f"{STAGE_RUN_TAG}{stage}.cached", "true")


def producing_run(client: Any, experiment_ids: list[str], path: str, md5: str) -> Any | None:
    """The latest finished run whose stage wrote ``path`` with exactly this md5, if any."""
    found = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`{OUT_TAG}{path}` = '{md5}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def describe(client: Any, parent_id: str, stages: list[str]) -> None:
    """The parent's description (the MLflow UI shows it on the run page): a table of the
    stages, each linked to the run that made its output and saying whether it ran here."""
    parent = client.get_run(parent_id)
    tags, experiment = parent.data.tags, parent.info.experiment_id
    lines = [
        "Pipeline run of imgpipe: one child run per stage that ran; a stage DVC skipped links to the run "
        "that made its cached output.",
        "",
        "| stage | run | |",
        "|---|---|---|",
    ]
    for stage in stages:
        run_id = tags.get(f"{STAGE_RUN_TAG}{stage}")
        if not run_id:
            lines.append(f"| {stage} | | not recorded |")
            continue
        how = "cached: made by an earlier pipeline run" if tags.get(f"{STAGE_RUN_TAG}{stage}.cached") else "ran here"
        lines.append(f"| {stage} | [{run_id[:8]}](#/experiments/{experiment}/runs/{run_id}) | {how} |")
    client.set_tag(parent_id, "mlflow.note.content", "\n".join(lines))


def stage_runs(client: Any, parent: Any, stages: list[str]) -> dict[str, Any]:
    """``{stage: run}`` for the stages the parent names, in pipeline order; a run since
    deleted from the store is left out."""
    found = {}
    for stage in stages:
        run_id = parent.data.tags.get(f"{STAGE_RUN_TAG}{stage}")
        if run_id:
            try:
                found[stage] = client.get_run(run_id)
            except Exception:  # deleted or purged since
                continue
    return found
