"""Evaluate: score the trained model on the val and test splits, and draw what it learned.

Outputs (see dvc.yaml): ``metrics.json`` (DVC metrics for val and test), the DVC plot files
``reports/per_class.csv`` (test precision, recall and F1 by class), ``reports/confusion.csv``,
``reports/roc.csv`` and ``reports/precision_recall.csv``, and the pictures
``reports/confusion_matrix.png``, ``reports/misclassified.png`` and
``reports/training_curves.png``, and ``reports/model_card.md``. Metrics, plots, pictures
and the card are added to the training run in MLflow (to a run nested under it when that
model was evaluated before); with ``mlflow.registered_model`` set, the model is registered
as the ``challenger``, its card beside it.
"""

from __future__ import annotations

import numpy as np

from imgpipe.errors import run_stage
from imgpipe.evaluate.decide import fit_decision
from imgpipe.evaluate.intervals import bootstrap_intervals
from imgpipe.evaluate.model_card import gather_facts, model_card
from imgpipe.evaluate.registry import CHALLENGER, CHAMPION, TRAINING_RUN_TAG, VAL_DATA_TAG, VAL_SCORE_TAG, register
from imgpipe.evaluate.metrics import (
    HEADLINE, absent_classes, classification_metrics, confusion_table, curves, expected_calibration_error, most_confident_mistakes,
    per_class_table, summary_line,
)
from imgpipe.evaluate.plots import mistakes_grid, plot_confusion_matrix, plot_training_curves
from imgpipe.models.device import select_device
from imgpipe.models.inference import predict_proba
from imgpipe.params.evaluate import EvaluateConfig
from imgpipe.params.tracking import MlflowConfig
from imgpipe.paths import Paths
from imgpipe.store import history, ingested, model_folder
from imgpipe.store.atomic import write_csv, write_json, write_text
from imgpipe.store.dataset import Split, split_digest
from imgpipe.tracking.artifacts import EVALUATION
from imgpipe.tracking.model import log_model, logged_model
from imgpipe.tracking.runs import MODEL_RUN_TAG
from imgpipe.tracking.stage_run import StageRun, recorded
from imgpipe.viz.grids import save_png


def main() -> None:
    paths = Paths.discover()
    cfg = EvaluateConfig.load(paths.params)
    # Opened before the work, as in every stage: an unreachable tracking server stops it in seconds.
    with recorded(paths, "evaluate", then="evaluate scores the trained model again, with no retraining") as run:
        evaluate(paths, cfg, run)


def evaluate(paths: Paths, cfg: EvaluateConfig, run: StageRun) -> None:
    """Score the model on val and test; write the metrics, tables, pictures and card; record
    them in ``run``."""
    device = select_device("auto")
    spec, model = model_folder.load(paths.model_dir)
    model.to(device)
    trained_in = model_folder.read_run(paths.model_dir)

    splits = {name: ingested.read_split(paths.ingested, name) for name in ("val", "test")}
    raw = {name: predict_proba(model, s.images, cfg.batch_size, device, tta=cfg.tta) for name, s in splits.items()}
    # The decision (logit adjustment, temperature, threshold) is fitted on val, then scored.
    decision = fit_decision(cfg, splits["val"].labels, raw["val"], spec.classes, spec.class_prior, trained_in["run_id"])
    proba = {name: decision.apply(p) for name, p in raw.items()}
    metrics = {name: classification_metrics(s.labels, proba[name], spec.classes) for name, s in splits.items()}
    for name, s in splits.items():
        if cfg.calibrate:
            metrics[name]["ece_before_calibration"] = round(expected_calibration_error(s.labels, raw[name]), 6)
    # A test split of a few dozen images: say how far its headline numbers could move.
    metrics["test"].update(bootstrap_intervals(splits["test"].labels, proba["test"].argmax(axis=1),
                                               cfg.bootstrap_resamples, cfg.seed))
    # Per-class numbers are a table, not headline metrics: as metrics they would be
    # 4 x classes x 2 columns in `dvc exp show`.
    per_class = {name: m.pop("per_class") for name, m in metrics.items()}
    for name, m in metrics.items():
        print(f"evaluate: {summary_line(name, m)}")
        note_absent(name, m, per_class[name])
    if not decision.is_identity:
        print(f"evaluate: decisions fitted on val: {decision.fitted}")
    write_json(paths.metrics, metrics)
    write_json(paths.decision, decision.to_dict())
    val_hash = split_digest(splits["val"])
    write_text(paths.model_card, model_card(gather_facts(paths, spec, {"metrics": metrics, "per_class": per_class},
                                                         decision.to_dict(), trained_in["run_id"], val_hash)))

    write_tables(paths, splits["test"], proba["test"], spec.classes, per_class["test"])
    shown = draw(paths, cfg, splits["test"], proba["test"], spec.classes, metrics["test"], trained_in)
    record(run, paths, metrics, per_class, trained_in, (spec, decision, splits["val"].images), val_hash)
    print(f"evaluate: wrote {paths.metrics.name}, the ROC, precision-recall and confusion plots, "
          f"{paths.misclassified_png.name} ({shown} confident mistakes, true>predicted) and {paths.model_card.name}")


