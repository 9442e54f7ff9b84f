"""What init's trial measured, kept beside the params it chose: ``reports/init_trial.csv``
(a row per candidate, each fold's score) and ``reports/init_trial.png`` (mean and folds,
the chosen one marked), to commit with params.yaml as the record of why."""

from __future__ import annotations

import pandas as pd

from imgpipe.init.measure import Measured
from imgpipe.paths import Paths
from imgpipe.store.atomic import write_csv
from imgpipe.viz.figure import new_figure, save_figure


def trial_table(results: list[Measured], best: Measured) -> pd.DataFrame:
    rows = []
    for m in results:
        folds = {f"fold_{i + 1}": round(s, 6) for i, s in enumerate(m.folds)}
        rows.append(
            {
                "candidate": m.candidate.name,
                "kind": m.candidate.kind,
                "val_balanced_accuracy_mean": round(m.mean, 6),
                "val_balanced_accuracy_sd": round(m.sd, 6),
                **folds,
                "images_per_second": round(m.rate, 1),
                "epochs": m.epochs,
                "train_images_per_fold": m.fold_train,
                "chosen": m.candidate.name == best.candidate.name,
            }
        )
    return pd.DataFrame(rows)


def plot_trial(table: pd.DataFrame, path) -> None:
    """A bar per candidate (mean val balanced accuracy), its folds as dots, the chosen one dark."""
    folds = [c for c in table.columns if c.startswith("fold_")]
    fig, ax = new_figure(figsize=(8, 0.5 * len(table) + 1.2))
    y = range(len(table))
    colors = ["tab:blue" if chosen else "lightsteelblue" for chosen in table["chosen"]]
    ax.barh(y, table["val_balanced_accuracy_mean"], xerr=table["val_balanced_accuracy_sd"], color=colors, capsize=3)
    for i, (_, row) in enumerate(table.iterrows()):
        ax.plot(row[folds].astype(float), [i] * len(folds), "k.", alpha=0.6)
    ax.set_yticks(list(y), table["candidate"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"val balanced accuracy (mean, sd and each of {len(folds)} folds)")
    ax.set_title("imgpipe init: what the trial measured (dark: chosen)")
    save_figure(fig, path)


def save_trial(root, results: list[Measured], best: Measured) -> list:
    """Write the table and the picture under the project's reports/; their paths."""
    paths = Paths(root)
    table = trial_table(results, best)
    paths.reports.mkdir(exist_ok=True)
    write_csv(paths.init_trial_csv, table)
    plot_trial(table, paths.init_trial_png)
    return [paths.init_trial_csv, paths.init_trial_png]
