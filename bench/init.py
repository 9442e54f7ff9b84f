"""``imgpipe init`` against the digits defaults and the README's transfer recipe (and, on
the shared sets, issue #14's best hand-tuned row and two probes), on collections of
different kinds: brain-mri and hymenoptera from ../shared/datasets, and the collections
that bench/collections_offline.py builds from what is offline (CIFAR-10-LT, gray
textures, digits-LT), issues #14 and #29.

Each row is a fresh project copy whose params start as params.yaml ships them; a row's
seed sets ingest's split and every other stage's seed (before init runs, so its trial
sees that seed's train and val splits and never its test split), so the spread over
seeds includes which images land in the small test split. For a seed, every row gets the
same split. Each finished row is appended to --log as a line of JSON, and the table is
drawn from every line there, so a run can be split over several sittings.

    python bench/init.py --seeds 0 1 2                      # every collection and row (hours on 2 CPUs)
    python bench/init.py --datasets gray-textures --rows init --seeds 0 --budget-minutes 20
    python bench/init.py --report                            # the table from --log alone
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
from collections_offline import BUILDERS, build  # noqa: E402
from shared_data import SHARED  # noqa: E402

sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make

# The README's "Transfer learning" command, on top of the shipped params.
TRANSFER = {
    "ingest": {"channels": 3, "image_size": 224},
    "train": {
        "model": "efficientnet_lite0",
        "pretrained": True,
        "freeze": {"unfreeze_last": 2},
        "backbone_lr_mult": 0.1,
    },
}
# The best row of earlier hand-tuning on each set: brain-mri, issue #4's best balance
# (balance-mode augmentation, simple_cnn at 64 px); hymenoptera, issue #5's transfer run.
HAND_TUNED = {
    "brain-mri": {
        "ingest": {"channels": 3, "image_size": 64},
        "balance": {"method": "none"},
        "augment": {"mode": "balance", "copies": 2},
    },
    "hymenoptera": {
        "ingest": {"channels": 3, "image_size": 224, "resize": "center_crop"},
        "balance": {"method": "none"},
        "augment": {"copies": 0},
        "train": {
            "model": "efficientnet_lite0",
            "pretrained": True,
            "freeze": {"unfreeze_last": 2},
            "backbone_lr_mult": 0.1,
            "optimizer": "adamw",
            "lr": 0.001,
            "epochs": 5,
            "batch_size": 16,
            "scheduler": {"name": "cosine"},
            "device_augment": {"hflip": True},
        },
    },
}
ROWS = ("digits defaults", "README transfer recipe", "hand-tuned", "init", "init --no-trial", "probes")
# "probes": two baselines outside the pipeline on the split init's params make (ingest only):
# logistic regression on 32x32 pixels, and a linear probe on frozen ImageNet features of
# EfficientNet-Lite0. Each picks its regularisation C on val, class-balanced.
PROBES = ("logistic regression on pixels", "linear probe on frozen EfficientNet-Lite0 features")


def run_row(root: Path, folder: Path, dataset: str, row: str, seed: int, budget: float) -> dict:
    project = copy_project(root)
    project.set_params({section: {"seed": seed} for section in ("ingest", "balance", "augment", "train")})
    began = time.perf_counter()
    chose = None
    if row in ("init", "init --no-trial"):
        how = ["--no-trial"] if row == "init --no-trial" else ["--budget-minutes", str(budget)]
        out = project.run(sys.executable, "-m", "imgpipe.cli", "init", str(folder), *how).stdout
        print(out, flush=True)
        chose = next(
            (
                line.split(": ", 2)[1].removeprefix("chose ")
                for line in out.splitlines()
                if line.startswith("init: chose ")
            ),
            None,
        )
    else:
        project.set_params({"ingest": {"source": str(folder)}})
        project.set_params(
            TRANSFER if row == "README transfer recipe" else HAND_TUNED[dataset] if row == "hand-tuned" else {}
        )
    project.run("dvc", "repro", timeout=None)
    metrics = json.loads((project.root / "metrics.json").read_text())
    return {
        **metrics["test"],
        "val_balanced_accuracy": metrics["val"]["balanced_accuracy"],
        "seconds": time.perf_counter() - began,
        "chose": chose,
    }


def run_probes(root: Path, folder: Path, seed: int) -> dict[str, dict]:
    project = copy_project(root)
    project.run(sys.executable, "-m", "imgpipe.cli", "init", str(folder), "--no-trial")
    project.set_params({"ingest": {"seed": seed}})
    project.run("dvc", "repro", "ingest", timeout=None)
    import numpy as np
    import torch

    from imgpipe.store.ingested import read_split

    splits = {name: read_split(project.root / "data" / "ingest", name, mmap=False) for name in ("train", "val", "test")}
    x = {name: torch.from_numpy(np.asarray(s.images)).permute(0, 3, 1, 2).float() / 255 for name, s in splits.items()}
    y = {name: s.labels for name, s in splits.items()}
    pixels = {
        name: torch.nn.functional.interpolate(v, size=32, mode="area").flatten(1).numpy() for name, v in x.items()
    }
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
        batches = [x[i : i + 64].expand(-1, 3, -1, -1) for i in range(0, len(x), 64)]
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


ROWS_29 = ("digits defaults", "README transfer recipe", "init")


def folders(names: list[str], scratch: Path) -> dict[str, Path]:
    """Each collection's folder: the shared ones as they are, the offline ones built (seed 0)."""
    found = {}
    for name in names:
        if name in BUILDERS:
            found[name] = build(name, scratch / name)
        elif (SHARED / name).is_dir():
            found[name] = SHARED / name
        else:
            print(f"{name}: skipped, not found under {SHARED}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=[*HAND_TUNED, *BUILDERS])
    parser.add_argument("--rows", nargs="+", default=list(ROWS_29), choices=ROWS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget-minutes", type=float, default=20.0, help="imgpipe init --budget-minutes")
    parser.add_argument("--log", type=Path, default=REPO / "bench" / "results" / "init.jsonl")
    parser.add_argument("--report", action="store_true", help="only draw the table from --log")
    args = parser.parse_args()
    if not args.report:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        done = {(e["dataset"], e["row"], e["seed"]) for e in logged(args.log)}  # a later sitting goes on
        with tempfile.TemporaryDirectory() as tmp:
            for dataset, folder in folders(args.datasets, Path(tmp)).items():
                for seed in args.seeds:
                    for row in args.rows:
                        label = row + (f" ({args.budget_minutes:g} min)" if row == "init" else "")
                        if (dataset, label, seed) in done:
                            continue
                        for entry in run(
                            Path(tmp) / f"{dataset}-{row}-{seed}".replace(" ", "_"),
                            folder,
                            dataset,
                            row,
                            seed,
                            args.budget_minutes,
                        ):
                            with args.log.open("a") as log:
                                log.write(json.dumps(entry) + "\n")
    report(logged(args.log))


def logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def run(root: Path, folder: Path, dataset: str, row: str, seed: int, budget: float) -> list[dict]:
    """The log entries of one row at one seed (the probes row gives two)."""
    if row == "probes":
        runs = run_probes(root, folder, seed).items()
    else:
        runs = [(row, run_row(root, folder, dataset, row, seed, budget))]
    entries = [
        {"dataset": dataset, "row": name + (f" ({budget:g} min)" if name == "init" else ""), "seed": seed, **result}
        for name, result in runs
    ]
    for e in entries:
        print(
            f"{dataset} | {e['row']} | seed {seed}: balanced accuracy {e['balanced_accuracy']:.3f} "
            f"({e.get('seconds', 0):.0f} s{', chose ' + e['chose'] if e.get('chose') else ''})",
            flush=True,
        )
    return entries


def report(entries: list[dict]) -> None:
    """Mean, sample sd and each seed of test balanced accuracy, a row per (dataset, row)."""
    groups: dict[tuple[str, str], dict[int, dict]] = {}
    for e in entries:  # a seed run again replaces the earlier line
        groups.setdefault((e["dataset"], e["row"]), {})[e["seed"]] = e
    print("\n| dataset | row | mean | sd | each seed | minutes per run | init chose |")
    print("|---|---|---:|---:|---|---:|---|")
    for (dataset, row), by_seed in groups.items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        scores = [r["balanced_accuracy"] for r in runs]
        sd = f"{statistics.stdev(scores):.3f}" if len(scores) > 1 else "-"
        minutes = statistics.mean(r.get("seconds", 0.0) for r in runs) / 60
        chose = "; ".join(sorted({r["chose"] for r in runs if r.get("chose")}))
        print(
            f"| {dataset} | {row} | {statistics.mean(scores):.3f} | {sd} | "
            f"{', '.join(f'{s:.3f}' for s in scores)} (seeds {', '.join(str(s) for s in sorted(by_seed))}) | "
            f"{f'{minutes:.1f}' if minutes else '-'} | {chose} |"
        )


if __name__ == "__main__":
    main()
