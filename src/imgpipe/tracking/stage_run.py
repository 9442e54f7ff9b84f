"""A stage's MLflow run: a child of its pipeline's run, linked to the runs that made its inputs.

Every stage opens one before it works, so an unreachable tracking server stops it in
seconds, not after the work. The run holds the stage's own params section, its metrics
and reports, a dataset per input and output named by its DVC md5, and tags naming the
runs that made its inputs. When the stage ends, the parent names it, and every upstream
stage DVC skipped, as the maker of that stage's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpipe.tracking.abandoned import end_abandoned_pipelines
from imgpipe.tracking.artifacts import REPORTS, log_files
from imgpipe.tracking.dvc_files import declared_deps, declared_outs, dvc_md5, locked, producers, stage_names
from imgpipe.tracking.lineage import log_dvc_dataset
from imgpipe.tracking.owner import OWNER_TAG, this_process
from imgpipe.tracking.pipeline import (
    IN_TAG,
    OUT_TAG,
    STAGE_TAG,
    describe,
    link_stage,
    open_pipeline,
    producing_run,
)
from imgpipe.tracking.runs import flatten, git_commit
from imgpipe.tracking.store import connect, creation_lock, store_errors, tracking_uri


@dataclass
class StageRun:
    """The active run of one stage, and the pipeline run it is a child of."""

    root: Path
    stage: str
    origin: str  # ingest.source: where the data came from, on each dataset's source
    commit: str | None  # the git commit the stage ran on, likewise
    run: Any  # mlflow.ActiveRun
    parent: Any  # mlflow.entities.Run
    client: Any  # mlflow.MlflowClient

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def metrics(self, values: dict[str, Any]) -> None:
        """Log ``values`` (nested dicts become dotted keys); NaN and non-numbers are left out."""
        import mlflow

        flat = {k: float(v) for k, v in flatten(values).items() if isinstance(v, (int, float)) and v == v}
        mlflow.log_metrics(flat)

    def files(self, paths: list[Path], folder: str = REPORTS) -> None:
        log_files(paths, folder)

    def roll_up(self, values: dict[str, float]) -> None:
        """Put headline metrics on the parent too, so the MLflow runs table compares pipelines."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        kept = [Metric(k, float(v), now, 0) for k, v in values.items() if v == v]  # NaN (an AUC with one class): out
        self.client.log_batch(self.parent.info.run_id, metrics=kept, synchronous=True)


def pipeline_stages(root: Path) -> list[str]:
    """The stages that write something (check_params writes nothing, so it has no run)."""
    return [stage for stage in stage_names(root) if declared_outs(root, stage)]


@contextlib.contextmanager
def stage_run(
    root: Path,
    stage: str,
    params: dict[str, Any],
    experiment_name: str,
    resume_run_id: str | None = None,
    input_datasets: bool = True,
) -> Iterator[StageRun]:
    """Run the body inside ``stage``'s run; ``resume_run_id`` reopens the run of an
    interrupted job (train's checkpoint names it), so its steps stay in one run.
    ``input_datasets=False`` leaves the inputs' datasets to the stage (train logs its
    splits with their shapes); they are still linked by tag."""
    import mlflow

    connect(root, experiment_name)
    client = mlflow.MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(experiment_name).experiment_id
    # Cached outputs may come from runs filed under another experiment name.
    searched = [e.experiment_id for e in client.search_experiments()]
    commit = git_commit(root)
    with creation_lock(tracking_uri(root)):  # two stages never make two parents for one key
        parent = open_pipeline(client, experiment_id, commit, params)
        end_abandoned(client, parent, stage, keep=resume_run_id)
        # A killed execution whose params have changed since is no longer found by its key.
        end_abandoned_pipelines(client, searched, keep=parent.info.run_id)
    active = _reopened(resume_run_id) or mlflow.start_run(
        run_name=stage,
        tags={
            "mlflow.parentRunId": parent.info.run_id,
            STAGE_TAG: stage,
            OWNER_TAG: this_process(),
            **_source_tags(parent),
        },
    )
    origin = str((params.get("ingest") or {}).get("source", ""))
    record = StageRun(root, stage, origin, commit, active, parent, client)
    try:
        with active:
            if active.info.run_id != resume_run_id:  # a reopened run holds these already
                mlflow.log_params({k: str(v) for k, v in flatten({stage: params.get(stage) or {}}).items()})
                _link_inputs(record, searched, input_datasets)
            yield record
            _log_outputs(record)
    except BaseException:
        try:
            client.set_terminated(parent.info.run_id, status="FAILED")
        except Exception:  # the store itself failed: the error raised says so
            pass
        raise
    _finish_parent(record, searched)


