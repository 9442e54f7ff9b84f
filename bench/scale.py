"""The pipeline at 1x, 4x and 16x the data: wall time, images/s and peak RSS per stage (issue #15).

Writes a synthetic collection once, as WebDataset shards of uncompressed PNGs (class k:
a smooth pattern of its own plus noise, classes 2:1 imbalanced so random over-sampling
has work to do), each shard BASE images. A project reading 1, 4 or 16 of those shards
then runs every stage in pipeline order, each as a fresh process, as `dvc repro` would,
with the shipped params except: the images' size, 3 channels, 2 epochs, and a small
simple_cnn (4 filters, 16 dense units) so that 2 epochs over 16x fit the time budget on 2
CPUs. Balance (random over-sampling) and augment (2 variants per image) run as shipped.

Each stage's peak RSS is the largest resident set of its process tree (getrusage of
the children of a probe process); images/s is what the stage handled over its wall
time, and for train the images trained on over the epochs' own seconds (from MLflow).
At 1x, train also runs with `train.resident_max_gb: 0`, reading every batch from disk,
to compare with the in-memory default side by side.

    python bench/scale.py                      # base 5,500 images of 128x128 RGB: 16x is 4.3 GB
    python bench/scale.py --base 500 --size 64 --scales 1 4     # a quick look
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make

STAGES = ["ingest", "balance", "augment", "train", "evaluate"]
CLASSES = 4


def write_shards(folder: Path, shards: int, base: int, size: int) -> None:
    """``shards`` tar files of ``base`` PNGs each, class in the path, reproducibly."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    patterns = [
        np.stack([np.sin((k + 1) * np.pi * xx), np.cos((k + 1) * np.pi * yy), xx * yy], -1) for k in range(CLASSES)
    ]
    # Classes 2:1: class 0 twice as often as the last.
    weights = np.linspace(2, 1, CLASSES) / np.linspace(2, 1, CLASSES).sum()
    for s in range(shards):
        with tarfile.open(folder / f"shard-{s:06d}.tar", "w") as tar:
            for i in range(base):
                k = int(rng.choice(CLASSES, p=weights))
                pixels = np.clip(127 + 80 * patterns[k] + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
                info = tarfile.TarInfo(f"class{k}/{s:03d}-{i:05d}.png")
                info.size = buffer.tell()
                buffer.seek(0)
                tar.addfile(info, buffer)


def run_stage(project: Path, stage: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the stage's process tree, and its output."""
    probe = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(p.stdout + p.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)"
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", f"stages.{stage}"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed in {project}:\n{done.stderr[-4000:]}")
    return seconds, int(done.stdout.strip()) / 1024, done.stderr


def training_rate(project: Path) -> float:
    """Images trained per second of the epochs themselves, from the stage's MLflow run."""
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    run_id = json.loads((project / "models" / "run.json").read_text())["run_id"]
    epochs = client.get_metric_history(run_id, "epoch_seconds")
    images = len(pd.read_csv(project / "data" / "augment" / "manifest.csv", usecols=["split"]))
    return images * len(epochs) / sum(m.value for m in epochs)


def counted(stage: str, project: Path) -> int:
    """Images the stage handled: what it read or wrote, whichever is more."""
    manifest = {
        "ingest": "ingest",
        "balance": "balance",
        "augment": "augment",
        "train": "augment",
        "evaluate": "ingest",
    }[stage]
    import pandas as pd

    table = pd.read_csv(project / "data" / manifest / "manifest.csv", usecols=["split"])
    return len(table) if stage != "evaluate" else int((table["split"] != "train").sum())


def run_scale(scratch: Path, shards: Path, scale: int, size: int, extra_disk_row: bool) -> list[dict]:
    project = copy_project(scratch / f"x{scale}")
    source = project.root / "raw" / "shards"
    source.mkdir(parents=True)
    for shard in sorted(shards.glob("*.tar"))[:scale]:
        os.symlink(shard, source / shard.name)
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["ingest"].update(source="raw/shards", image_size=size, channels=3)
    params["train"].update(epochs=2, simple_cnn={"filters": 4, "kernel_size": 3, "dense_units": 16})
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rows = []
    for stage in STAGES:
        seconds, rss, _ = run_stage(project.root, stage)
        rate = training_rate(project.root) if stage == "train" else counted(stage, project.root) / seconds
        rows.append({"scale": f"{scale}x", "stage": stage, "seconds": seconds, "images/s": rate, "peak RSS MiB": rss})
        print(json.dumps(rows[-1]), flush=True)
    if extra_disk_row:
        params["train"]["resident_max_gb"] = 0.0
        (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        seconds, rss, out = run_stage(project.root, "train")
        assert "data read from disk batch by batch" in out, out[-2000:]
        rows.append(
            {
                "scale": f"{scale}x",
                "stage": "train, from disk",
                "seconds": seconds,
                "images/s": training_rate(project.root),
                "peak RSS MiB": rss,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    data_bytes = sum(p.stat().st_size for p in (project.root / "data").rglob("*") if p.is_file())
    print(f"{scale}x: data/ holds {data_bytes / 2**30:.2f} GiB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=5500, help="images at 1x (one shard)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (RGB)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imgpipe-scale-", dir=os.environ.get("IMGPIPE_BENCH_TMP")) as tmp:
        shards = Path(tmp) / "shards"
        write_shards(shards, max(args.scales), args.base, args.size)
        gib = max(args.scales) * args.base * args.size * args.size * 3 / 2**30
        print(
            f"wrote {max(args.scales)} shards of {args.base} images ({gib:.2f} GiB decoded at {max(args.scales)}x) "
            f"in {time.perf_counter() - began:.0f} s",
            flush=True,
        )
        rows = [row for scale in args.scales for row in run_scale(Path(tmp), shards, scale, args.size, scale == 1)]
    print(f"\nwhole bench: {(time.perf_counter() - began) / 60:.1f} min\n")
    print("| stage | " + " | ".join(f"{s}x: s, img/s, peak RSS MiB" for s in args.scales) + " |")
    print("|---|" + "---:|" * len(args.scales))
    for stage in [*STAGES, "train, from disk"]:
        cells = []
        for scale in args.scales:
            row = next((r for r in rows if r["scale"] == f"{scale}x" and r["stage"] == stage), None)
            cells.append(f"{row['seconds']:.0f}, {row['images/s']:.0f}, {row['peak RSS MiB']:.0f}" if row else "")
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
