"""Ingest: read the source, decode to uint8 at a fixed size, and split train/val/test.

Outputs (see dvc.yaml): ``data/ingest/`` (one array file per split, ``classes.json`` and
``manifest.csv``), ``reports/ingest.json`` (counts per class per split, skipped files with
reasons, duplicates, conflicts, imbalance ratio) and ``reports/ingest_samples.png``.
"""

from __future__ import annotations

from dataclasses import asdict

from imgpipe.config import IngestConfig, Paths
from imgpipe.duplicates import deduplicate
from imgpipe.errors import run_stage
from imgpipe.sources import check_bad_files, decode_settings, load_source
from imgpipe.splitting import assign_splits, check_classes, imbalance_ratio, long_tail_pool
from imgpipe.storage import Rows, Split, class_counts, make_manifest, write_dataset, write_json
from imgpipe.visualize import class_samples, save_png


def main() -> None:
    paths = Paths.discover()
    cfg = IngestConfig.load(paths.params)
    warn_if_untracked(cfg, paths)

    source = load_source(cfg, paths.root)
    print(f"ingest: {len(source.ids)} of {source.scanned} images decoded, {len(source.classes)} classes, from '{cfg.source}'")
    for bad in source.skipped:
        print(f"ingest: skipped {bad['file']}: {bad['reason']}")
    check_bad_files(source, cfg.max_bad_fraction)

    # Exact duplicates go before splitting, so no image can sit in two splits.
    dedup = deduplicate(source.sha256, source.labels, source.ids, source.classes)
    keep = dedup.keep
    if cfg.imbalance_ratio > 1 and (source.builtin or cfg.long_tail == "all"):
        keep = keep[long_tail_pool(source.labels[keep], source.splits[keep], cfg.imbalance_ratio, cfg.seed)]
    parts = assign_splits(source.labels[keep], source.splits[keep], cfg.val_fraction, cfg.test_fraction, cfg.seed, source.classes)

    splits = {}
    for name, idx in parts.items():
        rows = keep[idx]
        manifest = make_manifest(
            ids=[source.ids[i] for i in rows],
            labels=source.labels[rows],
            classes=source.classes,
            split=name,
            sha256=[source.sha256[i] for i in rows],
            origin="original",
        )
        splits[name] = Split(images=Rows(source.images, rows), manifest=manifest)
    counts = {name: class_counts(s.labels, source.classes) for name, s in splits.items()}
    check_classes(counts)

    # How the pixels were made, so `imgpipe predict` prepares new images the same way.
    preprocessing = asdict(decode_settings(cfg))
    write_dataset(paths.ingested, source.classes, splits, extra={"preprocessing.json": preprocessing})
    report = {
        "source": cfg.source,
        "image_shape": list(source.images.shape[1:]),
        "classes": source.classes,
        "total": {name: len(s) for name, s in splits.items()},
        "counts": counts,
        "imbalance_ratio": imbalance_ratio(counts["train"]),
        # Every file scanned is accounted for: kept, skipped, a removed copy or thinned out.
        "summary": {
            "scanned": source.scanned,
            "decoded": len(source.ids),
            "skipped": len(source.skipped),
            "duplicates_removed": dedup.copies_removed,
            "conflicts_removed": dedup.conflicts_removed,
            "dropped_for_long_tail": len(dedup.keep) - len(keep),
            "kept": sum(len(s) for s in splits.values()),
        },
        "skipped": source.skipped,
        "duplicates": dedup.duplicates,
        "conflicts": dedup.conflicts,
    }
    write_json(paths.ingest_report, report)
    train = splits["train"]
    save_png(class_samples(train.images, train.labels, source.classes), paths.ingest_samples)

    sizes = ", ".join(f"{name} {len(s)}" for name, s in splits.items())
    summary = report["summary"]
    print(
        f"ingest: kept {summary['kept']} ({sizes}); skipped {summary['skipped']} bad files; removed "
        f"{summary['duplicates_removed']} duplicate copies and {summary['conflicts_removed']} conflicting files; "
        f"train imbalance ratio {report['imbalance_ratio']}"
    )


def warn_if_untracked(cfg: IngestConfig, paths: Paths) -> None:
    """dvc.yaml makes ingest depend on raw/; images elsewhere change behind DVC's back."""
    if cfg.source == "digits" or cfg.source.startswith("torchvision:"):
        return
    if not (paths.root / cfg.source).resolve().is_relative_to(paths.raw.resolve()):
        print(f"ingest: note: {cfg.source} is outside raw/, so `dvc repro` will not notice when its files change (see README).")


if __name__ == "__main__":
    run_stage(main)
