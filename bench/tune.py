"""``imgpipe tune`` on a shared image folder against the best hand-picked row (issue #16).

The hand-picked row is issue #4's best on brain-mri: no resampling, balance-mode
augmentation with two copies, ``simple_cnn`` at 64 px RGB, 8 epochs. The study keeps
those data settings and epochs (so every trial, and the tuned row, sees as many images as
the hand-picked one) and searches the training settings: optimiser, learning rate,
weight decay, width, dropout, loss and flips. It picks by val balanced accuracy on seed
0's split; then both rows are trained afresh on seeds 0, 1 and 2 (a seed sets the split
too) and scored on test, where the split holds a few dozen images.

    python bench/tune.py --trials 20 --seeds 0 1 2      # about 25 minutes on 2 CPUs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import SHARED  # noqa: E402

sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make

HAND_PICKED = {
    "ingest": {"channels": 3, "image_size": 64},
    "balance": {"method": "none"},
    "augment": {"mode": "balance", "copies": 2},
}
SPACE = {
    "train.optimizer": ["adam", "adamw", "sgd"],
    "train.lr": {"log_uniform": [3.0e-4, 3.0e-2]},
    "train.weight_decay": {"log_uniform": [1.0e-6, 1.0e-2]},
    "train.simple_cnn.filters": [16, 32, 64],
    "train.simple_cnn.dense_units": [64, 128, 256],
    "train.dropout": {"uniform": [0.0, 0.5]},
    "train.loss": ["cross_entropy", "balanced_softmax", "focal"],
    "train.device_augment.hflip": [False, True],
}


def seeded(seed: int) -> dict:
    return {section: {"seed": seed} for section in ("ingest", "balance", "augment", "train")}


def run_study(root: Path, folder: Path, trials: int) -> dict:
    """The hand-picked row as the committed baseline on seed 0, then the study; its summary."""
    import optuna

    project = copy_project(root)
    project.set_params(HAND_PICKED)
    project.set_params({"ingest": {"source": str(folder)}})
    project.set_params(seeded(0))
    project.set_params({"tune": {"space": None}})  # replaced, not merged with the shipped space
    project.set_params(
        {
            "tune": {
                "study": "bench",
                "trials": trials,
                "space": SPACE,
                "pruner": {"name": "median", "startup_trials": 5, "warmup_epochs": 3},
            }
        }
    )
    project.run("dvc", "repro", timeout=None)
    project.commit("hand-picked baseline")
    began = time.perf_counter()
    out = project.run(sys.executable, "-m", "imgpipe.cli", "tune", timeout=None).stdout
    print(out, flush=True)
    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{project.root / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    return {
        "best_params": study.best_trial.params,
        "best_val": study.best_value,
        "minutes": (time.perf_counter() - began) / 60,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "baseline_val": json.loads((project.root / "metrics.json").read_text())["val"]["balanced_accuracy"],
    }


def nested(flat: dict) -> dict:
    """``{"train.lr": 0.1}`` -> ``{"train": {"lr": 0.1}}``."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def run_row(root: Path, folder: Path, changes: dict, seed: int) -> dict:
    project = copy_project(root)
    project.set_params(HAND_PICKED)
    project.set_params({"ingest": {"source": str(folder)}})
    project.set_params(changes)
    project.set_params(seeded(seed))
    project.run("dvc", "repro", timeout=None)
    metrics = json.loads((project.root / "metrics.json").read_text())
    return {"test": metrics["test"]["balanced_accuracy"], "val": metrics["val"]["balanced_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="brain-mri")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    folder = SHARED / args.dataset
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing (see ../shared/datasets/README.md)")
    with tempfile.TemporaryDirectory() as tmp:
        study = run_study(Path(tmp) / "study", folder, args.trials)
        print(json.dumps(study, indent=2), flush=True)
        rows = {"hand-picked (issue #4's best)": {}, "imgpipe tune's best": nested(study["best_params"])}
        results = {
            name: [run_row(Path(tmp) / f"{i}-{seed}", folder, changes, seed) for seed in args.seeds]
            for i, (name, changes) in enumerate(rows.items())
        }
    print(
        f"\nstudy: {args.trials} trials in {study['minutes']:.1f} min ({study['complete']} complete, "
        f"{study['pruned']} pruned, {study['failed']} failed); val balanced accuracy on seed 0: hand-picked "
        f"{study['baseline_val']:.3f}, tune's best {study['best_val']:.3f}"
    )
    print("\n| row | test balanced accuracy, mean | sd | each seed | val, mean |")
    print("|---|---:|---:|---|---:|")
    for name, runs in results.items():
        test = [r["test"] for r in runs]
        sd = f"{statistics.stdev(test):.3f}" if len(test) > 1 else "-"
        print(
            f"| {name} | {statistics.mean(test):.3f} | {sd} | {', '.join(f'{t:.3f}' for t in test)} | "
            f"{statistics.mean(r['val'] for r in runs):.3f} |"
        )


if __name__ == "__main__":
    main()
