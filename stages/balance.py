"""Balance: even out the classes of the train split, with imbalanced-learn or in training.

Outputs (see dvc.yaml): ``data/balance/`` (the train split after resampling, and the class
weights that ``class_weight`` and ``weighted_sampler`` hand to train), ``reports/balance.json``
(counts per class before and after), ``reports/balance_counts.png`` and
``reports/balance_synthetic.png`` (synthetic images next to their class's originals, when
the method makes any). Val and test stay in ``data/ingest/``, untouched. Counts before and
after go to balance's MLflow run, a child of the pipeline's run.
"""

from __future__ import annotations

from imgpipe.balance.pictures import plot_class_counts, synthetic_preview
from imgpipe.balance.resampling import check_size, class_weights, make_sampler, planned_total, provenance, resample
from imgpipe.errors import run_stage
from imgpipe.params.balance import WEIGHTING, BalanceConfig
from imgpipe.paths import Paths
from imgpipe.store import balanced, ingested
from imgpipe.store.atomic import write_json
from imgpipe.store.balanced import Weighting
from imgpipe.store.dataset import Split, class_counts, make_manifest
from imgpipe.tracking.stage_run import recorded
from imgpipe.viz.grids import save_png


def main() -> None:
    paths = Paths.discover()
    cfg = BalanceConfig.load(paths.params)

    with recorded(paths, "balance", then="balance resamples the train split again") as record:
        report = balance(cfg, paths)
        record.metrics({key: report[key] for key in ("before", "after", "total_before", "total_after", "synthetic")})
        record.files([paths.balance_report, paths.balance_counts, paths.balance_synthetic])


def balance(cfg: BalanceConfig, paths: Paths) -> dict:
    """Resample, write data/balance and the pictures; return the report it wrote."""
    classes = ingested.read_classes(paths.ingested)
    train = ingested.read_split(paths.ingested, "train")
    planned = planned_total(cfg, classes, train.labels)
    check_size(cfg, planned)
    print(f"balance: {cfg.method}: {len(train)} training images in, up to {planned:,} out")
    out = resample(train.images, train.labels, make_sampler(cfg, classes, train.labels))

    ids, hashes, origin = provenance(out, list(train.manifest["id"]), list(train.manifest["sha256"]), cfg.method)
    manifest = make_manifest(ids=ids, labels=out.labels, classes=classes, split="train", sha256=hashes, origin=origin)
    # class_weight and weighted_sampler keep the data and tell train how to weigh it.
    weights = class_weights(train.labels, classes)
    weighting = Weighting(
        cfg.method,
        loss_weights=weights if cfg.method == "class_weight" else None,
        sampler_weights=weights if cfg.method == "weighted_sampler" else None,
    )
    balanced.write(paths.balanced, classes, Split(out.images, manifest), weighting)

    before, after = class_counts(train.labels, classes), class_counts(out.labels, classes)
    synthetic = int((out.source_index < 0).sum())
    report = {
        "method": cfg.method,
        "before": before,
        "after": after,
        "total_before": len(train),
        "total_after": len(out.labels),
        "synthetic": synthetic,
        "training": weighting.to_dict(),
        "note": out.note,
    }
    write_json(paths.balance_report, report)
    if out.note:
        print(f"balance: note: {out.note}")
    plot_class_counts(before, after, f"balance.method: {cfg.method}", paths.balance_counts)
    save_png(synthetic_preview(out.images, out.labels, out.source_index, classes), paths.balance_synthetic)

    print(f"balance: {cfg.method}: {len(train)} -> {len(out.labels)} training images ({synthetic} synthetic)")
    for name in classes:
        print(f"  {name:>12}: {before[name]:5d} -> {after[name]:5d}")
    if cfg.method in WEIGHTING:
        print(f"balance: data unchanged; train uses these class weights: {weights}")
    return report


if __name__ == "__main__":
    run_stage(main)
