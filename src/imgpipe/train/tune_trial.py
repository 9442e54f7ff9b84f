"""The train stage's side of ``imgpipe tune``: report each epoch to the Optuna trial, stop when pruned.

``imgpipe tune`` runs every trial as ``dvc exp run`` and names the trial in the
environment (``IMGPIPE_TUNE_*``). Outside a study nothing here runs and optuna is never
imported. Reporting from inside the loop, as Optuna's own framework callbacks do, lets
a trial that is clearly behind stop after the epoch that shows it, not after all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.tracking.pipeline import ENV_TUNE_PARENT_RUN

ENV_STORAGE = "IMGPIPE_TUNE_STORAGE"
ENV_STUDY = "IMGPIPE_TUNE_STUDY"
ENV_TRIAL_ID = "IMGPIPE_TUNE_TRIAL_ID"
ENV_TRIAL_NUMBER = "IMGPIPE_TUNE_TRIAL"
ENV_PARENT_RUN = ENV_TUNE_PARENT_RUN  # the study's run: each trial's pipeline run is filed under it
ENV_REPORT = "IMGPIPE_TUNE_REPORT"  # the train_history column fed to the pruner

# Study user attributes, shared by the study's driver and its trials.
PRUNER_ATTR = "imgpipe_pruner"
PRUNED_AT_ATTR = "imgpipe_pruned_at_epoch"


class TrialPruned(ImgpipeError):
    """The study's pruner stopped this trial: its metric was clearly behind."""


def make_pruner(settings: dict[str, Any]) -> Any:
    """The Optuna pruner of a study, from its stored settings (the storage keeps no pruner,
    so the driver and every trial's train stage build the same one from these)."""
    import optuna

    name, startup, warmup = settings["name"], settings["startup_trials"], settings["warmup_epochs"]
    # Steps are epochs, counted from 1; Optuna's warmup counts steps from 0, hence the + 1:
    # with warmup_epochs W, epoch W + 1 is the first that may be judged.
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup + 1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup + 1)
    return optuna.pruners.NopPruner()


def tune_tags() -> dict[str, str]:
    """MLflow tags that name a trial's training run, so a pruned trial's run can be found
    and marked (its pipeline's run is filed under the study's run: tracking/pipeline.py)."""
    if not os.environ.get(ENV_PARENT_RUN):
        return {}
    return {
        "imgpipe.tune.study": os.environ.get(ENV_STUDY, ""),
        "imgpipe.tune.trial": os.environ.get(ENV_TRIAL_NUMBER, ""),
    }


@dataclass
class TrialReporter:
    trial: Any  # optuna.trial.Trial
    column: str

    @classmethod
    def from_env(cls) -> TrialReporter | None:
        """The reporter of the trial this training runs for; None outside ``imgpipe tune``."""
        if not os.environ.get(ENV_TRIAL_ID) or not os.environ.get(ENV_REPORT):
            return None
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage, name = os.environ[ENV_STORAGE], os.environ[ENV_STUDY]
        study = optuna.load_study(study_name=name, storage=storage)
        study.pruner = make_pruner(study.user_attrs[PRUNER_ATTR])
        return cls(optuna.trial.Trial(study, int(os.environ[ENV_TRIAL_ID])), os.environ[ENV_REPORT])

    def report(self, row: dict[str, float]) -> None:
        """Report one epoch's row of train_history; raise TrialPruned when the pruner says stop."""
        epoch, value = int(row["epoch"]), float(row[self.column])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            import mlflow

            self.trial.set_user_attr(PRUNED_AT_ATTR, epoch)
            if mlflow.active_run():
                mlflow.set_tag("imgpipe.tune.pruned_at_epoch", str(epoch))
            raise TrialPruned(
                f"imgpipe tune pruned this trial after epoch {epoch}: its {self.column} "
                f"({value:.4f}) is behind the study's earlier trials at that epoch."
            )