def note_absent(split: str, metrics: dict, per_class: dict) -> None:
    """Say which classes ``split`` has no images of (a pre-split test/ folder that lacks one):
    a count `dvc metrics show` lists, and their names, beside the split's metrics."""
    missing = absent_classes(per_class)
    if missing:
        metrics["classes_missing"] = len(missing)
        metrics["classes_missing_names"] = ", ".join(missing)
        print(f"evaluate: warning: the {split} split has no images of class(es) {', '.join(missing)}; their recall "
              f"and F1 are not measured (left blank, not 0), and macro F1 averages the other classes")


def record(run: StageRun, paths: Paths, metrics: dict, per_class: dict, trained_in: dict, decided: tuple,
           val_hash: str) -> None:
    """Into evaluate's run, linked to the training run; the headline numbers onto the
    pipeline's run too. A decision other than the identity goes in with its model, which is
    then the one served."""
    import mlflow

    spec, decision, example = decided
    run.metrics({split: {**metrics[split], "class": per_class[split]} for split in metrics})
    run.roll_up({f"{split}.{k}": v for split in metrics for k, v in metrics[split].items() if k in HEADLINE})
    mlflow.set_tags({VAL_DATA_TAG: val_hash, MODEL_RUN_TAG: trained_in["run_id"]})
    run.files([paths.metrics, paths.per_class_csv, paths.confusion_png, paths.misclassified_png, paths.confusion_csv,
               paths.roc_csv, paths.pr_csv, paths.training_curves, paths.decision, paths.model_card], EVALUATION)
    name = MlflowConfig.load(paths.params).registered_model
    if decision.is_identity:
        served = logged_model(trained_in["run_id"], "model") if name else None
    else:
        served = log_model(paths.model_dir, example, spec.to_dict(), name="decided_model", decision=decision.to_dict())
    if name and served is None:
        print(f"evaluate: not registering {name}: run {trained_in['run_id']}, which trained models/, holds no "
              "logged model (dvc repro --force train logs it again)")
    elif name:
        version = register(served.model_id, name, paths.model_card, {
            VAL_SCORE_TAG: str(metrics["val"]["balanced_accuracy"]), VAL_DATA_TAG: val_hash,
            TRAINING_RUN_TAG: trained_in["run_id"]})
        print(f"evaluate: registered {name} version {version} as its {CHALLENGER}; `imgpipe promote` makes it "
              f"the {CHAMPION} if it beats the champion on val")


def write_tables(paths: Paths, test: Split, proba: np.ndarray, classes: list[str], per_class: dict) -> None:
    """The DVC plot files: recall by class, the confusion matrix, ROC and PR curves (test)."""
    roc, pr = curves(test.labels, proba, classes)
    write_csv(paths.per_class_csv, per_class_table(per_class))
    write_csv(paths.confusion_csv, confusion_table(test.labels, proba.argmax(axis=1), classes))
    write_csv(paths.roc_csv, roc)
    write_csv(paths.pr_csv, pr)


def draw(paths: Paths, cfg: EvaluateConfig, test: Split, proba: np.ndarray, classes: list[str], scores: dict,
         trained_in: dict) -> int:
    """The confusion matrix, the mistakes the model was surest about (mislabelled images
    and real blind spots) and the training curves; returns how many mistakes it shows."""
    title = f"test: accuracy {scores['accuracy']:.3f}, balanced {scores['balanced_accuracy']:.3f}"
    plot_confusion_matrix(test.labels, proba.argmax(axis=1), classes, paths.confusion_png, title=title)
    worst = most_confident_mistakes(test.labels, proba, cfg.misclassified)
    save_png(mistakes_grid(test.images, test.labels, proba, worst, classes), paths.misclassified_png)
    plot_training_curves(history.read(paths.train_history), trained_in.get("best_epoch"), paths.training_curves)
    return len(worst)


if __name__ == "__main__":
    run_stage(main)