def end_abandoned(client: Any, parent: Any, stage: str, keep: str | None) -> None:
    """Mark KILLED the runs of ``stage`` in this pipeline still RUNNING: their process was
    killed (SIGKILL, a lost machine) before MLflow could end them; this one replaces them."""
    stale = client.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`{STAGE_TAG}` = '{stage}' "
            "and attributes.status = 'RUNNING'"
        ),
    )
    for run in stale:
        if run.info.run_id != keep:
            client.set_terminated(run.info.run_id, status="KILLED")


def _reopened(run_id: str | None) -> Any | None:
    import mlflow

    if not run_id:
        return None
    try:
        active = mlflow.start_run(run_id=run_id)
    except Exception:  # the store was reset since: record the resumed job afresh
        return None
    mlflow.set_tag(OWNER_TAG, this_process())  # the killed process that held it is gone
    return active


def _source_tags(parent: Any) -> dict[str, str]:
    keep = ("mlflow.source.git.commit", "dvc.exp_name", "dvc.exp_baseline_rev")
    return {k: v for k, v in parent.data.tags.items() if k in keep}


def _link_inputs(record: StageRun, experiments: list[str], datasets: bool) -> None:
    """Tag and log each input another stage made, by the md5 dvc.lock has for it now."""
    made_by = producers(record.root)
    for path, md5 in _input_versions(record.root, record.stage, made_by).items():
        source = producing_run(record.client, experiments, path, md5)
        if source is not None:
            record.client.set_tag(record.run_id, f"{IN_TAG}{path}", source.info.run_id)
        if datasets and md5.endswith(".dir"):  # the data itself; reports are linked by tag only
            log_dvc_dataset(path, md5, "input", record.origin, record.commit)


def _input_versions(root: Path, stage: str, made_by: dict[str, str]) -> dict[str, str]:
    """``{output path of another stage: md5}`` for what ``stage`` reads: a dep on a file
    inside another stage's output folder (data/ingest/classes.json) counts as that folder."""
    found = {}
    for dep in declared_deps(root, stage):
        out = next((o for o in made_by if dep == o or dep.startswith(o.rstrip("/") + "/")), None)
        if out is not None and made_by[out] != stage:
            md5 = locked(root, made_by[out], "outs").get(out)
            if md5:
                found[out] = md5
    return found


def _log_outputs(record: StageRun) -> None:
    """Tag the run with DVC's md5 of each output, the key later runs find it by."""
    for path in declared_outs(record.root, record.stage):
        md5 = dvc_md5(record.root / path)
        if md5 is None:
            continue
        record.client.set_tag(record.run_id, f"{OUT_TAG}{path}", md5)
        if md5.endswith(".dir"):  # the data itself, not a report about it
            log_dvc_dataset(path, md5, "output", record.origin, record.commit)


def _finish_parent(record: StageRun, experiments: list[str]) -> None:
    """Name on the parent this stage's run and the run of every stage before it."""
    client, parent_id = record.client, record.parent.info.run_id
    stages = pipeline_stages(record.root)
    for stage in stages[: stages.index(record.stage)] if record.stage in stages else []:
        outs = locked(record.root, stage, "outs")
        path = next((p for p in declared_outs(record.root, stage) if p in outs), None)
        maker = producing_run(client, experiments, path, outs[path]) if path else None
        if maker is not None:
            link_stage(client, parent_id, stage, maker, here=maker.data.tags.get("mlflow.parentRunId") == parent_id)
    own = client.get_run(record.run_id)  # a resumed run may be a child of an earlier pipeline run
    link_stage(client, parent_id, record.stage, own, here=own.data.tags.get("mlflow.parentRunId") == parent_id)
    describe(client, parent_id, stages)
    client.set_terminated(parent_id, status="FINISHED")


@contextlib.contextmanager
def recorded(paths: Any, stage: str, then: str, **options: Any) -> Iterator[StageRun]:
    """``stage_run`` with params.yaml's params and experiment, and the tracking store's
    failures said in one sentence; ``then`` says what running the stage again does."""
    from imgpipe.params.base import read_params
    from imgpipe.params.tracking import MlflowConfig

    # The mlflow section is no params dep of any stage (where runs go never changes an
    # output), but a name MLflow would refuse stops the stage before it works.
    experiment = MlflowConfig.load(paths.params).experiment_name
    with (
        store_errors(paths.root, then),
        stage_run(paths.root, stage, read_params(paths.params), experiment, **options) as record,
    ):
        yield record
