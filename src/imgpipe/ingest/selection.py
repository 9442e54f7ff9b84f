"""Which decoded images ingest keeps, and in which split: duplicates out, an optional long
tail, then the split; and the report that accounts for every file."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgpipe.ingest.duplicates import Deduplicated, deduplicate
from imgpipe.ingest.sources import SourceImages
from imgpipe.ingest.splitting import assign_splits, check_classes, imbalance_ratio, long_tail_pool
from imgpipe.params.ingest import IngestConfig
from imgpipe.store.dataset import Split, class_counts, make_manifest
from imgpipe.store.stacked import Stacked


def select_splits(source: SourceImages, cfg: IngestConfig) -> tuple[Deduplicated, np.ndarray, dict[str, Split]]:
    """Deduplicate, thin to a long tail if asked, and split; returns the dedup record,
    the kept rows of ``source`` and each split (pixels as views, not copies)."""
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
        splits[name] = Split(images=Stacked.of(source.images).take(rows), manifest=manifest)
    check_classes({name: class_counts(s.labels, source.classes) for name, s in splits.items()})
    return dedup, keep, splits


def ingest_report(cfg: IngestConfig, source: SourceImages, dedup: Deduplicated, keep: np.ndarray,
                  splits: dict[str, Split]) -> dict[str, Any]:
    """Counts per class per split, and every file scanned accounted for: kept, skipped,
    a removed copy or conflict, or thinned out for the long tail."""
    counts = {name: class_counts(s.labels, source.classes) for name, s in splits.items()}
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
            "kept": sum(len(s) for s in splits.values()),
        },
        "skipped": source.skipped,
        "duplicates": dedup.duplicates,
        "conflicts": dedup.conflicts,
    }
