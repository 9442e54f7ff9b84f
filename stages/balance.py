"""Balance: even out the classes of the train split, with imbalanced-learn or in training.

Outputs (see dvc.yaml): ``data/balance/`` (the train split after resampling, and
``training.json``, the loss or sampler weights that ``class_weight`` and
``weighted_sampler`` hand to the train stage), ``reports/balance.json`` (counts per class
before and after), ``reports/balance_counts.png`` and ``reports/balance_synthetic.png``
(synthetic images next to their class's originals, when the method makes any). Val and
test stay in ``data/ingest/``, untouched.
"""

from __future__ import annotations

import numpy as np

from imgpipe.balancing import class_weights, make_sampler, provenance, resample
from imgpipe.config import BalanceConfig, Paths
from imgpipe.errors import run_stage
from imgpipe.storage import Split, class_counts, make_manifest, read_classes, read_split, write_dataset, write_json
from imgpipe.visualize import image_grid, plot_class_counts, save_png, text_card

PREVIEW = 6  # synthetic images shown per class


def main() -> None:
    paths = Paths.discover()
    cfg = BalanceConfig.load(paths.params)

    classes = read_classes(paths.ingested)
    train = read_split(paths.ingested, "train")
    sampler = make_sampler(cfg, classes, train.labels)
    out = resample(train.images, train.labels, sampler)

    ids, hashes, origin = provenance(out, list(train.manifest["id"]), list(train.manifest["sha256"]), cfg.method)
    manifest = make_manifest(ids=ids, labels=out.labels, classes=classes, split="train", sha256=hashes, origin=origin)
    # class_weight and weighted_sampler keep the data and tell train how to weigh it.
    weights = class_weights(train.labels, classes)
    training = {
        "method": cfg.method,
        "loss_weights": weights if cfg.method == "class_weight" else None,
        "sampler_weights": weights if cfg.method == "weighted_sampler" else None,
    }
    write_dataset(paths.balanced, classes, {"train": Split(out.images, manifest)}, extra={"training.json": training})

    before, after = class_counts(train.labels, classes), class_counts(out.labels, classes)
    synthetic = int((out.source_index < 0).sum())
    write_json(paths.balance_report, {
        "method": cfg.method, "before": before, "after": after, "total_before": len(train),
        "total_after": len(out.labels), "synthetic": synthetic, "training": training, "note": out.note,
    })
    if out.note:
        print(f"balance: note: {out.note}")
    plot_class_counts(before, after, f"balance.method: {cfg.method}", paths.balance_counts)
    save_png(synthetic_preview(out.images, out.labels, out.source_index, classes), paths.balance_synthetic)

    print(f"balance: {cfg.method}: {len(train)} -> {len(out.labels)} training images ({synthetic} synthetic)")
    for name in classes:
        print(f"  {name:>12}: {before[name]:5d} -> {after[name]:5d}")
    if cfg.method in ("class_weight", "weighted_sampler"):
        print(f"balance: data unchanged; train uses these class weights: {weights}")


def synthetic_preview(images: np.ndarray, labels: np.ndarray, source: np.ndarray, classes: list[str]):
    """Per class: an original, then the first synthetic images made for it (if any)."""
    rows, names = [], []
    for label, name in enumerate(classes):
        made = np.flatnonzero((labels == label) & (source < 0))[:PREVIEW]
        originals = np.flatnonzero((labels == label) & (source >= 0))[:1]
        if len(made):
            rows.append([images[i] for i in np.concatenate([originals, made])])
            names.append(name)
    if not rows:
        return text_card("this balance.method makes no synthetic images")
    return image_grid(rows, names, ["original"] + [f"synthetic {k + 1}" for k in range(PREVIEW)])


if __name__ == "__main__":
    run_stage(main)
