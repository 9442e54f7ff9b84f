"""Train's peak memory against the size of its input, on CIFAR-10 (issue #13, item 4).

Builds two project copies on CIFAR-10's JPEGs (32x32 RGB, no long tail, no balancing, 2
augmented copies): all of it (127,500 training images, 0.37 GiB of uint8) and a tenth of
it. Each runs the stages up to augment, then the train stage alone (1 epoch) in a fresh
process, and its peak RSS is read. The tenth gives train's fixed cost (the code it
imports, lazily too, and its working set), so the difference between the two is what
the data itself costs: the goal is at most 1.5x the uint8 input (train and val) plus
the model. Beside it, in fresh processes of their own and on the full array, the peak
RSS of the per-channel statistics as they were computed before (one float64 copy of
the whole split) and as they are now (in chunks).

    python bench/memory.py                 # CIFAR-10 from ../shared/datasets
    python bench/memory.py --cifar /tmp/cifar10
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import cifar_folder  # noqa: E402

sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make

PARAMS = {
    "ingest": {"channels": 3, "image_size": 32, "imbalance_ratio": 1},
    "balance": {"method": "none"},
    "augment": {"copies": 2},
    "train": {"epochs": 1, "batch_size": 128},
}
# Each runs in a fresh interpreter; prints nothing but does its work on the augmented split.
STATS = {
    "before: one float64 copy": (
        "import numpy as np; x = np.asarray(__import__('imgpipe.store.augmented', fromlist=['x']).read_train('{npy}').images);"
        "p = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1]) / 255.0; p.mean(axis=0); p.std(axis=0)"
    ),
    "now: in chunks": (
        "import numpy as np; from imgpipe.train.data import channel_stats; channel_stats(np.asarray(__import__('imgpipe.store.augmented', fromlist=['x']).read_train('{npy}').images))"
    ),
    "loading the array alone": "import numpy as np; np.asarray(__import__('imgpipe.store.augmented', fromlist=['x']).read_train('{npy}').images)",
}
# What the train stage's process holds before it reads any data: Python, torch (with its
# CUDA libraries), mlflow, scikit-learn and the rest, imported.
BASELINE = "import stages.train"


def peak_rss_mb(cmd: list[str], cwd: Path) -> float:
    """Run ``cmd`` in a child (with a helper parent of its own) and return the child's peak RSS."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=cwd, check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024  # Linux reports kilobytes


def tenth_of(cifar: Path, into: Path) -> Path:
    """Every tenth file of each class folder of ``cifar``, linked into ``into``."""
    for folder in sorted(p for p in cifar.rglob("*") if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file())[::10]
        if files:
            target = into / folder.relative_to(cifar)
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                (target / f.name).symlink_to(f)
    return into


def measure_train(source: Path, root: Path) -> dict[str, float]:
    """Run the stages up to augment on ``source``, then train alone; its peak and input in MiB."""
    import numpy as np

    project = copy_project(root)
    project.set_params({**PARAMS, "ingest": {**PARAMS["ingest"], "source": str(source)}})
    project.run("dvc", "repro", "augment")
    from imgpipe.store.augmented import read_train  # the kept rows are references, the variants pixels

    train = read_train(project.root / "data" / "augment").images
    val = np.load(project.root / "data" / "ingest" / "val.npy", mmap_mode="r")
    peak = peak_rss_mb([sys.executable, "-m", "stages.train"], project.root)
    return {
        "images": len(train),
        "input": (train.nbytes + val.nbytes) / 2**20,
        "peak": peak,
        "model": (project.root / "models" / "model.pt").stat().st_size / 2**20,
        "npy": str(project.root / "data" / "augment"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, help="unpacked CIFAR-10 JPEGs (train/, test/); default: unpack ../shared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cifar = cifar_folder(args.cifar, Path(tmp))
        small = measure_train(tenth_of(cifar, Path(tmp) / "tenth"), Path(tmp) / "small")
        full = measure_train(cifar, Path(tmp) / "full")
        stats = {
            name: peak_rss_mb([sys.executable, "-c", code.format(npy=full["npy"])], REPO)
            for name, code in STATS.items()
        }
        baseline = peak_rss_mb([sys.executable, "-c", BASELINE], REPO)
    report(small, full, stats, baseline)


def report(small: dict, full: dict, stats: dict, baseline: float) -> None:
    print(f"train's imports alone (Python, torch, mlflow, ...): {baseline:,.0f} MiB; model {full['model']:.1f} MiB")
    print(
        "\n| train stage, 1 epoch | training images | input, train + val (MiB) | peak RSS (MiB) |\n|---|---:|---:|---:|"
    )
    for name, run in (("a tenth of CIFAR-10", small), ("all of CIFAR-10", full)):
        print(f"| {name} | {run['images']:,} | {run['input']:,.0f} | {run['peak']:,.0f} |")
    grew, data = full["peak"] - small["peak"], full["input"] - small["input"]
    fixed = small["peak"] - small["input"]
    print(
        f"\nwhat the data costs: {grew:,.0f} MiB more peak for {data:,.0f} MiB more input: "
        f"{grew / data:.2f}x; all of CIFAR-10 over the fixed cost ({fixed:,.0f} MiB): "
        f"{(full['peak'] - fixed) / (full['input'] + full['model']):.2f}x its input plus the model"
    )
    print("\n| statistics of the full array, in a fresh process | peak RSS (MiB) |\n|---|---:|")
    for name, mb in stats.items():
        print(f"| {name} | {mb:,.0f} |")


if __name__ == "__main__":
    main()
