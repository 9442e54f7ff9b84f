"""Ingest decoding speed and peak memory against a plain torchvision ImageFolder + PIL pass.

Both sides read the same files and resize them to the same size into uint8 arrays:

- ``torchvision``: ``ImageFolder(root, transform=Resize((s, s)))``, iterated in one process
  (open, convert to RGB, resize), as a plain script would;
- ``torchvision-dl2``: the same through a ``DataLoader`` with 2 worker processes, to
  compare on equal cores;
- ``imgpipe-1``: imgpipe's decoder in one process (content sniffing, JPEG draft mode,
  EXIF, mode handling), to show what draft decoding alone buys;
- ``imgpipe``: imgpipe as the ingest stage runs it, on every core (``ingest.workers: 0``).

Each variant runs in a fresh subprocess, interleaved and repeated, and the median is
reported, so the ratios are measured side by side on one machine at one time.

    python bench/ingest.py                        # hymenoptera and CIFAR-10 from ../shared
    python bench/ingest.py --repeats 5 --cifar /tmp/cifar
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import CIFAR_ARCHIVE, SHARED, cifar_folder  # noqa: E402

VARIANTS = ["torchvision", "torchvision-dl2", "imgpipe-1", "imgpipe"]


def run_variant(variant: str, root: Path, size: int) -> dict:
    """One timed pass, in this process; returns images/s and peak RSS."""
    import numpy as np

    start = time.perf_counter()
    if variant.startswith("torchvision"):
        from torch.utils.data import DataLoader
        from torchvision import datasets, transforms

        folder = datasets.ImageFolder(str(root), transform=transforms.Resize((size, size)))
        if variant == "torchvision":
            images = [np.asarray(image) for image, _ in folder]
        else:
            loader = DataLoader(folder, batch_size=None, num_workers=2, collate_fn=lambda x: np.asarray(x[0]))
            images = list(loader)
        n = len(images)
    else:
        sys.path.insert(0, str(REPO / "src"))
        from imgpipe.ingest.decoding import DEFAULT_MAX_PIXELS, DecodeSettings, decode_files
        from imgpipe.ingest.sources import scan_folder

        paths = [c.path for c in scan_folder(root)]
        out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
        settings = DecodeSettings(size, 3, "squash", DEFAULT_MAX_PIXELS)
        workers = 1 if variant == "imgpipe-1" else 0
        n = 0
        for result in decode_files(paths, settings, workers, desc=variant):
            if result.pixels is not None:
                out[n] = result.pixels
                n += 1
    seconds = time.perf_counter() - start
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"images": n, "seconds": seconds, "per_s": n / seconds, "rss_mb": self_rss, "child_rss_mb": child_rss}


def measure(variant: str, root: Path, size: int) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1")
    proc = subprocess.run(
        [sys.executable, __file__, "_run", variant, str(root), str(size)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"{variant} on {root} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(name: str, root: Path, size: int, repeats: int) -> list[str]:
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(repeats):
        for variant in VARIANTS:  # interleaved, so drift hits every variant alike
            runs[variant].append(measure(variant, root, size))
    base = statistics.median(r["per_s"] for r in runs["torchvision"])
    rows = []
    for variant in VARIANTS:
        r = runs[variant]
        per_s = statistics.median(x["per_s"] for x in r)
        rss = max(x["rss_mb"] for x in r)
        child = max(x["child_rss_mb"] for x in r)
        rows.append(
            f"| {name} | {size} | {variant} | {r[0]['images']} | {per_s:,.0f} | {per_s / base:.2f}x | "
            f"{rss:,.0f} | {child:,.0f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cifar", help="an unpacked cifar10-jpeg folder (with train/); default: unpack ../shared's")
    args = parser.parse_args()
    print(f"machine: {os.uname().machine}, {len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}")
    print("| dataset | size | variant | images | images/s | vs torchvision | peak RSS MB | peak worker RSS MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        cifar = cifar_folder(args.cifar, Path(tmp)) / "train" if args.cifar or CIFAR_ARCHIVE.is_file() else None
        sets = [("hymenoptera", SHARED / "hymenoptera" / "train", 64), ("cifar10 train", cifar, 32)]
        for name, root, size in sets:
            if root is None or not root.is_dir():
                print(f"| {name} | skipped: not found under {SHARED} |")
                continue
            for row in bench(name, root, size, args.repeats):
                print(row, flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_run":
        print(json.dumps(run_variant(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
