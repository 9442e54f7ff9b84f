"""Train's peak memory against the size of its input, on CIFAR-10 (issue #13, item 4).

Builds a project copy on CIFAR-10's JPEGs (train and test, 32x32 RGB, no long tail, no
balancing, 2 augmented copies: 150,000 training images, 0.43 GiB of uint8), runs the
stages up to augment, then the train stage alone (1 epoch) in a fresh process and reads
its peak RSS. Beside it, in fresh processes of their own and on the same array, the peak
RSS of the per-channel statistics as they were computed before (one float64 copy of the
whole split) and as they are now (in chunks).

    python bench/memory.py                 # CIFAR-10 from ../shared/datasets
    python bench/memory.py --cifar /tmp/cifar10
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
sys.path.insert(0, str(REPO / "tests"))
from helpers import copy_project  # noqa: E402

PARAMS = {
    "ingest": {"channels": 3, "image_size": 32, "imbalance_ratio": 1},
    "balance": {"method": "none"},
    "augment": {"copies": 2},
    "train": {"epochs": 1, "batch_size": 128},
}
# Each runs in a fresh interpreter; prints nothing but does its work on the augmented split.
STATS = {
    "before: one float64 copy": (
        "import numpy as np; x = np.load('{npy}');"
        "p = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1]) / 255.0; p.mean(axis=0); p.std(axis=0)"),
    "now: in chunks": (
        "import numpy as np; from imgpipe.train.data import channel_stats; channel_stats(np.load('{npy}'))"),
    "loading the array alone": "import numpy as np; np.load('{npy}')",
}
# What the train stage's process holds before it reads any data: Python, torch (with its
# CUDA libraries), mlflow, scikit-learn and the rest, imported.
BASELINE = "import stages.train"


def peak_rss_mb(cmd: list[str], cwd: Path) -> float:
    """Run ``cmd`` in a child (with a helper parent of its own) and return the child's peak RSS."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=cwd, check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, help="unpacked CIFAR-10 JPEGs (train/, test/); default: unpack ../shared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cifar = args.cifar
        if cifar is None:
            cifar = Path(tmp) / "cifar10"
            with tarfile.open(SHARED / "cifar10-jpeg.tar.gz") as tar:
                tar.extractall(cifar, filter="data")
        project = copy_project(Path(tmp) / "proj")
        project.set_params({**PARAMS, "ingest": {**PARAMS["ingest"], "source": str(cifar)}})
        project.run("dvc", "repro", "augment")
        import numpy as np

        npy = project.root / "data" / "augment" / "train.npy"
        array = np.load(npy, mmap_mode="r")
        data_mb = array.nbytes / 2**20
        train = peak_rss_mb([sys.executable, "-m", "stages.train"], project.root)
        model_mb = (project.root / "models" / "model.pt").stat().st_size / 2**20
        stats = {name: peak_rss_mb([sys.executable, "-c", code.format(npy=npy)], project.root)
                 for name, code in STATS.items()}
        baseline = peak_rss_mb([sys.executable, "-c", BASELINE], project.root)
    print(f"input: {array.shape[0]:,} images {tuple(array.shape[1:])}, {data_mb:,.0f} MiB of uint8; model {model_mb:.1f} MiB")
    print(f"train's imports alone (Python, torch, mlflow, ...): {baseline:,.0f} MiB")
    print("\n| process | peak RSS (MiB) | above train's imports (MiB) | that / (input + model) |\n|---|---:|---:|---:|")
    print(f"| train stage, 1 epoch | {train:,.0f} | {train - baseline:,.0f} | {(train - baseline) / (data_mb + model_mb):.2f}x |")
    for name, mb in stats.items():
        print(f"| channel statistics, {name} | {mb:,.0f} | | |")


if __name__ == "__main__":
    main()
