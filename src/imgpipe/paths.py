"""Where the project's files live: the layout that ``dvc.yaml`` declares, in one place.

Stage folders are named here; the files *inside* ``data/<stage>/`` and ``models/`` are
named by the module that owns that format (``imgpipe.store``), and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds ``dvc.yaml``.

    DVC runs every stage from the folder of ``dvc.yaml``, and tests run copies of the
    project elsewhere, so the root follows the working directory rather than the location
    of this file. ``IMGPIPE_ROOT`` overrides the search.
    """
    if env := os.environ.get("IMGPIPE_ROOT"):
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return here


@dataclass(frozen=True)
class Paths:
    """Each stage's output folders and report files, as declared in ``dvc.yaml``."""

    root: Path

    @classmethod
    def discover(cls) -> Paths:
        return cls(find_project_root())

    # --- inputs and bookkeeping
    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def dvc_lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def raw(self) -> Path:
        """Where users keep (and `dvc add`) their own images; ingest depends on it."""
        return self.root / "raw"

    # --- what passes between stages (formats: imgpipe.store)
    @property
    def ingested(self) -> Path:
        return self.root / "data" / "ingest"

    @property
    def balanced(self) -> Path:
        return self.root / "data" / "balance"

    @property
    def augmented(self) -> Path:
        return self.root / "data" / "augment"

    @property
    def model_dir(self) -> Path:
        return self.root / "models"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def decision(self) -> Path:
        """How evaluate turns the model's scores into decisions (imgpipe.models.decision)."""
        return self.root / "reports" / "decision.json"

    def relative(self, path: Path) -> str:
        """``path`` as dvc.yaml and dvc.lock name it: relative to the root, with slashes."""
        return Path(path).relative_to(self.root).as_posix()

    # --- reports: for people, DVC plots and MLflow; no stage reads another's pictures
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def init_trial_csv(self) -> Path:
        return self.reports / "init_trial.csv"

    @property
    def init_trial_png(self) -> Path:
        return self.reports / "init_trial.png"

    @property
    def ingest_report(self) -> Path:
        return self.reports / "ingest.json"

    @property
    def ingest_samples(self) -> Path:
        return self.reports / "ingest_samples.png"

    @property
    def near_duplicates_table(self) -> Path:
        return self.reports / "near_duplicates.csv"

    @property
    def near_duplicates_picture(self) -> Path:
        return self.reports / "near_duplicates.png"

    @property
    def balance_report(self) -> Path:
        return self.reports / "balance.json"

    @property
    def balance_counts(self) -> Path:
        return self.reports / "balance_counts.png"

    @property
    def balance_synthetic(self) -> Path:
        return self.reports / "balance_synthetic.png"

    @property
    def augment_preview(self) -> Path:
        return self.reports / "augment_preview.png"

    @property
    def train_history(self) -> Path:
        return self.reports / "train_history.csv"

    @property
    def training_curves(self) -> Path:
        return self.reports / "training_curves.png"

    @property
    def per_class_csv(self) -> Path:
        return self.reports / "per_class.csv"

    @property
    def confusion_csv(self) -> Path:
        return self.reports / "confusion.csv"

    @property
    def roc_csv(self) -> Path:
        return self.reports / "roc.csv"

    @property
    def pr_csv(self) -> Path:
        return self.reports / "precision_recall.csv"

    @property
    def confusion_png(self) -> Path:
        return self.reports / "confusion_matrix.png"

    @property
    def misclassified_png(self) -> Path:
        return self.reports / "misclassified.png"

    @property
    def model_card(self) -> Path:
        return self.reports / "model_card.md"

    def upstream_reports(self) -> list[Path]:
        """The reports ingest, balance and augment write, which train attaches to its run.

        Train does not depend on them in dvc.yaml: they describe its data, they do not
        make it, and a new bar colour must not retrain the model.
        """
        return [
            self.ingest_report,
            self.ingest_samples,
            self.near_duplicates_table,
            self.near_duplicates_picture,
            self.balance_report,
            self.balance_counts,
            self.balance_synthetic,
            self.augment_preview,
        ]
