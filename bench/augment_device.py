"""Augment speed by ``augment.device``: albumentations per image (``cpu``) against the batched
path (``cuda``, or ``auto`` with a GPU) on every device this machine has, side by side.

The pipeline is the one in params.yaml (Affine, then RandomBrightnessContrast), one
variant per image, on real digit scans upscaled (bench/augment.py's images). Each side
runs as the stage runs it, with the libraries' default threads: ``augment_variants`` for
albumentations, ``batched_variants`` (batches of 256, uint8 NHWC moved to the device,
back as NumPy) for the batched path, on the CPU and, when torch sees one, on CUDA after
a warm-up (each side: 32 images first). Variants are consumed and dropped; the last
column is what the stage does with each one afterwards (``save_variants``: write and
hash), a ceiling for any device.

Each side runs in a process of its own, as in the stage, so that neither library's thread
pool competes with the other's. Repeats are interleaved; the median is shown. On the
2-CPU VM this was written on, the batched CPU side with torch's default 2 threads swung
from run to run between about 1,000 and 23,000 img/s at 32x32 (stalled threads, in
bursts); ``--threads 1`` gives steadier CPU numbers.

    .venv/bin/python bench/augment_device.py
    .venv/bin/python bench/augment_device.py --images 300 --repeats 3   # a quick one
    .venv/bin/python bench/augment_device.py --images 300 --repeats 3 --threads 1
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

DEFAULT_IMAGES = {32: 1500, 128: 500, 224: 300}  # as bench/augment.py; at most 1,797 (the digit scans)


def sizes_of(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in s.split("x")) for s in text.split(",")]


def rate(make, n: int) -> float:
    start = time.perf_counter()
    for _ in make():
        pass
    return n / (time.perf_counter() - start)


def sink_rate(variants: np.ndarray) -> float:
    from imgpipe.augment.pipeline import save_variants

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        save_variants(iter(variants), Path(tmp) / "variants.u8", variants.shape[1:])
        return len(variants) / (time.perf_counter() - start)


def one_side(
    side: str, sizes: list[tuple[int, int]], images_per_size: int, batch_size: int, threads: int
) -> dict[str, float]:
    """In a child process: images/s of one side at each size (and, for albumentations, the sink's)."""
    import cv2
    import torch
    import yaml

    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)

    from augment import images  # bench/augment.py's real digit scans

    from imgpipe.augment.pipeline import augment_variants, build_pipeline

    spec = yaml.safe_load((REPO / "params.yaml").read_text())["augment"]["transforms"]
    out = {}
    for size, channels in sizes:
        batch = images(size, channels, images_per_size or DEFAULT_IMAGES.get(size, 300))
        per_image, key = np.ones(len(batch), dtype=np.int64), f"{len(batch)} x {size}x{size}x{channels}"
        if side == "albumentations":
            make = lambda b=batch: augment_variants(b, build_pipeline(spec, 0), per_image[: len(b)])  # noqa: E731
        else:
            from imgpipe.augment.batched import batched_steps, batched_variants

            steps, device = batched_steps(build_pipeline(spec, 0), spec), torch.device(side)
            make = lambda b=batch: batched_variants(b, steps, per_image[: len(b)], 0, device, batch_size)  # noqa: E731
        # Imports, first calls, CUDA's context and kernels: paid once per run, not per image.
        rate(lambda: make(batch[:32]), 32)
        out[key] = rate(make, len(batch))
        if side == "albumentations":
            out[f"sink {key}"] = sink_rate(np.stack(list(make())))
    return out


def run_side(side: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--side",
        side,
        "--sizes",
        args.sizes,
        "--images",
        str(args.images),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine_line() -> str:
    import cv2
    import torch

    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA GPU"
    return (
        f"machine: {os.uname().machine}, {os.cpu_count()} CPUs{gpu}; Python {sys.version.split()[0]}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="32x1,128x3,224x3", help="SIDExCHANNELS, comma-separated")
    parser.add_argument(
        "--images", type=int, default=0, help="images per size, at most 1797 (default 1500, 500, 300 by size)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch and OpenCV (default: theirs)")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # a child process measuring one side
    args = parser.parse_args()
    if args.side:
        print(json.dumps(one_side(args.side, sizes_of(args.sizes), args.images, args.batch_size, args.threads)))
        return

    import torch

    sides = ["albumentations", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.repeats):
        for side in sides:
            runs[side].append(run_side(side, args))
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()}
    print(machine_line() + (f"; --threads {args.threads}" if args.threads else ""))
    print(
        "| images | albumentations (cpu) img/s | batched on CPU img/s | batched on CUDA img/s | "
        "best batched / albumentations | write + hash img/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for key in med["cpu"]:
        alb, cpu, cuda = med["albumentations"][key], med["cpu"][key], med.get("cuda", {}).get(key)
        on_cuda = f"{cuda:,.0f}" if cuda else "n/a"
        print(
            f"| {key} | {alb:,.0f} | {cpu:,.0f} | {on_cuda} | {max(cpu, cuda or 0) / alb:.2f}x | "
            f"{med['albumentations'][f'sink {key}']:,.0f} |"
        )


if __name__ == "__main__":
    main()
