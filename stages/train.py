"""Train: fit the configured model on the augmented train split, validating each epoch.

Outputs (see dvc.yaml): ``models/`` (weights, the spec to rebuild and feed them, and the
MLflow run id), ``reports/train_history.csv`` (per-epoch metrics, DVC plots) and
``checkpoints/`` (the last epoch's state, kept by DVC between runs so a killed run
resumes). Everything is logged to one MLflow run, which evaluate later completes.
With ``train.nproc`` above 1 the stage starts itself under torchrun (DDP).
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import torch

from imgpipe import tracking
from imgpipe.checkpoints import Checkpoint, fingerprint
from imgpipe.config import MlflowConfig, Paths, TrainConfig, read_params
from imgpipe.distributed import init_from_env, relaunch_command, under_torchrun
from imgpipe.errors import run_stage
from imgpipe.models import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, apply_freeze, build_model, load_pretrained, load_weights_file
from imgpipe.storage import atomic_path, read_classes, read_json, read_split, write_json
from imgpipe.training import Balancing, channel_stats, fit, select_device, seed_everything
from imgpipe.visualize import plot_training_curves

# The data this stage reads, as dvc.yaml names it; their DVC hashes go on the MLflow run.
DATA_DEPS = ["data/ingest", "data/balance", "data/augment"]


def main() -> None:
    paths = Paths.discover()
    cfg = TrainConfig.load(paths.params)
    if cfg.nproc > 1 and not under_torchrun():
        sys.exit(subprocess.call(relaunch_command(cfg.nproc, "stages.train"), cwd=paths.root))
    dist = init_from_env()
    device = select_device(cfg.device, dist.local_rank)

    classes = read_classes(paths.ingested)
    train = read_split(paths.augmented, "train", mmap=False)
    val = read_split(paths.ingested, "val", mmap=False)
    # class_weight and weighted_sampler left the data alone; their weights act here.
    balancing = Balancing.from_json(read_json(paths.balanced / "training.json"), classes)
    augment = None
    if cfg.augment_online:
        from imgpipe.augmentation import load_pipeline

        augment = load_pipeline(paths.augmented / "pipeline.json", cfg.seed)

    # Pretrained backbones expect the statistics of their ImageNet training images.
    transfer = cfg.pretrained is not False
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if transfer else channel_stats(train.images)
    spec = ModelSpec(cfg.model, cfg.model_options(), classes, train.images.shape[1], train.images.shape[3], mean, std,
                     preprocessing=read_json(paths.ingested / "preprocessing.json"))
    seed_everything(cfg.seed)
    model = build_model(spec)
    if cfg.weights_path:
        origin = load_weights_file(model, paths.root / cfg.weights_path)
    elif transfer:
        origin = load_pretrained(model, cfg.model, cfg.pretrained)
    else:
        origin = "random initialisation"
    apply_freeze(model, cfg.unfrozen_blocks)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_params = sum(p.numel() for p in model.parameters())
    if dist.is_main:
        print(f"train: {cfg.model} from {origin}, {trainable:,} of {n_params:,} parameters trainable, on {device} "
              f"x{dist.world}; {len(train)} images, {cfg.epochs} epochs")

    data_hashes = tracking.dvc_hashes(paths.dvc_lock, DATA_DEPS)
    checkpoint = Checkpoint(paths.checkpoints, fingerprint(cfg.model_dump(), data_hashes))
    resume = checkpoint.load()
    if not dist.is_main:
        fit(model, (train.images, train.labels), (val.images, val.labels), cfg, device,
            balancing=balancing, augment=augment, resume=resume, dist=dist)
        return dist.close()

    # Open (or reopen, when resuming) the run before training, so an unreachable tracking
    # store fails in seconds rather than after the last epoch.
    mlflow_cfg = MlflowConfig.load(paths.params)
    params = read_params(paths.params)
    run = tracking.start_training_run(paths.root, mlflow_cfg.experiment_name, params, run_id=resume and resume.get("run_id"))
    checkpoint.extra["run_id"] = run.info.run_id
    import mlflow

    with run:
        if resume:
            print(f"train: resuming from {checkpoint.path}, epoch {len(resume['history'])} of {cfg.epochs}")
            tracking.log_missing_epochs(run.info.run_id, resume["history"])
        if not (resume and resume.get("run_id") == run.info.run_id):  # a reopened run holds these already
            mlflow.log_params({"data.train_images": len(train), "data.val_images": len(val), "model.parameters": n_params,
                               "model.trainable_parameters": trainable, "model.weights": origin})
            tracking.log_data_inputs(paths.root, data_hashes, {"training": ("data/augment", train.images, train.labels),
                                                               "validation": ("data/ingest", val.images, val.labels)},
                                     origin=params["ingest"]["source"])
        result = fit(
            model, (train.images, train.labels), (val.images, val.labels), cfg, device,
            on_epoch=lambda r, seconds: tracking.log_epoch(r.as_dict(), epoch_seconds=seconds),
            balancing=balancing, augment=augment, checkpoint=checkpoint, resume=resume, dist=dist,
        )
        mlflow.log_metrics({"best_epoch": result.best_epoch, "stopped_early": int(result.stopped_early)})

        model.cpu().eval()
        with atomic_path(paths.model_dir) as tmp:
            tmp.mkdir()
            torch.save(model.state_dict(), tmp / "model.pt")
            write_json(tmp / "model.json", spec.to_dict())
            write_json(tmp / "run.json", {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id})
        history = pd.DataFrame([r.as_dict() for r in result.history])
        with atomic_path(paths.train_history) as tmp:
            history.to_csv(tmp, index=False, lineterminator="\n")
        plot_training_curves(history, result.best_epoch, paths.training_curves)

        reports = (
            paths.ingest_report, paths.ingest_samples, paths.balance_report, paths.balance_counts,
            paths.balance_synthetic, paths.augment_preview, paths.train_history, paths.training_curves,
        )
        for report in reports:
            mlflow.log_artifact(str(report), artifact_path="reports")
        mlflow.log_artifact(str(paths.augmented / "pipeline.json"), artifact_path="reports")
        tracking.log_model(model, train.images, spec.to_dict(), mlflow_cfg.registered_model)
    dist.close()
    print(f"train: done; MLflow run {run.info.run_id}")


if __name__ == "__main__":
    run_stage(main)
