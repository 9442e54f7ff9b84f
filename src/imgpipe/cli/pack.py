"""``imgpipe pack``: a folder of class folders as WebDataset .tar shards."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgpipe.cli import flags


def add_parser(commands) -> argparse.ArgumentParser:
    pack = commands.add_parser(
        "pack",
        help="write a folder of class folders as WebDataset .tar shards",
        description="Write the images under SRC as tar shards in DST (shard-000000.tar, ...), "
        "shuffled with --seed, --shard-size samples each. Point ingest.source at DST and "
        "`dvc add` it: DVC tracks a few files instead of one per image, and ingest gives the "
        "same output as from SRC.",
    )
    pack.add_argument("src", type=Path, help="images in class folders (<src>/<class>/...), or pre-split")
    pack.add_argument("dst", type=Path, help="the folder to create for the shards (must not exist or be empty)")
    pack.add_argument("--shard-size", type=int, default=5000, help="samples per shard (default: 5000)")
    pack.add_argument("--seed", type=flags.seed, default=0, help="seed of the sample order (default: 0)")
    return pack


def run(args: argparse.Namespace) -> int:
    from imgpipe.ops.pack import pack

    shards = pack(args.src, args.dst, args.shard_size, args.seed)
    size = sum(s.stat().st_size for s in shards)
    print(
        f"pack: wrote {len(shards)} shards ({size / 2**20:.1f} MiB) to {args.dst}; "
        f"set ingest.source to it and `dvc add {args.dst}`"
    )
    return 0
