"""Ingest: read the source, decode to uint8 at a fixed size, and split train/val/test.

Outputs (see dvc.yaml): ``data/ingest/`` (a few array files and a manifest) and
``reports/ingest.json`` (counts per class per split and the imbalance ratio).
"""

from __future__ import annotations

from imgpipe.config import IngestConfig, Paths
from imgpipe.errors import run_stage
from imgpipe.sources import load_source
from imgpipe.splitting import imbalance_ratio, long_tail_indices, stratified_split
from imgpipe.storage import Split, class_counts, make_manifest, write_dataset, write_json


def main() -> None:
    paths = Paths.discover()
    cfg = IngestConfig.load(paths.params)

    source = load_source(cfg)
    print(f"ingest: {len(source.ids)} images in {len(source.classes)} classes from '{cfg.source}'")

    # Make the data long-tailed before splitting, so val and test share train's profile.
    keep = long_tail_indices(source.labels, cfg.imbalance_ratio, cfg.seed)
    labels = source.labels[keep]
    parts = stratified_split(labels, cfg.val_fraction, cfg.test_fraction, cfg.seed, source.classes)

    splits = {}
    for name, idx in parts.items():
        rows = keep[idx]
        splits[name] = Split(
            images=source.images[rows],
            manifest=make_manifest(
                ids=[source.ids[i] for i in rows],
                labels=source.labels[rows],
                classes=source.classes,
                split=name,
                sha256=[source.sha256[i] for i in rows],
                origin="original",
            ),
        )
    write_dataset(paths.ingested, source.classes, splits)

    counts = {name: class_counts(s.labels, source.classes) for name, s in splits.items()}
    report = {
        "source": cfg.source,
        "image_shape": list(source.images.shape[1:]),
        "classes": source.classes,
        "total": {name: len(s) for name, s in splits.items()},
        "counts": counts,
        "imbalance_ratio": imbalance_ratio(counts["train"]),
        "kept": int(len(keep)),
        "dropped_for_long_tail": int(len(source.ids) - len(keep)),
    }
    write_json(paths.ingest_report, report)
    sizes = ", ".join(f"{name} {len(s)}" for name, s in splits.items())
    print(f"ingest: kept {len(keep)} ({sizes}); train imbalance ratio {report['imbalance_ratio']}")


if __name__ == "__main__":
    run_stage(main)
