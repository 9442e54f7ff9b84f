"""``imgpipe init`` against the digits defaults, the README's transfer recipe and the best
hand-tuned row, on the image folders of ../shared/datasets (issue #14).

Each row is a fresh project copy whose params start as params.yaml ships them; a row's
seed sets ingest's split and every other stage's seed, so the spread over seeds includes
which images land in the small test split. For a seed, every row gets the same split.

    python bench/init.py --seeds 0 1 2                       # every dataset and row (about 2 hours on 2 CPUs)
    python bench/init.py --datasets brain-mri --rows init --seeds 0
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
sys.path.insert(0, str(REPO / "tests"))
from helpers import copy_project  # noqa: E402

# The README's "Transfer learning" command, on top of the shipped params.
TRANSFER = {"ingest": {"channels": 3, "image_size": 224},
            "train": {"model": "efficientnet_lite0", "pretrained": True, "freeze": {"unfreeze_last": 2},
                      "backbone_lr_mult": 0.1}}
# The best row of earlier hand-tuning on each set: brain-mri, issue #4's best balance
# (balance-mode augmentation, simple_cnn at 64 px); hymenoptera, issue #5's transfer run.
HAND_TUNED = {
    "brain-mri": {"ingest": {"channels": 3, "image_size": 64}, "balance": {"method": "none"},
                  "augment": {"mode": "balance", "copies": 2}},
    "hymenoptera": {"ingest": {"channels": 3, "image_size": 224, "resize": "center_crop"},
                    "balance": {"method": "none"}, "augment": {"copies": 0},
                    "train": {"model": "efficientnet_lite0", "pretrained": True, "freeze": {"unfreeze_last": 2},
                              "backbone_lr_mult": 0.1, "optimizer": "adamw", "lr": 0.001, "epochs": 5,
                              "batch_size": 16, "scheduler": {"name": "cosine"},
                              "device_augment": {"hflip": True}}},
}
ROWS = ("digits defaults", "README transfer recipe", "hand-tuned", "init", "probes")
# "probes": two baselines outside the pipeline on the split init's params make (ingest only):
# logistic regression on 32x32 pixels, and a linear probe on frozen ImageNet features of
# EfficientNet-Lite0. Each picks its regularisation C on val, class-balanced.
PROBES = ("logistic regression on pixels", "linear probe on frozen EfficientNet-Lite0 features")


def run_row(root: Path, dataset: str, row: str, seed: int) -> dict:
    project = copy_project(root)
    folder = SHARED / dataset
    if row == "init":
        print(project.run(sys.executable, "-m", "imgpipe.tools.cli", "init", str(folder)).stdout, flush=True)
    else:
        project.set_params({"ingest": {"source": str(folder)}})
        project.set_params(TRANSFER if row == "README transfer recipe" else HAND_TUNED[dataset]
                           if row == "hand-tuned" else {})
    project.set_params({section: {"seed": seed} for section in ("ingest", "balance", "augment", "train")})
    began = time.perf_counter()
    project.run("dvc", "repro", timeout=None)
    metrics = json.loads((project.root / "metrics.json").read_text())
    return {**metrics["test"], "val_balanced_accuracy": metrics["val"]["balanced_accuracy"],
            "seconds": time.perf_counter() - began}


def run_probes(root: Path, dataset: str, seed: int) -> dict[str, dict]:
    project = copy_project(root)
    project.run(sys.executable, "-m", "imgpipe.tools.cli", "init", str(SHARED / dataset), "--no-trial")
    project.set_params({"ingest": {"seed": seed}})
    project.run("dvc", "repro", "ingest", timeout=None)
    import numpy as np
    import torch

    from imgpipe.store.ingested import read_split
    splits = {name: read_split(project.root / "data" / "ingest", name, mmap=False) for name in ("train", "val", "test")}
    x = {name: torch.from_numpy(np.asarray(s.images)).permute(0, 3, 1, 2).float() / 255 for name, s in splits.items()}
    y = {name: s.labels for name, s in splits.items()}
    pixels = {name: torch.nn.functional.interpolate(v, size=32, mode="area").flatten(1).numpy() for name, v in x.items()}
    features = {name: lite0_features(v) for name, v in x.items()}
    return {PROBES[0]: fit_probe(pixels, y), PROBES[1]: fit_probe(features, y)}


def lite0_features(x):
    """Global-pooled features of the pretrained EfficientNet-Lite0 (ImageNet-normalised)."""
    import torch

    from imgpipe.models.architectures import timm_efficientnet_lite0
    from imgpipe.models.classifier import ImageClassifier
    from imgpipe.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, initialise
    model = ImageClassifier(timm_efficientnet_lite0(2), IMAGENET_MEAN, IMAGENET_STD, 3)
    initialise(model, "efficientnet_lite0", True, None)
    model.eval()
    mean, std = model.mean, model.std
    with torch.no_grad():
        batches = [x[i:i + 64].expand(-1, 3, -1, -1) for i in range(0, len(x), 64)]
        return torch.cat([model.net.head[0](model.net.blocks((b - mean) / std)) for b in batches]).numpy()


def fit_probe(x: dict, y: dict) -> dict:
    """Class-balanced logistic regression, C chosen on val; test balanced accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fitted(c: float):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=5000))
        return model.fit(x["train"], y["train"])
    best = max((0.001, 0.01, 0.1, 1.0), key=lambda c: balanced_accuracy_score(y["val"], fitted(c).predict(x["val"])))
    return {"balanced_accuracy": balanced_accuracy_score(y["test"], fitted(best).predict(x["test"])), "seconds": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(HAND_TUNED))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            if not (SHARED / dataset).is_dir():
                print(f"{dataset}: skipped, not found under {SHARED}")
                continue
            for row in args.rows:
                for seed in args.seeds:
                    if row == "probes":
                        for name, run in run_probes(Path(tmp) / f"{dataset}-probes-{seed}", dataset, seed).items():
                            results.setdefault((dataset, name), []).append(run)
                            print(f"{dataset} | {name} | seed {seed}: balanced accuracy "
                                  f"{run['balanced_accuracy']:.3f}", flush=True)
                        continue
                    run = run_row(Path(tmp) / f"{dataset}-{row}-{seed}".replace(" ", "_"), dataset, row, seed)
                    results.setdefault((dataset, row), []).append(run)
                    print(f"{dataset} | {row} | seed {seed}: balanced accuracy {run['balanced_accuracy']:.3f} "
                          f"(val {run['val_balanced_accuracy']:.3f}, {run['seconds']:.0f} s)", flush=True)
    report(results)


def report(results: dict[tuple[str, str], list[dict]]) -> None:
    print("\n| dataset | row | test balanced accuracy, mean | sd | each seed | minutes per run |")
    print("|---|---|---:|---:|---|---:|")
    for (dataset, row), runs in results.items():
        scores = [r["balanced_accuracy"] for r in runs]
        sd = f"{statistics.stdev(scores):.3f}" if len(scores) > 1 else "-"
        minutes = statistics.mean(r["seconds"] for r in runs) / 60
        print(f"| {dataset} | {row} | {statistics.mean(scores):.3f} | {sd} | "
              f"{', '.join(f'{s:.3f}' for s in scores)} | {f'{minutes:.1f}' if minutes else '-'} |")


if __name__ == "__main__":
    main()
