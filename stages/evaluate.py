"""Evaluate: score the trained model on the val and test splits.

Outputs (see dvc.yaml): ``metrics.json`` (DVC metrics), ``reports/confusion.csv`` (a DVC
confusion plot) and ``reports/confusion_matrix.png``. Metrics and the picture are added
to the training run in MLflow.
"""

from __future__ import annotations

import torch

from imgpipe.config import EvaluateConfig, Paths
from imgpipe.errors import run_stage
from imgpipe.evaluation import classification_metrics, confusion_table, plot_confusion_matrix
from imgpipe.models import ModelSpec, build_model, predict_proba
from imgpipe.storage import atomic_path, read_json, read_split, write_json
from imgpipe.training import select_device
from imgpipe import tracking


def main() -> None:
    paths = Paths.discover()
    cfg = EvaluateConfig.load(paths.params)
    device = select_device("auto")

    spec = ModelSpec(**read_json(paths.model_dir / "model.json"))
    model = build_model(spec)
    model.load_state_dict(torch.load(paths.model_dir / "model.pt", map_location="cpu", weights_only=True))
    model.to(device)

    metrics, predictions = {}, {}
    for split in ("val", "test"):
        data = read_split(paths.ingested, split)
        predictions[split] = predict_proba(model, data.images, cfg.batch_size, device).argmax(axis=1)
        metrics[split] = classification_metrics(data.labels, predictions[split], spec.classes)
        m = metrics[split]
        print(f"evaluate: {split}: accuracy {m['accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f}, macro F1 {m['f1_macro']:.4f}")

    write_json(paths.metrics, metrics)
    test = read_split(paths.ingested, "test")
    with atomic_path(paths.confusion_csv) as tmp:
        confusion_table(test.labels, predictions["test"], spec.classes).to_csv(tmp, index=False, lineterminator="\n")
    plot_confusion_matrix(test.labels, predictions["test"], spec.classes, paths.confusion_png,
                          title=f"test: accuracy {metrics['test']['accuracy']:.3f}")

    import mlflow

    with tracking.resume_run(paths.root, read_json(paths.model_dir / "run.json")):
        flat = tracking.flatten(metrics)
        mlflow.log_metrics({k.replace("per_class.", "class_"): v for k, v in flat.items()})
        mlflow.log_artifact(str(paths.confusion_png), artifact_path="evaluation")
        mlflow.log_artifact(str(paths.metrics), artifact_path="evaluation")
    print(f"evaluate: wrote {paths.metrics.name} and {paths.confusion_png.name}")


if __name__ == "__main__":
    run_stage(main)
