"""``imgpipe pack SRC DST``: a folder of class folders as WebDataset ``.tar`` shards.

DVC hashes, checks and pushes a handful of shards far faster than a million small files,
and ingest reads the shards in place (``imgpipe.ingest.shards``) with the same result as
the folder. Samples are shuffled with a seed, so each shard holds a mix of classes as
streaming readers want, and every shard but the last holds the same number of samples.
Packing the same folder twice gives the same bytes (fixed times, owners and order), so
DVC sees no change.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from imgpipe.errors import ImgpipeError
from imgpipe.ingest.shards import sample_key
from imgpipe.ingest.sources import scan_folder
from imgpipe.store.atomic import atomic_path

SHARD_PATTERN = "shard-%06d.tar"


def pack(src: Path, dst: Path, shard_size: int = 5000, seed: int = 0) -> list[Path]:
    """Write the images under ``src`` to ``dst/shard-000000.tar``...; return the shards.

    Each image keeps its path below ``src`` as its member name, so its class stays in the
    path (``cat/0001.jpg``) and ingest gives it the same id as in the folder.
    """
    from tqdm import tqdm
    from webdataset import ShardWriter

    if shard_size < 1:
        raise ImgpipeError(f"--shard-size must be at least 1, not {shard_size}.")
    if not src.is_dir():
        raise ImgpipeError(f"{src} is not a folder; give the folder that holds the class folders.")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ImgpipeError(f"{dst} already exists and is not an empty folder; pick a new destination.")
    samples = defaultdict(dict)  # key -> {extension: file}: a.jpg and a.png form one sample
    for candidate in scan_folder(src):
        key = sample_key(candidate.id)
        samples[key][candidate.id[len(key) + 1 :]] = candidate.path
    keys = sorted(samples)
    order = np.random.default_rng(seed).permutation(len(keys))
    total = sum(p.stat().st_size for files in samples.values() for p in files.values())
    with atomic_path(dst, needed=total) as tmp:
        tmp.mkdir()
        # mtime 0 and webdataset's fixed owner and mode make the archives reproducible.
        with ShardWriter(
            str(tmp / SHARD_PATTERN), maxcount=shard_size, maxsize=float("inf"), mtime=0, encoder=False, verbose=0
        ) as writer:
            for i in tqdm(order, desc="pack", unit="sample", mininterval=1.0):
                key = keys[i]
                writer.write({"__key__": key, **{ext: path.read_bytes() for ext, path in samples[key].items()}})
    return sorted(dst.glob("*.tar"))
