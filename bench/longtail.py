"""Long-tail remedies on CIFAR-10-LT (ratio 100), side by side at equal compute (issue #14).

One project copy on CIFAR-10's JPEGs made long-tailed (``ingest.long_tail: all``,
``imbalance_ratio: 100``): ingest, balance and augment run once (no resampling, no
augmented copies), then train and evaluate run once per row and seed, each row changing
only ``train`` or ``evaluate`` params. Every row trains on the same 10,546 images for the
same number of epochs, so each sees the same number of images: equal compute (a row that
changes only evaluate reuses the finished training of its seed, as DVC would). The test split stays
balanced (1,000 a class), so test accuracy is balanced accuracy.

``--budget`` runs the other set of rows: the budget of the data-remedy table (about 1.27M
images seen), a stronger CNN recipe, and rows that also change balance and augment
(rerunning those stages); each row's epochs are set so that epochs x training images
stays at that budget.

    python bench/longtail.py --cifar /tmp/cifar --epochs 10 --seeds 0 1 2
    python bench/longtail.py --cifar /tmp/cifar --budget     # the 1.27M-image rows
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import cifar_folder  # noqa: E402

sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make

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
# The budget of the data-remedy table (its best row: 10 epochs of 127,500 images, 1.27M seen),
# with a stronger recipe: the base_cnn of BENCHMARKS.md's "time to 80%" run, flips and crops on
# the device. Epochs are fixed per row so that every row sees about 1.27M images.
RECIPE = {
    "model": "base_cnn",
    "dropout": 0.3,
    "optimizer": "adamw",
    "lr": 0.003,
    "weight_decay": 0.05,
    "batch_size": 128,
    "scheduler": {"name": "onecycle"},
    "device_augment": {"hflip": True, "crop_padding": 4},
    "base_cnn": {"filters": [32, 64, 128], "kernel_size": 3, "padding": "same", "dense_units": 256, "batch_norm": True},
}
BUDGET_ROWS = {
    "cross-entropy, no remedy (120 epochs x 10,546)": {"train": {**RECIPE, "epochs": 120}},
    "cross-entropy, random_over + 2 augmented copies (10 epochs x 127,500)": {
        "balance": {"method": "random_over"},
        "augment": {"copies": 2},
        "train": {**RECIPE, "epochs": 10},
    },
    "balanced softmax + 2 augmented copies (40 epochs x 31,638)": {
        "augment": {"copies": 2},
        "train": {**RECIPE, "epochs": 40, "loss": "balanced_softmax"},
    },
    "balanced softmax, no copies (120 epochs x 10,546)": {
        "train": {**RECIPE, "epochs": 120, "loss": "balanced_softmax"}
    },
}


def run_row(project, row: dict, epochs: int, seed: int) -> dict:
    share = lambda value: max(1, round(epochs * int(value[:-1]) / 100))  # noqa: E731 - "80%" of the epochs
    train = {"epochs": epochs, **KEEP_BEST, **row.get("train", {}), "seed": seed}
    epochs = train["epochs"] if isinstance(train["epochs"], int) else epochs
    for key in ("epochs", "drw_epoch"):
        if isinstance(train.get(key), str):
            train[key] = share(train[key])
    if "retrain_head" in train:
        train["retrain_head"] = {"epochs": share(train["retrain_head"]["epochs"])}
    data = {section: {**DATA[section], **row.get(section, {})} for section in ("balance", "augment")}
    project.set_params({**data, "train": train, "evaluate": row.get("evaluate", {})})
    project.run("dvc", "repro", timeout=None)
    return json.loads((project.root / "metrics.json").read_text())["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, help="unpacked CIFAR-10 JPEGs (train/, test/); default: unpack ../shared")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--budget", action="store_true", help="the rows at the data-remedy table's budget (1.27M images seen) instead"
    )
    parser.add_argument("--rows", nargs="+", help="row names to run (default: all of the set)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cifar = cifar_folder(args.cifar, Path(tmp))
        project = copy_project(Path(tmp) / "proj")
        project.set_params({**DATA, "ingest": {**DATA["ingest"], "source": str(cifar)}})
        base = {section: project.params[section] for section in ("train", "evaluate")}
        results: dict[str, list[dict]] = {}
        rows = BUDGET_ROWS if args.budget else ROWS
        for name in args.rows or list(rows):
            runs = []
            for seed in args.seeds:
                project.set_params(base)  # each row from the shipped train and evaluate sections
                runs.append(run_row(project, rows[name], args.epochs, seed))
                print(f"{name}, seed {seed}: balanced accuracy {runs[-1]['balanced_accuracy']:.3f}", flush=True)
            results[name] = runs
    report(
        results,
        "about 1.27M images seen per row (epochs x training images, in each row's name)"
        if args.budget
        else f"{args.epochs} epochs of the 10,546 long-tailed training images each ({args.epochs * 10546:,} images seen)",
    )


def report(results: dict, budget: str) -> None:
    print(f"\n{budget}\n")
    print("| train | test balanced accuracy | spread (sd) | seeds |\n|---|---:|---:|---:|")
    for name, runs in results.items():
        scores = [r["balanced_accuracy"] for r in runs]
        spread = statistics.stdev(scores) if len(scores) > 1 else float("nan")
        print(f"| {name} | {statistics.mean(scores):.3f} | {spread:.3f} | {len(scores)} |")


if __name__ == "__main__":
    main()
