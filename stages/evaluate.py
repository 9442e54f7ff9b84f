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

from imgpipe.device import select_device
from imgpipe.errors import run_stage
from imgpipe.evaluate.decide import fit_decision
from imgpipe.evaluate.intervals import bootstrap_intervals
from imgpipe.evaluate.metrics import absent_classes, classification_metrics, expected_calibration_error, summary_line
from imgpipe.evaluate.model_card import gather_facts, model_card
from imgpipe.evaluate.outputs import draw, write_tables
from imgpipe.evaluate.record import record
from imgpipe.models.inference import predict_proba
from imgpipe.models.saved import load_model
from imgpipe.params.evaluate import EvaluateConfig
from imgpipe.paths import Paths
from imgpipe.store import ingested, model_folder
from imgpipe.store.atomic import write_json, write_text
from imgpipe.store.dataset import split_digest
from imgpipe.tracking.stage_run import StageRun, recorded


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
    spec, model = load_model(paths.model_dir)
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
    metrics["test"].update(
        bootstrap_intervals(splits["test"].labels, proba["test"].argmax(axis=1), cfg.bootstrap_resamples, cfg.seed)
    )
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
    write_text(
        paths.model_card,
        model_card(
            gather_facts(
                paths,
                spec,
                {"metrics": metrics, "per_class": per_class},
                decision.to_dict(),
                trained_in["run_id"],
                val_hash,
            )
        ),
    )

    write_tables(paths, splits["test"], proba["test"], spec.classes, per_class["test"])
    shown = draw(paths, cfg, splits["test"], proba["test"], spec.classes, metrics["test"], trained_in)
    record(run, paths, metrics, per_class, trained_in, (spec, decision, splits["val"].images), val_hash)
    print(
        f"evaluate: wrote {paths.metrics.name}, the ROC, precision-recall and confusion plots, "
        f"{paths.misclassified_png.name} ({shown} confident mistakes, true>predicted) and {paths.model_card.name}"
    )


def note_absent(split: str, metrics: dict, per_class: dict) -> None:
    """Say which classes ``split`` has no images of (a pre-split test/ folder that lacks one):
    a count `dvc metrics show` lists, and their names, beside the split's metrics."""
    missing = absent_classes(per_class)
    if missing:
        metrics["classes_missing"] = len(missing)
        metrics["classes_missing_names"] = ", ".join(missing)
        print(
            f"evaluate: warning: the {split} split has no images of class(es) {', '.join(missing)}; their recall "
            f"and F1 are not measured (left blank, not 0), and macro F1 averages the other classes"
        )


if __name__ == "__main__":
    run_stage(main)
