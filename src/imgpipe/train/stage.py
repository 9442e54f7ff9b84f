"""The train stage's body: fit the configured model, then write and record what it made.

``stages/train.py`` runs ``main``; so do the workers torchrun and Ray Train start (Ray's
are handed ``main`` itself, so the launcher never imports a stage script).
Outputs (see dvc.yaml): ``models/`` (weights, the spec to rebuild and feed them, and the
MLflow run), ``reports/train_history.csv`` (per-epoch metrics, DVC plots) and
``checkpoints/`` (the last epoch's state, kept by DVC between runs so a killed run
resumes). Everything is logged to train's MLflow run, a child of the pipeline's run.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys

from imgpipe.models.saved import save_model
from imgpipe.params.base import read_params
from imgpipe.params.tracking import MlflowConfig
from imgpipe.params.train import TrainConfig
from imgpipe.paths import Paths
from imgpipe.serving.logged_model import log_model
from imgpipe.store import history
from imgpipe.tracking.lineage import log_data_inputs
from imgpipe.tracking.runs import log_epoch, log_missing_epochs, mark_killed
from imgpipe.tracking.stage_run import recorded
from imgpipe.train.checkpoint import training_lock
from imgpipe.train.distributed import init_from_env, needs_relaunch, relaunch_command, under_torchrun
from imgpipe.train.job import TrainingJob
from imgpipe.train.ray_launcher import run_on_ray
from imgpipe.train.tune_trial import TrialReporter, tune_tags

log = logging.getLogger(__name__)


def main() -> None:
    paths = Paths.discover()
    cfg = TrainConfig.load(paths.params)
    # Where runs are recorded never changes the model, so the mlflow section is no
    # dependency of this stage in dvc.yaml; but a name MLflow would refuse stops it now.
    MlflowConfig.load(paths.params)
    if cfg.launcher == "ray" and not under_torchrun():  # Ray's workers run this file again
        return run_on_ray(paths.root, cfg, main)
    if needs_relaunch(cfg.nproc):
        sys.exit(subprocess.call(relaunch_command(cfg.nproc, "stages.train"), cwd=paths.root))
    dist = init_from_env()
    # One training at a time on this checkpoint, from reading it to marking it complete.
    with training_lock(paths.checkpoints) if dist.is_main else contextlib.nullcontext():
        job = TrainingJob.prepare(paths, cfg, dist)
        if dist.is_main:
            train_and_record(paths, job)
        else:
            job.fit()
    dist.close()


def train_and_record(paths: Paths, job: TrainingJob) -> None:
    """Fit ``job`` inside train's MLflow run, then save the model, its history and the records."""
    import mlflow

    log.info(job.describe())
    params = read_params(paths.params)
    trial = TrialReporter.from_env()
    resumed_run = job.resume and job.resume.get("run_id")
    then = "train resumes from its checkpoint and records its epochs again"
    with recorded(paths, "train", then, resume_run_id=resumed_run, input_datasets=False) as record:
        run = record.run
        job.checkpoint.extra["run_id"] = run.info.run_id
        if job.checkpoint.abandoned_run_id:  # a killed training that will not resume
            mark_killed(job.checkpoint.abandoned_run_id)
        if job.resume:
            log.info(resume_note(job))
            log_missing_epochs(run.info.run_id, job.resumed_history())
        if resumed_run != run.info.run_id:  # a reopened run holds these already
            mlflow.set_tags(tune_tags())  # a trial of `imgpipe tune`: its pruner marks this run
            mlflow.log_params(job.facts())
            log_data_inputs(paths.root, job.data_hashes, job.data_inputs(), origin=params["ingest"]["source"])
        result = job.fit(on_epoch=lambda r, seconds: on_epoch(r.as_dict(), seconds, trial))
        mlflow.log_metrics({"best_epoch": result.best_epoch, "stopped_early": int(result.stopped_early)})

        log.info("train: saving the model")
        job.model.cpu().eval()
        save_model(
            paths.model_dir,
            job.model,
            job.spec,
            {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "best_epoch": result.best_epoch},
        )
        history.write(paths.train_history, [r.as_dict() for r in result.history])
        record.files([paths.train_history])
        # Logged unless this run holds it already. Evaluate registers it, with its scores and card.
        if not (job.saved_before() and resumed_run == run.info.run_id):
            log_model(paths.model_dir, job.train.images, job.spec.to_dict())
    job.mark_complete()  # only now: a failure before this resumes into saving, not retraining
    log.info(f"train: done; MLflow run {run.info.run_id}")


def on_epoch(row: dict[str, float], seconds: float, trial: TrialReporter | None) -> None:
    log_epoch(row, epoch_seconds=seconds)
    if trial is not None:  # a trial of `imgpipe tune`: its pruner may stop it here
        trial.report(row)


def resume_note(job: TrainingJob) -> str:
    total = job.cfg.epochs + job.cfg.retrain_head.epochs
    where, done = job.checkpoint.path.parent, f"epoch {len(job.resumed_history())} of {total}"
    if job.saved_before():
        return (
            f"train: {where} holds this training, finished ({done}): writing its model out again, "
            "not retraining (delete checkpoints/ to train afresh)"
        )
    return f"train: resuming from {where}, {done}" + (
        " (training had finished: saving its model)" if job.finished_training() else ""
    )
