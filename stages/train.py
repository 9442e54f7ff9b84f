"""Train: fit the configured model on the augmented train split, validating each epoch.

Outputs (see dvc.yaml): ``models/`` (weights, the spec to rebuild them, and the MLflow
run id) and ``reports/train_history.csv`` (per-epoch loss and accuracy, a DVC plot).
Everything is logged to one MLflow run, which evaluate later completes.
"""

from __future__ import annotations

import pandas as pd
import torch

from imgpipe.config import MlflowConfig, Paths, TrainConfig, read_params
from imgpipe.errors import run_stage
from imgpipe.models import ModelSpec, build_model
from imgpipe.storage import atomic_path, read_classes, read_json, read_split, write_json
from imgpipe.training import Balancing, channel_stats, fit, select_device, seed_everything
from imgpipe import tracking

# The data this stage reads, as dvc.yaml names it; their DVC hashes go on the MLflow run.
DATA_DEPS = ["data/ingest", "data/balance", "data/augment"]


def main() -> None:
    paths = Paths.discover()
    cfg = TrainConfig.load(paths.params)
    mlflow_cfg = MlflowConfig.load(paths.params)
    device = select_device(cfg.device)

    classes = read_classes(paths.ingested)
    train = read_split(paths.augmented, "train", mmap=False)
    val = read_split(paths.ingested, "val", mmap=False)

    # class_weight and weighted_sampler left the data alone; their weights act here.
    balancing = Balancing.from_json(read_json(paths.balanced / "training.json"), classes)
    augment = None
    if cfg.augment_online:
        from imgpipe.augmentation import load_pipeline

        augment = load_pipeline(paths.augmented / "pipeline.json", cfg.seed)

    spec = ModelSpec.from_train_config(cfg, classes, train.images.shape[1:])
    spec.mean, spec.std = channel_stats(train.images)
    seed_everything(cfg.seed)
    model = build_model(spec)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train: {cfg.model} ({n_params:,} parameters) on {device}, {len(train)} images, {cfg.epochs} epochs")

    # Open the run before training, so an unreachable tracking store fails in seconds.
    tags = {f"dvc.md5.{path}": md5 for path, md5 in tracking.dvc_hashes(paths.dvc_lock, DATA_DEPS).items()}
    run = tracking.start_training_run(paths.root, mlflow_cfg.experiment_name, read_params(paths.params), tags)
    import mlflow

    with run:
        mlflow.log_params({"data.train_images": len(train), "data.val_images": len(val), "model.parameters": n_params})
        history = fit(
            model,
            (train.images, train.labels),
            (val.images, val.labels),
            cfg,
            device,
            on_epoch=lambda r: mlflow.log_metrics({k: v for k, v in r.as_dict().items() if k != "epoch"}, step=r.epoch),
            balancing=balancing,
            augment=augment,
        )

        model.cpu().eval()
        with atomic_path(paths.model_dir) as tmp:
            tmp.mkdir()
            torch.save(model.state_dict(), tmp / "model.pt")
            write_json(tmp / "model.json", spec.to_dict())
            write_json(tmp / "run.json", {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id})
        with atomic_path(paths.train_history) as tmp:
            pd.DataFrame([r.as_dict() for r in history]).to_csv(tmp, index=False, lineterminator="\n")

        reports = (
            paths.ingest_report, paths.ingest_samples, paths.balance_report, paths.balance_counts,
            paths.balance_synthetic, paths.augment_preview, paths.train_history,
        )
        for report in reports:
            mlflow.log_artifact(str(report), artifact_path="reports")
        mlflow.log_artifact(str(paths.augmented / "pipeline.json"), artifact_path="reports")
        mlflow.log_dict(spec.to_dict(), "model_spec.json")
        tracking.log_model(model, train.images)
    print(f"train: done; MLflow run {run.info.run_id}")


if __name__ == "__main__":
    run_stage(main)
