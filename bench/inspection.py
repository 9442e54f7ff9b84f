"""Near duplicates across splits and likely label errors on a shared image folder (issue #16).

0. How far apart perceptual hashes are: copies of hymenoptera's photos resized and
   recompressed, or cropped (evenly, or off one corner), against their originals; and
   the nearest distinct picture in digits, hymenoptera and brain-mri.
1. The best hand-picked brain-mri row (bench/tune.py's HAND_PICKED) with
   ``ingest.near_duplicates`` keep and drop, on seeds 0, 1 and 2 (a seed sets the split):
   how many val/test images nearly copy a train image, and what keeping them does to the
   test score.
2. On seed 0 with the copies dropped: ``imgpipe inspect`` with the model's features and
   with ImageNet features; how many likely label errors each finds, per split. The
   pictures (near_duplicates.png, label_issues.png, gradcam.png) are copied to --out to be
   looked at; the images have no stated licence, so they stay out of the repository.

    python bench/inspection.py --out /tmp/inspect-brain-mri      # about 12 minutes on 2 CPUs
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from shared_data import SHARED  # noqa: E402
from tune import HAND_PICKED, seeded  # noqa: E402

sys.path.insert(0, str(REPO / "src"))  # this checkout's imgpipe, so the sandbox copies this checkout
from imgpipe.sandbox import copy_project  # noqa: E402  the same project copy the tests make


def hash_distances() -> None:
    """Bits between a picture and its altered copy, and to the nearest other picture."""

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from imgpipe.ingest.near_duplicates import nearest, perceptual_hashes

    def hashed(images: list, size: int = 64) -> np.ndarray:
        return perceptual_hashes(np.stack([np.asarray(im.convert("RGB").resize((size, size))) for im in images]))

    photos = [Image.open(p) for p in sorted((SHARED / "hymenoptera").rglob("*.jpg"))[:100]]
    originals = hashed(photos)
    for name, alter in ALTERATIONS.items():
        dist = nearest(hashed([alter(im) for im in photos]), originals)[1]
        print(
            f"hashes: {name}: bits from its original, median {np.median(dist):.0f}, 90th percentile "
            f"{np.percentile(dist, 90):.0f}, max {dist.max()} ({(dist <= 4).mean():.0%} within 4)"
        )
    digits = np.clip(load_digits().images * 16, 0, 255).astype(np.uint8)
    sets = {
        "digits (8x8, at 32 px)": [Image.fromarray(d).resize((32, 32), Image.Resampling.BICUBIC) for d in digits],
        "hymenoptera": photos,
        "brain-mri": [Image.open(p) for p in sorted((SHARED / "brain-mri").rglob("*.*"))],
    }
    for name, images in sets.items():
        h = hashed(images)
        dist = np.array([nearest(h[i : i + 1], np.delete(h, i, axis=0))[1][0] for i in range(len(h))])
        counts = ", ".join(f"{d}: {c}" for d, c in zip(*np.unique(np.minimum(dist, 10), return_counts=True)))
        print(f"hashes: {name}, {len(h)} images: bits to the nearest other image (10 = 10 or more): {counts}")


def _jpeg(image):
    import io

    from PIL import Image

    out = io.BytesIO()
    image.convert("RGB").resize((image.width // 2, image.height // 2)).save(out, format="JPEG", quality=40)
    return Image.open(out)


def _crop(left: float, top: float, right: float, bottom: float):
    return lambda im: im.crop(
        (int(im.width * left), int(im.height * top), int(im.width * (1 - right)), int(im.height * (1 - bottom)))
    )


ALTERATIONS = {
    "half size, JPEG quality 40": _jpeg,
    "5% off each side": _crop(0.05, 0.05, 0.05, 0.05),
    "10% off each side": _crop(0.1, 0.1, 0.1, 0.1),
    "10% off the top and left": _crop(0.1, 0.1, 0, 0),
    "15% off the left": _crop(0.15, 0, 0, 0),
}


def run_row(root: Path, folder: Path, near_duplicates: str, seed: int):
    project = copy_project(root)
    project.set_params(HAND_PICKED)
    project.set_params({"ingest": {"source": str(folder), "near_duplicates": near_duplicates}})
    project.set_params(seeded(seed))
    project.run("dvc", "repro", timeout=None)
    metrics = json.loads((project.root / "metrics.json").read_text())
    report = json.loads((project.root / "reports" / "ingest.json").read_text())
    leaks = pd.read_csv(project.root / "reports" / "near_duplicates.csv")
    return project, {
        "test": metrics["test"]["balanced_accuracy"],
        "test_images": report["total"]["test"],
        "val_images": report["total"]["val"],
        "leaks_val": int((leaks["split"] == "val").sum()),
        "leaks_test": int((leaks["split"] == "test").sum()),
        "exact_duplicates": report["summary"]["duplicates_removed"],
        "distances": leaks["distance"].value_counts().sort_index().to_dict(),
    }


def inspect(project, out: Path) -> dict:
    """``imgpipe inspect`` with both kinds of features; the issue counts and the pictures."""
    found = {}
    reports = project.root / "reports"
    for features in ("model", "imagenet"):
        print(
            project.run(sys.executable, "-m", "imgpipe.cli", "inspect", "--features", features, timeout=None).stdout,
            flush=True,
        )
        table = pd.read_csv(reports / "label_issues.csv")
        found[features] = {"total": len(table), **table["split"].value_counts().to_dict()}
        shutil.copy(reports / "label_issues.csv", out / f"label_issues-{features}.csv")
        shutil.copy(reports / "label_issues.png", out / f"label_issues-{features}.png")
    for name in ("near_duplicates.png", "near_duplicates.csv", "gradcam.png"):
        shutil.copy(reports / name, out / name)
    shutil.copy(project.root / "embeddings" / "map.png", out / "embeddings-map.png")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="brain-mri")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("/tmp/inspect-brain-mri"))
    args = parser.parse_args()
    folder = SHARED / args.dataset
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing (see ../shared/datasets/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    hash_distances()
    rows: dict[str, list[dict]] = {"keep": [], "drop": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for mode in ("keep", "drop"):
                project, row = run_row(Path(tmp) / f"{mode}-{seed}", folder, mode, seed)
                rows[mode].append(row)
                print(f"seed {seed}, near_duplicates {mode}: {row}", flush=True)
                if mode == "drop" and seed == args.seeds[0]:
                    issues = inspect(project, args.out)
    print(f"\nlabel issues (seed {args.seeds[0]}): {json.dumps(issues)}; pictures in {args.out}")
    print(
        "\n| ingest.near_duplicates | val/test images that copy an earlier split's (val + test) | test images "
        "| test balanced accuracy, mean | sd | each seed |"
    )
    print("|---|---|---:|---:|---:|---|")
    for mode, runs in rows.items():
        scores = [r["test"] for r in runs]
        leaks = ", ".join(f"{r['leaks_val']} + {r['leaks_test']}" for r in runs)
        print(
            f"| {mode} | {leaks} | {', '.join(str(r['test_images']) for r in runs)} | "
            f"{statistics.mean(scores):.3f} | {statistics.stdev(scores) if len(scores) > 1 else 0:.3f} | "
            f"{', '.join(f'{s:.3f}' for s in scores)} |"
        )


if __name__ == "__main__":
    main()
