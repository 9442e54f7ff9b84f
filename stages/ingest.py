"""Ingest: read the source, decode to uint8 at a fixed size, and split train/val/test.

Outputs (see dvc.yaml): ``data/ingest/`` (one array file per split, the class names, the
manifest and the decode settings), ``reports/ingest.json`` (counts per class per split,
skipped files with reasons, duplicates, conflicts, imbalance ratio) and
``reports/ingest_samples.png``.
"""

from __future__ import annotations

from dataclasses import asdict

from imgpipe.errors import run_stage
from imgpipe.ingest.selection import ingest_report, select_splits
from imgpipe.ingest.sources import SourceImages, check_bad_files, decode_settings, load_source
from imgpipe.params.ingest import IngestConfig
from imgpipe.paths import Paths
from imgpipe.store import ingested
from imgpipe.store.atomic import scratch_folder, write_json
from imgpipe.viz.grids import class_samples, save_png


def main() -> None:
    paths = Paths.discover()
    cfg = IngestConfig.load(paths.params)
    warn_if_untracked(cfg, paths)

    # Image files are decoded to a file beside data/ingest, not to memory, so a collection
    # bigger than memory can be ingested; it is gone once data/ingest is written.
    with scratch_folder(paths.ingested) as scratch:
        ingest(cfg, paths, load_source(cfg, paths.root, scratch))


def ingest(cfg: IngestConfig, paths: Paths, source: SourceImages) -> None:
    print(f"ingest: {len(source.ids)} of {source.scanned} images decoded, {len(source.classes)} classes, from '{cfg.source}'")
    for bad in source.skipped:
        print(f"ingest: skipped {bad['file']}: {bad['reason']}")
    check_bad_files(source, cfg.max_bad_fraction)

    dedup, keep, splits = select_splits(source, cfg)
    # How the pixels were made, so `imgpipe predict` prepares new images the same way.
    ingested.write(paths.ingested, source.classes, splits, preprocessing=asdict(decode_settings(cfg)))
    report = ingest_report(cfg, source, dedup, keep, splits)
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
