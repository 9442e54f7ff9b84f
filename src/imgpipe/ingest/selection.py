"""Which decoded images ingest keeps, and in which split: duplicates out, an optional long
tail, then the split; and the report that accounts for every file."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgpipe.ingest.duplicates import Deduplicated, deduplicate
from imgpipe.ingest.near_duplicates import find_leaks, perceptual_hashes
from imgpipe.ingest.sources import SourceImages
from imgpipe.ingest.splitting import absent_classes, assign_splits, check_classes, imbalance_ratio, long_tail_pool
from imgpipe.params.ingest import IngestConfig
from imgpipe.store.dataset import Split, class_counts, make_manifest
from imgpipe.store.stacked import Stacked


def select_splits(source: SourceImages, cfg: IngestConfig) -> tuple[Deduplicated, np.ndarray, dict[str, Split], list]:
    """Deduplicate, thin to a long tail if asked, split, and take near duplicates of
    train out of val and test; returns the dedup record, the kept rows of ``source``,
    each split (pixels as views, not copies) and the near duplicates found across splits
    (their ``row`` and ``copy_of_row``: rows of ``source``)."""
    # Exact duplicates go before splitting, so no image can sit in two splits.
    dedup = deduplicate(source.sha256, source.labels, source.ids, source.classes)
    keep = dedup.keep
    if cfg.imbalance_ratio > 1 and (source.builtin or cfg.long_tail == "all"):
        keep = keep[long_tail_pool(source.labels[keep], source.splits[keep], cfg.imbalance_ratio, cfg.seed)]
    parts = assign_splits(
        source.labels[keep], source.splits[keep], cfg.val_fraction, cfg.test_fraction, cfg.seed, source.classes
    )
    parts, leaks = near_duplicates(source, keep, parts, cfg)
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
        splits[name] = Split(images=Stacked.of(source.images).take(rows), manifest=manifest)
    check_classes({name: class_counts(s.labels, source.classes) for name, s in splits.items()})
    return dedup, keep, splits, leaks


def near_duplicates(
    source: SourceImages, keep: np.ndarray, parts: dict[str, np.ndarray], cfg: IngestConfig
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Find val/test images that nearly copy an earlier split's; drop them if asked."""
    hashes = perceptual_hashes(Stacked.of(source.images).take(keep))
    ids = [source.ids[i] for i in keep]
    parts, leaks = find_leaks(parts, hashes, ids, cfg.near_duplicate_distance, drop=cfg.near_duplicates == "drop")
    for leak in leaks:  # rows of source, for the pictures of the pairs
        leak["row"], leak["copy_of_row"] = int(keep[leak["row"]]), int(keep[leak["copy_of_row"]])
    return parts, leaks


def ingest_report(
    cfg: IngestConfig,
    source: SourceImages,
    dedup: Deduplicated,
    keep: np.ndarray,
    splits: dict[str, Split],
    leaks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Counts per class per split, and every file scanned accounted for: kept, skipped,
    a removed copy or conflict, or thinned out for the long tail."""
    counts = {name: class_counts(s.labels, source.classes) for name, s in splits.items()}
    warnings = source.warnings + absent_classes(counts)
    return {
        "source": cfg.source,
        "image_shape": list(source.images.shape[1:]),
        "classes": source.classes,
        "total": {name: len(s) for name, s in splits.items()},
        "counts": counts,
        "imbalance_ratio": imbalance_ratio(counts["train"]),
        "summary": {
            "scanned": source.scanned,
            "decoded": len(source.ids),
            "skipped": len(source.skipped),
            "duplicates_removed": dedup.copies_removed,
            "conflicts_removed": dedup.conflicts_removed,
            "dropped_for_long_tail": len(dedup.keep) - len(keep),
            "near_duplicates_found": len(leaks),
            "near_duplicates_dropped": sum(leak["action"] == "dropped" for leak in leaks),
            "kept": sum(len(s) for s in splits.values()),
            "warnings": len(warnings),
        },
        "warnings": warnings,
        "skipped": source.skipped,
        "duplicates": dedup.duplicates,
        "conflicts": dedup.conflicts,
        "near_duplicates": [{k: v for k, v in leak.items() if not k.endswith("row")} for leak in leaks],
    }


def report_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers of an ingest report, as the metrics of ingest's MLflow run: what was
    decoded, skipped and removed, images per split and per class, and the imbalance."""
    return {
        **report["summary"],
        "imbalance_ratio": report["imbalance_ratio"],
        "images": report["total"],
        "count": report["counts"],
    }
