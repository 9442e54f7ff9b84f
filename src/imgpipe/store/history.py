"""``reports/train_history.csv``: one row per epoch (losses, accuracies, learning rate).

Train writes it; DVC plots it (Loss, Accuracy, Learning rate in dvc.yaml); evaluate
draws the training curves from it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imgpipe.errors import ImgpipeError
from imgpipe.store.atomic import write_csv

COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy", "lr"]


def write(path: Path, rows: list[dict[str, float]]) -> None:
    write_csv(path, pd.DataFrame(rows, columns=COLUMNS))


def read(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise ImgpipeError(f"{path} is missing: run the train stage (dvc repro).")
    return pd.read_csv(path)
