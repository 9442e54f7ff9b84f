"""Evaluate: score the trained model on the val and test splits.

Outputs (see dvc.yaml): ``metrics.json`` (DVC metrics for val and test), the DVC plot files
``reports/per_class.csv`` (test precision, recall and F1 by class), ``reports/confusion.csv``,
``reports/roc.csv`` and ``reports/precision_recall.csv``, and the
pictures ``reports/confusion_matrix.png`` and ``reports/misclassified.png``. Metrics, plots
and pictures are added to the training run in MLflow (to a run nested under it when
that model was evaluated before).
"""

from __future__ import annotations

import numpy as np

from imgpipe import tracking
from imgpipe.config import EvaluateConfig, Paths, read_params
from imgpipe.errors import run_stage
from imgpipe.evaluation import (
    classification_metrics, confusion_table, curves, most_confident_mistakes, per_class_table, plot_confusion_matrix,
)
from imgpipe.models import load_trained, predict_proba
from imgpipe.storage import atomic_path, read_json, read_split, write_json
from imgpipe.training import select_device
from imgpipe.visualize import captioned_grid, save_png


def main() -> None:
    paths = Paths.discover()
    cfg = EvaluateConfig.load(paths.params)
    device = select_device("auto")

    spec, model = load_trained(paths.model_dir)
    model.to(device)

    metrics, per_class, proba = {}, {}, {}
    for split in ("val", "test"):
        data = read_split(paths.ingested, split)
        proba[split] = predict_proba(model, data.images, cfg.batch_size, device, tta=cfg.tta)
        metrics[split] = m = classification_metrics(data.labels, proba[split], spec.classes)
        print(f"evaluate: {split}: accuracy {m['accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f}, "
              f"macro F1 {m['f1_macro']:.4f}, ROC-AUC {m['roc_auc_ovr']:.4f}, log loss {m['log_loss']:.4f}, ECE {m['ece']:.4f}")
        # Per-class numbers are a table, not headline metrics: as metrics they would be
        # 4 x classes x 2 columns in `dvc exp show`.
        per_class[split] = m.pop("per_class")
    write_json(paths.metrics, metrics)

    test = read_split(paths.ingested, "test")
    predicted = proba["test"].argmax(axis=1)
    roc, pr = curves(test.labels, proba["test"], spec.classes)
    tables = ((per_class_table(per_class["test"]), paths.per_class_csv),
              (confusion_table(test.labels, predicted, spec.classes), paths.confusion_csv),
              (roc, paths.roc_csv), (pr, paths.pr_csv))
    for table, path in tables:
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
    plot_confusion_matrix(test.labels, predicted, spec.classes, paths.confusion_png,
                          title=f"test: accuracy {metrics['test']['accuracy']:.3f}, balanced {metrics['test']['balanced_accuracy']:.3f}")

    # The mistakes the model was surest about: mislabelled images and real blind spots.
    worst = most_confident_mistakes(test.labels, proba["test"], cfg.misclassified)
    captions = [f"{spec.classes[test.labels[i]]}>{spec.classes[predicted[i]]} {proba['test'][i].max():.2f}" for i in worst]
    save_png(captioned_grid([np.asarray(test.images[i]) for i in worst], captions), paths.misclassified_png)

    import mlflow

    # Into the training run; a model evaluated before gets a new run nested under it.
    with tracking.start_evaluation_run(paths.root, read_json(paths.model_dir / "run.json"), read_params(paths.params)):
        flat = tracking.flatten({split: {**metrics[split], "class": per_class[split]} for split in metrics})
        mlflow.log_metrics({k: v for k, v in flat.items() if v == v})  # NaN AUC: skip
        for path in (paths.metrics, paths.per_class_csv, paths.confusion_png, paths.misclassified_png, paths.confusion_csv, paths.roc_csv, paths.pr_csv):
            mlflow.log_artifact(str(path), artifact_path="evaluation")
    print(f"evaluate: wrote {paths.metrics.name}, the ROC, precision-recall and confusion plots, and "
          f"{paths.misclassified_png.name} ({len(worst)} confident mistakes, true>predicted)")


if __name__ == "__main__":
    run_stage(main)
