"""Augment speed: imgpipe's albumentations pipeline against the same transforms in torchvision v2.

The pipeline is the default one in params.yaml (Affine with rotation, scale and
translation, then RandomBrightnessContrast at p=0.5); the torchvision side is
``v2.RandomAffine`` plus ``v2.RandomApply([v2.ColorJitter(...)], p=0.5)`` with the same
ranges. Both run single-threaded on the same images, each in its native layout (NumPy
HWC for albumentations, a uint8 CHW tensor for torchvision, converted beforehand), and
the variants are interleaved and repeated so the ratio is measured side by side.

    python bench/augment.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def images(size: int, channels: int, n: int) -> np.ndarray:
    from PIL import Image
    from sklearn.datasets import load_digits

    scans = np.clip(load_digits().images[:n] * 16, 0, 255).astype(np.uint8)
    out = [
        np.asarray(
            Image.fromarray(s).resize((size, size), Image.Resampling.BICUBIC).convert("L" if channels == 1 else "RGB")
        )
        for s in scans
    ]
    return np.stack([o[..., None] if o.ndim == 2 else o for o in out])


def albumentations_run(batch: np.ndarray) -> float:
    import yaml

    from imgpipe.augment.pipeline import build_pipeline

    spec = yaml.safe_load((REPO / "params.yaml").read_text())["augment"]["transforms"]
    pipeline = build_pipeline(spec, seed=0)
    start = time.perf_counter()
    for image in batch:
        pipeline(image=image)
    return len(batch) / (time.perf_counter() - start)


def torchvision_run(batch: np.ndarray) -> float:
    import torch
    from torchvision.transforms import v2

    torch.manual_seed(0)
    pipeline = v2.Compose(
        [
            v2.RandomApply([v2.RandomAffine(degrees=12, translate=(0.08, 0.08), scale=(0.9, 1.1))], p=0.9),
            v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2)], p=0.5),
        ]
    )
    tensors = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))) for im in batch]
    start = time.perf_counter()
    for t in tensors:
        pipeline(t)
    return len(batch) / (time.perf_counter() - start)


def main() -> None:
    import torch

    torch.set_num_threads(1)  # one core each, like one loader worker
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("| images | albumentations img/s | torchvision v2 img/s | ratio (albumentations / torchvision) |")
    print("|---|---:|---:|---:|")
    for size, channels, n in [(32, 1, 1500), (128, 3, 500), (224, 3, 300)]:
        batch = images(size, channels, n)
        alb, tv = [], []
        for _ in range(3):
            alb.append(albumentations_run(batch))
            tv.append(torchvision_run(batch))
        a, t = statistics.median(alb), statistics.median(tv)
        print(f"| {n} x {size}x{size}x{channels} | {a:,.0f} | {t:,.0f} | {a / t:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
