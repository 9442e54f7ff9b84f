"""Balance: resample the train split with an imbalanced-learn sampler.

Outputs (see dvc.yaml): ``data/balance/`` (the resampled train split) and
``reports/balance.json`` (counts per class before and after). Val and test stay in
``data/ingest/``, untouched.
"""

from __future__ import annotations

from imgpipe.balancing import make_sampler, resample
from imgpipe.config import BalanceConfig, Paths
from imgpipe.errors import run_stage
from imgpipe.storage import Split, class_counts, make_manifest, pixel_hash, read_classes, read_split, write_dataset, write_json


def main() -> None:
    paths = Paths.discover()
    cfg = BalanceConfig.load(paths.params)

    classes = read_classes(paths.ingested)
    train = read_split(paths.ingested, "train")
    sampler = make_sampler(cfg, classes, train.labels)

    out = resample(train.images, train.labels, sampler)

    # A copied row keeps its source's id and hash, with a suffix that keeps ids unique;
    # a synthetic row gets a new id and the hash of its own pixels.
    ids, hashes, origin, seen = [], [], [], {}
    for row, src in enumerate(out.source_index):
        if src < 0:
            ids.append(f"synthetic/{cfg.method}/{row:06d}")
            hashes.append(pixel_hash(out.images[row]))
            origin.append(cfg.method)
            continue
        base = train.manifest.at[int(src), "id"]
        n = seen[base] = seen.get(base, -1) + 1
        ids.append(base if n == 0 else f"{base}#copy{n}")
        hashes.append(train.manifest.at[int(src), "sha256"])
        origin.append("original" if n == 0 else f"{cfg.method}_copy")
    manifest = make_manifest(ids=ids, labels=out.labels, classes=classes, split="train", sha256=hashes, origin=origin)
    write_dataset(paths.balanced, classes, {"train": Split(out.images, manifest)})

    before, after = class_counts(train.labels, classes), class_counts(out.labels, classes)
    write_json(paths.balance_report, {"method": cfg.method, "before": before, "after": after,
                                      "total_before": len(train), "total_after": len(out.labels)})
    print(f"balance: {cfg.method}: {len(train)} -> {len(out.labels)} training images")
    for name in classes:
        print(f"  {name:>12}: {before[name]:5d} -> {after[name]:5d}")


if __name__ == "__main__":
    run_stage(main)
