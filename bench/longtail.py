"""Long-tail remedies on CIFAR-10-LT (ratio 100), side by side at equal compute (issue #14).

One project copy on CIFAR-10's JPEGs made long-tailed (``ingest.long_tail: all``,
``imbalance_ratio: 100``): ingest, balance and augment run once (no resampling, no
augmented copies), then train and evaluate run once per row and seed, each row changing
only ``train`` or ``evaluate`` params. Every row trains on the same 10,546 images for the
same number of epochs, so each sees the same number of images: equal compute (a row that
changes only evaluate reuses the finished training of its seed, as DVC would). The test split stays
balanced (1,000 a class), so test accuracy is balanced accuracy.

    python bench/longtail.py --cifar /tmp/cifar --epochs 10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
sys.path.insert(0, str(REPO / "tests"))
from helpers import copy_project  # noqa: E402

DATA = {
    "ingest": {"channels": 3, "image_size": 32, "long_tail": "all", "imbalance_ratio": 100},
    "balance": {"method": "none"},
    "augment": {"copies": 0},
}
# The val split is long-tailed too: the epoch kept is the best by val balanced accuracy, for
# every row (by val loss, the default, it would favour the head classes' epochs).
KEEP_BEST = {"early_stopping": {"metric": "val_balanced_accuracy", "patience": 0, "restore_best": True}}
# Each row's changes to the train and evaluate sections; the rest as params.yaml ships it.
ROWS = {
    "cross-entropy": {},
    "cross-entropy + post-hoc logit adjustment (tau 1)": {"evaluate": {"logit_adjustment": 1.0}},
    "focal (gamma 2)": {"train": {"loss": "focal", "focal_gamma": 2.0}},
    "balanced softmax": {"train": {"loss": "balanced_softmax"}},
    "logit-adjusted loss (tau 1.5)": {"train": {"loss": "logit_adjusted", "logit_tau": 1.5}},
    "LDAM-DRW (DRW from 80% of epochs)": {"train": {"loss": "ldam", "drw_epoch": "80%"}},
    "cross-entropy + DRW": {"train": {"drw_epoch": "80%"}},
    "cross-entropy + Mixup/CutMix": {"train": {"mix": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "p": 0.5}}},
    "cross-entropy + EMA (0.999)": {"train": {"ema": {"decay": 0.999}}},
    # Two stages in the same budget: 80% of the epochs on everything, 20% on the head alone.
    "cRT (80% + 20% head epochs, class-balanced)": {"train": {"epochs": "80%", "retrain_head": {"epochs": "20%"}}},
}


def run_row(project, row: dict, epochs: int, seed: int) -> dict:
    share = lambda value: max(1, round(epochs * int(value[:-1]) / 100))  # noqa: E731 - "80%" of the epochs
    train = {"epochs": epochs, **KEEP_BEST, **row.get("train", {}), "seed": seed}
    for key in ("epochs", "drw_epoch"):
        if isinstance(train.get(key), str):
            train[key] = share(train[key])
    if "retrain_head" in train:
        train["retrain_head"] = {"epochs": share(train["retrain_head"]["epochs"])}
    project.set_params({"train": train, "evaluate": row.get("evaluate", {})})
    project.run("dvc", "repro")
    return json.loads((project.root / "metrics.json").read_text())["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, help="unpacked CIFAR-10 JPEGs (train/, test/); default: unpack ../shared")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="row names to run (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cifar = args.cifar
        if cifar is None:
            cifar = Path(tmp) / "cifar10"
            with tarfile.open(SHARED / "cifar10-jpeg.tar.gz") as tar:
                tar.extractall(cifar, filter="data")
        project = copy_project(Path(tmp) / "proj")
        project.set_params({**DATA, "ingest": {**DATA["ingest"], "source": str(cifar)}})
        base = {section: project.params[section] for section in ("train", "evaluate")}
        results = {}
        for name in args.rows:
            runs = []
            for seed in args.seeds:
                project.set_params(base)  # each row from the shipped train and evaluate sections
                runs.append(run_row(project, ROWS[name], args.epochs, seed))
                print(f"{name}, seed {seed}: balanced accuracy {runs[-1]['balanced_accuracy']:.3f}", flush=True)
            results[name] = runs
    report(results, args.epochs)


def report(results: dict, epochs: int) -> None:
    print(f"\n{epochs} epochs of the 10,546 long-tailed training images each ({epochs * 10546:,} images seen)\n")
    print("| train | test balanced accuracy | spread (sd) | seeds |\n|---|---:|---:|---:|")
    for name, runs in results.items():
        scores = [r["balanced_accuracy"] for r in runs]
        spread = statistics.stdev(scores) if len(scores) > 1 else float("nan")
        print(f"| {name} | {statistics.mean(scores):.3f} | {spread:.3f} | {len(scores)} |")


if __name__ == "__main__":
    main()
