"""``reports/model_card.md``: what the model is, what it saw, how well it did and where not to
trust it, in one page for people (Mitchell et al. 2019, "Model Cards for Model Reporting").

Evaluate writes it from the facts it holds; it is logged to the run and registered with the
model, so whoever finds the model in the registry finds its card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Below this many test images of a class, its recall is too uncertain to quote alone.
FEW_TEST_IMAGES = 30


@dataclass
class CardFacts:
    title: str
    data: dict[str, Any]  # reports/ingest.json
    data_hash: str  # data/ingest's md5 in dvc.lock, "" outside dvc repro
    val_data_hash: str
    settings: dict[str, Any]  # params.yaml's train section
    model: dict[str, Any]  # the spec: name, options, classes, image_size, channels
    metrics: dict[str, dict[str, Any]]  # metrics.json
    per_class: dict[str, dict[str, dict[str, Any]]]  # split -> class -> precision, recall, support, CI
    decision: dict[str, Any]
    provenance: dict[str, str] = field(default_factory=dict)  # commit, run id, DVC experiment


def model_card(f: CardFacts) -> str:
    parts = [
        f"# Model card: {f.title}\n",
        _summary(f),
        _data(f),
        _training(f),
        _scores(f),
        _per_class(f),
        _calibration(f),
        _limits(f),
        _provenance(f),
    ]
    return "\n".join(parts)


def _summary(f: CardFacts) -> str:
    test = f.metrics["test"]
    ci = ""
    if "balanced_accuracy_ci95_low" in test:
        ci = f" (95% interval {test['balanced_accuracy_ci95_low']:.3f} to {test['balanced_accuracy_ci95_high']:.3f})"
    return (
        f"A `{f.model['name']}` classifier of {f.model['image_size']} x {f.model['image_size']} "
        f"{'greyscale' if f.model['channels'] == 1 else 'colour'} images into {len(f.model['classes'])} classes: "
        f"{', '.join(f'`{c}`' for c in f.model['classes'])}. Test balanced accuracy {test['balanced_accuracy']:.3f}"
        f"{ci} on {f.data['total']['test']} images.\n"
    )


def _data(f: CardFacts) -> str:
    summary = f.data.get("summary", {})
    lines = [
        "## Data\n",
        f"- Source: `{f.data['source']}`",
        f"- Version: DVC hash of `data/ingest` `{f.data_hash or 'not recorded (run outside dvc repro)'}`; "
        f"val images and labels `{f.val_data_hash[:16]}`",
        f"- Images decoded: {summary.get('decoded', '?')} of {summary.get('scanned', '?')} "
        f"({summary.get('skipped', 0)} unreadable, skipped)",
        f"- Removed: {summary.get('duplicates_removed', 0)} exact duplicates, {summary.get('conflicts_removed', 0)} "
        f"copies with conflicting labels, {summary.get('near_duplicates_dropped', 0)} val/test images that nearly "
        f"copy a training image (of {summary.get('near_duplicates_found', 0)} found)",
        f"- Imbalance: the largest training class has {f.data.get('imbalance_ratio', '?')} times the images of "
        "the smallest\n",
        "| class | train | val | test |",
        "|---|---:|---:|---:|",
    ]
    counts = f.data["counts"]
    lines += [
        f"| {c} | {counts['train'].get(c, 0)} | {counts['val'].get(c, 0)} | {counts['test'].get(c, 0)} |"
        for c in f.model["classes"]
    ]
    return "\n".join(lines) + "\n"


def _training(f: CardFacts) -> str:
    keys = (
        "model",
        "pretrained",
        "freeze",
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "scheduler",
        "weight_decay",
        "loss",
        "label_smoothing",
        "mix",
        "ema",
        "retrain_head",
        "early_stopping",
        "seed",
    )
    shown = {k: f.settings[k] for k in keys if k in f.settings}
    lines = [
        "## Training\n",
        *(f"- `{k}`: `{v}`" for k, v in shown.items()),
        f"- Architecture options: `{f.model.get('options', {})}`",
        "- Every other setting: `params.yaml` at the commit below, and the MLflow run's params\n",
    ]
    return "\n".join(lines)


def _scores(f: CardFacts) -> str:
    names = [
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "balanced accuracy"),
        ("f1_macro", "macro F1"),
        ("roc_auc_ovr", "ROC-AUC (one-vs-rest)"),
        ("log_loss", "log loss"),
        ("ece", "calibration error (ECE)"),
    ]
    lines = ["## Scores\n", "| metric | val | test |", "|---|---:|---:|"]
    for key, label in names:
        cells = [_number(f.metrics[split].get(key)) for split in ("val", "test")]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def _per_class(f: CardFacts) -> str:
    lines = [
        "## Recall by class\n",
        "With its 95% Wilson interval: how far it could move on another sample of this size.\n",
        "| class | val recall | test recall | test images | test 95% interval |",
        "|---|---:|---:|---:|---|",
    ]
    for c in f.model["classes"]:
        val, test = f.per_class["val"].get(c, {}), f.per_class["test"].get(c, {})
        lines.append(
            f"| {c} | {_number(val.get('recall'))} | {_number(test.get('recall'))} | {test.get('support', 0)} "
            f"| {_interval(test)} |"
        )
    return "\n".join(lines) + "\n"


def _calibration(f: CardFacts) -> str:
    test = f.metrics["test"]
    lines = [
        "## Calibration\n",
        f"- Expected calibration error on test: {_number(test.get('ece'))} (0 means the "
        "stated probabilities match how often the model is right)",
    ]
    if "ece_before_calibration" in test:
        lines.append(
            f"- Before temperature scaling: {_number(test['ece_before_calibration'])}; the temperature "
            f"{f.decision.get('temperature', 1.0):.3f} was fitted on val"
        )
    identity = f.decision.get("temperature", 1.0) == 1.0 and not any(f.decision.get("logit_bias") or [])
    lines.append(
        "- Decision: the model's own probabilities, arg max (no adjustment fitted)"
        if identity
        else f"- Decision fitted on val and applied wherever the model is served: `{f.decision.get('fitted')}`"
    )
    return "\n".join(lines) + "\n"


def _limits(f: CardFacts) -> str:
    lines = ["## Known limits\n"]
    for c in f.model["classes"]:
        test = f.per_class["test"].get(c, {})
        n = int(test.get("support", 0))
        if n < FEW_TEST_IMAGES:
            lines.append(
                f"- `{c}` has {n} test images: its test recall {_number(test.get('recall'))} could be anywhere "
                f"in {_interval(test)}."
                if n
                else f"- `{c}` has no test images: its recall is unmeasured."
            )
    lines += [
        f"- Trained and tested only on images from `{f.data['source']}`, decoded to {f.model['image_size']} px; "
        "photos from other cameras, sites or populations may score lower than the table says.",
        "- Val chose the epoch and the decision, so val scores are optimistic; quote test scores.",
        "- Near-duplicate checks catch resized and recompressed copies, not heavy crops or edits.",
    ]
    return "\n".join(lines) + "\n"


def _provenance(f: CardFacts) -> str:
    lines = ["## Provenance\n", *(f"- {k}: `{v}`" for k, v in f.provenance.items() if v)]
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _interval(row: dict[str, Any]) -> str:
    low, high = row.get("recall_ci95_low"), row.get("recall_ci95_high")
    return "n/a" if low is None or low != low else f"{low:.2f} to {high:.2f}"


def gather_facts(
    paths: Any, spec: Any, scores: dict[str, Any], decision: dict[str, Any], training_run: str, val_data_hash: str
) -> CardFacts:
    """The card's facts from the project: ``scores`` holds metrics.json's and the per-class
    tables (``{"metrics": ..., "per_class": ...}``)."""
    import os

    from imgpipe.params.base import read_params
    from imgpipe.store.atomic import read_json
    from imgpipe.tracking.lineage import dvc_hashes
    from imgpipe.tracking.runs import git_commit

    data = read_json(paths.ingest_report)
    return CardFacts(
        title=f"{data['source']} classifier",
        data=data,
        data_hash=dvc_hashes(paths.dvc_lock, ["data/ingest"]).get("data/ingest", ""),
        val_data_hash=val_data_hash,
        settings=read_params(paths.params)["train"],
        model=spec.to_dict(),
        metrics=scores["metrics"],
        per_class=scores["per_class"],
        decision=decision,
        provenance={
            "git commit": git_commit(paths.root) or "",
            "MLflow training run": training_run,
            "DVC experiment": os.environ.get("DVC_EXP_NAME", ""),
        },
    )
