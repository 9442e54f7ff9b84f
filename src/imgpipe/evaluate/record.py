"""What evaluate puts into MLflow: its metrics and files on its run, linked to the training
run, the headline numbers on the pipeline's run, and the model registered as challenger."""

from __future__ import annotations

import logging

from imgpipe.evaluate.metrics import HEADLINE
from imgpipe.evaluate.registry import CHALLENGER, CHAMPION, TRAINING_RUN_TAG, VAL_DATA_TAG, VAL_SCORE_TAG, register
from imgpipe.params.tracking import MlflowConfig
from imgpipe.paths import Paths
from imgpipe.serving.logged_model import log_model, logged_model
from imgpipe.tracking.artifacts import EVALUATION
from imgpipe.tracking.runs import MODEL_RUN_TAG
from imgpipe.tracking.stage_run import StageRun

log = logging.getLogger(__name__)


def record(
    run: StageRun, paths: Paths, metrics: dict, per_class: dict, trained_in: dict, decided: tuple, val_hash: str
) -> None:
    """Into evaluate's run, linked to the training run; the headline numbers onto the
    pipeline's run too. A decision other than the identity goes in with its model, which is
    then the one served."""
    import mlflow

    spec, decision, example = decided
    run.metrics({split: {**metrics[split], "class": per_class[split]} for split in metrics})
    run.roll_up({f"{split}.{k}": v for split in metrics for k, v in metrics[split].items() if k in HEADLINE})
    mlflow.set_tags({VAL_DATA_TAG: val_hash, MODEL_RUN_TAG: trained_in["run_id"]})
    run.files(
        [
            paths.metrics,
            paths.per_class_csv,
            paths.confusion_png,
            paths.misclassified_png,
            paths.confusion_csv,
            paths.roc_csv,
            paths.pr_csv,
            paths.training_curves,
            paths.decision,
            paths.model_card,
        ],
        EVALUATION,
    )
    name = MlflowConfig.load(paths.params).registered_model
    if decision.is_identity:
        served = logged_model(trained_in["run_id"], "model") if name else None
    else:
        served = log_model(paths.model_dir, example, spec.to_dict(), name="decided_model", decision=decision.to_dict())
    if name and served is None:
        log.warning(
            f"evaluate: not registering {name}: run {trained_in['run_id']}, which trained models/, holds no "
            "logged model (dvc repro --force train logs it again)"
        )
    elif name:
        version = register(
            served.model_id,
            name,
            paths.model_card,
            {
                VAL_SCORE_TAG: str(metrics["val"]["balanced_accuracy"]),
                VAL_DATA_TAG: val_hash,
                TRAINING_RUN_TAG: trained_in["run_id"],
            },
        )
        log.info(
            f"evaluate: registered {name} version {version} as its {CHALLENGER}; `imgpipe promote` makes it "
            f"the {CHAMPION} if it beats the champion on val"
        )
