"""MLflow runs: one per trained model, shared by the train and evaluate stages.

Train opens the run and records what made the model: every param, the git commit, the
data it saw, per-epoch metrics, the upstream reports and the model. It leaves the run id
in the model folder so that evaluate adds its metrics and plots to the same run;
evaluating that model again makes a run nested under it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from imgpipe.errors import ImgpipeError
from imgpipe.tracking.store import check_reachable, connect, tracking_uri

# A metric only evaluate logs: its presence means the training run was evaluated already.
EVALUATED_MARK = "test.accuracy"
# On a re-evaluation's run: the training run whose model it scored.
MODEL_RUN_TAG = "imgpipe.model_run_id"


# What MLflow accepts in a param or metric key, besides the dots flatten() joins with:
# letters, digits, _ - and spaces. A slash could make a key read as another path.
_UNSAFE_IN_KEY = re.compile(r"[^\w\- ]")


def key_part(name: Any) -> str:
    """``name`` (a class name, say) made safe inside an MLflow key: anything else becomes _."""
    return _UNSAFE_IN_KEY.sub("_", str(name)) or "_"


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``; lists stay whole values.

    Each key is made safe for MLflow (``tabby, cat`` -> ``tabby_ cat``); keys that become
    equal get trailing underscores, so no value overwrites another.
    """
    flat: dict[str, Any] = {}
    used: set[str] = set()
    for key, value in params.items():
        part = key_part(key)
        while part in used:
            part += "_"
        used.add(part)
        name = f"{prefix}{part}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

def start_training_run(root: Path, experiment_name: str, params: dict[str, Any], run_id: str | None = None) -> Any:
    """Open the run for a training job, named after the DVC experiment when there is one.

    ``run_id`` reopens the run of an interrupted training job that is resuming, so its
    epochs stay in one run.
    """
    import mlflow

    connect(root, experiment_name)
    if run_id:
        try:
            return mlflow.start_run(run_id=run_id)
        except Exception:  # the store was reset since: record the resumed job afresh
            pass
    return _new_run(root, params)


def _new_run(root: Path, params: dict[str, Any], **start: Any) -> Any:
    """Start a run that records the params and where it came from: commit and DVC experiment."""
    import mlflow

    commit = git_commit(root)
    # The DVC experiment's name; for a plain `dvc repro`, the commit it ran on.
    name = os.environ.get("DVC_EXP_NAME") or (f"repro@{commit[:7]}" if commit else None)
    run = mlflow.start_run(run_name=name, **start)
    flat = flatten(params)
    mlflow.log_params({k: str(v) for k, v in flat.items()})
    all_tags = {}
    if commit:
        all_tags["mlflow.source.git.commit"] = commit
    if exp := os.environ.get("DVC_EXP_NAME"):
        all_tags["dvc.exp_name"] = exp
    if baseline := os.environ.get("DVC_EXP_BASELINE_REV"):
        all_tags["dvc.exp_baseline_rev"] = baseline
    mlflow.set_tags(all_tags)
    return run


def log_epoch(row: dict[str, float], **extra: float) -> None:
    """One epoch's metrics (an EpochResult as a dict), at step = epoch."""
    import mlflow

    mlflow.log_metrics({**{k: v for k, v in row.items() if k != "epoch"}, **extra}, step=int(row["epoch"]))


def mark_killed(run_id: str) -> None:
    """End a run whose training was killed and will not resume, so it stops showing RUNNING."""
    import mlflow

    client = mlflow.MlflowClient()
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
    except Exception:  # the store was reset since: nothing left to mark
        pass


def log_missing_epochs(run_id: str, history: list[dict[str, float]]) -> None:
    """Log the epochs a resumed checkpoint holds that the run lacks (killed between the two)."""
    import mlflow

    logged = {m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "val_loss")}
    for row in history:
        if row["epoch"] not in logged:
            log_epoch(row)


def start_evaluation_run(root: Path, run_info: dict[str, str], params: dict[str, Any]) -> Any:
    """Open the run that records an evaluation of the model trained in run ``run_info``.

    The first evaluation goes into the training run: one run per trained model. When
    evaluate reruns alone on a model already evaluated (``dvc exp run -S evaluate.tta=true``
    reuses the baseline's model), a new run nested under the training run records it:
    MLflow params cannot change, so the training run could not say which settings gave
    which numbers, and an experiment must not rewrite its baseline's record.
    """
    import mlflow

    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        trained = mlflow.MlflowClient().get_run(run_info["run_id"])
    except Exception as exc:
        raise ImgpipeError(
            f"cannot find MLflow run {run_info['run_id']}, which trained the model in models/, in {uri}: {exc}. "
            "If the tracking store was reset, record the model again: dvc repro --force train (from its "
            "checkpoint, without retraining, when checkpoints/ is still there)"
        ) from None
    if EVALUATED_MARK not in trained.data.metrics:
        return mlflow.start_run(run_id=trained.info.run_id)
    run = _new_run(root, params, experiment_id=trained.info.experiment_id, parent_run_id=trained.info.run_id)
    mlflow.set_tag(MODEL_RUN_TAG, trained.info.run_id)
    return run


