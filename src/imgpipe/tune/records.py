"""The study's MLflow run: the parent of every trial's run, with the best params and Optuna's plots.

Trials that train log their own run (the train stage files it under this one through
``IMGPIPE_TUNE_PARENT_RUN``). A trial whose training DVC restored from its cache trains
nothing, so no stage logs a run for it: this module logs a small child run for it, so
the parent still lists every trial.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgpipe.tracking.abandoned import end_pipeline
from imgpipe.tracking.pipeline import KEY_TAG
from imgpipe.tracking.store import connect, hide_password

log = logging.getLogger(__name__)

RUN_ATTR = "imgpipe_mlflow_run_id"  # study user attribute: the parent run, reopened on --resume


def open_study_run(root: Path, experiment_name: str, study: Any, storage: str, settings: dict[str, Any]) -> str:
    """Start (or, resuming, reopen) the study's parent run; return its id."""
    import mlflow

    connect(root, experiment_name)
    run_id = study.user_attrs.get(RUN_ATTR)
    client = mlflow.MlflowClient()
    if run_id and _exists(client, run_id):
        mlflow.start_run(run_id=run_id)
        return run_id
    run = mlflow.start_run(run_name=f"tune-{study.study_name}")
    mlflow.set_tags({"imgpipe.tune.study": study.study_name, "imgpipe.tune.storage": hide_password(storage)})
    mlflow.log_params({k: str(v) for k, v in settings.items() if k != "space"})
    mlflow.log_dict(settings["space"], "tune/space.json")
    study.set_user_attr(RUN_ATTR, run.info.run_id)
    return run.info.run_id


def _exists(client: Any, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except Exception:  # the tracking store was reset since
        return False


def record_trial(parent_id: str, study: Any, trial: Any, exp_name: str, value: float, trained: bool) -> None:
    """A finished trial's value on the parent run; a child run of its own when it trained nothing."""
    import mlflow

    mlflow.log_metric("trial_value", value, step=trial.number)
    if not trained:
        _cached_child(parent_id, study.study_name, trial, exp_name, value)


def record_best(study: Any, trial: Any) -> None:
    """Optuna's after-trial callback: the best trial so far, on the parent run."""
    import mlflow

    if any(t.state.name == "COMPLETE" for t in study.trials):
        best = study.best_trial
        mlflow.log_metric("best_value", best.value, step=trial.number)
        mlflow.set_tags(
            {
                "best.trial": str(best.number),
                "best.experiment": best.user_attrs.get("dvc_exp", ""),
                **{f"best.{k}": str(v) for k, v in best.params.items()},
            }
        )
        mlflow.log_dict(
            {
                "trial": best.number,
                "value": best.value,
                "experiment": best.user_attrs.get("dvc_exp"),
                "params": best.params,
            },
            "tune/best.json",
        )


def _cached_child(parent_id: str, study_name: str, trial: Any, exp_name: str, value: float) -> None:
    import mlflow

    tags = {
        "mlflow.parentRunId": parent_id,
        "imgpipe.tune.study": study_name,
        "imgpipe.tune.trial": str(trial.number),
        "imgpipe.tune.cached": "true",
        "dvc.exp_name": exp_name,
    }
    with mlflow.start_run(run_name=exp_name, nested=True, tags=tags):
        mlflow.log_params({k: str(v) for k, v in trial.params.items()})
        mlflow.log_metric("trial_value", value)


@contextlib.contextmanager
def study_run_ended(study: Any) -> Iterator[None]:
    """End the study's run as this tune run ends: FINISHED when its trials ran, however each
    ended (another machine's trials may still run); KILLED on Ctrl-C or SIGTERM; FAILED on
    an error. Optuna's plots go on it first, whichever."""
    import mlflow

    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        try:
            log_study_plots(study)
        finally:
            mlflow.end_run(status)


def log_study_plots(study: Any) -> list[str]:
    """Optuna's history, importance and learning-curve plots, and the trials table, on the parent run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from optuna.visualization import matplotlib as ovm

    logged = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        table = Path(tmp) / "trials.csv"
        study.trials_dataframe().to_csv(table, index=False)
        mlflow.log_artifact(str(table), "tune")
        for name, plot in (
            ("optimization_history", ovm.plot_optimization_history),
            ("param_importances", ovm.plot_param_importances),
            ("intermediate_values", ovm.plot_intermediate_values),
        ):
            try:
                ax = plot(study)
            except Exception as exc:  # e.g. importances need two finished trials that differ
                log.info(f"tune: no {name.replace('_', ' ')} plot yet ({str(exc).splitlines()[0][:120]})")
                continue
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            mlflow.log_figure(figure, f"tune/{name}.png")
            plt.close(figure)
            logged.append(name)
    return logged


def mark_pruned(study_name: str, number: int) -> None:
    """End a pruned trial's run as KILLED (stopped on purpose), not FAILED."""
    import mlflow

    found = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=(f"tags.`imgpipe.tune.study` = '{study_name}' and tags.`imgpipe.tune.trial` = '{number}'"),
    )
    client = mlflow.MlflowClient()
    for run in found:
        client.set_terminated(run.info.run_id, status="KILLED")
        # The trial's pipeline run too: the stage failing marked it FAILED.
        parent_id = run.data.tags.get("mlflow.parentRunId")
        if parent_id and _exists(client, parent_id) and KEY_TAG in client.get_run(parent_id).data.tags:
            client.set_terminated(parent_id, status="KILLED")


def end_trial_runs(parent_id: str, exp_name: str) -> None:
    """End as KILLED the pipeline run of the trial ``exp_name`` filed under the study's run
    ``parent_id``, and its stage runs that did not finish: the trial was stopped (Ctrl-C,
    SIGTERM) or its driver killed, so they would otherwise stay RUNNING, or read FAILED."""
    import mlflow

    found = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_id}' and tags.`dvc.exp_name` = '{exp_name}' and tags.`{KEY_TAG}` LIKE '%'"
        ),
    )
    client = mlflow.MlflowClient()
    for run in found:
        end_pipeline(client, run)
