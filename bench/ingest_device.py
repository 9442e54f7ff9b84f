"""Ingest decoding speed by ``ingest.device``: Pillow on CPU processes against the batched
torchvision path on every device this machine has, side by side in one run.

- ``pillow``: ``ingest.device: cpu``, the default: ``decoding.decode_files`` on every core
  (``ingest.workers: 0``), and ``pillow-1`` in one process;
- ``batched``: ``device_decoding.decode_files_on_device``, 64 files per
  ``torchvision.io.decode_jpeg`` call and two resize matmuls per batch, on ``cpu`` (what
  the tests run) and on ``cuda`` (nvJPEG) when torch sees a GPU; non-JPEGs go to Pillow.

Files: every image of ``../shared/datasets/hymenoptera`` (train and val, ~500x375 JPEGs)
when it exists, else 256 generated 500x375 JPEGs. Each variant runs in a fresh process,
interleaved and repeated, after one untimed pass (disk cache, nvJPEG start-up); the
median is reported. The last columns say how far each path's pixels are from Pillow's:
the mean absolute difference over all images (and of the worst image), and the largest
single difference, in uint8 levels.

    python bench/ingest_device.py                       # 224 px RGB squash, 3 repeats
    python bench/ingest_device.py --size 64 --resize center_crop --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, whatever the venv has installed
sys.path.insert(0, str(REPO / "bench"))
from shared_data import SHARED  # noqa: E402

HYMENOPTERA = SHARED / "hymenoptera"


def files(root: Path) -> list[Path]:
    from imgpipe.ingest.sources import scan_folder

    return [c.path for c in scan_folder(root)]


def settings(args):
    from imgpipe.ingest.decoding import DEFAULT_MAX_PIXELS, DecodeSettings

    return DecodeSettings(args.size, args.channels, args.resize, DEFAULT_MAX_PIXELS)


def decode(variant: str, paths: list[Path], args) -> list:
    """Every file through one path, as ingest runs it."""
    if variant.startswith("pillow"):
        from imgpipe.ingest.decoding import decode_files

        return list(decode_files(paths, settings(args), 1 if variant == "pillow-1" else 0, desc=variant))
    import torch

    from imgpipe.ingest.device_decoding import decode_files_on_device

    device = torch.device(variant.split("-", 1)[1])
    return list(decode_files_on_device(paths, settings(args), device, 0, desc=variant))


def run_variant(variant: str, root: Path, args) -> dict:
    """One untimed pass, then one timed pass, in this process."""
    paths = files(root)
    decode(variant, paths, args)
    start = time.perf_counter()
    results = decode(variant, paths, args)
    seconds = time.perf_counter() - start
    n = sum(r.pixels is not None for r in results)
    return {"images": n, "files": len(paths), "per_s": n / seconds}


def closeness(variant: str, root: Path, args) -> dict:
    """How far ``variant``'s pixels are from Pillow's, over every decoded image."""
    import numpy as np

    paths = files(root)
    means, worst = [], 0
    for got, want in zip(decode(variant, paths, args), decode("pillow-1", paths, args)):
        if want.pixels is not None:
            diff = np.abs(got.pixels.astype(int) - want.pixels.astype(int))
            means.append(float(diff.mean()))
            worst = max(worst, int(diff.max()))
    return {"mean": statistics.fmean(means), "worst_mean": max(means), "max": worst}


def child(mode: str, variant: str, root: Path, args) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1")
    cmd = [
        sys.executable,
        __file__,
        mode,
        variant,
        str(root),
        "--size",
        str(args.size),
        "--channels",
        str(args.channels),
        "--resize",
        args.resize,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate(folder: Path, count: int = 256) -> Path:
    """500x375 JPEGs of smooth colour with a few hard edges, in two class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:375, 0:500] / 500
    for i in range(count):
        waves = [np.sin(x * rng.uniform(2, 20) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(2, 20)) for _ in range(3)]
        pixels = (np.stack(waves, -1) * 100 + 128).astype(np.uint8)
        pixels[rng.integers(0, 300) :][:60, 100:220] = rng.integers(0, 255, 3)
        (folder / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"class{i % 2}" / f"{i:04d}.jpg", quality=90)
    return folder


def bench(root: Path, name: str, args) -> None:
    import torch

    variants = ["pillow", "pillow-1", "batched-cpu"] + (["batched-cuda"] if torch.cuda.is_available() else [])
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for variant in variants:  # interleaved, so drift hits every variant alike
            runs[variant].append(child("_run", variant, root, args))
    base = statistics.median(r["per_s"] for r in runs["pillow"])
    print("| files | size | path | device | images | images/s | vs pillow | mean diff (worst image) | max diff |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for variant in variants:
        per_s = statistics.median(r["per_s"] for r in runs[variant])
        path, _, device = variant.partition("-")
        device = {"": f"cpu, {len(os.sched_getaffinity(0))} processes", "1": "cpu, 1 process"}.get(device, device)
        close = (
            "0 (itself) | 0"
            if path == "pillow"
            else "{mean:.2f} ({worst_mean:.2f}) | {max}".format(**child("_close", variant, root, args))
        )
        print(
            f"| {name} | {args.size} {args.resize} x{args.channels} | {path} | {device} | {runs[variant][0]['images']} "
            f"| {per_s:,.0f} | {per_s / base:.2f}x | {close} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("variant", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("root", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--channels", type=int, choices=[1, 3], default=3)
    parser.add_argument("--resize", choices=["squash", "center_crop", "letterbox"], default="squash")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.mode in ("_run", "_close"):
        work = run_variant if args.mode == "_run" else closeness
        print(json.dumps(work(args.variant, Path(args.root), args)))
        return
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU"
    print(
        f"machine: {len(os.sched_getaffinity(0))} CPUs, {gpu}; torch {torch.__version__}, Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        found = HYMENOPTERA.is_dir()
        root = HYMENOPTERA if found else generate(Path(tmp) / "generated")
        bench(root, "hymenoptera" if found else "generated 500x375", args)


if __name__ == "__main__":
    main()
