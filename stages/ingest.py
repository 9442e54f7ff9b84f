"""Ingest: read the source, decode to uint8 at a fixed size, and split train/val/test.

Outputs (see dvc.yaml): ``data/ingest/`` (one array file per split, the class names, the
manifest and the decode settings), ``reports/ingest.json`` (counts per class per split,
skipped files with reasons, duplicates, conflicts, imbalance ratio),
``reports/ingest_samples.png``, and the val/test images that nearly copy an earlier
split's in ``reports/near_duplicates.csv`` and ``.png``. Counts and reports go to ingest's
MLflow run, a child of the pipeline's run.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from imgpipe.errors import run_stage
from imgpipe.ingest.selection import ingest_report, report_metrics, select_splits
from imgpipe.ingest.sources import (
    BUILT_IN,
    SourceImages,
    check_bad_files,
    decode_settings,
    load_source,
    source_kind,
    source_path,
)
from imgpipe.params.ingest import IngestConfig
from imgpipe.paths import Paths
from imgpipe.store import ingested
from imgpipe.store.atomic import scratch_folder, write_csv, write_json
from imgpipe.tracking.stage_run import recorded
from imgpipe.viz.grids import class_samples, pair_grid, save_png

LEAK_COLUMNS = ["split", "file", "copy_of_split", "copy_of", "distance", "action"]


def main() -> None:
    paths = Paths.discover()
    cfg = IngestConfig.load(paths.params)
    warn_if_untracked(cfg, paths)

    with recorded(paths, "ingest", then="ingest decodes the source again") as record:
        # Image files are decoded to a file beside data/ingest, not to memory, so a collection
        # bigger than memory can be ingested; it is gone once data/ingest is written.
        with scratch_folder(paths.ingested) as scratch:
            report = ingest(cfg, paths, load_source(cfg, paths.root, scratch))
        record.metrics(report_metrics(report))
        record.files(
            [paths.ingest_report, paths.ingest_samples, paths.near_duplicates_table, paths.near_duplicates_picture]
        )


def ingest(cfg: IngestConfig, paths: Paths, source: SourceImages) -> dict:
    print(
        f"ingest: {len(source.ids)} of {source.scanned} images decoded, {len(source.classes)} classes, from '{cfg.source}'"
    )
    for bad in source.skipped:
        print(f"ingest: skipped {bad['file']}: {bad['reason']}")
    for warning in source.warnings:  # shards cut short or damaged: images lost without a file to name
        print(f"ingest: warning: {warning}")
    check_bad_files(source, cfg.max_bad_fraction)

    dedup, keep, splits, leaks = select_splits(source, cfg)
    # How the pixels were made, so `imgpipe predict` prepares new images the same way.
    ingested.write(paths.ingested, source.classes, splits, preprocessing=asdict(decode_settings(cfg)))
    report = ingest_report(cfg, source, dedup, keep, splits, leaks)
    for warning in report["warnings"][len(source.warnings) :]:  # classes a split lacks
        print(f"ingest: warning: {warning}")
    write_json(paths.ingest_report, report)
    train = splits["train"]
    save_png(class_samples(train.images, train.labels, source.classes), paths.ingest_samples)
    write_leaks(paths, source, leaks)

    sizes = ", ".join(f"{name} {len(s)}" for name, s in splits.items())
    summary = report["summary"]
    print(
        f"ingest: kept {summary['kept']} ({sizes}); skipped {summary['skipped']} bad files; removed "
        f"{summary['duplicates_removed']} duplicate copies and {summary['conflicts_removed']} conflicting files; "
        f"train imbalance ratio {report['imbalance_ratio']}"
        + (f"; {summary['warnings']} warning(s), above and in reports/ingest.json" if summary["warnings"] else "")
    )
    return report


def write_leaks(paths: Paths, source: SourceImages, leaks: list[dict]) -> None:
    """The near duplicates across splits as a table, and the first 24 pairs side by side."""
    write_csv(paths.near_duplicates_table, pd.DataFrame(leaks, columns=LEAK_COLUMNS))
    shown = leaks[:24]
    pairs = [(source.images[leak["row"]], source.images[leak["copy_of_row"]]) for leak in shown]
    captions = [
        (
            f"{leak['split']}: {Path(leak['file']).name}",
            f"~{leak['copy_of_split']} ({leak['distance']}): {Path(leak['copy_of']).name}",
        )
        for leak in shown
    ]
    save_png(pair_grid(pairs, captions, "no near duplicates across splits"), paths.near_duplicates_picture)
    if leaks:
        what = "dropped from" if leaks[0]["action"] == "dropped" else "kept in (ingest.near_duplicates: keep)"
        print(
            f"ingest: {len(leaks)} val/test images nearly copy an earlier split's image, {what} val/test: "
            f"{paths.near_duplicates_table.relative_to(paths.root)}"
        )


def warn_if_untracked(cfg: IngestConfig, paths: Paths) -> None:
    """dvc.yaml makes ingest depend on raw/; images elsewhere change behind DVC's back."""
    if source_kind(cfg, paths.root) in BUILT_IN:
        return
    if not source_path(cfg, paths.root).resolve().is_relative_to(paths.raw.resolve()):
        print(
            f"ingest: note: {cfg.source} is outside raw/, so `dvc repro` will not notice when its files change (see docs/how-to/versioning.md)."
        )


if __name__ == "__main__":
    run_stage(main)
