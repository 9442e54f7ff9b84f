"""MLflow tracking: one run per trained model, shared by the train and evaluate stages.

Train opens the run and records what made the model: every param, the git commit, the
DVC hashes of the data it saw, per-epoch metrics, the upstream reports and the model.
It leaves the run id in ``models/run.json`` so that evaluate adds its metrics and
plots to the same run; evaluating that model again makes a run nested under it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from imgpipe.errors import ImgpipeError

# A metric only evaluate logs: its presence means the training run was evaluated already.
EVALUATED_MARK = "test.accuracy"
# On a re-evaluation's run: the training run whose model it scored.
MODEL_RUN_TAG = "imgpipe.model_run_id"


def store_root(root: Path) -> Path:
    """Where the local store lives: the user's repo, even for a queued experiment.

    ``dvc queue`` runs each experiment in a temporary copy of the repo, deleted when it
    ends; DVC points ``DVC_ROOT`` at the parent repo there, so runs are not lost with it.
    """
    return Path(os.environ.get("DVC_ROOT") or root)


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the zero-setup SQLite file at the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(store_root(root) / 'mlflow.db').as_posix()}"


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
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


def dvc_hashes(lock_path: Path, paths: list[str]) -> dict[str, str]:
    """The md5 that dvc.lock records for each output path (as written in dvc.yaml).

    Upstream stages have finished and been locked by the time train runs, so these are
    exactly the versions of the data this run reads.
    """
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    found: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs", []):
            if out.get("path") in paths and "md5" in out:
                found[out["path"]] = out["md5"]
    return found


def _dvc_source_class() -> type:
    # Built on first use: subclassing at import time would import mlflow (seconds) at the
    # start of every stage that imports this module, most of which never log a dataset.
    from mlflow.data.dataset_source import DatasetSource

    class DvcDatasetSource(DatasetSource):
        """Where a DVC-tracked dataset came from: its path in the repo, commit and origin.

        ``load`` gives the path; ``dvc checkout`` at the commit restores the exact bytes.
        """

        def __init__(self, path: str, md5: str, commit: str | None, origin: str):
            self.path, self.md5, self.commit, self.origin = path, md5, commit, origin

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self, dst_path: str | None = None) -> str:
            return self.path

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> "DvcDatasetSource":
            raise NotImplementedError("DVC dataset sources are built from dvc.lock, not resolved from strings")

        def to_dict(self) -> dict[str, Any]:
            return {"path": self.path, "md5": self.md5, "git_commit": self.commit, "origin": self.origin}

        @classmethod
        def from_dict(cls, source_dict: dict[str, Any]) -> "DvcDatasetSource":
            return cls(source_dict["path"], source_dict["md5"], source_dict.get("git_commit"), source_dict["origin"])

    return DvcDatasetSource


def log_data_inputs(root: Path, hashes: dict[str, str], splits: dict[str, tuple[str, Any, Any]], origin: str) -> None:
    """Record each split a run used as an MLflow dataset input, digested by its DVC hash.

    ``splits`` maps a context (training, validation) to (DVC path, images, labels). The
    MLflow UI then shows, per run, which version of which data it saw, and runs that saw
    the same data share a digest.
    """
    import mlflow

    source_cls = _dvc_source_class()
    commit = git_commit(root)
    for context, (path, images, labels) in splits.items():
        md5 = hashes.get(path)
        if md5 is None:  # a stage run by hand, outside dvc repro: no locked version to name
            continue
        source = source_cls(path, md5, commit, origin)
        dataset = mlflow.data.from_numpy(images, targets=labels, source=source, name=path, digest=md5.removesuffix(".dir"))
        mlflow.log_input(dataset, context=context, tags={"dvc.md5": md5, "dvc.path": path})


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds when an HTTP tracking server does not answer.

    MLflow's own client retries with exponential backoff for minutes; a training job
    should learn that its record cannot be kept before it starts, not after.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered: a server is there (some proxies have no /health)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImgpipeError(
            f"the MLflow tracking server at {uri} does not answer ({reason}). Start the server, "
            "fix MLFLOW_TRACKING_URI, or unset it to use the local sqlite:///mlflow.db."
        ) from None


def connect(root: Path, experiment_name: str) -> str:
    """Point MLflow at the tracking store and select the experiment; return the URI.

    New experiments keep their artifacts in ``mlartifacts/`` beside the SQLite file, so
    ``mlflow ui`` run from the project root can show them.
    """
    import mlflow

    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        if mlflow.get_experiment_by_name(experiment_name) is None:
            location = (store_root(root) / "mlartifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
            mlflow.create_experiment(experiment_name, artifact_location=location)
        mlflow.set_experiment(experiment_name)
    except Exception as exc:  # any store error: unreachable server, bad URI, permissions
        raise ImgpipeError(f"cannot use the MLflow tracking store at {uri}: {exc}") from None
    return uri


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
            f"cannot find MLflow run {run_info['run_id']} (models/run.json) in {uri}: {exc}. "
            "If the tracking store was reset, rerun training: dvc repro --force train"
        ) from None
    if EVALUATED_MARK not in trained.data.metrics:
        return mlflow.start_run(run_id=trained.info.run_id)
    run = _new_run(root, params, experiment_id=trained.info.experiment_id, parent_run_id=trained.info.run_id)
    mlflow.set_tag(MODEL_RUN_TAG, trained.info.run_id)
    return run


def log_model(model: Any, example: Any, spec: dict[str, Any], registered_model: str | None = None, name: str = "model") -> None:
    """Log a torch model with a signature, an input example and the imgpipe spec.

    MLflow exports torch models with torch.export, which fixes any dimension that the
    example shows with size 1; an example of two images keeps the batch size free. The
    spec (classes, preprocessing) rides in the model's metadata, so ``imgpipe predict
    models:/<name>/<version>`` needs nothing else. ``registered_model`` also registers it.
    """
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    example = np.ascontiguousarray(example[:2])
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, output)
    mlflow.pytorch.log_model(model, name=name, signature=signature, input_example=example,
                             metadata={"imgpipe_spec": spec}, registered_model_name=registered_model)
