"""Augment: write seeded, augmented variants of every training image beside the originals.

Outputs (see dvc.yaml): ``data/augment/`` (originals plus ``augment.copies`` variants
each, and ``pipeline.json``, the exact albumentations pipeline) and
``reports/augment_preview.png`` (originals next to their variants).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgpipe.augmentation import augment_variants, build_pipeline, pipeline_dict, variants_per_image
from imgpipe.config import AugmentConfig, Paths
from imgpipe.errors import run_stage
from imgpipe.storage import Split, class_counts, pixel_hash, read_classes, read_split, write_dataset, write_json
from imgpipe.visualize import image_grid, save_png

PREVIEW_COPIES = 4


def main() -> None:
    paths = Paths.discover()
    cfg = AugmentConfig.load(paths.params)
    # Build first: a bad transform name or argument stops the stage before any work.
    pipeline = build_pipeline(cfg.transforms, cfg.seed)

    classes = read_classes(paths.ingested)
    train = read_split(paths.balanced, "train")
    per_image = variants_per_image(train.labels, cfg.copies, cfg.mode)
    print(f"augment: {len(train)} training images, {per_image.sum()} augmented variants ({cfg.mode} mode)")

    variants = augment_variants(train.images, pipeline, per_image)
    parent = np.repeat(np.arange(len(train)), per_image)
    copy_no = np.concatenate([np.arange(k) for k in per_image]) if len(per_image) else np.array([], dtype=np.int64)
    extra = train.manifest.iloc[parent].reset_index(drop=True)
    extra["id"] = [f"{i}#aug{k}" for i, k in zip(extra["id"], copy_no)]
    extra["sha256"] = [pixel_hash(v) for v in variants]
    extra["origin"] = "augmented"

    images = np.concatenate([np.asarray(train.images), variants])
    manifest = pd.concat([train.manifest, extra], ignore_index=True)
    write_dataset(paths.augmented, classes, {"train": Split(images, manifest)})
    write_json(paths.augmented / "pipeline.json", pipeline_dict(pipeline))

    save_png(preview(train, classes, cfg), paths.augment_preview)
    after = class_counts(manifest["label"], classes)
    print(f"augment: wrote {len(images)} training images; per class: {after}; preview in {paths.augment_preview.name}")


def preview(train: Split, classes: list[str], cfg: AugmentConfig):
    """One row per class: its first original, then fresh variants from the same pipeline."""
    demo = build_pipeline(cfg.transforms, cfg.seed)
    rows, labels = [], []
    for label, name in enumerate(classes):
        members = np.flatnonzero(train.labels == label)
        if len(members) == 0:
            continue
        original = np.asarray(train.images[members[0]])
        rows.append([original] + [demo(image=original)["image"] for _ in range(PREVIEW_COPIES)])
        labels.append(name)
    return image_grid(rows, labels, ["original"] + [f"augmented {k + 1}" for k in range(PREVIEW_COPIES)])


if __name__ == "__main__":
    run_stage(main)
