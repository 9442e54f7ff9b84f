"""Augment: write seeded, augmented variants of every training image beside the originals.

Outputs (see dvc.yaml): ``data/augment/`` (the variants' pixels, references to the
originals they sit beside, and the exact albumentations pipeline) and
``reports/augment_preview.png`` (originals next to variants). Images written and images/s go
to augment's MLflow run, a child of the pipeline's run.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from imgpipe.augment.device import variant_maker
from imgpipe.augment.pipeline import (
    build_pipeline,
    check_pipeline,
    pipeline_dict,
    preview,
    save_variants,
    variants_manifest,
    variants_per_image,
)
from imgpipe.errors import run_stage
from imgpipe.params.augment import AugmentConfig
from imgpipe.paths import Paths
from imgpipe.store import augmented, balanced, ingested
from imgpipe.store.atomic import scratch_folder
from imgpipe.store.dataset import Split, class_counts
from imgpipe.store.stacked import Stacked
from imgpipe.tracking.stage_run import recorded
from imgpipe.viz.grids import save_png


def main() -> None:
    paths = Paths.discover()
    cfg = AugmentConfig.load(paths.params)
    # Build first: a bad transform name or argument stops the stage before any work.
    pipeline = build_pipeline(cfg.transforms, cfg.seed)
    # albumentations per image (augment.device: cpu), or batches on the GPU: also checked now.
    make_variants = variant_maker(cfg.device, pipeline, cfg.transforms, cfg.seed)

    with recorded(paths, "augment", then="augment writes the variants again") as record:
        written, seconds, after = augment(cfg, paths, pipeline, make_variants)
        record.metrics(
            {
                "images_written": written,
                "images_per_second": written / max(seconds, 1e-9),
                "augment_seconds": seconds,
                "count": after,
            }
        )
        record.files([paths.augment_preview, augmented.pipeline_path(paths.augmented)])


def augment(cfg: AugmentConfig, paths: Paths, pipeline: Any, make_variants: Any) -> tuple[int, float, dict]:
    """Write data/augment and the preview; return the variants written, the seconds it took
    to make and write them, and the training images per class."""
    classes = ingested.read_classes(paths.ingested)
    train = balanced.read_train(paths.balanced)
    check_pipeline(pipeline, cfg.transforms, train.images[0])
    per_image = variants_per_image(train.labels, cfg.copies, cfg.mode)
    print(f"augment: {len(train)} training images, {per_image.sum()} augmented variants ({cfg.mode} mode)")

    # Variants go to a file as they are made, not to memory; the kept rows stay references.
    with scratch_folder(paths.augmented) as scratch:
        started = time.perf_counter()
        variants, hashes = save_variants(
            make_variants(train.images, per_image), scratch / "variants.u8", train.images.shape[1:]
        )
        seconds = time.perf_counter() - started
        images = Stacked.concat([train.images, variants])
        manifest = pd.concat([train.manifest, variants_manifest(train, per_image, hashes)], ignore_index=True)
        augmented.write(paths.augmented, classes, Split(images, manifest), pipeline_dict(pipeline))

    save_png(preview(train, classes, cfg.transforms, cfg.seed), paths.augment_preview)
    after = class_counts(manifest["label"], classes)
    print(
        f"augment: wrote {len(images)} training images ({len(variants)} new); per class: {after}; "
        f"preview in {paths.augment_preview.name}"
    )
    return len(variants), seconds, after


if __name__ == "__main__":
    run_stage(main)
